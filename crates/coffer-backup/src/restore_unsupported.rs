//! Restore where the platform lacks no-follow *at calls (Windows): refused, with the
//! reason, rather than done without the guarantee that nothing lands outside the target
//! (lib.rs says why; restore.rs is the Unix implementation).

use std::path::{Path, PathBuf};

use crate::Error;
use crate::repo::Repository;
use crate::types::{RestoreOptions, RestoreSummary};

pub(crate) fn restore(
    _repo: &Repository,
    _snapshot: &str,
    _target: &Path,
    _include: &[PathBuf],
    _opts: &RestoreOptions,
) -> Result<RestoreSummary, Error> {
    Err(Error::Unsupported {
        operation: "restore",
        reason: "this platform cannot resolve paths beneath the target without following links; restore on Linux, macOS, Android or iOS",
    })
}
