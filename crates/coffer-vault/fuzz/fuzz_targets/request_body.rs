//! Every endpoint's JSON request body, as the host parses and validates it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffer_vault::fuzzing::request_body(data);
});
