//! Options, reports and the progress callback of the public API.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

/// Receives progress events from long operations. Called from worker threads.
pub trait Progress: Send + Sync {
    /// One event; keep it cheap (it runs on the pipeline's threads).
    fn event(&self, e: &ProgressEvent);
}

/// A progress event.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// The scan finished: this many files and bytes will be considered.
    Scanned {
        /// Regular files found.
        files: u64,
        /// Their total size.
        bytes: u64,
    },
    /// A file is being processed (backup: read; restore: written).
    File {
        /// Path inside the snapshot.
        path: String,
    },
    /// Bytes processed so far out of the total (read for backup, written for restore,
    /// packs verified for check/prune).
    Bytes {
        /// Done so far.
        done: u64,
        /// Expected total (0 if unknown).
        total: u64,
    },
    /// A non-fatal problem: a file skipped, a pack unreadable.
    Warning {
        /// Human-readable text.
        message: String,
    },
}

/// Options of [`crate::Repository::backup`] and [`crate::Repository::backup_stream`].
#[derive(Default, Clone)]
pub struct BackupOptions {
    /// Progress callback.
    pub progress: Option<Arc<dyn Progress>>,
    /// Set to true to stop the backup; it then returns [`crate::Error::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// The host name recorded in the snapshot (forget groups by it); default: this host's.
    pub host: Option<String>,
}

impl BackupOptions {
    /// `Err(Cancelled)` once the caller has asked the backup to stop.
    pub(crate) fn check_cancel(&self) -> Result<(), crate::Error> {
        match is_set(&self.cancel) {
            true => Err(crate::Error::Cancelled),
            false => Ok(()),
        }
    }
}

/// Whether a caller's cancel flag is raised.
pub(crate) fn is_set(flag: &Option<Arc<AtomicBool>>) -> bool {
    flag.as_ref()
        .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
}

impl std::fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupOptions")
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .field("host", &self.host)
            .finish()
    }
}

/// Options of [`crate::Repository::restore`].
#[derive(Default, Clone)]
pub struct RestoreOptions {
    /// Progress callback.
    pub progress: Option<Arc<dyn Progress>>,
    /// What to do with files already in the target.
    pub overwrite: Overwrite,
    /// Keep setuid and setgid bits. Off by default: a snapshot may come from a compromised
    /// device, and a setuid file it plants should not run with its owner's rights.
    pub preserve_setuid: bool,
    /// Set to true to stop the restore between files or chunks; it then returns
    /// [`crate::Error::RestoreCancelled`]. Files restored completely stay, the file being
    /// written is removed, and running the same restore again finishes it.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl RestoreOptions {
    /// Restore runs on Unix only (lib.rs says why).
    #[cfg(unix)]
    pub(crate) fn cancelled(&self) -> bool {
        is_set(&self.cancel)
    }
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("progress", &self.progress.is_some())
            .field("overwrite", &self.overwrite)
            .field("preserve_setuid", &self.preserve_setuid)
            .field("cancel", &self.cancel)
            .finish()
    }
}

/// What restore does with an entry that already exists in the target. An existing file
/// counts as unchanged when it is a regular file with the snapshot's size and modification
/// time (what an earlier restore of the same snapshot leaves); an existing symlink when it
/// points where the snapshot's does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace nothing: if any existing entry differs from the snapshot, refuse the whole
    /// restore before writing anything ([`crate::Error::WouldOverwrite`] lists them).
    /// Unchanged entries are left as they are, so an interrupted restore can be run again.
    #[default]
    Never,
    /// Replace entries that differ; leave unchanged ones alone.
    IfChanged,
    /// Replace every entry, even unchanged ones.
    Always,
}

/// The result of a backup.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupSummary {
    /// Id of the new snapshot (64 hex digits).
    pub snapshot_id: String,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Bytes read from files that were not unchanged.
    pub bytes_read: u64,
    /// Stored bytes uploaded (packs, index objects, the snapshot manifest).
    pub bytes_added: u64,
    /// Files skipped because size, mtime, ctime and inode matched the parent snapshot.
    pub files_unchanged: u64,
    /// Total size of the files in the snapshot.
    pub bytes_total: u64,
    /// New blobs stored.
    pub blobs_added: u64,
    /// Id of the parent snapshot used for change detection, if any.
    pub parent: Option<String>,
    /// Paths that could not be backed up (unreadable, vanished, special files), with the reason.
    /// When not empty the snapshot is saved but marked incomplete.
    #[serde(serialize_with = "lossy_pairs")]
    pub skipped: Vec<(PathBuf, String)>,
    /// True when `skipped` is not empty: the snapshot lacks some of what was asked for.
    pub incomplete: bool,
    /// The new snapshot's per-repository sequence number (FORMAT.md "Snapshot manifests").
    pub seq: u64,
}

/// The result of a restore.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    /// Files restored completely.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files already in the target unchanged (see [`Overwrite`]), left as they were.
    pub unchanged: u64,
    /// Files not restored (a damaged or missing blob), with the reason.
    #[serde(serialize_with = "lossy_pairs")]
    pub failed: Vec<(PathBuf, String)>,
    /// Files the target could not take (a full disk, no permission), with the reason: the
    /// data is sound, and restoring again once the target is fixed completes them.
    #[serde(serialize_with = "lossy_pairs")]
    pub unwritten: Vec<(PathBuf, String)>,
    /// Entries refused because restoring them could write outside the target (a `..` or
    /// absolute name, a path through a symlink) or would replace a directory, with the
    /// reason. Non-empty means the restore is incomplete.
    #[serde(serialize_with = "lossy_pairs")]
    pub refused: Vec<(PathBuf, String)>,
}

