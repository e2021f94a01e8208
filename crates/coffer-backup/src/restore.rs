//! Restore: every blob is authenticated and its chunk id recomputed before a byte is
//! written. A file whose name did not exist is written in place (mode 0 until complete);
//! one whose name existed is written to a temporary name and renamed into place, so an
//! existing path holds either its old content or the verified file (FORMAT.md "Restore").
//!
//! A snapshot may come from a compromised device (THREAT_MODEL.md "A hostile snapshot"),
//! so nothing is written outside the target whatever its entries say:
//!
//! | rule | where |
//! |---|---|
//! | names with `..`, a root or nothing are refused | [`safe_rel`] |
//! | every path resolves beneath the target without following a symlink | beneath.rs |
//! | directories first, then files, symlinks last: nothing is reached through a link the snapshot made | [`restore`] |
//! | new files are created with `O_EXCL`, existing names replaced by rename: nothing that exists is opened for writing | [`restore_file`] |
//! | modes and times are set on open descriptors, never through a path | [`write_file`], [`finish_dirs`] |
//! | setuid and setgid bits are dropped unless asked for | [`RestoreOptions::preserve_setuid`] |
//!
//! A refused entry is listed in [`RestoreSummary::refused`]; the rest is restored.
//!
//! Cancellation ([`RestoreOptions::cancel`]) is checked before each file and between the
//! chunks of one: a file is either complete (mode and time set) or removed, never left
//! looking complete, so running the same restore again skips what is done and finishes.
//! Directories already made stay with their default mode (their final modes come last,
//! which a cancelled run skips), so the next run can still write into them.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use crossbeam_channel::bounded;

use crate::Error;
use crate::beneath::{self, Beneath, Denied, DirCache, Existing};
use crate::blob_reader::{BlobReader, RANGE_MAX, Wanted};
use crate::ls::Selection;
use crate::repo::{Index, Repository};
use crate::snapshot::{Node, NodeKind};
use crate::types::{Overwrite, ProgressEvent, RestoreOptions, RestoreSummary};

/// Only plain names: no root, no `.` or `..`, not empty.
fn safe_rel(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_))) && p.components().next().is_some()
}

/// The outcome of one entry.
enum Outcome {
    Written(u64),
    Linked,
    Unchanged,
    Refused(String),
    /// The data could not be read back sound (a damaged or missing blob).
    Failed(String),
    /// The target could not take the file (a full disk, no permission).
    Unwritten(String),
    /// Stopped by the cancel flag; what was written of the file was removed.
    Cancelled,
}

/// Why writing one file stopped.
enum Stop {
    Failed(String),
    Unwritten(String),
    Cancelled,
}

/// A target-side error: the file system refused what restore wrote.
fn unwritten(e: std::io::Error) -> Stop {
    Stop::Unwritten(e.to_string())
}

impl From<String> for Stop {
    fn from(why: String) -> Self {
        Stop::Failed(why)
    }
}

impl From<Stop> for Outcome {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Failed(why) => Outcome::Failed(why),
            Stop::Unwritten(why) => Outcome::Unwritten(why),
            Stop::Cancelled => Outcome::Cancelled,
        }
    }
}

impl From<Denied> for Outcome {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Refused(why) => Outcome::Refused(why),
            Denied::Io(e) => Outcome::Unwritten(e.to_string()),
        }
    }
}

/// What the restore's passes share.
struct Run<'a> {
    opts: &'a RestoreOptions,
    dirs: DirCache<'a>,
    /// The target was empty or missing: nothing to compare, every file written in place.
    fresh: bool,
    mode_mask: u32,
    summary: Mutex<RestoreSummary>,
    /// A file was left unwritten because of the cancel flag: the writers drop what is
    /// queued, the walk stops, and the restore returns [`Error::RestoreCancelled`].
    stopped: AtomicBool,
}

