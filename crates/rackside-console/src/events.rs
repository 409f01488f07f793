//! Redfish event payloads (`#Event.v1_x.Event`) as BMCs deliver them to the console's
//! listener, turned into alerts. Sloppy BMCs are tolerated field by field; a payload that is
//! not an event at all is rejected.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{invalid, ConsoleError};
use crate::store::{NewAlert, Severity};

/// Most event records taken from one payload; the rest are dropped with a log line.
pub const MAX_EVENTS_PER_PAYLOAD: usize = 64;
/// Maximum message length kept, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1024;
const MAX_ID_CHARS: usize = 256;

/// Parses one delivery from `bmc` into alerts.
///
/// # Errors
/// [`ConsoleError::Invalid`] when the body is not JSON or has no `Events` array.
pub fn parse_event_payload(bmc: &str, body: &[u8]) -> Result<Vec<NewAlert>, ConsoleError> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("event payload", format!("not JSON ({e}) from BMC {bmc}")))?;
    let events = payload
        .get("Events")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("event payload", format!("no Events array from BMC {bmc}")))?;
    if events.len() > MAX_EVENTS_PER_PAYLOAD {
        tracing::warn!(
            bmc,
            count = events.len(),
            kept = MAX_EVENTS_PER_PAYLOAD,
            "event payload truncated"
        );
    }
    Ok(events
        .iter()
        .take(MAX_EVENTS_PER_PAYLOAD)
        .filter_map(|record| parse_record(bmc, record))
        .collect())
}

fn parse_record(bmc: &str, record: &Value) -> Option<NewAlert> {
    let text = |name: &str| record.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(message_id) = text("MessageId").map(|id| clip(&id, MAX_ID_CHARS)) else {
        tracing::warn!(bmc, "event record without MessageId skipped");
        return None;
    };
    let severity = text("MessageSeverity")
        .or_else(|| text("Severity"))
        .map_or(Severity::Warning, |s| Severity::parse_lenient(&s));
    let message = clip(
        &text("Message").unwrap_or_else(|| message_id.clone()),
        MAX_MESSAGE_CHARS,
    );
    let event_id = text("EventId").map(|id| clip(&id, MAX_ID_CHARS));
    let origin = record
        .get("OriginOfCondition")
        .and_then(|o| {
            o.get("@odata.id")
                .and_then(Value::as_str)
                .or_else(|| o.as_str())
        })
        .map(|o| clip(o, MAX_ID_CHARS));
    let timestamp = text("EventTimestamp").map(|t| clip(&t, 64));

    // The same event delivered twice, by a retry or by both push and poll, has the same id
    // and timestamp. Without an id the content decides.
    let mut hasher = Sha256::new();
    for part in [
        Some(bmc),
        event_id.as_deref(),
        timestamp.as_deref(),
        Some(message_id.as_str()),
        origin.as_deref(),
        Some(message.as_str()),
    ] {
        hasher.update(part.unwrap_or("").as_bytes());
        hasher.update([0u8]);
    }
    let dedup_key = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(NewAlert {
        bmc: bmc.to_owned(),
        dedup_key,
        event_id,
        message_id,
        severity,
        message,
        origin,
        timestamp,
    })
}

fn clip(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(events: Value) -> Vec<u8> {
        serde_json::to_vec(
            &serde_json::json!({"@odata.type": "#Event.v1_7_0.Event", "Id": "1", "Events": events}),
        )
        .unwrap()
    }

    #[test]
    fn redfish_event_becomes_alert() {
        let body = payload(serde_json::json!([{
            "EventId": "42", "EventTimestamp": "2026-12-04T10:00:00Z", "MessageId": "Fan.1.0.Failed",
            "MessageSeverity": "Critical", "Message": "Fan 2 failed.",
            "OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1/Thermal"}
        }]));
        let alerts = parse_event_payload("bmc-1", &body).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, Severity::Critical);
        assert_eq!(
            alerts[0].origin.as_deref(),
            Some("/redfish/v1/Chassis/1/Thermal")
        );
        assert_eq!(alerts[0].message, "Fan 2 failed.");
    }

    #[test]
    fn same_event_twice_has_same_key() {
        let body =
            payload(serde_json::json!([{"EventId": "1", "MessageId": "A.1.B", "Message": "x"}]));
        let first = parse_event_payload("b", &body).unwrap();
        let second = parse_event_payload("b", &body).unwrap();
        assert_eq!(first[0].dedup_key, second[0].dedup_key);
        let other_bmc = parse_event_payload("c", &body).unwrap();
        assert_ne!(first[0].dedup_key, other_bmc[0].dedup_key);
    }

    #[test]
    fn malformed_payloads_are_rejected_or_skipped() {
        assert!(parse_event_payload("b", b"not json").is_err());
        assert!(parse_event_payload("b", b"{\"Id\": 1}").is_err());
        let no_id = payload(serde_json::json!([{"Message": "x"}, 7, null]));
        assert!(parse_event_payload("b", &no_id).unwrap().is_empty());
        let many = payload(Value::Array(vec![
            serde_json::json!({"MessageId": "A", "Message": "m"});
            500
        ]));
        assert_eq!(
            parse_event_payload("b", &many).unwrap().len(),
            MAX_EVENTS_PER_PAYLOAD
        );
        let huge = payload(serde_json::json!([{"MessageId": "A", "Message": "m".repeat(100_000)}]));
        assert_eq!(
            parse_event_payload("b", &huge).unwrap()[0].message.len(),
            MAX_MESSAGE_CHARS
        );
    }
}
