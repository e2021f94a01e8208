//! `protocol::Request::decode` (host to core) on arbitrary bytes: never panics, and
//! whatever decodes re-encodes to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffer_vault_core::fuzzing::core_request(data);
});
