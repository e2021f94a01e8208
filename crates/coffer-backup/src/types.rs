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
        match &self.cancel {
            Some(c) if c.load(std::sync::atomic::Ordering::Relaxed) => Err(crate::Error::Cancelled),
            _ => Ok(()),
        }
    }
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
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("progress", &self.progress.is_some())
            .finish()
    }
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
    /// Files not restored (a damaged or missing blob), with the reason.
    pub failed: Vec<(PathBuf, String)>,
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
