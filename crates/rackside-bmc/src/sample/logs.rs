//! The lifecycle log and the system event log (SEL) of the sample server.
//!
//! Both logs are generated from a seeded SplitMix64 generator: incidents (a login and its
//! logout, a power supply losing and regaining input, a temperature excursion, ...) follow
//! each other at pseudo-random intervals, and each incident writes one or more entries.
//! The newest entries of both logs report the two faults the hardware still has, so the
//! log, the component `Status` and the system `Status.Conditions` tell the same story.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::registry::{lifecycle_message, MESSAGE_REGISTRY};
use super::{chassis, link, system, Fault, Faults, LIFECYCLE_LOG, MANAGER, SEL, SYSTEM};

/// Number of lifecycle log entries, the two fault reports included.
pub(super) const LIFECYCLE_ENTRIES: usize = 600;

/// Number of SEL entries, the two fault reports included.
const SEL_ENTRIES: usize = 80;

/// `@odata.type` of every log entry.
const LOG_ENTRY_TYPE: &str = "#LogEntry.v1_21_0.LogEntry";

/// IPMI generator ID of the BMC itself (slave address 0x20), used for every SEL entry.
const BMC_GENERATOR_ID: &str = "0x0020";

/// The generated logs and the facts the resource tree takes from them.
pub(super) struct Logs {
    /// Lifecycle entries, oldest first.
    pub(super) lifecycle: Vec<Value>,
    /// SEL entries, oldest first.
    pub(super) sel: Vec<Value>,
    /// The faults reported by the newest lifecycle entries.
    pub(super) faults: Faults,
    /// A time shortly after the newest entry, used as the BMC clock of the static tree.
    pub(super) now: String,
}

/// Generates both logs.
pub(super) fn build() -> Logs {
    let mut rng = Rng(0x5EED_1A1C_0000_0001);

    let start = Utc.with_ymd_and_hms(2026, 7, 21, 6, 12, 40).single();
    let mut lifecycle = Writer::new(LIFECYCLE_LOG, start.unwrap_or_default());
    while lifecycle.entries.len() < LIFECYCLE_ENTRIES - 2 {
        lifecycle.advance(Duration::minutes(30 + rng.below(18 * 60) as i64));
        let room = LIFECYCLE_ENTRIES - 2 - lifecycle.entries.len();
        lifecycle_incident(&mut lifecycle, &mut rng, room);
    }

    lifecycle.advance(Duration::hours(9));
    let fan = report_fan_fault(&mut lifecycle);
    lifecycle.advance(Duration::hours(2) + Duration::minutes(41));
    let drive = report_drive_fault(&mut lifecycle);
    let now = timestamp(lifecycle.clock + Duration::minutes(17));

    let sel_start = Utc.with_ymd_and_hms(2026, 9, 1, 3, 5, 9).single();
    let mut sel = Writer::new(SEL, sel_start.unwrap_or_default());
    sel.push_sel(&SelEvent {
        sensor_type: "Event Logging Disabled",
        sensor_number: 0x72,
        entry_code: "Assert",
        event_data: 0x6F_02_FF_FF,
        severity: "OK",
        message: "Log area reset/cleared.".to_owned(),
    });
    while sel.entries.len() < SEL_ENTRIES - 2 {
        sel.advance(Duration::minutes(90 + rng.below(72 * 60) as i64));
        let room = SEL_ENTRIES - 2 - sel.entries.len();
        sel_incident(&mut sel, &mut rng, room);
    }
    sel.clock = parse_or(&fan.timestamp, sel.clock);
    sel.push_sel(&SelEvent {
        sensor_type: "Fan",
        sensor_number: 0x33,
        entry_code: "Lower Critical - going low",
        event_data: 0x01_52_0B_12,
        severity: "Critical",
        message: format!(
            "Fan {} RPM is below the lower critical threshold.",
            chassis::FAILED_FAN
        ),
    });
    sel.clock = parse_or(&drive.timestamp, sel.clock);
    sel.push_sel(&SelEvent {
        sensor_type: "Drive Slot/Bay",
        sensor_number: 0x85,
        entry_code: "Predictive Failure asserted",
        event_data: 0x6F_02_FF_05,
        severity: "Warning",
        message: format!(
            "Drive in bay {} asserts a predictive failure.",
            system::FAILING_DRIVE_BAY
        ),
    });

    Logs {
        lifecycle: lifecycle.entries,
        sel: sel.entries,
        faults: Faults { fan, drive },
        now,
    }
}

