//! Decodes arbitrary bytes as a radio frame; a frame that decodes must encode back to the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rackside_link::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(frame.encode(), data);
    }
});
