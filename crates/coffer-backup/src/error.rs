//! The error type of every repository operation.

use std::path::PathBuf;

/// What went wrong in a repository operation. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No repository at this location (no keyring object).
    #[error("no repository at {location}: run init first or check the location")]
    NotFound {
        /// The location string as given.
        location: String,
    },
    /// `init` found a repository already there.
    #[error("a repository already exists at {location}; open it instead")]
    AlreadyExists {
        /// The location string as given.
        location: String,
    },
    /// The backup key does not match this repository (its key check).
    #[error("the backup key does not match this repository")]
    WrongKey,
    /// A stored object failed authentication or parsing: it was damaged or tampered with.
    #[error("repository object {object} is damaged: {detail}; run check --read-data")]
    Integrity {
        /// Object name, e.g. `data/ab12...`.
        object: String,
        /// What did not verify.
        detail: String,
    },
    /// The storage service failed.
    #[error("storage {operation} of {object} failed: {source}")]
    Storage {
        /// read, write, list, delete or stat.
        operation: &'static str,
        /// Object name or prefix.
        object: String,
        /// The OpenDAL error.
        #[source]
        source: Box<opendal::Error>,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The local path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No snapshot matches the given id prefix (or the repository has none for "latest").
    #[error("no snapshot matches {query:?}; list them with snapshots")]
    SnapshotNotFound {
        /// The id prefix or "latest".
        query: String,
    },
    /// The id prefix matches more than one snapshot.
    #[error("snapshot prefix {query:?} is ambiguous; give more characters")]
    AmbiguousSnapshot {
        /// The id prefix.
        query: String,
    },
    /// The operation was cancelled through its cancel flag; the repository stays valid.
    #[error("cancelled; the repository is valid and the next backup reuses what was uploaded")]
    Cancelled,
    /// A restore stopped through its cancel flag ([`crate::RestoreOptions::cancel`]). The
    /// files it finished are complete in the target; the one it was writing was removed
    /// (an existing file being replaced keeps its old content). Running the same restore
    /// again finishes it: complete files count as unchanged and are skipped.
    #[error(
        "restore cancelled after writing {files} complete files; the file being written was removed: run the same restore again to finish (complete files are kept)"
    )]
    RestoreCancelled {
        /// Files this restore wrote completely before it stopped.
        files: u64,
    },
    /// Another process holds a conflicting lock (prune against backup).
    #[error("repository is locked: {detail}")]
    Locked {
        /// Which lock conflicts.
        detail: String,
    },
    /// The location string could not be understood.
    #[error("invalid repository location {location:?}: {reason}")]
    InvalidLocation {
        /// The location string as given.
        location: String,
        /// Why.
        reason: String,
    },
    /// An argument was not acceptable (empty keep policy, duplicate path names, ...).
    #[error("invalid argument: {detail}")]
    InvalidArgument {
        /// Why.
        detail: String,
    },
    /// The object was written by a newer format version.
    #[error(
        "object {object} has format version {version}, newer than this build reads; upgrade coffer"
    )]
    UnsupportedVersion {
        /// Object name.
        object: String,
        /// The version byte found.
        version: u8,
    },
    /// Restore with [`crate::Overwrite::Never`] found entries in the target that differ
    /// from the snapshot; nothing was written.
    #[error(
        "the target holds {} entries that differ from the snapshot and would be overwritten: {}",
        paths.len(),
        name_list(paths)
    )]
    WouldOverwrite {
        /// The entries, relative to the target.
        paths: Vec<PathBuf>,
    },
    /// A path given to restore or ls matches nothing in the snapshot.
    #[error("{} is not in snapshot {snapshot}", path.display())]
    PathNotInSnapshot {
        /// The path as given.
        path: PathBuf,
        /// The snapshot id.
        snapshot: String,
    },
    /// A path given to backup does not exist (or cannot be looked at); nothing was saved.
    #[error("{}: {source}; nothing was saved", path.display())]
    SourceNotFound {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The storage has no space left for `object`.
    #[error(
        "the storage is full (writing {object}); free space with forget and prune (prune deletes unused data before it writes anything)"
    )]
    StorageFull {
        /// The object that could not be written.
        object: String,
    },
    /// The repository's newest snapshot is older than one this device has seen: storage
    /// dropped snapshots or put back an older copy (docs/THREAT_MODEL.md "Rollback").
    #[error(
        "the repository was rolled back: this device has seen snapshot {seen_id} (sequence {seen_seq}), but the newest snapshot there now has sequence {found}; the storage dropped or replaced snapshots"
    )]
    RolledBack {
        /// Sequence number this device remembers.
        seen_seq: u64,
        /// Id of the snapshot this device remembers.
        seen_id: String,
        /// The highest sequence number in the repository now (0: none).
        found: u64,
    },
    /// The operation cannot be done safely on this platform (restore on Windows).
    #[error("{operation} is not supported here: {reason}")]
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// Why, and where it works.
        reason: &'static str,
    },
    /// An internal worker thread failed unexpectedly.
    #[error("internal error: {detail}")]
    Internal {
        /// What failed.
        detail: String,
    },
}

/// The first few names of a list, for a one-line message.
fn name_list(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 10;
    let mut s: Vec<String> = paths
        .iter()
        .take(SHOWN)
        .map(|p| p.display().to_string())
        .collect();
    if paths.len() > SHOWN {
        s.push(format!("and {} more", paths.len() - SHOWN));
    }
    s.join(", ")
}

impl Error {
    pub(crate) fn integrity(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Integrity {
            object: object.into(),
            detail: detail.into(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
