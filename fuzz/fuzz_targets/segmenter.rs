//! Feeds a stream of segments, split at length bytes, into a receiving segmenter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rackside_link::segment::{Segment, Segmenter};

fuzz_target!(|data: &[u8]| {
    let Ok(mut receiver) = Segmenter::new(244, 8) else {
        return;
    };
    let mut rest = data;
    while let Some((&length, after)) = rest.split_first() {
        let length = usize::from(length).min(after.len());
        let (bytes, after) = after.split_at(length);
        rest = after;
        let Ok(segment) = Segment::decode(bytes) else {
            continue;
        };
        if receiver.receive(segment).is_err() {
            return;
        }
        while receiver.poll_segment().is_some() {}
    }
});
