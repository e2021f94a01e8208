//! `coffer-backup`: Coffer's backup engine, an encrypted, deduplicated, incremental
//! repository on any storage OpenDAL reaches.
//!
//! The repository format (version 1) is specified in `docs/FORMAT.md`; the invariants
//! cited in comments as `F1`..`F9` are numbered there. The public API is synchronous:
//! a [`Repository`] owns a small tokio runtime for storage I/O and uses worker threads
//! for the backup and restore pipelines. Do not call it from inside a tokio runtime.
//!
//! ```no_run
//! use coffer_backup::{BackupKey, BackupOptions, Repository, RestoreOptions};
//! let key = BackupKey::generate();
//! let repo = Repository::init("/tmp/repo", &key)?;
//! let s = repo.backup(&["/home/me/chat".into()], &BackupOptions::default())?;
//! repo.restore(&s.snapshot_id, std::path::Path::new("/tmp/out"), &[], &RestoreOptions::default())?;
//! # Ok::<(), coffer_backup::Error>(())
//! ```

mod backup;
// Restore resolves every path beneath its target with no-follow *at calls (beneath.rs),
// which Unix has: Linux, macOS, and Android and iOS, which are Unix too. Windows refuses
// restore (restore_unsupported.rs) until it has the same guarantee (NtCreateFile relative
// to a directory handle, not following reparse points): writing outside the target is
// what a hostile snapshot would aim for.
#[cfg(unix)]
mod beneath;
mod blob_reader;
mod check;
mod chunker;
mod error;
mod estimate;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod location;
mod lock;
mod ls;
mod maintain;
mod pipeline;
mod platform;
mod repo;
#[cfg(unix)]
mod restore;
#[cfg(not(unix))]
#[path = "restore_unsupported.rs"]
mod restore;
mod snapshot;
mod sqlite;
mod storage;
#[doc(hidden)]
pub mod testing;
mod tree;
mod types;
mod walk;

pub use error::Error;
pub use estimate::BackupEstimate;
pub use keys::BackupKey;
pub use maintain::civil_date;
pub use repo::Repository;
pub use snapshot::{DiffEntry, DiffKind};
pub use types::{
    BackupOptions, BackupSummary, CheckReport, DamagedSnapshot, ForgetReport, GroupBy, Head,
    KeepPolicy, LsEntry, Overwrite, Progress, ProgressEvent, PruneReport, RestoreOptions,
    RestoreSummary, SnapshotInfo, UnlockReport,
};