/// One lifecycle entry before numbering.
struct Event {
    /// Message key in the Dell style, for example `USR0030`.
    key: &'static str,
    args: Vec<String>,
    /// URI of the resource the event is about.
    origin: Option<String>,
}

/// One SEL record before numbering.
struct SelEvent {
    sensor_type: &'static str,
    sensor_number: u8,
    entry_code: &'static str,
    /// Bytes 13 to 16 of the IPMI SEL record: event direction and type, then event data 1-3.
    event_data: u32,
    severity: &'static str,
    message: String,
}

/// A log being generated: its `Entries` URI, its clock and the entries so far.
struct Writer {
    path: &'static str,
    clock: DateTime<Utc>,
    entries: Vec<Value>,
}

impl Writer {
    fn new(path: &'static str, start: DateTime<Utc>) -> Self {
        Self {
            path,
            clock: start,
            entries: Vec::new(),
        }
    }

    fn advance(&mut self, by: Duration) {
        self.clock += by;
    }

    /// Appends a lifecycle entry at the current clock, with its text and severity from the
    /// message registry, and returns it.
    fn push(&mut self, event: Event) -> &Value {
        let id = (self.entries.len() + 1).to_string();
        let path = format!("{}/{id}", self.path);
        let args: Vec<&str> = event.args.iter().map(String::as_str).collect();
        // A key missing from the registry leaves the text empty, which the unit tests catch.
        let (message_id, message, severity) =
            lifecycle_message(event.key, &args).unwrap_or_else(|| {
                (
                    format!("{MESSAGE_REGISTRY}.{}", event.key),
                    String::new(),
                    "OK",
                )
            });
        let mut body = json!({
            "@odata.id": path,
            "@odata.type": LOG_ENTRY_TYPE,
            "Id": id,
            "Name": format!("Log Entry {id}"),
            "EntryType": "Event",
            "Severity": severity,
            "Created": timestamp(self.clock),
            "Message": message,
            "MessageId": message_id,
            "MessageArgs": event.args,
        });
        if let (Some(origin), Some(fields)) = (event.origin, body.as_object_mut()) {
            fields.insert(
                "Links".to_owned(),
                json!({ "OriginOfCondition": link(&origin) }),
            );
        }
        self.entries.push(body);
        self.entries.last().unwrap_or(&Value::Null)
    }

    /// Appends a SEL entry at the current clock.
    fn push_sel(&mut self, event: &SelEvent) {
        let id = (self.entries.len() + 1).to_string();
        self.entries.push(json!({
            "@odata.id": format!("{}/{id}", self.path),
            "@odata.type": LOG_ENTRY_TYPE,
            "Id": id,
            "Name": format!("SEL Entry {id}"),
            "EntryType": "SEL",
            "Severity": event.severity,
            "Created": timestamp(self.clock),
            "Message": event.message,
            "MessageId": format!("0x{:08X}", event.event_data),
            "SensorType": event.sensor_type,
            "SensorNumber": event.sensor_number,
            "EntryCode": event.entry_code,
            "GeneratorId": BMC_GENERATOR_ID,
        }));
    }
}

/// Formats a time as RFC 3339 with seconds and a `+00:00` offset, as BMCs commonly do.
fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn parse_or(text: &str, fallback: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or(fallback)
}

