//! Backup: scan, change detection against the parent snapshot, and the upload pipeline.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::chunker::{self, Chunker};
use crate::format;
use crate::lock;
use crate::lock::hostname;
use crate::pipeline::Pipeline;
use crate::platform;
use crate::repo::{Repository, head_of};
use crate::snapshot::{MANIFEST_VERSION, Manifest, Node, NodeKind};
use crate::sqlite;
use crate::types::{BackupOptions, BackupSummary, ProgressEvent};

/// The reason given for sockets, FIFOs and devices: skipped by design, so they do not make
/// a snapshot incomplete (unlike a file that could not be read).
const SPECIAL_FILE: &str = "special file (not backed up)";

/// A scanned entry: the node for the manifest and where to read it.
pub(crate) struct Scanned {
    pub(crate) node: Node,
    pub(crate) source: PathBuf,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn node_from_meta(rel: &Path, m: &std::fs::Metadata) -> Node {
    let kind = if m.file_type().is_symlink() {
        NodeKind::Symlink
    } else if m.is_dir() {
        NodeKind::Dir
    } else {
        NodeKind::File
    };
    let st = platform::stat(m);
    let mut n = Node {
        path: String::new(),
        raw: false,
        kind,
        mode: st.mode,
        mtime_ns: st.mtime_ns,
        ctime_ns: st.ctime_ns,
        ino: st.ino,
        size: if kind == NodeKind::File { m.len() } else { 0 },
        target: None,
        chunks: String::new(),
    };
    n.set_path(rel);
    n
}

pub(crate) fn scan(
    source: &Path,
    rel: &Path,
    out: &mut Vec<Scanned>,
    skipped: &mut Vec<(PathBuf, String)>,
) {
    let m = match std::fs::symlink_metadata(source) {
        Ok(m) => m,
        Err(e) => return skipped.push((source.to_path_buf(), e.to_string())),
    };
    let ft = m.file_type();
    if !(ft.is_file() || ft.is_dir() || ft.is_symlink()) {
        return skipped.push((source.to_path_buf(), SPECIAL_FILE.into()));
    }
    let mut node = node_from_meta(rel, &m);
    if ft.is_symlink() {
        match std::fs::read_link(source) {
            Ok(t) => node.target = Some(hex::encode(platform::os_bytes(t.as_os_str()))),
            Err(e) => return skipped.push((source.to_path_buf(), e.to_string())),
        }
    }
    out.push(Scanned {
        node,
        source: source.to_path_buf(),
    });
    if ft.is_dir() {
        let rd = match std::fs::read_dir(source) {
            Ok(r) => r,
            Err(e) => return skipped.push((source.to_path_buf(), e.to_string())),
        };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        names.sort();
        for name in names {
            let child = source.join(&name);
            // A database's WAL and journal are in its image already (sqlite.rs).
            if sqlite::is_sidecar(&child) {
                continue;
            }
            scan(&child, &rel.join(&name), out, skipped);
        }
    }
}

/// Reads one file's content into the pipeline; returns the chunk list (hex) and size.
fn read_file(
    path: &Path,
    size_hint: u64,
    pipe: &mut Pipeline,
    gear: &[u64; 256],
    opts: &BackupOptions,
    progress: &mut ProgressState,
) -> Result<(String, u64), Error> {
    let mut run = |reader: &mut dyn Read, fixed: Option<usize>| -> Result<(String, u64), Error> {
        let mut ch = Chunker::with_size_hint(
            reader,
            gear,
            chunker::params_for(size_hint),
            fixed,
            size_hint,
        );
        let mut ids = String::new();
        let mut n = 0u64;
        while let Some(c) = ch.next_chunk().map_err(|e| Error::io(path, e))? {
            opts.check_cancel()?;
            n += c.len() as u64;
            progress.add(c.len() as u64, opts);
            let id = pipe.add(c)?;
            ids.push_str(&hex::encode(id));
        }
        Ok((ids, n))
    };
    if let Some(ps) = sqlite::page_size(path) {
        return sqlite::with_consistent_image(path, |r| run(r, Some(ps)));
    }
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    run(&mut f, None)
}

struct ProgressState {
    done: u64,
    total: u64,
    last: u64,
}

impl ProgressState {
    fn add(&mut self, n: u64, opts: &BackupOptions) {
        self.done += n;
        if self.done - self.last >= 8 << 20 {
            self.last = self.done;
            if let Some(p) = &opts.progress {
                p.event(&ProgressEvent::Bytes {
                    done: self.done,
                    total: self.total,
                });
            }
        }
    }
}

/// The skipped entries that make a snapshot incomplete: all but special files.
pub(crate) fn unreadable(skipped: &[(PathBuf, String)]) -> usize {
    skipped
        .iter()
        .filter(|(_, why)| why != SPECIAL_FILE)
        .count()
}

/// A path to back up (absolute) and the name its entry gets in the snapshot.
pub(crate) type Root = (PathBuf, PathBuf);

/// The top-level entries of a backup of `paths`: each path (absolute) with the name it is
/// stored under (its last component), and the snapshot's path label (sorted). Refuses a
/// path that does not exist or two paths with the same name, before anything is written.
pub(crate) fn roots(paths: &[PathBuf]) -> Result<(Vec<Root>, Vec<String>), Error> {
    if paths.is_empty() {
        return Err(Error::InvalidArgument {
            detail: "no paths to back up".into(),
        });
    }
    // Each path becomes a top-level entry named after its last component.
    let mut roots = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
        // A mistyped path must not become an empty snapshot that is then "latest" (and
        // makes forget --keep-last 1 drop the real backup): refuse before anything is written.
        if let Err(source) = std::fs::symlink_metadata(&abs) {
            return Err(Error::SourceNotFound {
                path: p.clone(),
                source,
            });
        }
        let name = abs
            .file_name()
            .map(PathBuf::from)
            .ok_or_else(|| Error::InvalidArgument {
                detail: format!(
                    "{} has no file name; back up its contents instead",
                    p.display()
                ),
            })?;
        if !seen.insert(name.clone()) {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "two paths are named {}; back them up separately",
                    name.display()
                ),
            });
        }
        roots.push((abs, name));
    }
    let mut label: Vec<String> = roots.iter().map(|(a, _)| a.display().to_string()).collect();
    label.sort();
    Ok((roots, label))
}

