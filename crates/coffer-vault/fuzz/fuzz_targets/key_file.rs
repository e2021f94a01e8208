//! The vault key file parser (`DIR/vault.key`), with its round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffer_vault::fuzzing::key_file(data);
});
