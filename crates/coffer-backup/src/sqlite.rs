//! SQLite files: recognised by their header and read as a consistent copy, then cut at
//! page boundaries (FORMAT.md "Chunking"), so a day's scattered page updates upload only
//! the pages that changed.

use std::fs::File;
use std::io::Read;
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

fn counter(path: &Path) -> Option<[u8; 4]> {
    let mut f = File::open(path).ok()?;
    let mut h = [0u8; 28];
    f.read_exact(&mut h).ok()?;
    let mut c = [0u8; 4];
    c.copy_from_slice(&h[24..28]);
    Some(c)
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn nonempty(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)
}

/// Runs `f` over a consistent image of the database at `path`.
///
/// - WAL mode (a non-empty `-wal` file): committed pages may live in the WAL, so the image
///   is made with SQLite's online backup API into a temporary file.
/// - Otherwise a read transaction (SHARED lock) keeps writers from changing the file while
///   it is read; the file change counter (offset 24) is compared as a second guard, and
///   the read is retried if a writer got in anyway.
///
/// `f` may be called more than once; only the last call's result counts.
pub(crate) fn with_consistent_image<T>(
    path: &Path,
    mut f: impl FnMut(&mut dyn Read) -> Result<T, Error>,
) -> Result<T, Error> {
    if nonempty(&sidecar(path, "-wal")) {
        return via_backup_api(path, &mut f);
    }
    for _ in 0..3 {
        let before = counter(path);
        // The connection must outlive `file`: closing any descriptor of a file drops the
        // process's POSIX locks on it, so the File is dropped first, then the connection.
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok();
        let locked = conn.as_ref().is_some_and(|c| {
            c.execute_batch("BEGIN").is_ok()
                && c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })
                .is_ok()
        });
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let out = f(&mut file)?;
        drop(file);
        if let Some(c) = &conn {
            let _ = c.execute_batch("COMMIT");
        }
        drop(conn);
        let hot_journal = nonempty(&sidecar(path, "-journal"));
        if before == counter(path) && (locked || !hot_journal) {
            return Ok(out);
        }
    }
    via_backup_api(path, &mut f)
}

fn via_backup_api<T>(
    path: &Path,
    f: &mut impl FnMut(&mut dyn Read) -> Result<T, Error>,
) -> Result<T, Error> {
    let tmp = tempfile_path();
    let copy = (|| -> rusqlite::Result<()> {
        let src = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        src.backup(
            rusqlite::MAIN_DB,
            &tmp,
            None::<fn(rusqlite::backup::Progress)>,
        )
    })();
    let result = match copy {
        Ok(()) => match File::open(&tmp) {
            Ok(mut file) => f(&mut file),
            Err(e) => Err(Error::io(&tmp, e)),
        },
        Err(e) => Err(Error::io(
            path,
            std::io::Error::other(format!("SQLite backup API: {e}")),
        )),
    };
    let _ = std::fs::remove_file(&tmp);
    result
}

fn tempfile_path() -> PathBuf {
    let mut r = [0u8; 8];
    crate::keys::fill_random(&mut r);
    std::env::temp_dir().join(format!("coffer-sqlite-{}.db", hex::encode(r)))
}
