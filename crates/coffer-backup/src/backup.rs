//! Backup: scan, change detection against the parent snapshot, and the upload pipeline.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
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
use crate::repo::{Index, Repository, head_of};
use crate::snapshot::{MANIFEST_VERSION, Manifest, Node, NodeKind};
use crate::sqlite;
use crate::tree::{MAX_DEPTH, MAX_TARGET, TREE_PART, TreeEntry, TreeWriter};
use crate::types::{BackupOptions, BackupSummary, ProgressEvent};
use crate::walk::Trees;

/// The reason given for sockets, FIFOs and devices: skipped by design, so they do not make
/// a snapshot incomplete (unlike a file that could not be read).
const SPECIAL_FILE: &str = "special file (not backed up)";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The tree entry of `name` from its metadata, without refs or target yet.
fn entry_from_meta(name: &OsStr, m: &std::fs::Metadata) -> TreeEntry {
    let kind = if m.file_type().is_symlink() {
        NodeKind::Symlink
    } else if m.is_dir() {
        NodeKind::Dir
    } else {
        NodeKind::File
    };
    let st = platform::stat(m);
    TreeEntry {
        kind,
        name: platform::os_bytes(name).into_owned(),
        mode: st.mode,
        mtime_ns: st.mtime_ns,
        ctime_ns: st.ctime_ns,
        ino: st.ino,
        size: if kind == NodeKind::File { m.len() } else { 0 },
        refs: Vec::new(),
        target: Vec::new(),
    }
}

/// What the parent snapshot recorded for one file: enough to tell it unchanged.
struct Previous<'a> {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    chunks: &'a [[u8; 32]],
}

/// Whether the file at `source`, just found as `e`, is `prev` unchanged, so its chunks
/// are reused without reading it: same size, times and inode, and every chunk stored.
fn unchanged(
    prev: &Previous<'_>,
    e: &TreeEntry,
    source: &Path,
    stored: impl Fn(&[u8; 32]) -> bool,
) -> bool {
    prev.size == e.size
        && prev.mtime_ns == e.mtime_ns
        && prev.ctime_ns == e.ctime_ns
        && prev.ino == e.ino
        && prev.chunks.iter().all(stored)
        // A database in WAL mode commits into its -wal file first: its main file's
        // metadata says nothing about what changed.
        && !sqlite::has_wal(source)
}

/// The parent snapshot's entries of the directory being backed up (a tree snapshot).
/// A version 1/2 parent is looked up by path instead ([`Parent::flat`]).
#[derive(Default)]
struct ParentDir(Vec<TreeEntry>);

impl ParentDir {
    fn find(&self, name: &[u8]) -> Option<&TreeEntry> {
        self.0
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.0[i])
    }
}

/// The parent of a backup: the newest snapshot of the same set of paths, which change
/// detection compares every file with (the size and mtime cache).
pub(crate) struct Parent<'a> {
    /// Its id; `None` when no snapshot has the same paths.
    pub(crate) id: Option<String>,
    trees: Trees<'a>,
    /// A version 1/2 parent lists every file: looked up by path, held for this one backup.
    flat: Option<HashMap<PathBuf, Node>>,
    /// A tree parent's root entries; each directory below is read when the walk gets there.
    root: ParentDir,
}

/// The parent of a backup labelled `label`, from `manifests` (head last). A parent tree
/// that can not be read only costs re-reading its files.
pub(crate) fn parent_files<'a>(
    repo: &'a Repository,
    index: &'a Index,
    manifests: &[(String, Manifest)],
    label: &[String],
) -> Result<Parent<'a>, Error> {
    let id = manifests
        .iter()
        .rev()
        .find(|(_, m)| m.paths == label)
        .map(|(id, _)| id.clone());
    let m = match &id {
        Some(id) => Some(repo.load_manifest(id)?),
        None => None,
    };
    let trees = Trees::new(repo, index);
    let flat = m.as_ref().filter(|m| m.tree.is_none()).map(|m| {
        m.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::File)
            .map(|n| {
                let n = n.to_node();
                (n.path.clone(), n)
            })
            .collect::<HashMap<_, _>>()
    });
    let root = match m.as_ref().and_then(|m| m.root("parent").ok().flatten()) {
        Some(root) => ParentDir(trees.load(&root, Path::new("")).unwrap_or_default()),
        None => ParentDir::default(),
    };
    Ok(Parent {
        id,
        trees,
        flat,
        root,
    })
}