impl RestoreSummary {
    /// True when every selected entry was restored (or found unchanged).
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.refused.is_empty() && self.unwritten.is_empty()
    }
}

/// One entry of a snapshot, as listed by [`crate::Repository::ls`].
#[derive(Debug, Clone, Serialize)]
pub struct LsEntry {
    /// Path inside the snapshot (JSON: lossy UTF-8; `path_hex` then holds the raw bytes).
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    /// The raw path bytes as hex, only when the path is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// "file", "dir" or "symlink".
    pub kind: &'static str,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Permission bits (including setuid, setgid and sticky).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Symlink target (JSON: lossy UTF-8).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "lossy_opt")]
    pub target: Option<PathBuf>,
}

/// Paths serialize as (lossy) UTF-8 text, never as an error: JSON has no other string,
/// and a name that is not UTF-8 must not make a report unprintable.
pub(crate) fn lossy<S: serde::Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

fn lossy_opt<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => lossy(p, s),
        None => s.serialize_none(),
    }
}

pub(crate) fn lossy_pairs<S: serde::Serializer>(
    v: &[(PathBuf, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (p, why) in v {
        seq.serialize_element(&(p.to_string_lossy(), why))?;
    }
    seq.end()
}

/// One snapshot, as listed by [`crate::Repository::snapshots`].
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    /// Snapshot id (64 hex digits).
    pub id: String,
    /// When the backup started.
    pub time: std::time::SystemTime,
    /// The paths given to backup (or the stream name).
    pub paths: Vec<String>,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// The host that made it.
    pub hostname: String,
    /// Per-repository sequence number; `None` for snapshots of payload version 1.
    pub seq: Option<u64>,
    /// Entries the backup had to skip (unreadable files); more than 0 means incomplete.
    pub skipped: u64,
    /// True when the backup skipped something: the snapshot lacks part of its paths.
    pub incomplete: bool,
}

/// A snapshot object that could not be read (damaged, tampered with, or over a format
/// bound). Listing, backup and `restore latest` skip it; [`crate::Repository::forget_ids`]
/// removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedSnapshot {
    /// The snapshot id (its object name).
    pub id: String,
    /// Why it could not be read.
    pub reason: String,
}

/// The repository head: the snapshot with the highest sequence number (ties: the newest).
/// A device remembers the highest head it has seen; a lower one later means storage
/// dropped or rolled back snapshots (docs/THREAT_MODEL.md "Rollback").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Head {
    /// Sequence number of the head snapshot.
    pub seq: u64,
    /// Its id.
    pub id: String,
}

/// How forget groups snapshots before applying the keep rules to each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GroupBy {
    /// Snapshots of different hosts are kept apart.
    pub host: bool,
    /// Snapshots of different path sets are kept apart.
    pub paths: bool,
}

impl Default for GroupBy {
    /// By host and paths, as restic: one device's rules never remove another's snapshots.
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
        }
    }
}

/// Keep rules of [`crate::Repository::forget`]; a snapshot is kept if any rule keeps it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeepPolicy {
    /// Keep the newest N snapshots.
    pub last: Option<u32>,
    /// Keep the newest snapshot of each of the last N days (UTC) that have one.
    pub daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    pub weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one.
    pub monthly: Option<u32>,
    /// The rules apply to each group separately (default: by host and paths).
    pub group_by: GroupBy,
}

/// The result of [`crate::Repository::check`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Problems that make data unrestorable or show tampering. Empty means the check passed.
    pub errors: Vec<String>,
    /// Harmless findings (packs left by an interrupted backup, stale locks).
    pub warnings: Vec<String>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Packs indexed.
    pub packs: u64,
    /// Blobs indexed.
    pub blobs: u64,
    /// Bytes of pack data read and verified (read_data only).
    pub bytes_verified: u64,
}

impl CheckReport {
    /// True when no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The result of [`crate::Repository::forget`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    /// Snapshots kept.
    pub kept: Vec<SnapshotInfo>,
    /// Snapshots removed (or that would be, with dry_run).
    pub removed: Vec<SnapshotInfo>,
    /// Whether nothing was actually deleted.
    pub dry_run: bool,
}

/// The result of [`crate::Repository::unlock`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnlockReport {
    /// Lock objects removed.
    pub removed: Vec<String>,
    /// Live locks left in place (without force).
    pub live: Vec<String>,
}

/// The result of [`crate::Repository::prune`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Packs deleted whole (no blob in use, or left by an interrupted backup).
    pub packs_deleted: u64,
    /// Packs whose used blobs were copied into new packs before deletion.
    pub packs_rewritten: u64,
    /// Blobs no longer stored.
    pub blobs_removed: u64,
    /// Stored bytes freed (net of rewritten data).
    pub bytes_freed: u64,
    /// Files left in `tmp/` by killed backups (older than the lock staleness) removed.
    pub tmp_removed: u64,
}
