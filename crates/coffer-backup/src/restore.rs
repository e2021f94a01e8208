//! Restore: every blob is authenticated and its chunk id recomputed before a byte is
//! written; each file is written to a temporary name and renamed into place, so a target
//! path holds either the verified file or nothing new.
//!
//! A snapshot may come from a compromised device (THREAT_MODEL.md "A hostile snapshot"),
//! so nothing is written outside the target whatever its entries say:
//!
//! | rule | where |
//! |---|---|
//! | names with `..`, a root or nothing are refused | [`safe_rel`] |
//! | every path resolves beneath the target without following a symlink | beneath.rs |
//! | directories first, then files, symlinks last: nothing is reached through a link the snapshot made | [`restore`] |
//! | modes and times are set on open descriptors, never through a path | [`write_file`], [`finish_dirs`] |
//! | setuid and setgid bits are dropped unless asked for | [`RestoreOptions::preserve_setuid`] |
//!
//! A refused entry is listed in [`RestoreSummary::refused`]; the rest is restored.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use crate::Error;
use crate::beneath::{self, Beneath, Denied, Existing};
use crate::format;
use crate::keys::{Keyring, read_u32};
use crate::repo::{BlobLoc, Index, Repository};
use crate::snapshot::{Node, NodeKind};
use crate::storage::Store;
use crate::types::{Overwrite, ProgressEvent, RestoreOptions, RestoreSummary};

/// Packs kept in memory while restoring (8 MiB each).
const PACK_CACHE: usize = 6;

/// Reads and verifies blobs, caching recently used packs.
pub(crate) struct BlobReader<'a> {
    store: &'a Store,
    keyring: &'a Keyring,
    index: &'a Index,
    cache: Mutex<VecDeque<(u32, Arc<Vec<u8>>)>>,
}

impl<'a> BlobReader<'a> {
    pub(crate) fn new(store: &'a Store, keyring: &'a Keyring, index: &'a Index) -> Self {
        BlobReader {
            store,
            keyring,
            index,
            cache: Mutex::new(VecDeque::new()),
        }
    }

    fn pack(&self, p: u32) -> Result<Arc<Vec<u8>>, String> {
        if let Ok(c) = self.cache.lock()
            && let Some((_, b)) = c.iter().find(|(i, _)| *i == p)
        {
            return Ok(b.clone());
        }
        let name = &self.index.packs[p as usize].name;
        let bytes = self
            .store
            .read(&format!("data/{name}"))
            .map_err(|e| e.to_string())?;
        let b = Arc::new(bytes);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= PACK_CACHE {
                c.pop_front();
            }
            c.push_back((p, b.clone()));
        }
        Ok(b)
    }

    /// The verified plaintext of a blob, or why it is unusable.
    pub(crate) fn blob(&self, id: &[u8; 32]) -> Result<Vec<u8>, String> {
        let loc: BlobLoc = self
            .index
            .get(id)
            .ok_or_else(|| format!("blob {} is not in the index", hex::encode(id)))?;
        let pack = self.pack(loc.pack)?;
        let pname = &self.index.packs[loc.pack as usize].name;
        let (o, l) = (loc.entry.offset as usize, loc.entry.length as usize);
        if pack.len() < 9 || o + l > pack.len() {
            return Err(format!("pack {pname} is shorter than its index says"));
        }
        let epoch = self
            .keyring
            .epoch(read_u32(&pack, 5), pname)
            .map_err(|e| e.to_string())?;
        let data = format::open_blob(&epoch.data, id, loc.entry.raw_len, &pack[o..o + l])
            .ok_or_else(|| {
                format!(
                    "blob {} in pack {pname} does not authenticate",
                    hex::encode(id)
                )
            })?;
        // F6: the id is recomputed from the plaintext, so a blob can not be swapped for
        // another valid blob.
        if data.len() != loc.entry.raw_len as usize || epoch.chunk_id(&data) != *id {
            return Err(format!(
                "blob {} in pack {pname} does not match its id",
                hex::encode(id)
            ));
        }
        Ok(data)
    }
}

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
    let root = Beneath::open(target).map_err(|e| Error::io(target, e))?;
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
    let mut unchanged = std::collections::HashSet::new();
    for e in dirs.iter().chain(&files).chain(&links) {
        match compare(&root, e) {
            Compared::Differs => differs.push(e.rel.clone()),
            Compared::Unchanged => {
                unchanged.insert(e.rel.clone());
            }
            Compared::Fresh => {}
        }
    }
    if opts.overwrite == Overwrite::Never && !differs.is_empty() {
        differs.sort();
        return Err(Error::WouldOverwrite { paths: differs });
    }
    let skip = |e: &Entry<'_>| opts.overwrite != Overwrite::Always && unchanged.contains(&e.rel);
    let replace = opts.overwrite != Overwrite::Never;
    let mode_mask = if opts.preserve_setuid { 0o7777 } else { 0o1777 };

    let mut outcomes: Vec<(PathBuf, Outcome)> = Vec::new();
    // Directories first (their final mode and time come last, in finish_dirs).
    for e in &dirs {
        let r = root.parent(&e.rel, true).and_then(|p| match p {
            Some((fd, name)) => beneath::make_dir(&fd, name, replace),
            None => Err(Denied::Refused("parent vanished".into())),
        });
        if let Err(d) = r {
            outcomes.push((e.rel.clone(), d.into()));
        }
    }

    let reader = BlobReader::new(&repo.store, &repo.keyring, &index);
    let next = AtomicUsize::new(0);
    let written = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(e) = files.get(i) else {
                        break;
                    };
                    let outcome = if skip(e) {
                        Outcome::Unchanged
                    } else {
                        if let Some(p) = &opts.progress {
                            p.event(&ProgressEvent::File {
                                path: e.rel.display().to_string(),
                            });
                        }
                        restore_file(&reader, &root, e, mode_mask)
                    };
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
            });
        }
    });
    outcomes.extend(results.into_inner().unwrap_or_default());

    // Symlinks last: every file and directory is in place before a link that could
    // lead elsewhere exists, and the walks above never follow one anyway.
    for e in &links {
        if skip(e) {
            continue;
        }
        outcomes.push((e.rel.clone(), restore_symlink(&root, e)));
    }
    finish_dirs(&root, &mut dirs, mode_mask);

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
        }
    }
    summary.failed.sort();
    summary.refused.sort();
    Ok(summary)
}