/// Everything a backup carries down its depth-first walk.
struct Walk<'a> {
    opts: &'a BackupOptions,
    /// `None` for an estimate ([`dry_run`]): nothing is read or stored.
    pipe: Option<&'a mut Pipeline>,
    index: &'a Index,
    gear: &'a [u64; 256],
    parent: Parent<'a>,
    progress: ProgressState,
    summary: BackupSummary,
    skipped: Vec<(PathBuf, String)>,
}

impl Walk<'_> {
    /// The parent's entries of the directory at `rel`, given its entry in the parent.
    fn parent_of(&self, prev: Option<&TreeEntry>, rel: &Path) -> ParentDir {
        match prev {
            // A parent tree that can not be read only costs re-reading the files.
            Some(e) if e.kind == NodeKind::Dir => {
                ParentDir(self.parent.trees.load(&e.refs, rel).unwrap_or_default())
            }
            _ => ParentDir::default(),
        }
    }

    /// The entry for `source` (named `name`, at `rel` in the snapshot), or `None` when it
    /// is skipped. Directories are walked and stored before their entry is made.
    fn entry(
        &mut self,
        source: &Path,
        rel: &Path,
        name: &OsStr,
        parent: &ParentDir,
        depth: usize,
    ) -> Result<Option<TreeEntry>, Error> {
        let m = match std::fs::symlink_metadata(source) {
            Ok(m) => m,
            Err(e) => {
                self.skipped.push((source.to_path_buf(), e.to_string()));
                return Ok(None);
            }
        };
        let ft = m.file_type();
        if !(ft.is_file() || ft.is_dir() || ft.is_symlink()) {
            self.skipped
                .push((source.to_path_buf(), SPECIAL_FILE.into()));
            return Ok(None);
        }
        let mut e = entry_from_meta(name, &m);
        if let Err(why) = crate::tree::name_ok(&e.name) {
            self.skipped.push((source.to_path_buf(), why.into()));
            return Ok(None);
        }
        match e.kind {
            NodeKind::Symlink => match std::fs::read_link(source) {
                Ok(t) if platform::os_bytes(t.as_os_str()).len() <= MAX_TARGET => {
                    e.target = platform::os_bytes(t.as_os_str()).into_owned();
                }
                Ok(_) => {
                    self.skipped
                        .push((source.to_path_buf(), "symlink target too long".into()));
                    return Ok(None);
                }
                Err(err) => {
                    self.skipped.push((source.to_path_buf(), err.to_string()));
                    return Ok(None);
                }
            },
            NodeKind::Dir => {
                if depth >= MAX_DEPTH {
                    self.skipped.push((
                        source.to_path_buf(),
                        format!("nested deeper than the format's {MAX_DEPTH} folders"),
                    ));
                    return Ok(None);
                }
                // Held only while this directory is walked.
                let sub = self.parent_of(parent.find(&e.name), rel);
                e.refs = self.dir(source, rel, &sub, depth + 1)?;
            }
            NodeKind::File => {
                if !self.file(source, rel, &mut e, parent)? {
                    return Ok(None);
                }
            }
        }
        Ok(Some(e))
    }

    /// The chunks of the parent's copy of this file if it is unchanged and still stored.
    fn reusable(
        &self,
        source: &Path,
        rel: &Path,
        e: &TreeEntry,
        parent: &ParentDir,
    ) -> Option<Vec<[u8; 32]>> {
        let prev = match &self.parent.flat {
            Some(flat) => flat
                .get(rel)
                .filter(|n| n.chunks_valid())
                .map(|n| Previous {
                    size: n.size,
                    mtime_ns: n.mtime_ns,
                    ctime_ns: n.ctime_ns,
                    ino: n.ino,
                    chunks: &n.chunks,
                }),
            None => parent
                .find(&e.name)
                .filter(|p| p.kind == NodeKind::File)
                .map(|p| Previous {
                    size: p.size,
                    mtime_ns: p.mtime_ns,
                    ctime_ns: p.ctime_ns,
                    ino: p.ino,
                    chunks: &p.refs,
                }),
        }?;
        let stored = |id: &[u8; 32]| match &self.pipe {
            Some(pipe) => pipe.has(id),
            None => self.index.contains(id),
        };
        unchanged(&prev, e, source, stored).then(|| prev.chunks.to_vec())
    }

    /// Reads a file unless the parent has it unchanged; false when it could not be read.
    fn file(
        &mut self,
        source: &Path,
        rel: &Path,
        e: &mut TreeEntry,
        parent: &ParentDir,
    ) -> Result<bool, Error> {
        self.opts.check_cancel()?;
        if let Some(chunks) = self.reusable(source, rel, e, parent) {
            e.refs = chunks;
            self.summary.files_unchanged += 1;
            self.summary.files += 1;
            self.summary.bytes_total += e.size;
            self.progress.add(e.size, self.opts);
            return Ok(true);
        }
        let Some(pipe) = self.pipe.as_deref_mut() else {
            // An estimate reads nothing: a new or changed file counts as read whole.
            self.summary.files += 1;
            self.summary.bytes_read += e.size;
            self.summary.bytes_total += e.size;
            return Ok(true);
        };
        if let Some(p) = &self.opts.progress {
            p.event(&ProgressEvent::File {
                path: source.display().to_string(),
            });
        }
        match read_file(
            source,
            e.size,
            pipe,
            self.gear,
            self.opts,
            &mut self.progress,
        ) {
            Ok((chunks, size)) => {
                e.refs = chunks;
                e.size = size;
                self.summary.files += 1;
                self.summary.bytes_read += size;
                self.summary.bytes_total += size;
                Ok(true)
            }
            Err(Error::Io { path, source }) => {
                if let Some(p) = &self.opts.progress {
                    p.event(&ProgressEvent::Warning {
                        message: format!("skipped {}: {source}", path.display()),
                    });
                }
                self.skipped.push((path, source.to_string()));
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Walks the directory `source` (at `rel`), stores its tree, returns the tree's parts.
    fn dir(
        &mut self,
        source: &Path,
        rel: &Path,
        parent: &ParentDir,
        depth: usize,
    ) -> Result<Vec<[u8; 32]>, Error> {
        let mut names: Vec<OsString> = match std::fs::read_dir(source) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) => {
                self.skipped.push((source.to_path_buf(), e.to_string()));
                Vec::new()
            }
        };
        // Byte order, the order of tree entries.
        names.sort_unstable();
        let mut w = TreeWriter::new();
        for name in names {
            let child = source.join(&name);
            // A database's WAL and journal are in its image already (sqlite.rs).
            if sqlite::is_sidecar(&child) {
                continue;
            }
            if let Some(e) = self.entry(&child, &rel.join(&name), &name, parent, depth)? {
                w.push(&e)?;
            }
        }
        let bytes = w.finish(&source.display().to_string())?;
        self.store_tree(bytes)
    }

    fn store_tree(&mut self, bytes: Vec<u8>) -> Result<Vec<[u8; 32]>, Error> {
        let Some(pipe) = self.pipe.as_deref_mut() else {
            return Ok(Vec::new());
        };
        bytes
            .chunks(TREE_PART)
            .map(|p| pipe.add_tree(p.to_vec()))
            .collect()
    }

    /// Walks `roots` into the snapshot's root tree: a tree of the backed-up paths, each
    /// named after its last component, in name order like every tree.
    fn roots(&mut self, roots: &mut [Root]) -> Result<Vec<[u8; 32]>, Error> {
        roots.sort_by(|a, b| a.1.cmp(&b.1));
        let parent = std::mem::take(&mut self.parent.root);
        let mut w = TreeWriter::new();
        for (abs, name) in roots.iter() {
            if let Some(e) = self.entry(abs, name, name.as_os_str(), &parent, 0)? {
                w.push(&e)?;
            }
        }
        self.store_tree(w.finish("the snapshot root")?)
    }
}

