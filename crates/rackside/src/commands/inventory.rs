//! `rackside inventory NAME`: system, processors, memory, storage, network, power, cooling,
//! firmware.

use std::process::ExitCode;

use rackside_redfish::{inventory, Inventory};

use crate::cli::InventoryArgs;
use crate::connect::Context;
use crate::failure::{describe, ExitKind, Failure};
use crate::output::{outln, Table};
use crate::store::describe_age;

/// The vault cache kind of inventories.
const CACHE_KIND: &str = "inventory";

/// Prints the inventory of one server, and keeps it in the vault for `--cached`.
pub async fn run(mut context: Context, args: InventoryArgs) -> anyhow::Result<ExitCode> {
    if args.cached {
        return run_cached(&context, &args);
    }
    let connection = context.open(&args.name).await?;
    let result = inventory(&connection.client).await;
    connection.close().await;
    let inventory = result?;
    let stored = serde_json::to_value(&inventory)
        .map_err(anyhow::Error::from)
        .and_then(|body| context.store.put_cached(CACHE_KIND, &args.name, body));
    if let Err(error) = stored {
        eprintln!(
            "warning: {}: failed to cache the inventory in the vault: {}",
            args.name,
            describe(&error).1
        );
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&inventory)?);
    } else {
        print_inventory(&inventory);
    }
    Ok(ExitCode::SUCCESS)
}

/// `inventory --cached`: the inventory stored by the last run, without any network access.
fn run_cached(context: &Context, args: &InventoryArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    context.store.server(name)?;
    let Some(cached) = context.store.cached(CACHE_KIND, name)? else {
        return Err(Failure::new(
            ExitKind::Failure,
            format!(
                "no cached inventory for {name}: run `rackside inventory {name}` once while the \
                 BMC is reachable"
            ),
        )
        .into());
    };
    eprintln!(
        "{name}: {}",
        describe_age(cached.fetched_at, chrono::Utc::now())
    );
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&cached.body)?);
        return Ok(ExitCode::SUCCESS);
    }
    let inventory: Inventory = serde_json::from_value(cached.body).map_err(|error| {
        Failure::new(
            ExitKind::Failure,
            format!(
                "cached inventory of {name} unreadable ({error}): run `rackside inventory \
                 {name}` to replace it"
            ),
        )
    })?;
    print_inventory(&inventory);
    Ok(ExitCode::SUCCESS)
}

