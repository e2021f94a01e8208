//! `Auth::authenticate` on arbitrary `Authorization` header bytes (JWT parsing and
//! verification on both the tenant EdDSA and the development HS256 path).
#![no_main]

use std::sync::LazyLock;

use coffer_vault::auth::Auth;
use coffer_vault::fuzzing;

static AUTH: LazyLock<Auth> = LazyLock::new(fuzzing::fuzz_auth);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::authorization(&AUTH, data);
});
