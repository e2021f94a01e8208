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

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use crate::Error;
use crate::beneath::{self, Beneath, Denied, DirCache, Existing};
use crate::blob_reader::BlobReader;
use crate::repo::Repository;
use crate::snapshot::{Node, NodeKind};
use crate::types::{Overwrite, ProgressEvent, RestoreOptions, RestoreSummary};

/// Only plain names: no root, no `.` or `..`, not empty.
fn safe_rel(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_))) && p.components().next().is_some()
}

/// One selected entry and its path relative to the target.
struct Entry<'m> {
    node: &'m Node,
    rel: PathBuf,
}

/// The outcome of one entry.
enum Outcome {
    Written(u64),
    Linked,
    Unchanged,
    Refused(String),
    Failed(String),
    /// Stopped by the cancel flag; what was written of the file was removed.
    Cancelled,
}

/// Why writing one file stopped.
enum Stop {
    Failed(String),
    Cancelled,
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
            Stop::Cancelled => Outcome::Cancelled,
        }
    }
}

impl From<Denied> for Outcome {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Refused(why) => Outcome::Refused(why),
            Denied::Io(e) => Outcome::Failed(e.to_string()),
        }
    }
}

pub(crate) fn restore(
    repo: &Repository,
    snapshot: &str,
    target: &Path,
    include: &[PathBuf],
    opts: &RestoreOptions,
) -> Result<RestoreSummary, Error> {
    let (id, manifest) = repo.find_snapshot(snapshot)?;
    let (index, _) = repo.load_index()?;
    let selected = crate::ls::select(repo, &index, &id, &manifest, include)?;
    // An empty or new target holds nothing to compare or replace: no walk per entry, and
    // every file is written in place.
    let fresh = is_empty_or_missing(target);
    let root = Beneath::open(target).map_err(|e| Error::io(target, e))?;
    let dirs_open = DirCache::new(&root);
    let mut summary = RestoreSummary::default();
    let (mut dirs, mut files, mut links) = (Vec::new(), Vec::new(), Vec::new());
    for node in &selected {
        let rel = node.rel_path();
        if !safe_rel(&rel) {
            summary.refused.push((
                rel,
                "unsafe name in snapshot (absolute, .. or empty)".into(),
            ));
            continue;
        }
        let e = Entry { node, rel };
        match node.kind {
            NodeKind::Dir => dirs.push(e),
            NodeKind::File => files.push(e),
            NodeKind::Symlink => links.push(e),
        }
    }

    // Nothing is written before the whole target was compared with the snapshot: with
    // Overwrite::Never a refusal leaves the target exactly as it was.
    let mut differs = Vec::new();
    let mut unchanged = HashSet::new();
    // Names that exist: written through a temporary name and a rename, never in place.
    let mut present = HashSet::new();
    for e in dirs.iter().chain(&files).chain(&links) {
        if fresh {
            break;
        }
        let c = compare(&dirs_open, e);
        if !matches!(c, Compared::Fresh) {
            present.insert(e.rel.clone());
        }
        match c {
            Compared::Differs => differs.push(e.rel.clone()),
            Compared::Unchanged => {
                unchanged.insert(e.rel.clone());
            }
            Compared::Fresh | Compared::Partial => {}
        }
    }
    if opts.overwrite == Overwrite::Never && !differs.is_empty() {
        differs.sort();
        return Err(Error::WouldOverwrite { paths: differs });
    }
    if opts.cancelled() {
        return Err(Error::RestoreCancelled { files: 0 });
    }
    let skip = |e: &Entry<'_>| opts.overwrite != Overwrite::Always && unchanged.contains(&e.rel);
    let replace = opts.overwrite != Overwrite::Never;
    let mode_mask = if opts.preserve_setuid { 0o7777 } else { 0o1777 };

    let mut outcomes: Vec<(PathBuf, Outcome)> = Vec::new();
    // Directories first (their final mode and time come last, in finish_dirs).
    for e in &dirs {
        let r = dirs_open.parent(&e.rel, true).and_then(|p| match p {
            Some((fd, name)) => beneath::make_dir(&fd, name, replace),
            None => Err(Denied::Refused("parent vanished".into())),
        });
        if let Err(d) = r {
            outcomes.push((e.rel.clone(), d.into()));
        }
    }

    let wanted = files
        .iter()
        .filter(|e| !skip(e) && e.node.chunks_valid())
        .flat_map(|e| e.node.chunk_ids());
    let reader = BlobReader::wanting(&repo.store, &repo.keyring, &index, wanted);
    let writer = Writer {
        reader: &reader,
        mode_mask,
        opts,
    };
    let units = work_units(&files);
    let next = AtomicUsize::new(0);
    let written = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let stopped = AtomicBool::new(false);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(unit) = units.get(next.fetch_add(1, Ordering::SeqCst)) {
                    for e in &files[unit.clone()] {
                        let outcome = if skip(e) {
                            Outcome::Unchanged
                        } else if opts.cancelled() {
                            Outcome::Cancelled
                        } else {
                            if let Some(p) = &opts.progress {
                                p.event(&ProgressEvent::File {
                                    path: e.rel.display().to_string(),
                                });
                            }
                            let in_place = !present.contains(&e.rel);
                            restore_file(&writer, &dirs_open, e, in_place)
                        };
                        if matches!(outcome, Outcome::Cancelled) {
                            // The other threads see the caller's flag at their next check.
                            stopped.store(true, Ordering::SeqCst);
                            return;
                        }
                        if let Outcome::Written(b) = outcome {
                            let done = written.fetch_add(b, Ordering::SeqCst) + b;
                            if let Some(p) = &opts.progress {
                                p.event(&ProgressEvent::Bytes {
                                    done,
                                    total: manifest.bytes,
                                });
                            }
                        }
                        if let Ok(mut v) = results.lock() {
                            v.push((e.rel.clone(), outcome));
                        }
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    // A cancel that came after the last file stopped nothing: the restore completes.
    if stopped.into_inner() {
        let files = results
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Written(_)))
            .count() as u64;
        return Err(Error::RestoreCancelled { files });
    }
    outcomes.extend(results);

    // Symlinks last: every file and directory is in place before a link that could
    // lead elsewhere exists, and the walks above never follow one anyway.
    for e in &links {
        if skip(e) {
            continue;
        }
        outcomes.push((e.rel.clone(), restore_symlink(&dirs_open, e)));
    }
    finish_dirs(&dirs_open, &mut dirs, mode_mask);

    for (rel, o) in outcomes {
        match o {
            Outcome::Written(b) => {
                summary.files += 1;
                summary.bytes += b;
            }
            Outcome::Linked => {}
            Outcome::Unchanged => summary.unchanged += 1,
            Outcome::Refused(why) => summary.refused.push((rel, why)),
            Outcome::Failed(why) => summary.failed.push((rel, why)),
            // Never reaches here: a stopped restore returned RestoreCancelled above.
            Outcome::Cancelled => summary.failed.push((rel, "cancelled".into())),
        }
    }
    summary.failed.sort();
    summary.refused.sort();
    Ok(summary)
}

