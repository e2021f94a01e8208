//! What the next backup of some paths would read and upload, found without reading a file
//! or taking a lock: the same walk and the same size/mtime cache (the parent snapshot) a
//! backup uses, so an app can wait for Wi-Fi before a large upload.

use std::path::PathBuf;

use serde::Serialize;

use crate::Error;
use crate::backup::dry_run;
use crate::repo::Repository;

/// The result of [`Repository::estimate_backup`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackupEstimate {
    /// Files under the paths.
    pub files: u64,
    /// Files that are new or changed since the parent snapshot (the newest of the same
    /// paths), which the backup reads.
    pub files_changed: u64,
    /// Size of all files.
    pub bytes_total: u64,
    /// Size of the new and changed files: what the backup reads.
    pub bytes_to_read: u64,
    /// An upper bound of the file data the backup uploads: the new and changed files'
    /// sizes. Less goes up when their chunks are already stored (deduplication) or
    /// compress; the snapshot's own metadata (a few hundred bytes per file) is not counted.
    pub bytes_to_upload: u64,
    /// Entries that could not be looked at (the backup would skip them too).
    pub unreadable: u64,
}

impl Repository {
    /// What a backup of `paths` would read and upload now, without reading any file's
    /// content or writing anything. Refuses the paths a backup refuses (one that does not
    /// exist, two with the same name).
    pub fn estimate_backup(&self, paths: &[PathBuf]) -> Result<BackupEstimate, Error> {
        let (s, unreadable) = dry_run(self, paths)?;
        Ok(BackupEstimate {
            files: s.files,
            files_changed: s.files - s.files_unchanged,
            bytes_total: s.bytes_total,
            bytes_to_read: s.bytes_read,
            bytes_to_upload: s.bytes_read,
            unreadable: unreadable as u64,
        })
    }
}
