//! Fuzz target `tree`: see coffer_backup::fuzzing::tree and docs/FUZZING.md.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coffer_backup::fuzzing::tree(data));