/// SplitMix64: a tiny, well-mixed generator, enough to make the logs look irregular while
/// staying the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a value in `0..bound`, or 0 when `bound` is zero.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    /// Returns one of `choices`, or `""` when there are none.
    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        let index = self.below(choices.len() as u64) as usize;
        choices.get(index).copied().unwrap_or_default()
    }
}

const USERS: &[&str] = &[
    "admin",
    "admin",
    "ops-jlee",
    "svc-monitor",
    "svc-monitor",
    "mkaur",
];
const INTERFACES: &[&str] = &["Redfish", "Redfish", "GUI", "SSH"];
const NTP_SERVERS: &[&str] = &["192.0.2.5", "192.0.2.6"];
const POPULATED_DIMMS: &[&str] = &[
    "A1", "A2", "A3", "A4", "A5", "A6", "B1", "B2", "B3", "B4", "B5", "B6",
];
const NIC_PORTS: &[(&str, &str)] = &[
    ("NIC.Integrated.1", "1"),
    ("NIC.Integrated.1", "2"),
    ("NIC.Slot.1", "1"),
];
const FIRMWARE: &[&str] = &["BIOS", "BMC", "NIC.Slot.1", "RAID.Integrated.1", "PSU"];

fn client_address(rng: &mut Rng) -> String {
    format!("192.0.2.{}", 50 + rng.below(40))
}

fn job_id(rng: &mut Rng) -> String {
    format!("JID_{:012}", 795_000_000_000 + rng.below(9_000_000_000))
}

/// Most entries one lifecycle incident writes (a power supply losing and regaining input).
const MAX_LIFECYCLE_INCIDENT: usize = 4;

/// Writes the entries of one pseudo-random incident to the lifecycle log, choosing a
/// single-entry incident when fewer than [`MAX_LIFECYCLE_INCIDENT`] entries fit in `room`.
fn lifecycle_incident(log: &mut Writer, rng: &mut Rng, room: usize) {
    let roll = if room < MAX_LIFECYCLE_INCIDENT {
        match rng.below(3) {
            0 => 32,
            1 => 40,
            _ => 93,
        }
    } else {
        rng.below(100)
    };
    match roll {
        0..=25 => session(log, rng),
        26..=31 => failed_logins(log, rng),
        32..=39 => {
            let job = job_id(rng);
            log.push(Event {
                key: "JCP027",
                args: vec![job],
                origin: Some(MANAGER.to_owned()),
            });
        }
        40..=45 => {
            let server = rng.pick(NTP_SERVERS).to_owned();
            log.push(Event {
                key: "RAC0560",
                args: vec![server],
                origin: Some(MANAGER.to_owned()),
            });
        }
        46..=53 => host_restart(log, rng),
        54..=60 => inlet_temperature(log, rng),
        61..=65 => fan_dip(log, rng),
        66..=68 => power_supply_loss(log, rng),
        69..=74 => memory_errors(log, rng),
        75..=80 => link_flap(log, rng),
        81 => chassis_intrusion(log, rng),
        82..=89 => patrol_read(log, rng),
        90..=92 => {
            let job = job_id(rng);
            let component = rng.pick(FIRMWARE).to_owned();
            log.push(Event {
                key: "SUP0516",
                args: vec![job, component],
                origin: Some("/redfish/v1/UpdateService/FirmwareInventory".to_owned()),
            });
        }
        93..=96 => {
            let user = rng.pick(USERS).to_owned();
            log.push(Event {
                key: "RAC1195",
                args: vec![user],
                origin: Some(MANAGER.to_owned()),
            });
        }
        _ => processor_throttling(log, rng),
    }
}

fn session(log: &mut Writer, rng: &mut Rng) {
    let user = rng.pick(USERS).to_owned();
    let address = client_address(rng);
    let interface = rng.pick(INTERFACES).to_owned();
    log.push(Event {
        key: "USR0030",
        args: vec![user.clone(), address.clone(), interface.clone()],
        origin: Some(MANAGER.to_owned()),
    });
    log.advance(Duration::seconds(20 + rng.below(3 * 3600) as i64));
    log.push(Event {
        key: "USR0032",
        args: vec![user, address, interface],
        origin: Some(MANAGER.to_owned()),
    });
}

