//! The message registry of the lifecycle log: every message key the sample writes, with its
//! severity, text, argument count and resolution, served below `/redfish/v1/Registries`.

use serde_json::{json, Map, Value};

use super::{Tree, MANUFACTURER};

/// Registry prefix of the lifecycle `MessageId` values, in the Redfish
/// `Registry.Major.Minor.Key` form with Dell-style keys (`USR0030`, `PSU0031`, ...).
///
/// The sample uses `USR0030` for a login, `USR0031` for a failed login and `USR0032` for a
/// logout, so entries the core appends at run time match the generated ones when they use
/// this prefix with those keys and [`lifecycle_message`].
pub const MESSAGE_REGISTRY: &str = "RacksideEvent.1.0";

const REGISTRY_ID: &str = "RacksideEvent.1.0.0";
const REGISTRIES: &str = "/redfish/v1/Registries";

/// One registry message: key, severity, text with `%1`-style placeholders, argument types,
/// description and resolution.
struct Message {
    key: &'static str,
    severity: &'static str,
    text: &'static str,
    arguments: &'static [&'static str],
    description: &'static str,
    resolution: &'static str,
}

const NONE: &str = "None.";
const STRING: &str = "string";
const NUMBER: &str = "number";

const MESSAGES: &[Message] = &[
    Message {
        key: "USR0030",
        severity: "OK",
        text: "User %1 logged in from %2 using %3.",
        arguments: &[STRING, STRING, STRING],
        description: "A user logged in to the BMC.",
        resolution: NONE,
    },
    Message {
        key: "USR0031",
        severity: "Warning",
        text: "Login failed for user %1 from %2 using %3: invalid credentials.",
        arguments: &[STRING, STRING, STRING],
        description: "A login attempt was rejected.",
        resolution: "Check the user name and password. \
                     Repeated failures from an unknown address can be an attack.",
    },
    Message {
        key: "USR0032",
        severity: "OK",
        text: "Session of user %1 from %2 using %3 closed.",
        arguments: &[STRING, STRING, STRING],
        description: "A user session ended by logout or expiry.",
        resolution: NONE,
    },
    Message {
        key: "JCP027",
        severity: "OK",
        text: "Configuration job %1 completed successfully.",
        arguments: &[STRING],
        description: "A configuration job finished without errors.",
        resolution: NONE,
    },
    Message {
        key: "RAC0560",
        severity: "OK",
        text: "BMC clock synchronized with NTP server %1.",
        arguments: &[STRING],
        description: "The BMC set its clock from an NTP server.",
        resolution: NONE,
    },
    Message {
        key: "RAC1195",
        severity: "OK",
        text: "Server configuration profile exported by %1.",
        arguments: &[STRING],
        description: "A user exported the server configuration profile.",
        resolution: NONE,
    },
    Message {
        key: "SUP0516",
        severity: "OK",
        text: "Firmware update job %1 for %2 completed.",
        arguments: &[STRING, STRING],
        description: "A firmware image was installed.",
        resolution: NONE,
    },
    Message {
        key: "SYS1001",
        severity: "OK",
        text: "Host is powering on.",
        arguments: &[],
        description: "The host started its power-on sequence.",
        resolution: NONE,
    },
    Message {
        key: "SYS1003",
        severity: "OK",
        text: "Host restart requested by %1.",
        arguments: &[STRING],
        description: "A user requested a host restart.",
        resolution: NONE,
    },
    Message {
        key: "SYS1004",
        severity: "OK",
        text: "Host completed POST and started the boot loader.",
        arguments: &[],
        description: "The host finished its power-on self-test.",
        resolution: NONE,
    },
    Message {
        key: "TMP0118",
        severity: "OK",
        text: "Inlet temperature is back within the normal range.",
        arguments: &[],
        description: "The inlet temperature returned below its warning threshold.",
        resolution: NONE,
    },
    Message {
        key: "TMP0120",
        severity: "Warning",
        text: "Inlet temperature of %1 C is above the upper warning threshold of %2 C.",
        arguments: &[NUMBER, NUMBER],
        description: "The inlet temperature is above its warning threshold.",
        resolution: "Check the room temperature and that nothing blocks the front of the server.",
    },
    Message {
        key: "TMP0121",
        severity: "Critical",
        text: "Inlet temperature of %1 C is above the upper critical threshold of %2 C.",
        arguments: &[NUMBER, NUMBER],
        description: "The inlet temperature is above its critical threshold.",
        resolution: "Cool the room or shut the server down before components overheat.",
    },
    Message {
        key: "FAN0000",
        severity: "OK",
        text: "Fan %1 speed is back within the normal range.",
        arguments: &[STRING],
        description: "A fan speed returned above its warning threshold.",
        resolution: NONE,
    },
    Message {
        key: "FAN0001",
        severity: "Warning",
        text: "Fan %1 speed is below the lower warning threshold.",
        arguments: &[STRING],
        description: "A fan turns slower than its warning threshold.",
        resolution: "Check the fan for dust or obstruction.",
    },
    Message {
        key: "FAN0002",
        severity: "Critical",
        text: "Fan %1 speed is below the lower critical threshold.",
        arguments: &[STRING],
        description: "A fan turns slower than its critical threshold.",
        resolution: "Reseat the fan and replace it if the fault stays.",
    },
    Message {
        key: "PSU0031",
        severity: "Critical",
        text: "Power supply %1 lost its AC input.",
        arguments: &[STRING],
        description: "A power supply has no input power.",
        resolution: "Check the power cord and the circuit feeding the power supply.",
    },
    Message {
        key: "PSU0032",
        severity: "OK",
        text: "Power supply %1 AC input restored.",
        arguments: &[STRING],
        description: "A power supply has input power again.",
        resolution: NONE,
    },
    Message {
        key: "RDU0010",
        severity: "OK",
        text: "Power supply redundancy is restored.",
        arguments: &[],
        description: "Enough power supplies work to survive the loss of one.",
        resolution: NONE,
    },
    Message {
        key: "RDU0012",
        severity: "Warning",
        text: "Power supply redundancy is lost.",
        arguments: &[],
        description: "The loss of one more power supply would power the server off.",
        resolution: "Restore input power to every power supply.",
    },
    Message {
        key: "MEM0701",
        severity: "Warning",
        text: "Correctable memory error rate exceeded for DIMM %1.",
        arguments: &[STRING],
        description: "A memory module reports many correctable errors.",
        resolution: "Reseat the module and replace it if the errors come back.",
    },
    Message {
        key: "MEM0702",
        severity: "OK",
        text: "Correctable memory error rate for DIMM %1 is back to normal.",
        arguments: &[STRING],
        description: "The correctable error rate of a memory module is normal again.",
        resolution: NONE,
    },
    Message {
        key: "NIC100",
        severity: "Warning",
        text: "The network link on %1 is down.",
        arguments: &[STRING],
        description: "A network port lost its link.",
        resolution: "Check the cable, the transceiver and the switch port.",
    },
    Message {
        key: "NIC101",
        severity: "OK",
        text: "The network link on %1 is up.",
        arguments: &[STRING],
        description: "A network port has a link.",
        resolution: NONE,
    },
    Message {
        key: "SEC0031",
        severity: "Critical",
        text: "Chassis intrusion detected: the cover was opened.",
        arguments: &[],
        description: "The chassis cover switch opened.",
        resolution: "Check that the opening was authorized.",
    },
    Message {
        key: "SEC0033",
        severity: "OK",
        text: "The chassis cover was closed.",
        arguments: &[],
        description: "The chassis cover switch closed.",
        resolution: NONE,
    },
    Message {
        key: "CTL0101",
        severity: "OK",
        text: "Patrol read started on %1.",
        arguments: &[STRING],
        description: "The RAID controller started checking its drives for media errors.",
        resolution: NONE,
    },
    Message {
        key: "CTL0102",
        severity: "OK",
        text: "Patrol read completed on %1.",
        arguments: &[STRING],
        description: "The RAID controller finished checking its drives for media errors.",
        resolution: NONE,
    },
    Message {
        key: "CPU0001",
        severity: "Critical",
        text: "CPU %1 temperature is above the upper critical threshold, \
               so the processor is throttling.",
        arguments: &[STRING],
        description: "A processor slowed down to protect itself from heat.",
        resolution: "Check the fans, the heat sink and the inlet temperature.",
    },
    Message {
        key: "CPU0002",
        severity: "OK",
        text: "CPU %1 is no longer throttling.",
        arguments: &[STRING],
        description: "A processor runs at full speed again.",
        resolution: NONE,
    },
    Message {
        key: "PDR1016",
        severity: "Warning",
        text: "Predictive failure reported for the drive in bay %1: \
               back up its data and replace it.",
        arguments: &[STRING],
        description: "A drive predicts that it will fail soon.",
        resolution: "Back up the data on the drive and replace it.",
    },
];

