//! The records and enums that cross the boundary (plain data, copied).

use std::path::PathBuf;

/// Where this device keeps the backup key between runs.
#[derive(Debug, Clone, Copy, Default, uniffi::Enum)]
pub enum KeyStoreChoice {
    /// The OS keyring if one answers, else a mode-0600 file in the config folder (on
    /// Android and iOS today: the file, inside the app's private storage).
    #[default]
    Auto,
    /// The OS keyring or fail with `keyring_unavailable`.
    OsKeyring,
    /// The file, without trying a keyring.
    File,
}

impl From<KeyStoreChoice> for coffer_client::KeyStorePreference {
    fn from(c: KeyStoreChoice) -> Self {
        match c {
            KeyStoreChoice::Auto => Self::Auto,
            KeyStoreChoice::OsKeyring => Self::OsKeyring,
            KeyStoreChoice::File => Self::File,
        }
    }
}

/// Where a device keeps its setup and its backups.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DeviceOptions {
    /// The config folder (inside the app's private storage).
    pub config_dir: String,
    /// The repository: a folder path (an iCloud ubiquity container, a mounted drive) or an
    /// OpenDAL URL (docs/STORAGE.md).
    pub repo: String,
    /// Where to keep the key.
    pub key_store: KeyStoreChoice,
    /// The Argon2id profile for passwords: None for the default. `"argon2id-test"` is for
    /// tests only (it makes guessing a stolen login cheap).
    #[uniffi(default)]
    pub ksf_profile: Option<String>,
}

/// The vault and the account's access token (a JWT from the app's auth server whose
/// `sub` is the account). No `Debug`: it holds the token.
#[derive(Clone, uniffi::Record)]
pub struct VaultAccess {
    /// Base URL, e.g. `https://vault.example.org`.
    pub url: String,
    /// The bearer token, UTF-8 bytes (wiped here after use; wipe the app's copy).
    pub token: Vec<u8>,
    /// The account, checked against the token's `sub` when given.
    #[uniffi(default)]
    pub account: Option<String>,
}

/// The vault's view of an account, before asking for a password.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VaultState {
    /// A live record exists.
    pub exists: bool,
    /// Wrong guesses still allowed, if a record exists.
    pub guesses_left: Option<u32>,
    /// The vault's guess limit.
    pub max_guesses: u32,
    /// The record was destroyed after too many wrong guesses.
    pub destroyed: bool,
}

/// A path and why it was skipped, failed or refused.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PathProblem {
    /// The path (lossy UTF-8).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What restore does with files already in the target.
#[derive(Debug, Clone, Copy, Default, uniffi::Enum)]
pub enum Overwrite {
    /// Write nothing if any existing file differs (error `would_overwrite`); unchanged
    /// files are kept, so an interrupted restore can simply be run again.
    #[default]
    Never,
    /// Replace the files that differ.
    IfChanged,
    /// Replace every file.
    Always,
}

impl From<Overwrite> for coffer_client::Overwrite {
    fn from(o: Overwrite) -> Self {
        match o {
            Overwrite::Never => Self::Never,
            Overwrite::IfChanged => Self::IfChanged,
            Overwrite::Always => Self::Always,
        }
    }
}

/// The result of a backup.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BackupReport {
    /// The new snapshot's id (64 hex digits).
    pub snapshot_id: String,
    /// Its per-repository sequence number.
    pub seq: u64,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Files skipped as unchanged since the previous snapshot.
    pub files_unchanged: u64,
    /// Bytes read from changed files.
    pub bytes_read: u64,
    /// Bytes uploaded to the storage (packs, indexes, the snapshot).
    pub bytes_added: u64,
    /// Total size of the files in the snapshot.
    pub bytes_total: u64,
    /// Entries that could not be read; not empty means `incomplete`.
    pub skipped: Vec<PathProblem>,
    /// The snapshot lacks some of what was asked for.
    pub incomplete: bool,
    /// The vault now keeps this snapshot as the repository head (false: no vault, no
    /// token, or it already keeps a newer one).
    pub vault_head_kept: bool,
    /// Why the vault did not take the head (an error code); the backup is saved anyway.
    pub vault_head_error: Option<String>,
}

impl BackupReport {
    pub(crate) fn new(s: coffer_client::BackupSummary, head: Result<bool, String>) -> Self {
        BackupReport {
            snapshot_id: s.snapshot_id,
            seq: s.seq,
            files: s.files,
            files_unchanged: s.files_unchanged,
            bytes_read: s.bytes_read,
            bytes_added: s.bytes_added,
            bytes_total: s.bytes_total,
            skipped: problems(s.skipped),
            incomplete: s.incomplete,
            vault_head_kept: head.as_ref().is_ok_and(|k| *k),
            vault_head_error: head.err(),
        }
    }
}

/// What the next backup of some paths would do (`estimate_backup`).
#[derive(Debug, Clone, uniffi::Record)]
pub struct BackupEstimate {
    /// Files under the paths.
    pub files: u64,
    /// Files new or changed since the last snapshot of the same paths: the backup reads
    /// them.
    pub files_changed: u64,
    /// Size of all files.
    pub bytes_total: u64,
    /// Size of the new and changed files.
    pub bytes_to_read: u64,
    /// At most this much file data goes up (less when chunks are already stored or
    /// compress); the snapshot's own metadata is not counted.
    pub bytes_to_upload: u64,
    /// Entries that could not be looked at (the backup would skip them too).
    pub unreadable: u64,
}

impl From<coffer_client::BackupEstimate> for BackupEstimate {
    fn from(e: coffer_client::BackupEstimate) -> Self {
        BackupEstimate {
            files: e.files,
            files_changed: e.files_changed,
            bytes_total: e.bytes_total,
            bytes_to_read: e.bytes_to_read,
            bytes_to_upload: e.bytes_to_upload,
            unreadable: e.unreadable,
        }
    }
}