fn failed_logins(log: &mut Writer, rng: &mut Rng) {
    let user = rng
        .pick(&["root", "admin", "administrator", "ops-jlee"])
        .to_owned();
    let address = client_address(rng);
    let attempts = 1 + rng.below(3);
    for _ in 0..attempts {
        log.push(Event {
            key: "USR0031",
            args: vec![user.clone(), address.clone(), "Redfish".to_owned()],
            origin: Some(MANAGER.to_owned()),
        });
        log.advance(Duration::seconds(3 + rng.below(40) as i64));
    }
}

fn host_restart(log: &mut Writer, rng: &mut Rng) {
    let user = rng.pick(USERS).to_owned();
    log.push(Event {
        key: "SYS1003",
        args: vec![user],
        origin: Some(SYSTEM.to_owned()),
    });
    log.advance(Duration::seconds(40 + rng.below(30) as i64));
    log.push(Event {
        key: "SYS1001",
        args: Vec::new(),
        origin: Some(SYSTEM.to_owned()),
    });
    log.advance(Duration::seconds(150 + rng.below(90) as i64));
    log.push(Event {
        key: "SYS1004",
        args: Vec::new(),
        origin: Some(SYSTEM.to_owned()),
    });
}

fn inlet_temperature(log: &mut Writer, rng: &mut Rng) {
    let sensor = chassis::sensor_path("InletTemp");
    let critical = rng.below(6) == 0;
    let (key, reading, threshold) = if critical {
        ("TMP0121", 43 + rng.below(3), 42)
    } else {
        ("TMP0120", 39 + rng.below(3), 38)
    };
    log.push(Event {
        key,
        args: vec![reading.to_string(), threshold.to_string()],
        origin: Some(sensor.clone()),
    });
    log.advance(Duration::minutes(8 + rng.below(110) as i64));
    log.push(Event {
        key: "TMP0118",
        args: Vec::new(),
        origin: Some(sensor),
    });
}

fn fan_dip(log: &mut Writer, rng: &mut Rng) {
    let fan = (1 + rng.below(6)).to_string();
    log.push(Event {
        key: "FAN0001",
        args: vec![fan.clone()],
        origin: Some(chassis::fan_path(&fan)),
    });
    log.advance(Duration::seconds(30 + rng.below(600) as i64));
    log.push(Event {
        key: "FAN0000",
        args: vec![fan.clone()],
        origin: Some(chassis::fan_path(&fan)),
    });
}

fn power_supply_loss(log: &mut Writer, rng: &mut Rng) {
    let unit = (1 + rng.below(2)).to_string();
    let supply = chassis::power_supply_path(&unit);
    log.push(Event {
        key: "PSU0031",
        args: vec![unit.clone()],
        origin: Some(supply.clone()),
    });
    log.advance(Duration::seconds(1));
    log.push(Event {
        key: "RDU0012",
        args: Vec::new(),
        origin: Some(chassis::POWER_SUBSYSTEM.to_owned()),
    });
    log.advance(Duration::minutes(2 + rng.below(45) as i64));
    log.push(Event {
        key: "PSU0032",
        args: vec![unit],
        origin: Some(supply),
    });
    log.advance(Duration::seconds(2));
    log.push(Event {
        key: "RDU0010",
        args: Vec::new(),
        origin: Some(chassis::POWER_SUBSYSTEM.to_owned()),
    });
}

fn memory_errors(log: &mut Writer, rng: &mut Rng) {
    let slot = rng.pick(POPULATED_DIMMS).to_owned();
    log.push(Event {
        key: "MEM0701",
        args: vec![slot.clone()],
        origin: Some(system::dimm_path(&slot)),
    });
    log.advance(Duration::hours(1 + rng.below(20) as i64));
    log.push(Event {
        key: "MEM0702",
        args: vec![slot.clone()],
        origin: Some(system::dimm_path(&slot)),
    });
}

