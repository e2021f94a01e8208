//! Shared by the SDK's integration tests.
#![allow(clippy::unwrap_used, dead_code)]

use coffer_client::{Coffer, InitOptions, KeyStorePreference, KsfProfile, Protection};

/// A recovery-key-only device set up in `root/cfg` with its repository in `root/repo`,
/// the key in the 0600 file (tests never touch an OS keyring) and the cheap test KSF.
pub fn device(root: &std::path::Path) -> Coffer {
    Coffer::init(
        &root.join("cfg"),
        InitOptions {
            repo: root.join("repo").to_str().unwrap().into(),
            protection: Protection::RecoveryKeyOnly,
            ksf_profile: KsfProfile::TestCheap,
            key_store: KeyStorePreference::File,
        },
    )
    .unwrap()
}
