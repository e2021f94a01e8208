//! `RecoverStarted::finish` of a real login on an arbitrary KE3.
//! The vault core's entry point in `coffer_vault_core::fuzzing`, against its fixed fixture.
#![no_main]

use std::sync::LazyLock;

use coffer_vault_core::fuzzing::{self, Fixture};

static FIXTURE: LazyLock<Fixture> =
    LazyLock::new(|| Fixture::new().expect("the fuzzing fixture builds from constant keys"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::ke3(&FIXTURE, data);
});
