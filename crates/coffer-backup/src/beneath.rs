//! File system operations confined beneath a restore target (THREAT_MODEL.md "A hostile
//! snapshot"). A snapshot may come from a compromised device holding K, so its entries
//! can name `h -> /etc` and then `h/passwd`. Every path is resolved one component at a
//! time from a descriptor of the target, each component opened with
//! `O_DIRECTORY | O_NOFOLLOW`: a symlink anywhere on the way (one the snapshot made, or
//! one already in the target) stops the walk instead of being followed. Names are created
//! and replaced with the `*at` calls on the parent's descriptor, and modes and times are
//! set on open descriptors, so no step re-resolves a path string.
//!
//! The walk is `openat` per component rather than Linux's `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` so that it works on every Unix (macOS, the BSDs, Android);
//! both refuse the same paths here, since the names have no `..` (checked by the caller).
//!
//! Unix only, like the rest of the crate (raw names and modes in snapshot.rs and
//! backup.rs). A Windows port must bring its own beneath-the-target resolution (e.g.
//! `cap-std`, which opens with `FILE_FLAG_OPEN_REPARSE_POINT`) before restore is enabled
//! there; until then the crate does not build on Windows.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why an entry could not be placed beneath the target.
#[derive(Debug)]
pub(crate) enum Denied {
    /// Placing it would go through a symlink or a non-directory, or the name is unsafe:
    /// refused for safety.
    Refused(String),
    /// An ordinary I/O failure (permissions, disk full).
    Io(io::Error),
}

impl From<Errno> for Denied {
    fn from(e: Errno) -> Self {
        Denied::Io(e.into())
    }
}

/// What is at a name, without following it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    Nothing,
    File { size: u64, mtime_ns: i64 },
    Dir,
    Symlink(Vec<u8>),
    Other,
}

/// The restore target, held open.
pub(crate) struct Beneath {
    root: OwnedFd,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// New directories start like `mkdir -p` ones (umask applies); a directory entry of the
/// snapshot gets its own mode at the end of the restore.
const NEW_DIR_MODE: u32 = 0o777;

impl Beneath {
    /// Creates the target if needed and opens it. The target path itself is the user's
    /// choice and may contain symlinks; only what is beneath it is confined.
    pub(crate) fn open(target: &Path) -> io::Result<Beneath> {
        std::fs::create_dir_all(target)?;
        let root = rustix::fs::openat(
            rustix::fs::CWD,
            target,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath { root })
    }

    /// Opens directory `rel` (relative, only normal components; empty means the target),
    /// creating missing components when `create`. `Ok(None)`: absent and not created.
    pub(crate) fn dir(&self, rel: &Path, create: bool) -> Result<Option<OwnedFd>, Denied> {
        let mut cur = rustix::io::dup(&self.root)?;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(Denied::Refused("unsafe path (absolute or ..)".into()));
            };
            cur = match open_dir(&cur, name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(NEW_DIR_MODE)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    open_dir(&cur, name).map_err(|e| walk_error(e, name))?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(walk_error(e, name)),
            };
        }
        Ok(Some(cur))
    }

    /// The parent directory of `rel` (created if `create`) and `rel`'s last name.
    pub(crate) fn parent<'p>(
        &self,
        rel: &'p Path,
        create: bool,
    ) -> Result<Option<(OwnedFd, &'p OsStr)>, Denied> {
        let name = match rel.components().next_back() {
            Some(Component::Normal(n)) => n,
            _ => return Err(Denied::Refused("unsafe path (absolute or ..)".into())),
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok(self.dir(parent, create)?.map(|fd| (fd, name)))
    }
}

fn open_dir(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())
}

fn walk_error(e: Errno, name: &OsStr) -> Denied {
    match e {
        // O_NOFOLLOW on a symlink gives ELOOP (Linux) or ENOTDIR (some BSDs); a regular
        // file on the way gives ENOTDIR.
        Errno::LOOP | Errno::NOTDIR => Denied::Refused(format!(
            "{} is a symlink or not a directory; restore never follows links",
            Path::new(name).display()
        )),
        e => Denied::Io(e.into()),
    }
}

/// What is at `name` in `dir`, not following a symlink.
pub(crate) fn existing(dir: &OwnedFd, name: &OsStr) -> io::Result<Existing> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Existing::Nothing),
        Err(e) => return Err(e.into()),
    };
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Existing::File {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
        },
        FileType::Directory => Existing::Dir,
        FileType::Symlink => {
            Existing::Symlink(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
        }
        _ => Existing::Other,
    })
}

/// Makes directory `name` in `dir`, or keeps it if it is one. A non-directory in the
/// way is removed first only when `replace` (never followed: `unlinkat` removes a link
/// itself, and never removes a directory).
pub(crate) fn make_dir(dir: &OwnedFd, name: &OsStr, replace: bool) -> Result<(), Denied> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(NEW_DIR_MODE)) {
        Ok(()) => return Ok(()),
        Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    match existing(dir, name).map_err(Denied::Io)? {
        Existing::Dir => Ok(()),
        _ if replace => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(NEW_DIR_MODE))?;
            Ok(())
        }
        _ => Err(Denied::Refused(
            "a file or symlink is in the way of this directory".into(),
        )),
    }
}

/// A short temporary name: `.coffer-` and 12 hex digits, 20 bytes whatever the final
/// name's length (a 255-byte name plus a suffix would exceed NAME_MAX).
pub(crate) fn temp_name() -> String {
    let mut r = [0u8; 6];
    crate::keys::fill_random(&mut r);
    format!(".coffer-{}", hex::encode(r))
}

/// Creates a new file for writing under a fresh temporary name in `dir`.
pub(crate) fn create_temp(dir: &OwnedFd) -> io::Result<(File, String)> {
    loop {
        let tmp = temp_name();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, tmp.as_str(), flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok((File::from(fd), tmp)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Moves `tmp` to `name` within `dir`, replacing a file or symlink there (the link itself,
/// not what it points to); a directory in the way is refused.
pub(crate) fn commit(dir: &OwnedFd, tmp: &str, name: &OsStr) -> Result<(), Denied> {
    match rustix::fs::renameat(dir, tmp, dir, name) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
            Err(match e {
                Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => {
                    Denied::Refused("a directory is in the way".into())
                }
                e => e.into(),
            })
        }
    }
}

/// Creates symlink `name -> target` in `dir` (through a temporary name, so an existing
/// file or link is replaced atomically).
pub(crate) fn make_symlink(dir: &OwnedFd, name: &OsStr, target: &OsStr) -> Result<(), Denied> {
    let tmp = loop {
        let tmp = temp_name();
        match rustix::fs::symlinkat(target, dir, tmp.as_str()) {
            Ok(()) => break tmp,
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    commit(dir, &tmp, name)
}

/// The directory `fd` as a `File`, for `set_permissions` / `set_modified`, which act on
/// the descriptor (fchmod, futimens), never on a path.
pub(crate) fn as_file(fd: OwnedFd) -> File {
    File::from(fd)
}
