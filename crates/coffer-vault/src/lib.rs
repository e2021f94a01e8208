//! The Coffer vault host: HTTP API (axum), bearer-token auth, redb storage with group
//! commit, the trusted store of rollback floors, rate limits and metrics around the
//! sans-IO trusted core in
//! `coffer-vault-core`. The binary `coffer-vault` is in `main.rs`; the API is documented in
//! docs/VAULT-API.md.

pub mod api;
pub mod auth;
pub mod coreproc;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod keyfile;
pub mod master;
pub mod metrics;
pub mod ratelimit;
pub mod storage;

/// Seconds since the Unix epoch, the host's wall clock for token `iat`/`exp` and login
/// ticket expiry. A clock before 1970 reads as 0, which only makes both expire early.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
