//! Parses arbitrary bytes as the HTTP request and response the link carries.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rackside_link::http::parse_request(data);
    let _ = rackside_link::http::parse_response(data);
});
