//! What the next backup of some paths would read and upload, found without reading a file
//! or taking a lock: the same scan and the same size/mtime cache (the parent snapshot) a
//! backup uses, so an app can wait for Wi-Fi before a large upload.

use std::path::PathBuf;

use serde::Serialize;

use crate::Error;
use crate::backup::{parent_files, roots, scan, unchanged, unreadable};
use crate::repo::Repository;
use crate::snapshot::NodeKind;

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
        let (roots, label) = roots(paths)?;
        let mut scanned = Vec::new();
        let mut skipped = Vec::new();
        for (abs, name) in &roots {
            scan(abs, name, &mut scanned, &mut skipped);
        }
        let (index, _) = self.load_index()?;
        let (_, parent) = parent_files(self.load_manifests()?, &label);
        let mut e = BackupEstimate {
            unreadable: unreadable(&skipped) as u64,
            ..Default::default()
        };
        for s in scanned.iter().filter(|s| s.node.kind == NodeKind::File) {
            let size = s.node.size;
            e.files += 1;
            e.bytes_total += size;
            let reused = parent.get(&s.node.path).is_some_and(|p| {
                unchanged(p, &s.node, &s.source, |id| index.blobs.contains_key(id))
            });
            if !reused {
                e.files_changed += 1;
                e.bytes_to_read += size;
                e.bytes_to_upload += size;
            }
        }
        Ok(e)
    }
}
