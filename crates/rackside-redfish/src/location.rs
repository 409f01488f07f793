//! Where a server stands: data center, room, aisle, rack and slot of a chassis.
//!
//! The standard `Location` object spreads these over `PostalAddress` (`Building` for the
//! data center, `Room`) and `Placement` (`Row` for the aisle, `Rack`, `RackOffset` for the
//! slot). Dell iDRAC also keeps them in one string, `Location.Info`, whose field order is
//! given by `Location.InfoFormat` (`DataCenter;RoomName;Aisle;RackName;RackSlot`). Reads
//! prefer the Dell string when it has values; writes update both forms.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::transport::Transport;
use crate::write::WriteOutcome;
use crate::{decode, Client, Error};

/// Maximum characters of one location field. iDRAC's topology attributes take 64.
pub const MAX_FIELD_CHARS: usize = 64;

/// The highest rack slot accepted; iDRAC's `RackSlot` goes to 255.
pub const MAX_RACK_SLOT: u32 = 255;

/// A server's location. `None` means unknown when read and unchanged when written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerLocation {
    /// Data center name.
    pub datacenter: Option<String>,
    /// Room name.
    pub room: Option<String>,
    /// Aisle (row of racks).
    pub aisle: Option<String>,
    /// Rack name.
    pub rack: Option<String>,
    /// Slot in the rack, in rack units from the bottom.
    pub slot: Option<u32>,
}

impl ServerLocation {
    /// Builds a change from user input, checking every field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a field longer than [`MAX_FIELD_CHARS`], one containing a
    /// `;` or a control character (the Dell form separates fields with `;`), or a slot that
    /// is not a whole number from 1 to [`MAX_RACK_SLOT`].
    pub fn parse(
        datacenter: Option<&str>,
        room: Option<&str>,
        aisle: Option<&str>,
        rack: Option<&str>,
        slot: Option<&str>,
    ) -> Result<ServerLocation, Error> {
        let slot = match slot {
            Some(text) => Some(
                text.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|slot| (1..=MAX_RACK_SLOT).contains(slot))
                    .ok_or_else(|| Error::InvalidValue {
                        name: "rack slot".into(),
                        value: text.to_owned(),
                        detail: format!("expected a whole number from 1 to {MAX_RACK_SLOT}"),
                    })?,
            ),
            None => None,
        };
        Ok(ServerLocation {
            datacenter: field("data center", datacenter)?,
            room: field("room", room)?,
            aisle: field("aisle", aisle)?,
            rack: field("rack", rack)?,
            slot,
        })
    }

    /// Returns whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == ServerLocation::default()
    }

    /// Returns `self` with every unset field taken from `base`.
    fn over(&self, base: &ServerLocation) -> ServerLocation {
        ServerLocation {
            datacenter: self.datacenter.clone().or_else(|| base.datacenter.clone()),
            room: self.room.clone().or_else(|| base.room.clone()),
            aisle: self.aisle.clone().or_else(|| base.aisle.clone()),
            rack: self.rack.clone().or_else(|| base.rack.clone()),
            slot: self.slot.or(base.slot),
        }
    }
}

fn field(name: &str, value: Option<&str>) -> Result<Option<String>, Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    let invalid = |detail: String| Error::InvalidValue {
        name: name.into(),
        value: value.to_owned(),
        detail,
    };
    if value.chars().count() > MAX_FIELD_CHARS {
        return Err(invalid(format!("longer than {MAX_FIELD_CHARS} characters")));
    }
    if value.contains(';') || value.chars().any(char::is_control) {
        return Err(invalid("contains ; or a control character".into()));
    }
    Ok(Some(value.trim().to_owned()))
}

/// The chassis location as read, with the form it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LocationReport {
    /// The chassis.
    pub chassis: String,
    /// The location.
    pub location: ServerLocation,
    /// Whether the chassis has the Dell `Location.Info` string.
    pub dell_info: bool,
}

impl<T: Transport> Client<T> {
    /// Reads the location of a chassis.
    ///
    /// # Errors
    ///
    /// The errors of [`Client::get`].
    pub async fn location(&self, chassis: &str) -> Result<LocationReport, Error> {
        let resource = self.get(chassis).await?;
        let location = resource
            .body
            .get("Location")
            .cloned()
            .unwrap_or(Value::Null);
        let standard = standard_location(&location);
        let dell = dell_location(&location);
        let report = match &dell {
            Some(dell) if !dell.is_empty() => dell.over(&standard),
            _ => standard,
        };
        Ok(LocationReport {
            chassis: resource.path,
            location: report,
            dell_info: dell.is_some(),
        })
    }

