//! SQLite files: recognised by their header and read as a consistent copy, then cut at
//! page boundaries (FORMAT.md "Chunking"), so a day's scattered page updates upload only
//! the pages that changed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::Error;

/// The 16-byte header every SQLite 3 database starts with.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Page size if `path` is a SQLite database.
pub(crate) fn page_size(path: &Path) -> Option<usize> {
    let mut f = File::open(path).ok()?;
    let mut h = [0u8; 100];
    f.read_exact(&mut h).ok()?;
    if &h[..16] != MAGIC {
        return None;
    }
    // Big-endian u16 at offset 16; 1 means 65536 (SQLite file format 1.3.2).
    let raw = (usize::from(h[16]) << 8) | usize::from(h[17]);
    let ps = if raw == 1 { 65536 } else { raw };
    (ps.is_power_of_two() && (512..=65536).contains(&ps)).then_some(ps)
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The files SQLite keeps next to a database `X`: `X-wal`, `X-shm` and `X-journal`.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// True if `path` is the WAL, shared-memory or rollback journal of a SQLite database next
/// to it. These are not backed up: the database's image already holds every committed
/// transaction, and a raw copy of a live WAL or journal restored next to that image
/// would be replayed or rolled back over it, corrupting it.
pub(crate) fn is_sidecar(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    SIDECARS.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .filter(|base| !base.is_empty())
            .is_some_and(|base| page_size(&path.with_file_name(base)).is_some())
    })
}

/// True if a WAL file sits next to `path`: committed pages may then live outside the
/// main file, so an unchanged main file (size, mtime, inode) does not mean an unchanged
/// database. One `stat`, cheap enough for every file of a backup.
pub(crate) fn has_wal(path: &Path) -> bool {
    std::fs::symlink_metadata(sidecar(path, "-wal")).is_ok()
}

/// True if the database may have committed pages outside its main file or may be
/// checkpointed under a reader (WAL mode, or a WAL left behind).
fn may_use_wal(path: &Path) -> bool {
    has_wal(path) || header_says_wal(path).unwrap_or(true)
}

/// Whether the header says WAL mode (file format 1.3.2).
fn header_says_wal(path: &Path) -> Option<bool> {
    let mut f = File::open(path).ok()?;
    let mut h = [0u8; 20];
    f.read_exact(&mut h).ok()?;
    Some(wal_header(&h))
}

/// File format bytes 18 and 19 (write and read version) are 2 in WAL mode.
fn wal_header(h: &[u8; 20]) -> bool {
    h[18] == 2 || h[19] == 2
}

/// How long a backup waits for a writer's transaction before giving up on a database.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A read-only connection that waits up to [`LOCK_WAIT`] for a writer's transaction.
fn open_read_only(path: &Path) -> Result<rusqlite::Connection, Error> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sqlite_error(path, "SQLite open", e))?;
    conn.busy_timeout(LOCK_WAIT)
        .map_err(|e| sqlite_error(path, "SQLite busy timeout", e))?;
    Ok(conn)
}

fn sqlite_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!(
            "{what}: {e}; the database stays out of this snapshot, back it up again when \
             its writer is idle"
        )),
    )
}

/// Runs `f` once over a consistent image of the database at `path`: every committed
/// transaction up to one point in time and nothing of any later one.
///
/// - Rollback-journal mode: a read transaction holds SQLite's SHARED lock, under which no
///   writer can change the main file (a commit needs EXCLUSIVE), and the file is read
///   directly, byte for byte. Writers wait (their busy timeout) while it is read.
/// - WAL mode: committed pages may live in the WAL and a checkpoint may rewrite the main
///   file under a reader, so the image is made by SQLite's online backup API in one step
///   (one read transaction, a snapshot) into a private temporary file. Writers go on.
pub(crate) fn with_consistent_image<T>(
    path: &Path,
    mut f: impl FnMut(&mut dyn Read) -> Result<T, Error>,
) -> Result<T, Error> {
    if may_use_wal(path) {
        return via_backup_api(path, &mut f);
    }
    let conn = open_read_only(path)?;
    // BEGIN alone takes no lock; the first read takes SHARED (and waits out a writer
    // that is committing, through the busy timeout).
    conn.execute_batch("BEGIN")
        .and_then(|()| {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map_err(|e| sqlite_error(path, "SQLite read lock", e))?;
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    // Switching to WAL needs EXCLUSIVE, so under our SHARED lock the mode seen here holds
    // for the whole read; if it is WAL now, a checkpoint could write under us.
    let mut h = [0u8; 20];
    let wal = file.read_exact(&mut h).is_err() || wal_header(&h);
    let out = if wal {
        None
    } else {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(path, e))?;
        Some(f(&mut file))
    };
    // Closing any descriptor of a file drops all of this process's POSIX locks on it,
    // the connection's SHARED lock included: so the file is closed only after the read.
    drop(file);
    let _ = conn.execute_batch("COMMIT");
    drop(conn);
    match out {
        Some(out) => out,
        None => via_backup_api(path, &mut f),
    }
}

fn via_backup_api<T>(
    path: &Path,
    f: &mut impl FnMut(&mut dyn Read) -> Result<T, Error>,
) -> Result<T, Error> {
    let dir = private_temp_dir()?;
    let tmp = dir.join("image.db");
    let copy = copy_with_backup_api(path, &tmp);
    let result = match copy {
        Ok(()) => match File::open(&tmp) {
            Ok(mut file) => f(&mut file),
            Err(e) => Err(Error::io(&tmp, e)),
        },
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Copies the database with one `sqlite3_backup_step(-1)`: a single read transaction, so
/// a snapshot even while writers commit (copying a few pages per step would restart on
/// every concurrent commit and never finish under a busy writer).
fn copy_with_backup_api(path: &Path, tmp: &Path) -> Result<(), Error> {
    use rusqlite::backup::{Backup, StepResult};
    let src = open_read_only(path)?;
    let mut dst =
        rusqlite::Connection::open(tmp).map_err(|e| sqlite_error(tmp, "SQLite open", e))?;
    // A scratch copy: no journal and no fsync, it is deleted after the read whatever
    // happens.
    dst.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        .map_err(|e| sqlite_error(tmp, "SQLite pragma", e))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let backup = Backup::new(&src, &mut dst).map_err(|e| sqlite_error(path, "SQLite backup", e))?;
    loop {
        match backup
            .step(-1)
            .map_err(|e| sqlite_error(path, "SQLite backup", e))?
        {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                if std::time::Instant::now() > deadline {
                    return Err(sqlite_error(
                        path,
                        "SQLite backup",
                        "the database stayed locked by a writer",
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {}
        }
    }
}

/// A fresh directory only this user can enter: the image is plaintext of a private
/// database and must not be readable by others while it exists.
fn private_temp_dir() -> Result<PathBuf, Error> {
    let mut r = [0u8; 8];
    crate::keys::fill_random(&mut r);
    let dir = std::env::temp_dir().join(format!("coffer-sqlite-{}", hex::encode(r)));
    crate::platform::create_private_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}