/// The parent of a backup labelled `label`: the newest snapshot of the same set of paths,
/// its id and its files by path (the size and mtime cache change detection reads).
pub(crate) fn parent_files(
    manifests: Vec<(String, Manifest)>,
    label: &[String],
) -> (Option<String>, HashMap<String, Node>) {
    let Some((id, m)) = manifests.into_iter().rev().find(|(_, m)| m.paths == label) else {
        return (None, HashMap::new());
    };
    let files = m
        .nodes
        .into_iter()
        .filter(|n| n.kind == NodeKind::File)
        .map(|n| (n.path.clone(), n))
        .collect();
    (Some(id), files)
}

/// Whether `node` (just scanned from `source`) is `p` (its parent's entry) unchanged, so its
/// chunks are reused without reading it: same size, times and inode, and every chunk
/// stored (`stored`).
pub(crate) fn unchanged(
    p: &Node,
    node: &Node,
    source: &Path,
    stored: impl Fn(&[u8; 32]) -> bool,
) -> bool {
    p.size == node.size
        && p.mtime_ns == node.mtime_ns
        && p.ctime_ns == node.ctime_ns
        && p.ino == node.ino
        && p.chunks_valid()
        && p.chunk_ids().iter().all(stored)
        // A database in WAL mode commits into its -wal file first: its main file's
        // metadata says nothing about what changed.
        && !sqlite::has_wal(source)
}

