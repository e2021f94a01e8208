//! `coffer-ffi`: the Coffer SDK ([`coffer_client`]) for apps written in Kotlin (Android),
//! Swift (iOS) and Python, through [uniffi](https://mozilla.github.io/uniffi-rs/).
//!
//! The foreign module is called `coffer`. It offers one object, [`Coffer`] (one device's
//! setup), made by its constructors (create a key, connect a new device, open an existing
//! setup), a [`ProgressListener`] the app implements, a [`CancelHandle`], plain records
//! for every report, and one error type, [`CofferError`], whose `code()` is the same
//! stable string as the CLI's `--json` output (`wrong_password`, `key_destroyed`, ...).
//!
//! Secrets (passwords, the recovery key, the vault token) cross as bytes, never as
//! strings, so the app can wipe its copy (`ByteArray.fill(0)`, `Data.resetBytes`); this
//! side wraps them in `Zeroizing` as soon as they arrive. The copies uniffi makes in
//! transit (its `RustBuffer`) are not wiped: docs/SDK.md says so.
//!
//! Every call blocks (network, disk, Argon2id): call it from a background thread or a
//! coroutine dispatcher for I/O, never from a UI thread. docs/SDK.md shows the whole flow.

mod device;
mod error;
mod progress;
mod types;

pub use device::{Coffer, vault_status};
pub use error::CofferError;
pub use progress::{CancelHandle, ProgressEvent, ProgressListener};
pub use types::{
    BackupReport, DeviceOptions, DisableReport, KeyStoreChoice, Overwrite, PathProblem,
    RestoreReport, RotateReport, SnapshotInfo, Status, VaultAccess, VaultState, VaultStatusReport,
};

uniffi::setup_scaffolding!("coffer");
