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
use std::sync::Arc;

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
    File { size: u64, mtime_ns: i64, mode: u32 },
    Dir,
    Symlink(Vec<u8>),
    Other,
}

/// The restore target, held open.
pub(crate) struct Beneath {
    root: Arc<OwnedFd>,
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
        Ok(Beneath {
            root: Arc::new(root),
        })
    }
}

/// One component of a walk: opens `c` in `dir` without following a link, making it first
/// when missing and `create`. `Ok(None)`: absent and not created.
fn step(dir: &OwnedFd, c: Component<'_>, create: bool) -> Result<Option<OwnedFd>, Denied> {
    let Component::Normal(name) = c else {
        return Err(Denied::Refused("unsafe path (absolute or ..)".into()));
    };
    match open_dir(dir, name) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) if create => {
            match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(NEW_DIR_MODE)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            open_dir(dir, name)
                .map(Some)
                .map_err(|e| walk_error(e, name))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(walk_error(e, name)),
    }
}

/// Directories beneath the target held open, so that entries sharing a directory are
/// placed with one `openat` each instead of a walk from the target each (a restore of
/// 300,000 files in 300 directories walks 300 times, not 300,000).
///
/// Every descriptor here was reached by a no-follow walk from the target, one [`step`]
/// per component, and stays the directory it was: restore never removes or renames a
/// directory (`unlinkat` without `AT_REMOVEDIR` and `renameat` of a file or link onto a
/// directory both fail), so a later symlink of the snapshot cannot take the place of a
/// cached directory.
/// The cache is emptied when it reaches [`DirCache::MAX`] descriptors, which keeps a
/// tree of a million directories within the process's file limit.
pub(crate) struct DirCache<'b> {
    root: &'b Beneath,
    fds: std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Arc<OwnedFd>>>,
}

impl<'b> DirCache<'b> {
    const MAX: usize = 256;

    pub(crate) fn new(root: &'b Beneath) -> DirCache<'b> {
        DirCache {
            root,
            fds: Default::default(),
        }
    }

    fn cached(&self, rel: &Path) -> Option<Arc<OwnedFd>> {
        self.fds.lock().ok()?.get(rel).cloned()
    }

    fn keep(&self, rel: &Path, fd: &Arc<OwnedFd>) {
        if let Ok(mut m) = self.fds.lock() {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(rel.to_path_buf(), fd.clone());
        }
    }

    /// Opens directory `rel` (relative, only normal components; empty means the target),
    /// creating missing components when `create`, walking from the deepest cached
    /// ancestor. `Ok(None)`: absent and not created.
    pub(crate) fn dir(&self, rel: &Path, create: bool) -> Result<Option<Arc<OwnedFd>>, Denied> {
        if rel.as_os_str().is_empty() {
            return Ok(Some(self.root.root.clone()));
        }
        if let Some(fd) = self.cached(rel) {
            return Ok(Some(fd));
        }
        let (base, name) = match rel.components().next_back() {
            Some(c @ Component::Normal(_)) => (rel.parent().unwrap_or(Path::new("")), c),
            _ => return Err(Denied::Refused("unsafe path (absolute or ..)".into())),
        };
        let Some(parent) = self.dir(base, create)? else {
            return Ok(None);
        };
        let Some(fd) = step(&parent, name, create)? else {
            return Ok(None);
        };
        let fd = Arc::new(fd);
        self.keep(rel, &fd);
        Ok(Some(fd))
    }

    /// The open parent directory of `rel` (created if `create`) and `rel`'s last name.
    pub(crate) fn parent<'p>(
        &self,
        rel: &'p Path,
        create: bool,
    ) -> Result<Option<(Arc<OwnedFd>, &'p OsStr)>, Denied> {
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
            mode: st.st_mode & 0o7777,
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

/// Creates `name` in `dir` for writing in place, or `Ok(None)` when something is there
/// already (`O_EXCL`: never opens, truncates or follows what exists). Mode 0 until the
/// restore sets the snapshot's: a file left by a killed restore is recognisable as
/// [`Existing::File`] with `mode == 0` (see `restore::compare`).
pub(crate) fn create_new(dir: &OwnedFd, name: &OsStr) -> io::Result<Option<File>> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(Errno::EXIST) => Ok(None),
        Err(e) => Err(e.into()),
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
pub(crate) fn as_file(fd: &OwnedFd) -> io::Result<File> {
    Ok(File::from(fd.try_clone()?))
}