/// Formats the registry message `key` with `args` and returns its `MessageId`, text and
/// severity, or `None` when the registry has no such key or `args` has the wrong length.
pub fn lifecycle_message(key: &str, args: &[&str]) -> Option<(String, String, &'static str)> {
    let message = MESSAGES.iter().find(|message| message.key == key)?;
    if message.arguments.len() != args.len() {
        return None;
    }
    // Replaces the highest placeholder first so that `%1` never eats the start of `%10`.
    let mut text = message.text.to_owned();
    for (index, arg) in args.iter().enumerate().rev() {
        text = text.replace(&format!("%{}", index + 1), arg);
    }
    Some((format!("{MESSAGE_REGISTRY}.{key}"), text, message.severity))
}

/// Adds the registry collection, the registry file resource and the registry itself.
pub(super) fn add(tree: &mut Tree) {
    let file = format!("{REGISTRIES}/{REGISTRY_ID}");
    let registry = format!("{file}/Registry");
    tree.add_collection(
        REGISTRIES,
        "MessageRegistryFileCollection",
        "Registry File Collection",
        std::slice::from_ref(&file),
    );
    tree.add(
        &file,
        json!({
            "@odata.type": "#MessageRegistryFile.v1_1_5.MessageRegistryFile",
            "Id": REGISTRY_ID,
            "Name": "Rackside Event Message Registry File",
            "Languages": ["en"],
            "Registry": REGISTRY_ID,
            "Location": [{ "Language": "en", "Uri": registry }],
        }),
    );

    let mut messages = Map::new();
    for message in MESSAGES {
        let mut body = json!({
            "Description": message.description,
            "Message": message.text,
            "MessageSeverity": message.severity,
            "NumberOfArgs": message.arguments.len(),
            "Resolution": message.resolution,
        });
        if let (false, Some(fields)) = (message.arguments.is_empty(), body.as_object_mut()) {
            fields.insert("ParamTypes".to_owned(), json!(message.arguments));
        }
        messages.insert(message.key.to_owned(), body);
    }
    tree.add(
        &registry,
        json!({
            "@odata.type": "#MessageRegistry.v1_7_0.MessageRegistry",
            "Id": REGISTRY_ID,
            "Name": "Rackside Event Message Registry",
            "Description": "Messages of the lifecycle log of the Rackside R1U-2S",
            "Language": "en",
            "RegistryPrefix": "RacksideEvent",
            "RegistryVersion": "1.0.0",
            "OwningEntity": MANUFACTURER,
            "Messages": Value::Object(messages),
        }),
    );
}