impl Run<'_> {
    fn record(&self, rel: &Path, o: Outcome) {
        let Ok(mut s) = self.summary.lock() else {
            return;
        };
        match o {
            Outcome::Written(b) => {
                s.files += 1;
                s.bytes += b;
            }
            Outcome::Linked => {}
            Outcome::Unchanged => s.unchanged += 1,
            Outcome::Refused(why) => s.refused.push((rel.to_path_buf(), why)),
            Outcome::Failed(why) => s.failed.push((rel.to_path_buf(), why)),
            Outcome::Unwritten(why) => s.unwritten.push((rel.to_path_buf(), why)),
            // Not a result: the restore returns RestoreCancelled instead of a summary.
            Outcome::Cancelled => {}
        }
    }

    /// How `n` compares with the target; a fresh target holds nothing.
    fn compare(&self, n: &Node) -> Compared {
        if self.fresh {
            Compared::Fresh
        } else {
            compare(&self.dirs, n)
        }
    }

    /// Whether an entry found as `c` is left as it is.
    fn skip(&self, c: &Compared) -> bool {
        matches!(c, Compared::Unchanged) && self.opts.overwrite != Overwrite::Always
    }
}

/// Files handed to one writer thread at a time: a run of one directory (at most
/// [`UNIT_FILES`] files and about [`UNIT_BYTES`]), written whole by one thread, since two
/// threads creating names in one directory wait on its lock (5% of a 300,000-file
/// restore's time).
type Unit = Vec<Node>;
const UNIT_FILES: usize = 4096;
const UNIT_BYTES: u64 = 16 << 20;

/// Restores in passes over the snapshot's walk, holding at a time one directory's trees,
/// a few units of files on their way to the writer threads, and the pack ranges being
/// read, never the list of what is restored (FORMAT.md "What is held in memory"):
///
/// 1. a pass that writes nothing: it reads every tree (a damaged one stops the restore
///    before anything is written) and, with [`Overwrite::Never`] into a target that
///    holds something, compares (a refusal leaves the target exactly as it was);
/// 2. directories as the walk meets them, and files in units by writer threads;
/// 3. symlinks, once every file and directory is in place, and each directory's mode
///    and time once what is in it is complete.
pub(crate) fn restore(
    repo: &Repository,
    snapshot: &str,
    target: &Path,
    include: &[PathBuf],
    opts: &RestoreOptions,
) -> Result<RestoreSummary, Error> {
    let (id, manifest) = repo.find_snapshot(snapshot)?;
    let (index, _) = repo.load_index()?;
    let sel = Selection::new(repo, &index, &id, &manifest, include)?;
    let fresh = is_empty_or_missing(target);
    let root = Beneath::open(target).map_err(|e| Error::io(target, e))?;
    let run = Run {
        opts,
        dirs: DirCache::new(&root),
        fresh,
        mode_mask: if opts.preserve_setuid { 0o7777 } else { 0o1777 },
        summary: Mutex::new(RestoreSummary::default()),
        stopped: AtomicBool::new(false),
    };

    // Pass 1 reads every tree before a byte is written: a damaged or hostile tree
    // anywhere stops the restore with the target as it was.
    let never = !fresh && opts.overwrite == Overwrite::Never;
    let mut differs = Vec::new();
    sel.each(&mut |n| {
        if never && safe_rel(&n.path) && matches!(compare(&run.dirs, &n), Compared::Differs) {
            differs.push(n.path);
        }
        Ok(())
    })?;
    if !differs.is_empty() {
        differs.sort();
        return Err(Error::WouldOverwrite { paths: differs });
    }
    if opts.cancelled() {
        return Err(Error::RestoreCancelled { files: 0 });
    }

    let wrote = write_dirs_and_files(repo, &index, &sel, &run, manifest.bytes);
    // A cancel that came after the last file stopped nothing: the restore completes.
    if run.stopped.load(Ordering::SeqCst) {
        let files = run.summary.lock().map(|s| s.files).unwrap_or(0);
        return Err(Error::RestoreCancelled { files });
    }
    wrote?;
    links_and_dir_modes(&sel, &run)?;

    let mut summary = run.summary.into_inner().unwrap_or_default();
    summary.failed.sort();
    summary.unwritten.sort();
    summary.refused.sort();
    Ok(summary)
}

