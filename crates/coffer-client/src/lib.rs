//! `coffer-client`: the SDK an app embeds to give its users end-to-end encrypted backups.
//!
//! It ties together the backup engine ([`coffer_backup`]) and the Backup Key Vault
//! ([`coffer_vault_client`]): it makes the backup key K on the device, shows it as a
//! 64-digit [`RecoveryKey`], registers it with the vault behind the user's password,
//! recovers it on a new device, and keeps it in a [`KeyStore`] between runs: the OS keyring
//! where one answers, else a mode-0600 file in the config directory. The
//! [`Coffer`] facade is what the `coffer` CLI calls for every command.
//!
//! ```no_run
//! use coffer_client::{Coffer, InitOptions, KeyStorePreference, KsfProfile, Protection, VaultAccess};
//! use zeroize::Zeroizing;
//! let dir = std::path::Path::new("/home/me/.config/coffer");
//! let access = VaultAccess {
//!     url: "http://127.0.0.1:8443".into(), account: "alice".into(),
//!     token: Zeroizing::new("eyJ...".into()), token_file: None,
//! };
//! let coffer = Coffer::init(dir, InitOptions {
//!     repo: "/mnt/cloud/coffer".into(),
//!     protection: Protection::Vault { access, password: Zeroizing::new(b"correct horse".to_vec()) },
//!     ksf_profile: KsfProfile::default(),
//!     key_store: KeyStorePreference::Auto,
//! })?;
//! coffer.backup(&["/home/me/chat".into()], &Default::default())?;
//! # Ok::<(), coffer_client::Error>(())
//! ```
//!
//! `KsfProfile::TestCheap` (`COFFER_KSF_PROFILE=argon2id-test` in the CLI) exists for
//! tests only: it makes password guessing cheap.

mod atomic;
mod coffer;
mod config;
mod error;
mod heads;
mod key_file;
mod key_store;
mod os_keyring;
mod recovery_key;
mod status;
mod vault;

pub use coffer::{
    Coffer, DisableReport, InitOptions, MIN_PASSWORD_CHARS, Protection, RotateOutcome,
    check_new_password,
};
pub use config::{CONFIG_FILE, CONFIG_VERSION, Config, VaultConfig};
pub use error::Error;
pub use heads::HEADS_FILE;
pub use key_file::{KEY_FILE, PENDING_KEY_FILE};
pub use key_store::{KeyStore, KeyStoreKind, KeyStorePreference};
pub use os_keyring::{KEYRING_SERVICE, PENDING_SUFFIX};
pub use recovery_key::{RECOVERY_KEY_DIGITS, RecoveryKey, RecoveryKeyError};
pub use status::{StatusReport, VaultStatusReport};
pub use vault::{VaultAccess, check_subject, read_token_file};

// The engine's types an app passes in or reads back; the engine itself (its `Repository`)
// stays behind `Coffer`, the one door.
/// The engine's own error, carried by [`Error::Backup`] for failures without a code of
/// their own.
pub use coffer_backup::Error as EngineError;
pub use coffer_backup::{
    BackupEstimate, BackupKey, BackupOptions, BackupSummary, CheckReport, DamagedSnapshot,
    DiffEntry, DiffKind, ForgetReport, GroupBy, Head, KeepPolicy, LsEntry, Overwrite, Progress,
    ProgressEvent, PruneReport, RestoreOptions, RestoreSummary, SnapshotInfo, UnlockReport,
    civil_date,
};
pub use coffer_vault_client::VaultStatus;
pub use coffer_vault_proto::ErrorCode;
pub use coffer_vault_proto::KsfProfile;