/// The files split into runs that share a directory (at most `UNIT_FILES` files and
/// about `UNIT_BYTES` each), handed out to the threads whole: two threads creating
/// names in one directory wait on its lock (5% of a 300,000-file restore's time).
fn work_units(files: &[Entry<'_>]) -> Vec<std::ops::Range<usize>> {
    const UNIT_FILES: usize = 4096;
    const UNIT_BYTES: u64 = 16 << 20;
    let mut units = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, e) in files.iter().enumerate() {
        let split = i > start
            && (e.rel.parent() != files[start].rel.parent()
                || i - start >= UNIT_FILES
                || bytes >= UNIT_BYTES);
        if split {
            units.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += e.node.size;
    }
    if start < files.len() {
        units.push(start..files.len());
    }
    units
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

fn compare(dirs: &DirCache<'_>, e: &Entry<'_>) -> Compared {
    // A path that cannot be walked is refused later, which is no overwrite.
    let Ok(Some((dir, name))) = dirs.parent(&e.rel, false) else {
        return Compared::Fresh;
    };
    let Ok(found) = beneath::existing(&dir, name) else {
        return Compared::Fresh;
    };
    let n = e.node;
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

fn restore_symlink(dirs: &DirCache<'_>, e: &Entry<'_>) -> Outcome {
    let Some(t) = link_target(e.node) else {
        return Outcome::Failed("symlink without a target".into());
    };
    let r = dirs.parent(&e.rel, true).and_then(|p| match p {
        Some((dir, name)) => beneath::make_symlink(&dir, name, OsStr::from_bytes(&t)),
        None => Err(Denied::Refused("parent vanished".into())),
    });
    match r {
        Ok(()) => Outcome::Linked,
        Err(d) => d.into(),
    }
}

/// Directory modes and times last and deepest first: writing into a directory changes
/// its mtime, and a read-only mode would stop the writes. Each is set through a
/// descriptor reached by the same no-follow walk.
fn finish_dirs(open: &DirCache<'_>, dirs: &mut [Entry<'_>], mode_mask: u32) {
    dirs.sort_by_key(|e| std::cmp::Reverse(e.rel.components().count()));
    for e in dirs.iter() {
        if let Ok(Some(fd)) = open.dir(&e.rel, false)
            && let Ok(f) = beneath::as_file(&fd)
        {
            let _ = f.set_permissions(std::fs::Permissions::from_mode(e.node.mode & mode_mask));
            let _ = f.set_modified(mtime(e.node));
        }
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

/// What every file write needs besides the file.
struct Writer<'a> {
    reader: &'a BlobReader<'a>,
    mode_mask: u32,
    opts: &'a RestoreOptions,
}

fn restore_file(w: &Writer<'_>, dirs: &DirCache<'_>, e: &Entry<'_>, in_place: bool) -> Outcome {
    if !e.node.chunks_valid() {
        return Outcome::Failed("malformed chunk list".into());
    }
    let (dir, name) = match dirs.parent(&e.rel, true) {
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
                return match write_file(w, &f, e.node) {
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
            Err(err) => return Outcome::Failed(err.to_string()),
        }
    }
    let (f, tmp) = match beneath::create_temp(&dir) {
        Ok(x) => x,
        Err(err) => return Outcome::Failed(err.to_string()),
    };
    match write_file(w, &f, e.node) {
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
    let mut written_to = 0u64;
    for id in n.chunk_ids() {
        if w.opts.cancelled() {
            return Err(Stop::Cancelled);
        }
        let data = w.reader.blob(&id)?;
        let end = write_sparse(f, &data, pos).map_err(|e| e.to_string())?;
        written_to = written_to.max(end);
        pos += data.len() as u64;
        if pos > n.size {
            break;
        }
    }
    if pos != n.size {
        return Err(format!("size {pos} does not match the recorded {}", n.size).into());
    }
    if written_to < pos {
        f.set_len(pos).map_err(|e| e.to_string())?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(n.mode & w.mode_mask))
        .map_err(|e| e.to_string())?;
    f.set_modified(mtime(n)).map_err(|e| e.to_string())?;
    Ok(pos)
}