/// Prints an inventory as sections of tables.
pub fn print_inventory(inventory: &Inventory) {
    for item in &inventory.systems {
        let system = &item.system;
        outln!("System {} ({})", system.id, system.name);
        let memory = system.total_memory_gib.map(|gib| format!("{gib} GiB"));
        for (label, value) in [
            ("manufacturer", &system.manufacturer),
            ("model", &system.model),
            ("service tag", &system.service_tag),
            ("serial number", &system.serial_number),
            ("BIOS", &system.bios_version),
            ("power", &system.power_state),
            ("health", &system.health),
            ("memory", &memory),
        ] {
            if let Some(value) = value {
                outln!("  {label:<14} {value}");
            }
        }

        section("Processors");
        let mut table = Table::new([
            "ID", "SOCKET", "MODEL", "CORES", "THREADS", "MAX MHZ", "HEALTH",
        ]);
        for cpu in &item.processors {
            table.row([
                cpu.id.clone(),
                text(&cpu.socket),
                text(&cpu.model),
                number(cpu.cores),
                number(cpu.threads),
                number(cpu.max_speed_mhz),
                text(&cpu.health),
            ]);
        }
        print_or_none(&table);

        section("Memory");
        let mut table = Table::new(["LOCATOR", "SIZE MIB", "TYPE", "MHZ", "PART", "HEALTH"]);
        for dimm in &item.memory {
            table.row([
                dimm.locator.clone(),
                number(dimm.capacity_mib),
                text(&dimm.device_type),
                number(dimm.speed_mhz),
                text(&dimm.part_number),
                text(&dimm.health),
            ]);
        }
        print_or_none(&table);

        section("Storage");
        let mut table = Table::new(["STORAGE", "DEVICE", "MODEL", "DETAIL", "HEALTH"]);
        for storage in &item.storage {
            for controller in &storage.controllers {
                table.row([
                    storage.id.clone(),
                    controller.name.clone(),
                    text(&controller.model),
                    format!("firmware {}", text(&controller.firmware_version)),
                    text(&controller.health),
                ]);
            }
            for drive in &storage.drives {
                let size = drive.capacity_bytes.map_or_else(
                    || "-".to_owned(),
                    |bytes| format!("{} GB", bytes / 1_000_000_000),
                );
                table.row([
                    storage.id.clone(),
                    drive.name.clone(),
                    text(&drive.model),
                    format!(
                        "{size} {} {}",
                        text(&drive.media_type),
                        text(&drive.protocol)
                    ),
                    text(&drive.health),
                ]);
            }
        }
        print_or_none(&table);

        section("Network adapters");
        let mut table = Table::new(["ADAPTER", "PORT", "LINK", "MBPS", "MAC", "HEALTH"]);
        for adapter in &item.network_adapters {
            if adapter.ports.is_empty() {
                table.row([
                    adapter.name.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    text(&adapter.health),
                ]);
            }
            for port in &adapter.ports {
                table.row([
                    adapter.name.clone(),
                    port.id.clone(),
                    text(&port.link_status),
                    number(port.speed_mbps),
                    text(&port.mac_address),
                    text(&adapter.health),
                ]);
            }
        }
        print_or_none(&table);

        section("Host Ethernet interfaces");
        let mut table = Table::new(["NAME", "MAC", "LINK", "MBPS", "IPV4", "HEALTH"]);
        for interface in &item.ethernet_interfaces {
            table.row([
                interface.name.clone(),
                text(&interface.mac_address),
                text(&interface.link_status),
                number(interface.speed_mbps),
                interface.ipv4_addresses.join(", "),
                text(&interface.health),
            ]);
        }
        print_or_none(&table);

        section("Power supplies");
        let mut table = Table::new(["NAME", "MODEL", "WATTS", "FIRMWARE", "STATE", "HEALTH"]);
        for psu in &item.power_supplies {
            table.row([
                psu.name.clone(),
                text(&psu.model),
                decimal(psu.capacity_watts),
                text(&psu.firmware_version),
                text(&psu.state),
                text(&psu.health),
            ]);
        }
        print_or_none(&table);

        section("Fans and temperatures");
        let mut table = Table::new(["NAME", "READING", "LIMIT", "HEALTH"]);
        for fan in &item.fans {
            let reading = format!("{} {}", decimal(fan.reading), text(&fan.units));
            table.row([fan.name.clone(), reading, "-".into(), text(&fan.health)]);
        }
        for sensor in &item.temperatures {
            table.row([
                sensor.name.clone(),
                format!("{} °C", decimal(sensor.reading_celsius)),
                format!("{} °C critical", decimal(sensor.upper_critical_celsius)),
                text(&sensor.health),
            ]);
        }
        print_or_none(&table);

        section("Firmware");
        let mut table = Table::new(["NAME", "VERSION", "RELEASED", "UPDATEABLE"]);
        for firmware in &item.firmware {
            let released = firmware.release_date.map_or_else(
                || {
                    firmware
                        .release_date_raw
                        .clone()
                        .unwrap_or_else(|| "-".into())
                },
                |date| date.date_naive().to_string(),
            );
            let updateable = firmware
                .updateable
                .map_or("-", |yes| if yes { "yes" } else { "no" });
            table.row([
                firmware.name.clone(),
                text(&firmware.version),
                released,
                updateable.to_owned(),
            ]);
        }
        print_or_none(&table);

        if !item.unreadable.is_empty() {
            section("Not readable");
            for unreadable in &item.unreadable {
                outln!("  {}: {}", unreadable.path, unreadable.error);
            }
        }
        outln!();
    }
}

/// Prints a table, or a note when the BMC reported nothing for it.
fn print_or_none(table: &Table) {
    if table.is_empty() {
        outln!("  none reported by the BMC");
    } else {
        table.print();
    }
}

fn section(title: &str) {
    outln!();
    outln!("{title}");
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_owned())
}

fn number(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn decimal(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |n| format!("{n}"))
}