fn link_flap(log: &mut Writer, rng: &mut Rng) {
    let index = rng.below(NIC_PORTS.len() as u64) as usize;
    let (adapter, port) = NIC_PORTS.get(index).copied().unwrap_or(("NIC.Slot.1", "1"));
    let name = format!("{adapter} port {port}");
    let path = chassis::port_path(adapter, port);
    log.push(Event {
        key: "NIC100",
        args: vec![name.clone()],
        origin: Some(path.clone()),
    });
    log.advance(Duration::seconds(5 + rng.below(900) as i64));
    log.push(Event {
        key: "NIC101",
        args: vec![name],
        origin: Some(path),
    });
}

fn chassis_intrusion(log: &mut Writer, rng: &mut Rng) {
    log.push(Event {
        key: "SEC0031",
        args: Vec::new(),
        origin: Some(super::CHASSIS.to_owned()),
    });
    log.advance(Duration::minutes(4 + rng.below(50) as i64));
    log.push(Event {
        key: "SEC0033",
        args: Vec::new(),
        origin: Some(super::CHASSIS.to_owned()),
    });
}

fn patrol_read(log: &mut Writer, rng: &mut Rng) {
    let controller = system::STORAGE_ID.to_owned();
    log.push(Event {
        key: "CTL0101",
        args: vec![controller.clone()],
        origin: Some(system::storage_path()),
    });
    log.advance(Duration::hours(2 + rng.below(4) as i64) + Duration::minutes(rng.below(60) as i64));
    log.push(Event {
        key: "CTL0102",
        args: vec![controller],
        origin: Some(system::storage_path()),
    });
}

fn processor_throttling(log: &mut Writer, rng: &mut Rng) {
    let socket = (1 + rng.below(2)).to_string();
    let path = system::processor_path(&socket);
    log.push(Event {
        key: "CPU0001",
        args: vec![socket.clone()],
        origin: Some(path.clone()),
    });
    log.advance(Duration::seconds(20 + rng.below(300) as i64));
    log.push(Event {
        key: "CPU0002",
        args: vec![socket],
        origin: Some(path),
    });
}

/// Writes the report of the fan that is still failing and returns it as a fault.
fn report_fan_fault(log: &mut Writer) -> Fault {
    let fan = chassis::FAILED_FAN;
    report_fault(log, "FAN0002", fan, chassis::fan_path(fan))
}

/// Writes the report of the drive that predicts its failure and returns it as a fault.
fn report_drive_fault(log: &mut Writer) -> Fault {
    let bay = system::FAILING_DRIVE_BAY;
    report_fault(log, "PDR1016", bay, system::drive_path(bay))
}

/// Writes the lifecycle entry `key` about the component at `origin`, named by `arg` in the
/// message, and returns the same facts as a fault.
fn report_fault(log: &mut Writer, key: &'static str, arg: &str, origin: String) -> Fault {
    let entry = log.push(Event {
        key,
        args: vec![arg.to_owned()],
        origin: Some(origin.clone()),
    });
    let text = |field: &str| entry[field].as_str().unwrap_or_default().to_owned();
    Fault {
        origin,
        severity: text("Severity"),
        message_id: text("MessageId"),
        message: text("Message"),
        message_args: vec![arg.to_owned()],
        timestamp: text("Created"),
        log_entry: text("@odata.id"),
    }
}

