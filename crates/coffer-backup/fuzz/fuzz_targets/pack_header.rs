//! Fuzz target `pack_header`: see coffer_backup::fuzzing::pack_header and docs/FUZZING.md.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| coffer_backup::fuzzing::pack_header(data));
