//! Writers of arbitrary repository objects, for tests of what a hostile device can do.
//! A device holding K can seal anything it likes, so these are what such a device could
//! write: they skip every check the real writers make. Not part of the stable API.

use serde_json::json;

mod faults;
pub use faults::*;

use crate::format::{self, BlobEntry};
use crate::{Error, Repository};

/// One entry of a crafted snapshot, written as given: any name (raw bytes), any order.
#[derive(Debug, Clone)]
pub struct CraftedEntry {
    /// The name, '/'-separated, relative or not, `..` allowed.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: CraftedKind,
    /// Permission bits as stored.
    pub mode: u32,
    /// Modification time.
    pub mtime_ns: i64,
}

/// The kind and content of a crafted entry.
#[derive(Debug, Clone)]
pub enum CraftedKind {
    /// A file with this content (one blob, so at most 4 MiB).
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symlink to these bytes.
    Symlink(Vec<u8>),
    /// A file made of chunks already stored (e.g. by [`write_pack`]), of declared size.
    Chunks(Vec<[u8; 32]>, u64),
}

/// Writes a snapshot holding exactly `entries`, in this order; returns its id.
pub fn write_snapshot(repo: &Repository, entries: &[CraftedEntry]) -> Result<String, Error> {
    let (_, epoch) = repo.keyring.current();
    let mut blobs = Vec::new();
    let mut nodes = Vec::new();
    for e in entries {
        let (kind, size, target, chunks) = match &e.kind {
            CraftedKind::File(data) if data.is_empty() => ("file", 0, None, String::new()),
            CraftedKind::File(data) => {
                let id = epoch.chunk_id(data);
                let mut plain = vec![0u8];
                plain.extend_from_slice(data);
                blobs.push((id, data.len() as u32, plain));
                ("file", data.len() as u64, None, hex::encode(id))
            }
            CraftedKind::Dir => ("dir", 0, None, String::new()),
            CraftedKind::Symlink(t) => ("symlink", 0, Some(hex::encode(t)), String::new()),
            CraftedKind::Chunks(ids, size) => {
                ("file", *size, None, ids.iter().map(hex::encode).collect())
            }
        };
        nodes.push(json!({
            "path": hex::encode(&e.path), "raw": true, "kind": kind, "mode": e.mode,
            "mtime_ns": e.mtime_ns, "size": size, "target": target, "chunks": chunks,
        }));
    }
    if !blobs.is_empty() {
        write_pack(repo, &blobs)?;
    }
    // Built through serde, so fields added to the manifest later take their defaults.
    let manifest: crate::snapshot::Manifest = serde_json::from_value(json!({
        "version": 1, "time_ns": 1_700_000_000_000_000_000i64, "hostname": "hostile",
        "paths": ["/hostile"], "parent": null, "files": 0, "bytes": 0, "nodes": nodes,
    }))
    .map_err(|e| Error::Internal {
        detail: e.to_string(),
    })?;
    write_snapshot_payload(repo, &manifest.encode()?)
}

/// Seals `payload` (normally a zstd-compressed manifest) as a snapshot object.
pub fn write_snapshot_payload(repo: &Repository, payload: &[u8]) -> Result<String, Error> {
    let obj = format::seal_object(&repo.keyring, format::KIND_SNAPSHOT, payload)?;
    let id = blake3::hash(&obj).to_hex().to_string();
    repo.store.write(&format!("snapshots/{id}"), obj)?;
    Ok(id)
}

/// Writes one pack (and its index) holding blobs `(id, declared raw length, plaintext)`,
/// the plaintext being the blob's flag byte and data, sealed with the real key.
pub fn write_pack(repo: &Repository, blobs: &[([u8; 32], u32, Vec<u8>)]) -> Result<(), Error> {
    let (n, epoch) = repo.keyring.current();
    let mut pack = format::pack_start(n);
    let mut entries = Vec::new();
    for (id, raw_len, plain) in blobs {
        let sealed = format::seal(&epoch.data, &format::blob_aad(id), plain)?;
        entries.push(BlobEntry {
            id: *id,
            offset: pack.len() as u32,
            length: sealed.len() as u32,
            raw_len: *raw_len,
            start: format::ALONE,
        });
        pack.extend_from_slice(&sealed);
    }
    format::pack_finish(&epoch.data, &mut pack, &entries)?;
    crate::pipeline::store_pack(&repo.store, &repo.keyring, n, false, pack, &entries).map(|_| ())
}