/// Writes the records of one pseudo-random incident to the SEL, choosing a single-record
/// incident when only one record fits in `room`.
fn sel_incident(log: &mut Writer, rng: &mut Rng, room: usize) {
    let roll = if room < 2 { 5 } else { rng.below(10) };
    match roll {
        0 | 1 => {
            log.push_sel(&SelEvent {
                sensor_type: "Button/Switch",
                sensor_number: 0x6A,
                entry_code: "Assert",
                event_data: 0x6F_00_FF_FF,
                severity: "OK",
                message: "Power button pressed.".to_owned(),
            });
            log.advance(Duration::seconds(45));
            log.push_sel(&SelEvent {
                sensor_type: "SystemBoot/Restart",
                sensor_number: 0x6C,
                entry_code: "Assert",
                event_data: 0x6F_07_FF_FF,
                severity: "OK",
                message: "Host system restart initiated.".to_owned(),
            });
        }
        2 | 3 => {
            let reading = 39 + rng.below(3) as u32;
            log.push_sel(&SelEvent {
                sensor_type: "Temperature",
                sensor_number: 0x01,
                entry_code: "Upper Non-critical - going high",
                event_data: 0x01_57_00_26 | (reading << 8),
                severity: "Warning",
                message: format!(
                    "Inlet temperature {reading} C is above the upper warning threshold."
                ),
            });
            log.advance(Duration::minutes(10 + rng.below(90) as i64));
            log.push_sel(&SelEvent {
                sensor_type: "Temperature",
                sensor_number: 0x01,
                entry_code: "Upper Non-critical - going high",
                event_data: 0x81_57_25_26,
                severity: "OK",
                message: "Inlet temperature is back below the upper warning threshold.".to_owned(),
            });
        }
        4 => {
            let unit = 1 + rng.below(2) as u32;
            log.push_sel(&SelEvent {
                sensor_type: "Power Supply / Converter",
                sensor_number: 0x60 + unit as u8,
                entry_code: "Assert",
                event_data: 0x6F_03_FF_FF,
                severity: "Critical",
                message: format!("Power supply {unit} input lost."),
            });
            log.advance(Duration::minutes(2 + rng.below(45) as i64));
            log.push_sel(&SelEvent {
                sensor_type: "Power Supply / Converter",
                sensor_number: 0x60 + unit as u8,
                entry_code: "Deassert",
                event_data: 0xEF_03_FF_FF,
                severity: "OK",
                message: format!("Power supply {unit} input restored."),
            });
        }
        5 | 6 => {
            let slot = rng.pick(POPULATED_DIMMS);
            log.push_sel(&SelEvent {
                sensor_type: "Memory",
                sensor_number: 0x20,
                entry_code: "Assert",
                event_data: 0x6F_05_FF_FF,
                severity: "Warning",
                message: format!("Correctable ECC logging limit reached for DIMM {slot}."),
            });
        }
        7 => {
            log.push_sel(&SelEvent {
                sensor_type: "Physical Chassis Security",
                sensor_number: 0x73,
                entry_code: "Assert",
                event_data: 0x6F_00_FF_FF,
                severity: "Critical",
                message: "Chassis cover opened.".to_owned(),
            });
            log.advance(Duration::minutes(4 + rng.below(50) as i64));
            log.push_sel(&SelEvent {
                sensor_type: "Physical Chassis Security",
                sensor_number: 0x73,
                entry_code: "Deassert",
                event_data: 0xEF_00_FF_FF,
                severity: "OK",
                message: "Chassis cover closed.".to_owned(),
            });
        }
        _ => {
            let fan = 1 + rng.below(6) as u32;
            log.push_sel(&SelEvent {
                sensor_type: "Fan",
                sensor_number: 0x2F + fan as u8,
                entry_code: "Lower Non-critical - going low",
                event_data: 0x01_50_10_14,
                severity: "Warning",
                message: format!("Fan {fan} RPM is below the lower warning threshold."),
            });
            log.advance(Duration::seconds(30 + rng.below(600) as i64));
            log.push_sel(&SelEvent {
                sensor_type: "Fan",
                sensor_number: 0x2F + fan as u8,
                entry_code: "Lower Non-critical - going low",
                event_data: 0x81_50_2A_14,
                severity: "OK",
                message: format!("Fan {fan} RPM is back above the lower warning threshold."),
            });
        }
    }
}