/// Pass 2: the walk makes each directory as it meets it (before what is in it) and
/// hands files in units to writer threads through a short queue.
fn write_dirs_and_files(
    repo: &Repository,
    index: &Index,
    sel: &Selection<'_>,
    run: &Run<'_>,
    total: u64,
) -> Result<(), Error> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    // The range each writer reads from, and two more (FORMAT.md "What is held in
    // memory"): after a day of changes a file's chunks alternate between an old pack and
    // a new one, so a writer goes back to the range before the one it reads now. The
    // least recently used range goes first.
    let cache = (threads + 2) * RANGE_MAX as usize;
    let reader = BlobReader::new(&repo.store, &repo.keyring, index, cache);
    let written = AtomicU64::new(0);
    let (tx, rx) = bounded::<Unit>(threads);
    let replace = run.opts.overwrite != Overwrite::Never;
    std::thread::scope(|s| {
        for _ in 0..threads {
            let rx = rx.clone();
            let (reader, written) = (&reader, &written);
            s.spawn(move || {
                for unit in rx {
                    write_unit(reader, index, run, &unit, written, total);
                }
            });
        }
        drop(rx);
        let mut unit: Unit = Vec::new();
        let mut unit_bytes = 0u64;
        let send = |unit: &mut Unit| {
            // A closed queue means every writer is gone: nothing left to hand out.
            let _ = tx.send(std::mem::take(unit));
        };
        let mut visit = |n: Node| {
            if run.stopped.load(Ordering::SeqCst) {
                // Ends the walk; restore() turns it into the count of files written.
                return Err(Error::RestoreCancelled { files: 0 });
            }
            if !safe_rel(&n.path) {
                run.record(
                    &n.path,
                    Outcome::Refused("unsafe name in snapshot (absolute, .. or empty)".into()),
                );
                return Ok(());
            }
            match n.kind {
                NodeKind::Dir => {
                    let r = run.dirs.parent(&n.path, true).and_then(|p| match p {
                        Some((fd, name)) => beneath::make_dir(&fd, name, replace),
                        None => Err(Denied::Refused("parent vanished".into())),
                    });
                    if let Err(d) = r {
                        run.record(&n.path, d.into());
                    }
                }
                NodeKind::File => {
                    let split = unit.first().is_some_and(|f: &Node| {
                        f.path.parent() != n.path.parent()
                            || unit.len() >= UNIT_FILES
                            || unit_bytes >= UNIT_BYTES
                    });
                    if split {
                        send(&mut unit);
                        unit_bytes = 0;
                    }
                    unit_bytes += n.size;
                    unit.push(n);
                }
                NodeKind::Symlink => {}
            }
            Ok(())
        };
        // A version 1/2 list has no order: its directories first, then its files.
        let mut r = Ok(());
        if sel.is_tree() {
            r = sel.each(&mut visit);
        } else {
            for kind in [NodeKind::Dir, NodeKind::File] {
                if r.is_ok() {
                    r = sel.each(&mut |n| if n.kind == kind { visit(n) } else { Ok(()) });
                }
            }
        }
        if !unit.is_empty() {
            send(&mut unit);
        }
        drop(tx);
        r
    })
}

/// Writes one unit of files (a writer thread).
fn write_unit(
    reader: &BlobReader<'_>,
    index: &Index,
    run: &Run<'_>,
    unit: &[Node],
    written: &AtomicU64,
    total: u64,
) {
    if run.stopped.load(Ordering::SeqCst) {
        return;
    }
    let found: Vec<Compared> = unit.iter().map(|n| run.compare(n)).collect();
    // Read along only the blobs of the files this unit writes.
    let wanted = Wanted::of(
        index,
        unit.iter()
            .zip(&found)
            .filter(|(n, c)| !run.skip(c) && n.chunks_valid())
            .flat_map(|(n, _)| n.chunks.iter()),
    );
    let w = Writer {
        reader,
        wanted: &wanted,
        run,
    };
    for (n, c) in unit.iter().zip(found) {
        let outcome = if run.skip(&c) {
            Outcome::Unchanged
        } else if run.opts.cancelled() {
            Outcome::Cancelled
        } else {
            if let Some(p) = &run.opts.progress {
                p.event(&ProgressEvent::File {
                    path: n.path.display().to_string(),
                });
            }
            // Names that exist are written through a temporary name and a rename,
            // never in place.
            let in_place = matches!(c, Compared::Fresh);
            restore_file(&w, n, in_place)
        };
        if matches!(outcome, Outcome::Cancelled) {
            // The other writers see the caller's flag at their next check.
            run.stopped.store(true, Ordering::SeqCst);
            return;
        }
        if let Outcome::Written(b) = outcome {
            let done = written.fetch_add(b, Ordering::SeqCst) + b;
            if let Some(p) = &run.opts.progress {
                p.event(&ProgressEvent::Bytes { done, total });
            }
        }
        run.record(&n.path, outcome);
    }
}

