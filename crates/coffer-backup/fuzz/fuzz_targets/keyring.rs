//! Fuzz target `keyring`: see coffer_backup::fuzzing::keyring_object and docs/FUZZING.md.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coffer_backup::fuzzing::keyring_object(data));
