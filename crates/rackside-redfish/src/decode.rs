//! Lenient reading of Redfish JSON.
//!
//! Real BMCs send numbers as strings, empty strings for missing numbers, objects where
//! arrays belong and dates that RFC 3339 rejects. Every accessor here returns `None` or an
//! empty list for a field it cannot read, so one bad field does not fail a whole resource.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;

/// Reads a field as text: strings as they are, numbers and booleans in JSON notation.
/// Empty strings and `null` give `None`.
pub fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Reads a nested field by a path of keys, as text.
pub fn text_at(value: &Value, keys: &[&str]) -> Option<String> {
    let (last, parents) = keys.split_last()?;
    let mut current = value;
    for key in parents {
        current = current.get(key)?;
    }
    text(current, last)
}

/// Reads a field as a non-negative integer from a number or a numeric string.
pub fn unsigned(value: &Value, key: &str) -> Option<u64> {
    match value.get(key)? {
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a field as a floating-point number from a number or a numeric string.
pub fn number(value: &Value, key: &str) -> Option<f64> {
    match value.get(key)? {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a field as a boolean from `true`/`false` or their string forms.
pub fn boolean(value: &Value, key: &str) -> Option<bool> {
    match value.get(key)? {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => text.trim().to_ascii_lowercase().parse().ok(),
        _ => None,
    }
}

/// Reads a field that should be an array. A missing field, `null`, an empty object or any
/// other non-array gives an empty slice.
pub fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    match value.get(key) {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// Reads the `@odata.id` link stored in field `key`, as `{"@odata.id": ...}` or a string.
pub fn link(value: &Value, key: &str) -> Option<String> {
    let field = value.get(key)?;
    odata_id(field).or_else(|| field.as_str().map(str::to_owned))
}

/// Returns the `@odata.id` of a resource or link object.
pub fn odata_id(value: &Value) -> Option<String> {
    value
        .get("@odata.id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Reads `Status.Health`, `Status.HealthRollup` and `Status.State`.
pub fn status(value: &Value) -> (Option<String>, Option<String>, Option<String>) {
    let Some(status) = value.get("Status") else {
        return (None, None, None);
    };
    (
        text(status, "Health"),
        text(status, "HealthRollup"),
        text(status, "State"),
    )
}

/// Reads a resource's display name: `Name`, else `Id`, else `MemberId`.
pub fn display_name(value: &Value) -> String {
    text(value, "Name")
        .or_else(|| text(value, "Id"))
        .or_else(|| text(value, "MemberId"))
        .unwrap_or_else(|| "unnamed".to_owned())
}

/// Reads a resource's identifier: `Id`, else `MemberId` (a string or a number), else the
/// last segment of `@odata.id`.
pub fn identifier(value: &Value) -> String {
    text(value, "Id")
        .or_else(|| text(value, "MemberId"))
        .or_else(|| {
            odata_id(value).and_then(|id| {
                id.trim_end_matches('/')
                    .rsplit(['/', '#'])
                    .next()
                    .map(str::to_owned)
            })
        })
        .unwrap_or_default()
}

/// Parses a Redfish date-time leniently.
///
/// Accepts RFC 3339 and the shapes real BMCs send: components without zero padding
/// (`2020-4-28T15:25:21+00:00`), a space in place of `T`, offsets written `-0600` or
/// `-06`, a missing offset (read as UTC) and fractional seconds. Returns `None` for a value
/// that names no instant, such as a bare time (`00:00:00Z`) or a zero date
/// (`0000-00-00T00:00:00+00:00`).
pub fn parse_timestamp(raw: &str) -> Option<DateTime<FixedOffset>> {
    let raw = raw.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(raw) {
        return Some(parsed);
    }

    let (date_part, rest) = raw.split_once(['T', 't', ' '])?;
    let date = parse_date(date_part)?;

    let offset_start = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (time_part, offset_part) = rest.split_at(offset_start);
    let time = parse_time(time_part)?;
    let offset = parse_offset(offset_part)?;

    NaiveDateTime::new(date, time)
        .and_local_timezone(offset)
        .single()
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    let mut parts = text.split('-');
    let year: i32 = parse_digits(parts.next()?)?;
    let month: u32 = parse_digits(parts.next()?)?;
    let day: u32 = parse_digits(parts.next()?)?;
    if parts.next().is_some() || year == 0 {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

fn parse_time(text: &str) -> Option<NaiveTime> {
    let (whole, fraction) = match text.split_once(['.', ',']) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let mut parts = whole.split(':');
    let hour: u32 = parse_digits(parts.next()?)?;
    let minute: u32 = parse_digits(parts.next()?)?;
    let second: u32 = match parts.next() {
        Some(second) => parse_digits(second)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    let nanos = match fraction {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let padded: String = digits.chars().chain("000000000".chars()).take(9).collect();
            padded.parse().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    NaiveTime::from_hms_nano_opt(hour, minute, second.min(59), nanos)
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("z") {
        return FixedOffset::east_opt(0);
    }
    let (sign, digits) = match text.split_at_checked(1)? {
        ("+", digits) => (1, digits),
        ("-", digits) => (-1, digits),
        _ => return None,
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((hours, minutes)) => (hours, minutes),
        None if digits.len() == 4 => digits.split_at_checked(2)?,
        None => (digits, "0"),
    };
    let hours: i32 = parse_digits(hours)?;
    let minutes: i32 = parse_digits(minutes)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

fn parse_digits<N: std::str::FromStr>(text: &str) -> Option<N> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(text: &str) -> Option<String> {
        parse_timestamp(text).map(|parsed| parsed.to_rfc3339())
    }

    #[test]
    fn timestamp_rfc3339_parses() {
        assert_eq!(
            utc("2024-08-08T18:48:07-05:00").as_deref(),
            Some("2024-08-08T18:48:07-05:00")
        );
    }

    #[test]
    fn timestamp_without_zero_padding_parses() {
        assert_eq!(
            utc("2020-4-28T15:25:21+00:00").as_deref(),
            Some("2020-04-28T15:25:21+00:00")
        );
    }

    #[test]
    fn timestamp_bare_time_is_unknown() {
        assert_eq!(utc("00:00:00Z"), None);
    }

    #[test]
    fn timestamp_zero_date_is_unknown() {
        assert_eq!(utc("0000-00-00T00:00:00+00:00"), None);
    }

    #[test]
    fn timestamp_offset_without_colon_parses() {
        assert_eq!(
            utc("2023-01-02T03:04:05-0600").as_deref(),
            Some("2023-01-02T03:04:05-06:00")
        );
    }

    #[test]
    fn timestamp_offset_hours_only_parses() {
        assert_eq!(
            utc("2023-01-02T03:04:05+02").as_deref(),
            Some("2023-01-02T03:04:05+02:00")
        );
    }

    #[test]
    fn timestamp_without_offset_is_utc() {
        assert_eq!(
            utc("2023-01-02 03:04:05").as_deref(),
            Some("2023-01-02T03:04:05+00:00")
        );
    }

    #[test]
    fn timestamp_fraction_parses() {
        assert_eq!(
            utc("2023-01-02T03:04:05.5Z").as_deref(),
            Some("2023-01-02T03:04:05.500+00:00")
        );
    }

    #[test]
    fn timestamp_garbage_is_unknown() {
        for raw in [
            "",
            "unknown",
            "2023-13-02T00:00:00Z",
            "2023-01-02T25:00:00Z",
            "T",
            "2023-01-02T03:04:05+99:00",
        ] {
            assert_eq!(utc(raw), None, "{raw}");
        }
    }

    #[test]
    fn text_accepts_numbers_and_rejects_empty() {
        let value = json!({"MemberId": 0, "Etag": 87422082150_u64, "Empty": "", "Null": null});
        assert_eq!(text(&value, "MemberId").as_deref(), Some("0"));
        assert_eq!(text(&value, "Etag").as_deref(), Some("87422082150"));
        assert_eq!(text(&value, "Empty"), None);
        assert_eq!(text(&value, "Null"), None);
    }

    #[test]
    fn unsigned_accepts_strings_and_ignores_empty() {
        let value = json!({"A": 3600, "B": "2400", "C": "", "D": -1, "E": 2.5});
        assert_eq!(unsigned(&value, "A"), Some(3600));
        assert_eq!(unsigned(&value, "B"), Some(2400));
        assert_eq!(unsigned(&value, "C"), None);
        assert_eq!(unsigned(&value, "D"), None);
        assert_eq!(unsigned(&value, "E"), Some(2));
    }

    #[test]
    fn array_treats_object_as_empty() {
        let value = json!({"Controllers": {}, "Drives": [{"@odata.id": "/d/1"}]});
        assert!(array(&value, "Controllers").is_empty());
        assert_eq!(array(&value, "Drives").len(), 1);
        assert!(array(&value, "Missing").is_empty());
    }

    #[test]
    fn link_of_empty_object_is_none() {
        let storage = json!({"Controllers": {}, "Volumes": {"@odata.id": "/v"}, "Text": "/t"});
        assert_eq!(link(&storage, "Controllers"), None);
        assert_eq!(link(&storage, "Volumes").as_deref(), Some("/v"));
        assert_eq!(link(&storage, "Text").as_deref(), Some("/t"));
    }

    #[test]
    fn identifier_uses_member_id_or_path() {
        assert_eq!(identifier(&json!({"MemberId": 3})), "3");
        assert_eq!(
            identifier(&json!({"@odata.id": "/redfish/v1/Chassis/1/Power#/PowerSupplies/0"})),
            "0"
        );
    }
}