/// Pass 3: symlinks last, so every file and directory is in place before a link that
/// could lead elsewhere exists (the walks above never follow one anyway); a directory's
/// mode and time once everything in it is done, since writing into a directory changes
/// its mtime and a read-only mode would stop the writes. In a tree walk a directory is
/// complete when the walk leaves it, so only the directories on the current path wait;
/// a version 1/2 list is in memory anyway and is finished deepest first.
fn links_and_dir_modes(sel: &Selection<'_>, run: &Run<'_>) -> Result<(), Error> {
    let tree = sel.is_tree();
    let mut open: Vec<Node> = Vec::new();
    sel.each(&mut |n| {
        if !safe_rel(&n.path) {
            return Ok(());
        }
        while tree && open.last().is_some_and(|d| !n.path.starts_with(&d.path)) {
            if let Some(d) = open.pop() {
                finish_dir(&run.dirs, &d, run.mode_mask);
            }
        }
        match n.kind {
            NodeKind::Dir => open.push(n),
            NodeKind::Symlink => {
                if !run.skip(&run.compare(&n)) {
                    run.record(&n.path, restore_symlink(&run.dirs, &n));
                }
            }
            NodeKind::File => {}
        }
        Ok(())
    })?;
    open.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for d in &open {
        finish_dir(&run.dirs, d, run.mode_mask);
    }
    Ok(())
}

