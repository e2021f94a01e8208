//! Restore: every blob is authenticated and its chunk id recomputed before a byte is
//! written; each file is written to a temporary name and renamed into place, so a target
//! path holds either the verified file or nothing new.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use crate::Error;
use crate::format;
use crate::keys::{Keyring, read_u32};
use crate::repo::{BlobLoc, Index, Repository};
use crate::snapshot::{Node, NodeKind};
use crate::storage::Store;
use crate::types::{ProgressEvent, RestoreOptions, RestoreSummary};

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
        let loc: BlobLoc = *self
            .index
            .blobs
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

fn safe_rel(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_))) && p.components().next().is_some()
}

pub(crate) fn restore(
    repo: &Repository,
    snapshot: &str,
    target: &Path,
    include: &[PathBuf],
    opts: &RestoreOptions,
) -> Result<RestoreSummary, Error> {
    let (_, manifest) = repo.find_snapshot(snapshot)?;
    let (index, _) = repo.load_index()?;
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let mut summary = RestoreSummary::default();
    let selected: Vec<&Node> = manifest
        .nodes
        .iter()
        .filter(|n| {
            let p = n.rel_path();
            include.is_empty() || include.iter().any(|i| p.starts_with(i))
        })
        .collect();
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for n in selected {
        let rel = n.rel_path();
        if !safe_rel(&rel) {
            summary
                .failed
                .push((rel, "unsafe path in snapshot (absolute or ..)".into()));
            continue;
        }
        let dest = target.join(&rel);
        match n.kind {
            NodeKind::Dir => {
                std::fs::create_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
                dirs.push((n, dest));
            }
            NodeKind::Symlink => {
                if let Err(e) = restore_symlink(n, &dest) {
                    summary.failed.push((rel, e));
                }
            }
            NodeKind::File => files.push((n, rel, dest)),
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
                    let Some((n, rel, dest)) = files.get(i) else {
                        break;
                    };
                    if let Some(p) = &opts.progress {
                        p.event(&ProgressEvent::File {
                            path: rel.display().to_string(),
                        });
                    }
                    let r = restore_file(&reader, n, dest);
                    if let Ok(b) = &r {
                        let done = written.fetch_add(*b, Ordering::SeqCst) + b;
                        if let Some(p) = &opts.progress {
                            p.event(&ProgressEvent::Bytes {
                                done,
                                total: manifest.bytes,
                            });
                        }
                    }
                    if let Ok(mut v) = results.lock() {
                        v.push((rel.clone(), r));
                    }
                }
            });
        }
    });
    for (rel, r) in results.into_inner().unwrap_or_default() {
        match r {
            Ok(b) => {
                summary.files += 1;
                summary.bytes += b;
            }
            Err(e) => summary.failed.push((rel, e)),
        }
    }
    // Directory metadata last and deepest first: writing files into a directory would
    // change its mtime again.
    for (n, dest) in dirs.iter().rev() {
        let _ = std::fs::set_permissions(dest, std::fs::Permissions::from_mode(n.mode));
        if let Ok(f) = File::open(dest) {
            let _ = f.set_modified(mtime(n));
        }
    }
    summary.failed.sort();
    Ok(summary)
}

fn mtime(n: &Node) -> std::time::SystemTime {
    if n.mtime_ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(n.mtime_ns as u64)
    } else {
        UNIX_EPOCH
    }
}

fn restore_symlink(n: &Node, dest: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStringExt;
    let t = n
        .target
        .as_ref()
        .and_then(|t| hex::decode(t).ok())
        .ok_or("symlink without a target")?;
    let t = PathBuf::from(std::ffi::OsString::from_vec(t));
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    if std::fs::symlink_metadata(dest).is_ok() {
        std::fs::remove_file(dest).map_err(|e| e.to_string())?;
    }
    std::os::unix::fs::symlink(&t, dest).map_err(|e| e.to_string())
}

fn tmp_name(dest: &Path) -> PathBuf {
    let mut r = [0u8; 6];
    crate::keys::fill_random(&mut r);
    let mut name = std::ffi::OsString::from(".");
    name.push(dest.file_name().unwrap_or_default());
    name.push(format!(".coffer-{}", hex::encode(r)));
    dest.with_file_name(name)
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

fn restore_file(reader: &BlobReader<'_>, n: &Node, dest: &Path) -> Result<u64, String> {
    if !n.chunks_valid() {
        return Err("malformed chunk list".into());
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let tmp = tmp_name(dest);
    let r = (|| -> Result<u64, String> {
        let f = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut pos = 0u64;
        for id in n.chunk_ids() {
            let data = reader.blob(&id)?;
            write_sparse(&f, &data, pos).map_err(|e| e.to_string())?;
            pos += data.len() as u64;
        }
        if pos != n.size {
            return Err(format!("size {pos} does not match the recorded {}", n.size));
        }
        f.set_len(pos).map_err(|e| e.to_string())?;
        f.set_permissions(std::fs::Permissions::from_mode(n.mode))
            .map_err(|e| e.to_string())?;
        f.set_modified(mtime(n)).map_err(|e| e.to_string())?;
        Ok(pos)
    })();
    match r {
        Ok(b) => {
            // Rename makes the verified file visible atomically under its name; no fsync
            // per file (FORMAT.md "Restore"): a power cut may lose restored files, and
            // restore is simply run again.
            std::fs::rename(&tmp, dest).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("{}: {e}", dest.display())
            })?;
            Ok(b)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