/// How many entries (chunks) each indexed pack lists, as its index object has them.
pub fn pack_entry_counts(repo: &Repository) -> Result<Vec<usize>, Error> {
    let (index, _) = repo.load_index()?;
    Ok((0..index.packs.len())
        .map(|p| index.pack_entries(p).len())
        .collect())
}

/// The chunk id of `data` under the repository's current key.
pub fn chunk_id(repo: &Repository, data: &[u8]) -> [u8; 32] {
    repo.keyring.current().1.chunk_id(data)
}

/// The kind of a crafted tree entry.
#[derive(Debug, Clone, Copy)]
pub enum CraftedTreeKind {
    /// A file whose content is the blobs `refs`.
    File,
    /// A directory whose tree is made of the parts `refs`.
    Dir,
    /// A symlink to `target`.
    Symlink,
}

/// One entry of a crafted tree, encoded exactly as given (any name, any size, any order).
#[derive(Debug, Clone)]
pub struct CraftedTreeEntry {
    /// The name, not checked.
    pub name: Vec<u8>,
    /// What it is.
    pub kind: CraftedTreeKind,
    /// Permission bits.
    pub mode: u32,
    /// Declared size.
    pub size: u64,
    /// Chunk ids (file) or tree part ids (directory).
    pub refs: Vec<[u8; 32]>,
    /// Symlink target.
    pub target: Vec<u8>,
}

/// The tree encoding (FORMAT.md "Trees") of `entries`, written as given.
pub fn encode_tree(entries: &[CraftedTreeEntry]) -> Vec<u8> {
    use crate::snapshot::NodeKind;
    let mut w = crate::tree::TreeWriter::new();
    for e in entries {
        w.push_unchecked(&crate::tree::TreeEntry {
            kind: match e.kind {
                CraftedTreeKind::File => NodeKind::File,
                CraftedTreeKind::Dir => NodeKind::Dir,
                CraftedTreeKind::Symlink => NodeKind::Symlink,
            },
            name: e.name.clone(),
            mode: e.mode,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 0,
            size: e.size,
            refs: e.refs.clone(),
            target: e.target.clone(),
        });
    }
    // Over-large trees are what some tests want: no cap here.
    let mut b = w.finish("crafted").unwrap_or_default();
    if b.is_empty() {
        b = crate::tree::TreeWriter::new()
            .finish("crafted")
            .unwrap_or_default();
    }
    b
}

/// Stores `data` as one stored (uncompressed) blob in a new pack, under `id` (its real
/// chunk id when `None`); returns the id.
pub fn write_blob(repo: &Repository, data: &[u8], id: Option<[u8; 32]>) -> Result<[u8; 32], Error> {
    let id = id.unwrap_or_else(|| chunk_id(repo, data));
    let mut plain = vec![0u8];
    plain.extend_from_slice(data);
    write_pack(repo, &[(id, data.len() as u32, plain)])?;
    Ok(id)
}

/// Writes a version 3 snapshot whose root tree is made of `root` (part ids); returns its id.
pub fn write_tree_snapshot(repo: &Repository, root: &[[u8; 32]]) -> Result<String, Error> {
    let manifest = crate::snapshot::Manifest {
        version: crate::snapshot::MANIFEST_VERSION,
        seq: Some(1),
        follows: None,
        skipped: 0,
        time_ns: 1_700_000_000_000_000_000,
        hostname: "hostile".into(),
        paths: vec!["/hostile".into()],
        parent: None,
        files: 0,
        bytes: 0,
        nodes: Vec::new(),
        tree: Some(root.iter().map(hex::encode).collect()),
    };
    write_snapshot_payload(repo, &manifest.encode()?)
}
