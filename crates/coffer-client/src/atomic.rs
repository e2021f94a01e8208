//! Crash-safe replacement of small files (config, key).

#[cfg(unix)]
use std::fs::File;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::Error;

/// Replaces `path` with `data` so that after a crash the file holds either the old or
/// the new content, never a mix or nothing. `mode` is the Unix permission of the new file
/// (Linux, macOS, Android, iOS); Windows has no modes: a file in the user's profile
/// inherits the profile folder's ACL, which admits only the user and administrators.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(data).map_err(|e| Error::io(&tmp, e))?;
    // The data must be on disk before the rename makes it visible: otherwise a crash
    // right after the rename can leave an empty or partial file under the real name.
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    // The rename lives in the directory: sync it so a crash cannot undo the replacement
    // (and, for the key, lose the only copy of a freshly rotated key).
    sync_dir(dir)
}

/// Removes `path` if it exists, durably.
pub(crate) fn remove_durable(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    }
    // Without this a crash could bring the removed key back after `disable`.
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a rename or removal in `dir` durable. Unix (Android and iOS included) syncs the
/// directory itself. Windows cannot open a directory as a `File` (it needs
/// FILE_FLAG_BACKUP_SEMANTICS) and NTFS journals the rename's metadata itself, so there it
/// is a no-op.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    return File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e));
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