    /// Changes the given fields of a chassis location, keeping the others.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] when `change` sets nothing; the errors of [`Client::patch`].
    pub async fn set_location(
        &self,
        chassis: &str,
        change: &ServerLocation,
    ) -> Result<WriteOutcome, Error> {
        if change.is_empty() {
            return Err(Error::InvalidValue {
                name: "location".into(),
                value: String::new(),
                detail: "nothing to change; give --datacenter, --room, --aisle, --rack or --slot"
                    .into(),
            });
        }
        let current = self.location(chassis).await?;
        let merged = change.over(&current.location);

        let mut postal = Map::new();
        if let Some(datacenter) = &change.datacenter {
            postal.insert("Building".into(), json!(datacenter));
        }
        if let Some(room) = &change.room {
            postal.insert("Room".into(), json!(room));
        }
        let mut placement = Map::new();
        if let Some(aisle) = &change.aisle {
            placement.insert("Row".into(), json!(aisle));
        }
        if let Some(rack) = &change.rack {
            placement.insert("Rack".into(), json!(rack));
        }
        if let Some(slot) = change.slot {
            placement.insert("RackOffset".into(), json!(slot));
            placement.insert("RackOffsetUnits".into(), json!("EIA_310"));
        }
        let mut location = Map::new();
        if !postal.is_empty() {
            location.insert("PostalAddress".into(), Value::Object(postal));
        }
        if !placement.is_empty() {
            location.insert("Placement".into(), Value::Object(placement));
        }
        if current.dell_info {
            location.insert("Info".into(), json!(dell_info_string(&merged)));
        }
        tracing::debug!(chassis = %current.chassis, "location change requested");
        self.patch(&current.chassis, &json!({ "Location": location }))
            .await
    }
}

fn standard_location(location: &Value) -> ServerLocation {
    let postal = location
        .get("PostalAddress")
        .cloned()
        .unwrap_or(Value::Null);
    let placement = location.get("Placement").cloned().unwrap_or(Value::Null);
    ServerLocation {
        datacenter: non_empty(decode::text(&postal, "Building")),
        room: non_empty(decode::text(&postal, "Room")),
        aisle: non_empty(decode::text(&placement, "Row")),
        rack: non_empty(decode::text(&placement, "Rack")),
        slot: decode::unsigned(&placement, "RackOffset").and_then(|slot| u32::try_from(slot).ok()),
    }
}

/// Reads the Dell `Location.Info` string in the field order of `InfoFormat`.
fn dell_location(location: &Value) -> Option<ServerLocation> {
    let info = decode::text(location, "Info")?;
    let format = decode::text(location, "InfoFormat")
        .unwrap_or_else(|| "DataCenter;RoomName;Aisle;RackName;RackSlot".into());
    let mut parsed = ServerLocation::default();
    for (name, value) in format.split(';').zip(info.split(';')) {
        let value = non_empty(Some(value.trim().to_owned()));
        match name.trim() {
            "DataCenter" => parsed.datacenter = value,
            "RoomName" => parsed.room = value,
            "Aisle" => parsed.aisle = value,
            "RackName" => parsed.rack = value,
            "RackSlot" => parsed.slot = value.and_then(|slot| slot.parse().ok()),
            _ => {}
        }
    }
    Some(parsed)
}

// NOTE: iDRAC may treat `Location.Info` as read-only and take location changes only
// through its ServerTopology attributes; only the simulator's handling of this PATCH is
// tested.
fn dell_info_string(location: &ServerLocation) -> String {
    [
        location.datacenter.clone().unwrap_or_default(),
        location.room.clone().unwrap_or_default(),
        location.aisle.clone().unwrap_or_default(),
        location.rack.clone().unwrap_or_default(),
        location
            .slot
            .map(|slot| slot.to_string())
            .unwrap_or_default(),
    ]
    .join(";")
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dell_info_is_read_in_format_order() {
        let location = json!({
            "Info": "DC1;Room 2;A3;R4;17",
            "InfoFormat": "DataCenter;RoomName;Aisle;RackName;RackSlot"
        });
        let parsed = dell_location(&location).unwrap();
        assert_eq!(parsed.datacenter.as_deref(), Some("DC1"));
        assert_eq!(parsed.rack.as_deref(), Some("R4"));
        assert_eq!(parsed.slot, Some(17));
    }

    #[test]
    fn empty_dell_fields_are_unknown() {
        let parsed = dell_location(&json!({ "Info": ";;;;1" })).unwrap();
        assert_eq!(parsed.datacenter, None);
        assert_eq!(parsed.slot, Some(1));
    }

    #[test]
    fn semicolon_in_field_is_rejected() {
        let error = ServerLocation::parse(Some("a;b"), None, None, None, None).unwrap_err();
        assert!(error.to_string().contains("data center"), "{error}");
    }

    #[test]
    fn slot_out_of_range_is_rejected() {
        assert!(ServerLocation::parse(None, None, None, None, Some("0")).is_err());
        assert!(ServerLocation::parse(None, None, None, None, Some("256")).is_err());
        assert!(ServerLocation::parse(None, None, None, None, Some("U7")).is_err());
    }

    #[test]
    fn change_keeps_unset_fields() {
        let base = ServerLocation::parse(Some("DC1"), Some("R1"), None, None, Some("3")).unwrap();
        let change = ServerLocation::parse(None, Some("R2"), None, None, None).unwrap();
        let merged = change.over(&base);
        assert_eq!(dell_info_string(&merged), "DC1;R2;;;3");
    }
}