/// Files and bytes below `source`, for the progress total (only counted when someone
/// listens: it costs a second walk).
fn count(source: &Path, files: &mut u64, bytes: &mut u64) {
    let Ok(m) = std::fs::symlink_metadata(source) else {
        return;
    };
    if m.is_file() {
        *files += 1;
        *bytes += m.len();
    } else if m.is_dir()
        && let Ok(rd) = std::fs::read_dir(source)
    {
        for e in rd.flatten() {
            let p = e.path();
            if !sqlite::is_sidecar(&p) {
                count(&p, files, bytes);
            }
        }
    }
}

/// Reads one file's content into the pipeline; returns the chunk ids and size.
fn read_file(
    path: &Path,
    size_hint: u64,
    pipe: &mut Pipeline,
    gear: &[u64; 256],
    opts: &BackupOptions,
    progress: &mut ProgressState,
) -> Result<(Vec<[u8; 32]>, u64), Error> {
    let mut run =
        |reader: &mut dyn Read, fixed: Option<usize>| -> Result<(Vec<[u8; 32]>, u64), Error> {
            let mut ch = Chunker::with_size_hint(
                reader,
                gear,
                chunker::params_for(size_hint),
                fixed,
                size_hint,
            );
            let mut ids = Vec::new();
            let mut n = 0u64;
            while let Some(c) = ch.next_chunk().map_err(|e| Error::io(path, e))? {
                opts.check_cancel()?;
                n += c.len() as u64;
                progress.add(c.len() as u64, opts);
                ids.push(pipe.add(c)?);
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

/// What a backup of `paths` would do now, found by the same walk and the same change
/// detection without reading a file's content, storing or locking anything: the summary
/// (`bytes_read`: the new and changed files' sizes) and the count of unreadable entries.
pub(crate) fn dry_run(
    repo: &Repository,
    paths: &[PathBuf],
) -> Result<(BackupSummary, usize), Error> {
    let (mut roots, label) = roots(paths)?;
    let (index, _) = repo.load_index()?;
    let parent = parent_files(repo, &index, &repo.load_manifests()?, &label)?;
    let gear = repo.keyring.current().1.gear.clone();
    let opts = BackupOptions::default();
    let mut walk = Walk {
        opts: &opts,
        pipe: None,
        index: &index,
        gear: &gear,
        parent,
        progress: ProgressState {
            done: 0,
            total: 0,
            last: 0,
        },
        summary: BackupSummary::default(),
        skipped: Vec::new(),
    };
    walk.roots(&mut roots)?;
    Ok((walk.summary, unreadable(&walk.skipped)))
}

pub(crate) fn backup_paths(
    repo: &Repository,
    paths: &[PathBuf],
    opts: &BackupOptions,
) -> Result<BackupSummary, Error> {
    let (mut roots, label) = roots(paths)?;
    let lock = Arc::new(lock::acquire(&repo.store, false)?);
    let started = now_ns();
    let (index, _) = repo.load_index()?;
    let index = Arc::new(index);

    let manifests = repo.load_manifests()?;
    let follows = Follows::of(&manifests);
    let parent = parent_files(repo, &index, &manifests, &label)?;
    drop(manifests);
    let parent_id = parent.id.clone();

    let mut total = (0u64, 0u64);
    if let Some(p) = &opts.progress {
        for (abs, _) in &roots {
            count(abs, &mut total.0, &mut total.1);
        }
        p.event(&ProgressEvent::Scanned {
            files: total.0,
            bytes: total.1,
        });
    }
    let keyring = repo.keyring.clone();
    let gear = keyring.current().1.gear.clone();
    let mut pipe = Pipeline::start(&repo.store, keyring.clone(), index.clone(), lock.clone());
    let mut walk = Walk {
        opts,
        pipe: Some(&mut pipe),
        index: &index,
        gear: &gear,
        parent,
        progress: ProgressState {
            done: 0,
            total: total.1,
            last: 0,
        },
        summary: BackupSummary {
            parent: parent_id.clone(),
            ..Default::default()
        },
        skipped: Vec::new(),
    };
    let result = walk.roots(&mut roots);
    let Walk {
        mut summary,
        skipped,
        ..
    } = walk;
    let root = match result {
        Ok(r) => r,
        Err(e) => {
            pipe.abort();
            return Err(e);
        }
    };
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
        nodes: Vec::new(),
        tree: Some(root.iter().map(hex::encode).collect()),
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
    let mut ids = Vec::new();
    let mut size = 0u64;
    let mut progress = ProgressState {
        done: 0,
        total: 0,
        last: 0,
    };
    let r = (|| -> Result<Vec<[u8; 32]>, Error> {
        while let Some(c) = ch
            .next_chunk()
            .map_err(|e| Error::io(format!("<{name}>"), e))?
        {
            opts.check_cancel()?;
            size += c.len() as u64;
            progress.add(c.len() as u64, opts);
            ids.push(pipe.add(c)?);
        }
        // The root tree holds the one file.
        let mut w = TreeWriter::new();
        w.push(&TreeEntry {
            kind: NodeKind::File,
            name: name.as_bytes().to_vec(),
            mode: 0o600,
            mtime_ns: started,
            ctime_ns: 0,
            ino: 0,
            size,
            refs: std::mem::take(&mut ids),
            target: Vec::new(),
        })?;
        w.finish(name)?
            .chunks(TREE_PART)
            .map(|p| pipe.add_tree(p.to_vec()))
            .collect::<Result<Vec<_>, _>>()
    })();
    let root = match r {
        Ok(root) => root,
        Err(e) => {
            pipe.abort();
            return Err(e);
        }
    };
    let stats = pipe.finish()?;
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
        nodes: Vec::new(),
        tree: Some(root.iter().map(hex::encode).collect()),
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