pub(crate) fn backup_paths(
    repo: &Repository,
    paths: &[PathBuf],
    opts: &BackupOptions,
) -> Result<BackupSummary, Error> {
    let (roots, label) = roots(paths)?;
    let lock = Arc::new(lock::acquire(&repo.store, false)?);
    let started = now_ns();
    let mut scanned = Vec::new();
    let mut skipped = Vec::new();
    for (abs, name) in &roots {
        scan(abs, name, &mut scanned, &mut skipped);
    }
    let (index, _) = repo.load_index()?;
    let index = Arc::new(index);

    // Parent: the newest snapshot of the same set of paths.
    let manifests = repo.load_manifests()?;
    let follows = Follows::of(&manifests);
    let (parent_id, parent) = parent_files(manifests, &label);

    let files = scanned.iter().filter(|s| s.node.kind == NodeKind::File);
    let total: u64 = files.clone().map(|s| s.node.size).sum();
    if let Some(p) = &opts.progress {
        p.event(&ProgressEvent::Scanned {
            files: files.count() as u64,
            bytes: total,
        });
    }
    let mut progress = ProgressState {
        done: 0,
        total,
        last: 0,
    };

    let keyring = repo.keyring.clone();
    let gear = keyring.current().1.gear.clone();
    let mut pipe = Pipeline::start(&repo.store, keyring.clone(), index.clone(), lock.clone());
    let mut summary = BackupSummary {
        parent: parent_id.clone(),
        ..Default::default()
    };
    let mut nodes = Vec::with_capacity(scanned.len());
    let result = (|| -> Result<(), Error> {
        for s in scanned {
            let mut node = s.node;
            if node.kind != NodeKind::File {
                nodes.push(node);
                continue;
            }
            opts.check_cancel()?;
            if let Some(p) = parent.get(&node.path)
                && unchanged(p, &node, &s.source, |id| pipe.has(id))
            {
                node.chunks = p.chunks.clone();
                summary.files_unchanged += 1;
                summary.files += 1;
                summary.bytes_total += node.size;
                progress.add(node.size, opts);
                nodes.push(node);
                continue;
            }
            if let Some(p) = &opts.progress {
                p.event(&ProgressEvent::File {
                    path: s.source.display().to_string(),
                });
            }
            match read_file(&s.source, node.size, &mut pipe, &gear, opts, &mut progress) {
                Ok((chunks, size)) => {
                    node.chunks = chunks;
                    node.size = size;
                    summary.files += 1;
                    summary.bytes_read += size;
                    summary.bytes_total += size;
                    nodes.push(node);
                }
                Err(Error::Io { path, source }) => {
                    if let Some(p) = &opts.progress {
                        p.event(&ProgressEvent::Warning {
                            message: format!("skipped {}: {source}", path.display()),
                        });
                    }
                    skipped.push((path, source.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        pipe.abort();
        return Err(e);
    }
    let stats = pipe.finish()?;
    summary.bytes_added = stats.bytes_added;
    summary.blobs_added = stats.blobs_added;
    let unreadable = unreadable(&skipped);
    summary.incomplete = unreadable > 0;
    summary.seq = follows.seq;
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        seq: Some(follows.seq),
        follows: follows.id,
        skipped: unreadable as u64,
        time_ns: started,
        hostname: opts.host.clone().unwrap_or_else(hostname),
        paths: label,
        parent: parent_id,
        files: summary.files,
        bytes: summary.bytes_total,
        nodes,
    };
    summary.skipped = skipped;
    summary.snapshot_id = write_manifest(repo, &manifest, &mut summary.bytes_added)?;
    drop(lock);
    Ok(summary)
}

pub(crate) fn backup_stream(
    repo: &Repository,
    name: &str,
    reader: &mut dyn Read,
    opts: &BackupOptions,
) -> Result<BackupSummary, Error> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::InvalidArgument {
            detail: format!("stream name {name:?} must be a plain file name"),
        });
    }
    let lock = Arc::new(lock::acquire(&repo.store, false)?);
    let started = now_ns();
    let follows = Follows::of(&repo.load_manifests()?);
    let (index, _) = repo.load_index()?;
    let keyring = repo.keyring.clone();
    let gear = keyring.current().1.gear.clone();
    let mut pipe = Pipeline::start(&repo.store, keyring.clone(), Arc::new(index), lock.clone());
    let mut ch = Chunker::new(reader, &gear, chunker::LARGE, None);
    let mut ids = String::new();
    let mut size = 0u64;
    let mut progress = ProgressState {
        done: 0,
        total: 0,
        last: 0,
    };
    let r = (|| -> Result<(), Error> {
        while let Some(c) = ch
            .next_chunk()
            .map_err(|e| Error::io(format!("<{name}>"), e))?
        {
            opts.check_cancel()?;
            size += c.len() as u64;
            progress.add(c.len() as u64, opts);
            ids.push_str(&hex::encode(pipe.add(c)?));
        }
        Ok(())
    })();
    if let Err(e) = r {
        pipe.abort();
        return Err(e);
    }
    let stats = pipe.finish()?;
    let mut node = Node {
        path: name.to_string(),
        raw: false,
        kind: NodeKind::File,
        mode: 0o600,
        mtime_ns: started,
        ctime_ns: 0,
        ino: 0,
        size,
        target: None,
        chunks: ids,
    };
    node.set_path(Path::new(name));
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        seq: Some(follows.seq),
        follows: follows.id,
        skipped: 0,
        time_ns: started,
        hostname: opts.host.clone().unwrap_or_else(hostname),
        paths: vec![name.to_string()],
        parent: None,
        files: 1,
        bytes: size,
        nodes: vec![node],
    };
    let mut summary = BackupSummary {
        files: 1,
        bytes_read: size,
        bytes_total: size,
        bytes_added: stats.bytes_added,
        blobs_added: stats.blobs_added,
        seq: follows.seq,
        ..Default::default()
    };
    summary.snapshot_id = write_manifest(repo, &manifest, &mut summary.bytes_added)?;
    drop(lock);
    Ok(summary)
}

/// Writes the manifest last (F1): it becomes visible only once everything it names is
/// stored and indexed.
fn write_manifest(repo: &Repository, m: &Manifest, added: &mut u64) -> Result<String, Error> {
    let obj = format::seal_object(&repo.keyring, format::KIND_SNAPSHOT, &m.encode()?)?;
    let id = blake3::hash(&obj).to_hex().to_string();
    *added += obj.len() as u64;
    repo.store.write(&format!("snapshots/{id}"), obj)?;
    repo.wrote_head(head_of(&id, m));
    Ok(id)
}

/// Where a new snapshot goes in the repository's sequence: one past the head it follows.
struct Follows {
    seq: u64,
    id: Option<String>,
}

impl Follows {
    /// `manifests` sorted head last, as `load_manifests` returns them.
    fn of(manifests: &[(String, Manifest)]) -> Follows {
        match manifests.last() {
            Some((id, m)) => Follows {
                seq: m.seq.unwrap_or(0) + 1,
                id: Some(id.clone()),
            },
            None => Follows { seq: 1, id: None },
        }
    }
}