/// True when `target` does not exist or is an empty directory.
fn is_empty_or_missing(target: &Path) -> bool {
    match std::fs::read_dir(target) {
        Ok(mut rd) => rd.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// How an entry compares with what the target already holds.
enum Compared {
    Fresh,
    Unchanged,
    Differs,
    /// A file a killed restore left half written (mode 0, see [`beneath::create_new`]):
    /// replaced like a fresh entry, so an interrupted restore can be run again.
    Partial,
}

fn compare(dirs: &DirCache<'_>, n: &Node) -> Compared {
    // A path that cannot be walked is refused later, which is no overwrite.
    let Ok(Some((dir, name))) = dirs.parent(&n.path, false) else {
        return Compared::Fresh;
    };
    let Ok(found) = beneath::existing(&dir, name) else {
        return Compared::Fresh;
    };
    match (n.kind, found) {
        (_, Existing::Nothing) => Compared::Fresh,
        (NodeKind::Dir, Existing::Dir) => Compared::Fresh,
        (NodeKind::File, Existing::File { size, mtime_ns, .. })
            if size == n.size && mtime_ns == n.mtime_ns.max(0) =>
        {
            Compared::Unchanged
        }
        (NodeKind::File, Existing::File { mode: 0, .. }) => Compared::Partial,
        (NodeKind::Symlink, Existing::Symlink(t)) if link_target(n).as_ref() == Some(&t) => {
            Compared::Unchanged
        }
        _ => Compared::Differs,
    }
}

fn mtime(n: &Node) -> std::time::SystemTime {
    if n.mtime_ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(n.mtime_ns as u64)
    } else {
        UNIX_EPOCH
    }
}

fn link_target(n: &Node) -> Option<Vec<u8>> {
    n.target.as_ref().and_then(|t| hex::decode(t).ok())
}

fn restore_symlink(dirs: &DirCache<'_>, n: &Node) -> Outcome {
    let Some(t) = link_target(n) else {
        return Outcome::Failed("symlink without a target".into());
    };
    let r = dirs.parent(&n.path, true).and_then(|p| match p {
        Some((dir, name)) => beneath::make_symlink(&dir, name, OsStr::from_bytes(&t)),
        None => Err(Denied::Refused("parent vanished".into())),
    });
    match r {
        Ok(()) => Outcome::Linked,
        Err(d) => d.into(),
    }
}

/// Sets a directory's mode and time through a descriptor reached by the same no-follow
/// walk as everything else.
fn finish_dir(open: &DirCache<'_>, d: &Node, mode_mask: u32) {
    if let Ok(Some(fd)) = open.dir(&d.path, false)
        && let Ok(f) = beneath::as_file(&fd)
    {
        let _ = f.set_permissions(std::fs::Permissions::from_mode(d.mode & mode_mask));
        let _ = f.set_modified(mtime(d));
    }
}

/// Writes `data` at `pos`, skipping all-zero 4 KiB blocks so they stay holes (sparse
/// files stay sparse). Returns the end of the last byte written, so the caller knows
/// whether a trailing hole still needs `set_len`.
fn write_sparse(f: &File, data: &[u8], pos: u64) -> std::io::Result<u64> {
    const BLOCK: usize = 4096;
    let mut run_start = None;
    let mut written_to = 0;
    let mut i = 0;
    while i < data.len() {
        let end = (i + BLOCK).min(data.len());
        let zero = data[i..end].iter().all(|&b| b == 0);
        match (zero, run_start) {
            (false, None) => run_start = Some(i),
            (true, Some(s)) => {
                f.write_all_at(&data[s..i], pos + s as u64)?;
                written_to = pos + i as u64;
                run_start = None;
            }
            _ => {}
        }
        i = end;
    }
    if let Some(s) = run_start {
        f.write_all_at(&data[s..], pos + s as u64)?;
        written_to = pos + data.len() as u64;
    }
    Ok(written_to)
}

/// Bytes of a file's chunks gathered into one write ([`Gathered`]).
const GATHER: usize = 1024 * 1024;

thread_local! {
    /// Each writer thread's buffer for [`Gathered`], kept from file to file: a fresh
    /// 1 MiB buffer per file would be an mmap and munmap each.
    static GATHER_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A file written from start to end in writes of up to [`GATHER`] bytes: one write per MiB
/// instead of one per chunk (52,000 for the benchmark's database of 4 KiB pages). Chunks
/// of a MiB and more are written as they are.
struct Gathered<'f> {
    file: &'f File,
    buf: Vec<u8>,
    /// The file offset of `buf`'s first byte.
    at: u64,
    /// The end of the last byte written ([`write_sparse`]).
    written_to: u64,
}

impl<'f> Gathered<'f> {
    fn new(file: &'f File) -> Self {
        let mut buf = GATHER_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
        buf.clear();
        Gathered {
            file,
            buf,
            at: 0,
            written_to: 0,
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.buf.len() + data.len() > GATHER {
            self.flush()?;
        }
        if data.len() >= GATHER {
            let end = write_sparse(self.file, data, self.at)?;
            self.written_to = self.written_to.max(end);
            self.at += data.len() as u64;
        } else {
            self.buf.reserve_exact(GATHER - self.buf.len());
            self.buf.extend_from_slice(data);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let end = write_sparse(self.file, &self.buf, self.at)?;
            self.written_to = self.written_to.max(end);
            self.at += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is gathered; returns the end of the last byte written, for the
    /// caller's `set_len` over a trailing hole.
    fn finish(mut self) -> std::io::Result<u64> {
        self.flush()?;
        Ok(self.written_to)
    }
}

impl Drop for Gathered<'_> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let _ = GATHER_BUF.try_with(|b| *b.borrow_mut() = buf);
    }
}

/// What every file write needs besides the file.
struct Writer<'a> {
    reader: &'a BlobReader<'a>,
    /// The blobs of the unit being written, read along on a miss.
    wanted: &'a Wanted,
    run: &'a Run<'a>,
}

fn restore_file(w: &Writer<'_>, n: &Node, in_place: bool) -> Outcome {
    if !n.chunks_valid() {
        return Outcome::Failed("malformed chunk list".into());
    }
    let (dir, name) = match w.run.dirs.parent(&n.path, true) {
        Ok(Some(p)) => p,
        Ok(None) => return Outcome::Refused("parent vanished".into()),
        Err(d) => return d.into(),
    };
    // Nothing was at this name when the restore began: write the file under it directly,
    // saving a temporary name and a rename per file. A restore killed meanwhile leaves a
    // mode-0 file that the next run replaces (Compared::Partial). Something there now (a
    // name the snapshot holds twice) takes the path below, which replaces it safely.
    if in_place {
        match beneath::create_new(&dir, name) {
            Ok(Some(f)) => {
                return match write_file(w, &f, n) {
                    Ok(b) => Outcome::Written(b),
                    // Failed or cancelled: nothing half written keeps the name.
                    Err(stop) => {
                        drop(f);
                        remove(&dir, name);
                        stop.into()
                    }
                };
            }
            Ok(None) => {}
            Err(err) => return Outcome::Unwritten(err.to_string()),
        }
    }
    let (f, tmp) = match beneath::create_temp(&dir) {
        Ok(x) => x,
        Err(err) => return Outcome::Unwritten(err.to_string()),
    };
    match write_file(w, &f, n) {
        // Rename makes the verified file visible atomically under its name; no fsync
        // per file (FORMAT.md "Restore"): a power cut may lose restored files, and
        // restore is simply run again.
        Ok(b) => match beneath::commit(&dir, &tmp, name) {
            Ok(()) => Outcome::Written(b),
            Err(d) => d.into(),
        },
        Err(stop) => {
            remove(&dir, tmp.as_str());
            stop.into()
        }
    }
}

/// Removes a file this restore created and could not complete.
fn remove(dir: &OwnedFd, name: impl rustix::path::Arg) {
    let _ = rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty());
}

