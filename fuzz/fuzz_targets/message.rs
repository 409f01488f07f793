//! Decodes arbitrary bytes as channel messages, one after another, as the channel does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rackside_link::Message;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_message, used))) = Message::decode(rest) {
        match rest.get(used..) {
            Some(after) => rest = after,
            None => break,
        }
    }
});
