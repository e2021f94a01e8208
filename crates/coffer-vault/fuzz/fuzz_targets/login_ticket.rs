//! `RecoverStarted::open` of an arbitrary login ticket, then `finish` with an arbitrary KE3
//! against an arbitrary sealed entry of the core's store (length-prefixed fields,
//! `fuzzing::fields`).
//! The vault core's entry point in `coffer_vault_core::fuzzing`, against its fixed fixture.
#![no_main]

use std::sync::LazyLock;

use coffer_vault_core::fuzzing::{self, Fixture};

static FIXTURE: LazyLock<Fixture> =
    LazyLock::new(|| Fixture::new().expect("the fuzzing fixture builds from constant keys"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::login_ticket(&FIXTURE, data);
});
