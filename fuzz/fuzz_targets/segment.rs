//! Decodes arbitrary bytes as one segment; a segment that decodes must encode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rackside_link::segment::Segment;

fuzz_target!(|data: &[u8]| {
    if let Ok(segment) = Segment::decode(data) {
        let again = Segment::decode(&segment.encode()).ok();
        assert_eq!(again, Some(segment));
    }
});