/// Fills the new, empty file and sets its mode and time on the descriptor (mode before
/// time: a file whose time matches the snapshot counts as restored).
fn write_file(w: &Writer<'_>, f: &File, n: &Node) -> Result<u64, Stop> {
    let mut pos = 0u64;
    let mut out = Gathered::new(f);
    for id in &n.chunks {
        if w.run.opts.cancelled() {
            return Err(Stop::Cancelled);
        }
        let data = w.reader.blob_of(id, Some(w.wanted))?;
        pos += data.len() as u64;
        if pos > n.size {
            break;
        }
        out.write(&data).map_err(unwritten)?;
    }
    let written_to = out.finish().map_err(unwritten)?;
    if pos != n.size {
        return Err(format!("size {pos} does not match the recorded {}", n.size).into());
    }
    if written_to < pos {
        f.set_len(pos).map_err(unwritten)?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(n.mode & w.run.mode_mask))
        .map_err(unwritten)?;
    f.set_modified(mtime(n)).map_err(unwritten)?;
    Ok(pos)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A file written in pieces of odd sizes (one over [`GATHER`], written as it is)
    /// reads back exactly and keeps its zero blocks as holes.
    #[test]
    fn gathered_writes_read_back_exactly_and_keep_holes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let mut data: Vec<u8> = (0..3 * 1024 * 1024 + 777u32)
            .map(|i| (i * 31 + i / 4099) as u8)
            .collect();
        data[8192..8192 + 64 * 4096].fill(0);
        let p = dir.path().join("f");
        let f = File::create_new(&p).unwrap();
        let mut out = Gathered::new(&f);
        let mut rest = &data[..];
        for n in [4096, 100_003, GATHER + 5, 7, 300_000].into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = n.min(rest.len());
            out.write(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        assert_eq!(out.finish().unwrap(), data.len() as u64);
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), data);
        let allocated = std::fs::metadata(&p).unwrap().blocks() * 512;
        assert!(
            allocated <= (data.len() - 64 * 4096) as u64 + 8192,
            "the hole was written: {allocated} bytes allocated"
        );
    }
}