/// How an entry compares with what the target already holds.
enum Compared {
    Fresh,
    Unchanged,
    Differs,
}

fn compare(root: &Beneath, e: &Entry<'_>) -> Compared {
    // A path that cannot be walked is refused later, which is no overwrite.
    let Ok(Some((dir, name))) = root.parent(&e.rel, false) else {
        return Compared::Fresh;
    };
    let Ok(found) = beneath::existing(&dir, name) else {
        return Compared::Fresh;
    };
    let n = e.node;
    match (n.kind, found) {
        (_, Existing::Nothing) => Compared::Fresh,
        (NodeKind::Dir, Existing::Dir) => Compared::Fresh,
        (NodeKind::File, Existing::File { size, mtime_ns })
            if size == n.size && mtime_ns == n.mtime_ns.max(0) =>
        {
            Compared::Unchanged
        }
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

fn restore_symlink(root: &Beneath, e: &Entry<'_>) -> Outcome {
    let Some(t) = link_target(e.node) else {
        return Outcome::Failed("symlink without a target".into());
    };
    let r = root.parent(&e.rel, true).and_then(|p| match p {
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
fn finish_dirs(root: &Beneath, dirs: &mut [Entry<'_>], mode_mask: u32) {
    dirs.sort_by_key(|e| std::cmp::Reverse(e.rel.components().count()));
    for e in dirs.iter() {
        if let Ok(Some(fd)) = root.dir(&e.rel, false) {
            let f = beneath::as_file(fd);
            let _ = f.set_permissions(std::fs::Permissions::from_mode(e.node.mode & mode_mask));
            let _ = f.set_modified(mtime(e.node));
        }
    }
}

/// Writes `data` at `pos`, skipping all-zero 4 KiB blocks so they stay holes (sparse
/// files stay sparse; `set_len` gives the file its full size).
fn write_sparse(f: &File, data: &[u8], pos: u64) -> std::io::Result<()> {
    const BLOCK: usize = 4096;
    let mut run_start = None;
    let mut i = 0;
    while i < data.len() {
        let end = (i + BLOCK).min(data.len());
        let zero = data[i..end].iter().all(|&b| b == 0);
        match (zero, run_start) {
            (false, None) => run_start = Some(i),
            (true, Some(s)) => {
                f.write_all_at(&data[s..i], pos + s as u64)?;
                run_start = None;
            }
            _ => {}
        }
        i = end;
    }
    if let Some(s) = run_start {
        f.write_all_at(&data[s..], pos + s as u64)?;
    }
    Ok(())
}

fn restore_file(reader: &BlobReader<'_>, root: &Beneath, e: &Entry<'_>, mode_mask: u32) -> Outcome {
    if !e.node.chunks_valid() {
        return Outcome::Failed("malformed chunk list".into());
    }
    let (dir, name) = match root.parent(&e.rel, true) {
        Ok(Some(p)) => p,
        Ok(None) => return Outcome::Refused("parent vanished".into()),
        Err(d) => return d.into(),
    };
    let (f, tmp) = match beneath::create_temp(&dir) {
        Ok(x) => x,
        Err(err) => return Outcome::Failed(err.to_string()),
    };
    match write_file(reader, &f, e.node, mode_mask) {
        // Rename makes the verified file visible atomically under its name; no fsync
        // per file (FORMAT.md "Restore"): a power cut may lose restored files, and
        // restore is simply run again.
        Ok(b) => match beneath::commit(&dir, &tmp, name) {
            Ok(()) => Outcome::Written(b),
            Err(d) => d.into(),
        },
        Err(why) => {
            remove_temp(&dir, &tmp);
            Outcome::Failed(why)
        }
    }
}

fn remove_temp(dir: &OwnedFd, tmp: &str) {
    let _ = rustix::fs::unlinkat(dir, tmp, rustix::fs::AtFlags::empty());
}

/// Fills the open temporary file and sets its mode and time on the descriptor.
fn write_file(reader: &BlobReader<'_>, f: &File, n: &Node, mode_mask: u32) -> Result<u64, String> {
    let mut pos = 0u64;
    for id in n.chunk_ids() {
        let data = reader.blob(&id)?;
        write_sparse(f, &data, pos).map_err(|e| e.to_string())?;
        pos += data.len() as u64;
        if pos > n.size {
            break;
        }
    }
    if pos != n.size {
        return Err(format!("size {pos} does not match the recorded {}", n.size));
    }
    f.set_len(pos).map_err(|e| e.to_string())?;
    f.set_permissions(std::fs::Permissions::from_mode(n.mode & mode_mask))
        .map_err(|e| e.to_string())?;
    f.set_modified(mtime(n)).map_err(|e| e.to_string())?;
    Ok(pos)
}
