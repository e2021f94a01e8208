//! What differs between platforms, in one place, so the rest of the engine reads the same
//! everywhere. Android and iOS are Unix (Linux and Darwin kernels): they take the Unix
//! branch of every function here. Windows differs: no mode bits, no inode number or change
//! time in `std`, and names that are UTF-16 rather than bytes.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::Path;

/// What change detection and the manifest keep of a file's metadata.
pub(crate) struct Stat {
    /// Permission bits (`0o7777`).
    pub(crate) mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub(crate) mtime_ns: i64,
    /// Change time, nanoseconds since the epoch (0 where the platform has none).
    pub(crate) ctime_ns: i64,
    /// Inode number (0 where the platform has none).
    pub(crate) ino: u64,
}

/// Unix: the mode, times and inode as `stat` gives them.
#[cfg(unix)]
pub(crate) fn stat(m: &std::fs::Metadata) -> Stat {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    Stat {
        mode: m.permissions().mode() & 0o7777,
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        ino: m.ino(),
    }
}

/// Windows: no mode bits, so a Unix-like mode from the read-only flag (restored on Unix as
/// such); `std` gives no change time or file index there, so both are 0 and an unchanged
/// file is recognised by size and modification time alone (as restic does on Windows).
#[cfg(not(unix))]
pub(crate) fn stat(m: &std::fs::Metadata) -> Stat {
    let mode = match (m.is_dir(), m.permissions().readonly()) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    };
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Stat {
        mode,
        mtime_ns,
        ctime_ns: 0,
        ino: 0,
    }
}

/// A relative path as the manifest writes it ('/'-separated UTF-8), or `None` when it is
/// not UTF-8 (then [`os_bytes`] keeps it raw). Windows separates with '\', which can
/// never be part of a name there.
pub(crate) fn utf8_path(p: &Path) -> Option<String> {
    let s = p.to_str()?;
    Some(if cfg!(windows) {
        s.replace('\\', "/")
    } else {
        s.to_string()
    })
}

/// The bytes of a name that is not UTF-8. Unix names are bytes. Windows names are UTF-16
/// and fail UTF-8 only on an unpaired surrogate, replaced here by U+FFFD.
pub(crate) fn os_bytes(s: &OsStr) -> Cow<'_, [u8]> {
    #[cfg(unix)]
    return Cow::Borrowed(std::os::unix::ffi::OsStrExt::as_bytes(s));
    #[cfg(not(unix))]
    Cow::Owned(s.to_string_lossy().replace('\\', "/").into_bytes())
}

/// The inverse of [`os_bytes`]: Unix takes any bytes; elsewhere bytes that are not UTF-8
/// (a name made on Unix) get U+FFFD in their place.
pub(crate) fn os_from_bytes(b: Vec<u8>) -> OsString {
    #[cfg(unix)]
    return std::os::unix::ffi::OsStringExt::from_vec(b);
    #[cfg(not(unix))]
    OsString::from(String::from_utf8_lossy(&b).into_owned())
}

/// Creates `dir` (not its parents) for this user alone: mode 0700 on Unix. Windows has no
/// modes; a folder in the user's temporary directory inherits its ACL (the user and
/// administrators).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)
    }
    #[cfg(not(unix))]
    std::fs::DirBuilder::new().create(dir)
}

/// Makes a rename or removal in `dir` durable. Unix syncs the directory. Windows cannot
/// open a directory as a `File` without FILE_FLAG_BACKUP_SEMANTICS, and NTFS journals the
/// rename's metadata itself: a no-op there.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    return std::fs::File::open(dir)?.sync_all();
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn non_utf8_names_round_trip_as_bytes() {
        let raw = vec![b'a', 0xff, b'b'];
        let name = os_from_bytes(raw.clone());
        assert!(utf8_path(Path::new(&name)).is_none());
        assert_eq!(os_bytes(&name).as_ref(), &raw[..]);
    }
}