/// The result of a restore.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RestoreReport {
    /// Files restored.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files already in the target and unchanged, left alone.
    pub unchanged: u64,
    /// Files not restored (damaged or missing data).
    pub failed: Vec<PathProblem>,
    /// Files the target could not take (a full disk, no permission): the data is sound,
    /// and restoring again once the target has room completes them.
    pub unwritten: Vec<PathProblem>,
    /// Entries refused because they would write outside the target.
    pub refused: Vec<PathProblem>,
    /// Every selected entry was restored or found unchanged.
    pub complete: bool,
}

impl From<coffer_client::RestoreSummary> for RestoreReport {
    fn from(s: coffer_client::RestoreSummary) -> Self {
        RestoreReport {
            complete: s.is_complete(),
            files: s.files,
            bytes: s.bytes,
            unchanged: s.unchanged,
            failed: problems(s.failed),
            unwritten: problems(s.unwritten),
            refused: problems(s.refused),
        }
    }
}

fn problems(v: Vec<(PathBuf, String)>) -> Vec<PathProblem> {
    v.into_iter()
        .map(|(p, reason)| PathProblem {
            path: p.to_string_lossy().into_owned(),
            reason,
        })
        .collect()
}

/// One snapshot.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SnapshotInfo {
    /// Id (64 hex digits); `restore` takes it, a unique prefix, or `"latest"`.
    pub id: String,
    /// When the backup started, seconds since the Unix epoch.
    pub time_unix_secs: i64,
    /// The paths given to the backup.
    pub paths: Vec<String>,
    /// Regular files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// The host that made it.
    pub hostname: String,
    /// Per-repository sequence number (None for old snapshots).
    pub seq: Option<u64>,
    /// The backup skipped something.
    pub incomplete: bool,
}

impl From<coffer_client::SnapshotInfo> for SnapshotInfo {
    fn from(s: coffer_client::SnapshotInfo) -> Self {
        let time_unix_secs = match s.time.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
        };
        SnapshotInfo {
            id: s.id,
            time_unix_secs,
            paths: s.paths,
            files: s.files,
            bytes: s.bytes,
            hostname: s.hostname,
            seq: s.seq,
            incomplete: s.incomplete,
        }
    }
}

/// The vault part of [`Status`].
#[derive(Debug, Clone, uniffi::Record)]
pub struct VaultStatusReport {
    /// Vault URL.
    pub url: String,
    /// Account.
    pub account: String,
    /// Whether the vault holds a key (None: it could not be asked; see `error_code`).
    pub exists: Option<bool>,
    /// Wrong guesses still allowed.
    pub guesses_left: Option<u32>,
    /// The vault's limit.
    pub max_guesses: Option<u32>,
    /// The vault holds an older key than this device: `change_password` repairs it.
    pub stale: bool,
    /// Why the vault could not be asked.
    pub error_code: Option<String>,
    /// The same, for people.
    pub error_message: Option<String>,
}

/// What this device knows about its setup; failures to reach the vault or the
/// repository are reported inside, not thrown.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Status {
    /// Config folder.
    pub config_dir: String,
    /// Repository location.
    pub repo: String,
    /// `"os-keyring"` or `"file"`.
    pub key_store: String,
    /// Where exactly the key is kept, for people.
    pub key_store_location: String,
    /// The vault; None for recovery-key-only setups.
    pub vault: Option<VaultStatusReport>,
    /// Number of snapshots (None if the repository could not be read).
    pub snapshots: Option<u64>,
    /// The newest snapshot.
    pub last_backup: Option<SnapshotInfo>,
    /// Why the repository could not be read.
    pub repository_error_code: Option<String>,
    /// The same, for people.
    pub repository_error_message: Option<String>,
}

impl From<coffer_client::StatusReport> for Status {
    fn from(s: coffer_client::StatusReport) -> Self {
        let (repository_error_code, repository_error_message) = s.repository_error.unzip();
        Status {
            config_dir: s.config_dir.to_string_lossy().into_owned(),
            repo: s.repo,
            key_store: s.key_store.as_str().to_string(),
            key_store_location: s.key_store_location,
            vault: s.vault.map(|v| {
                let (error_code, error_message) = v.error.unzip();
                VaultStatusReport {
                    url: v.url,
                    account: v.account,
                    exists: v.exists,
                    guesses_left: v.guesses_left,
                    max_guesses: v.max_guesses,
                    stale: v.stale,
                    error_code,
                    error_message,
                }
            }),
            snapshots: s.snapshots.map(|n| n as u64),
            last_backup: s.last_backup.map(Into::into),
            repository_error_code,
            repository_error_message,
        }
    }
}

/// The result of `rotate_key`. No `Debug`: it holds the new recovery key.
#[derive(uniffi::Record)]
pub struct RotateReport {
    /// The new recovery key, UTF-8 bytes of 16 groups of 4 hex digits joined by `-`
    /// (the old one no longer opens the repository): show it, then wipe it.
    pub recovery_key: Vec<u8>,
    /// The vault now holds the new key (false: recovery-key-only, or the vault failed
    /// and `status().vault.stale` is set; `change_password` repairs it).
    pub vault_updated: bool,
    /// The repository head the vault keeps was sealed again under the new key, so a new
    /// device connects at once (false with a vault: the next backup keeps a new head,
    /// and a new device's connect fails until then).
    pub vault_head_kept: bool,
}

/// The result of `disable`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DisableReport {
    /// A vault record was deleted.
    pub vault_record_deleted: bool,
    /// The repository was deleted.
    pub backups_deleted: bool,
}
