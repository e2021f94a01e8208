//! Snapshot manifests (FORMAT.md "Snapshot payload") and snapshot diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::platform;

/// Kind of a node.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// One file, directory or symlink of a snapshot, as every operation sees it whatever the
/// snapshot's version. `path` is relative to the snapshot root.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) path: PathBuf,
    pub(crate) kind: NodeKind,
    pub(crate) mode: u32,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    /// Symlink target bytes as hex.
    pub(crate) target: Option<String>,
    /// Files: chunk ids. Directories of tree snapshots: the part ids of their tree.
    pub(crate) chunks: Vec<[u8; 32]>,
    /// False when a version 1/2 manifest held a malformed chunk list.
    pub(crate) chunks_ok: bool,
}

impl Node {
    pub(crate) fn rel_path(&self) -> PathBuf {
        self.path.clone()
    }
    /// True if the chunk list is well formed (checked before use).
    pub(crate) fn chunks_valid(&self) -> bool {
        self.chunks_ok
    }
    /// The node of a tree entry below `dir`.
    pub(crate) fn from_entry(dir: &std::path::Path, e: crate::tree::TreeEntry) -> Node {
        Node {
            path: dir.join(platform::os_from_bytes(e.name)),
            kind: e.kind,
            mode: e.mode,
            mtime_ns: e.mtime_ns,
            ctime_ns: e.ctime_ns,
            ino: e.ino,
            size: e.size,
            target: (e.kind == NodeKind::Symlink).then(|| hex::encode(&e.target)),
            chunks: e.refs,
            chunks_ok: true,
        }
    }
}

/// One node of a version 1 or 2 manifest (a flat list of every path). `path` is relative
/// to the snapshot root, '/'-separated.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct LegacyNode {
    /// UTF-8 path, or hex of the raw bytes when `raw` is true.
    pub(crate) path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) raw: bool,
    pub(crate) kind: NodeKind,
    pub(crate) mode: u32,
    pub(crate) mtime_ns: i64,
    #[serde(default)]
    pub(crate) ctime_ns: i64,
    #[serde(default)]
    pub(crate) ino: u64,
    pub(crate) size: u64,
    /// Symlink target bytes as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<String>,
    /// Chunk ids, 64 hex digits each, concatenated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) chunks: String,
}

impl LegacyNode {
    pub(crate) fn to_node(&self) -> Node {
        let path = if self.raw {
            PathBuf::from(platform::os_from_bytes(
                hex::decode(&self.path).unwrap_or_default(),
            ))
        } else {
            PathBuf::from(&self.path)
        };
        let chunks_ok = self.chunks.len().is_multiple_of(64)
            && self.chunks.bytes().all(|c| c.is_ascii_hexdigit());
        let mut chunks = Vec::new();
        if chunks_ok {
            chunks.reserve(self.chunks.len() / 64);
            for c in self.chunks.as_bytes().chunks(64) {
                let mut id = [0u8; 32];
                if hex::decode_to_slice(c, &mut id).is_ok() {
                    chunks.push(id);
                }
            }
        }
        Node {
            path,
            kind: self.kind,
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            ino: self.ino,
            size: self.size,
            target: self.target.clone(),
            chunks,
            chunks_ok,
        }
    }
}

/// Payload version of the manifests this build writes. Version 2 added `seq`, `follows`
/// and `skipped`; version 3 replaced the flat `nodes` list by the root `tree` (FORMAT.md
/// "Snapshot manifests"). Versions 1 and 2 are still read.
pub(crate) const MANIFEST_VERSION: u8 = 3;

/// A snapshot manifest.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct Manifest {
    pub(crate) version: u8,
    /// Per-repository sequence number: one more than the head this backup followed.
    /// Absent in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<u64>,
    /// Id of the head snapshot when this backup started (`None`: the repository had none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) follows: Option<String>,
    /// Entries the backup could not read; more than 0 marks the snapshot incomplete.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) skipped: u64,
    pub(crate) time_ns: i64,
    pub(crate) hostname: String,
    pub(crate) paths: Vec<String>,
    pub(crate) parent: Option<String>,
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    /// Version 1 and 2: every path of the snapshot. Empty in version 3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) nodes: Vec<LegacyNode>,
    /// Version 3: the part ids (64 hex digits each) of the root tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tree: Option<String>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Internal {
            detail: format!("manifest encoding: {e}"),
        })?;
        // Readers refuse a manifest over the cap (FORMAT.md "Bounds"): never write one.
        if json.len() > crate::format::MAX_MANIFEST {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "the snapshot lists too many files ({} MiB of metadata, the format allows {} MiB); back up fewer folders per snapshot",
                    json.len() >> 20,
                    crate::format::MAX_MANIFEST >> 20
                ),
            });
        }
        zstd::bulk::compress(&json, 3).map_err(|e| Error::io("zstd", e))
    }
    pub(crate) fn decode(b: &[u8], object: &str) -> Result<Self, Error> {
        let json = crate::format::decompress_bounded(b, crate::format::MAX_MANIFEST)
            .map_err(|e| Error::integrity(object, format!("manifest {e}")))?;
        let m: Manifest = serde_json::from_slice(&json)
            .map_err(|e| Error::integrity(object, format!("manifest: {e}")))?;
        if m.version == 0 || m.version > MANIFEST_VERSION {
            return Err(Error::UnsupportedVersion {
                object: object.into(),
                version: m.version,
            });
        }
        // Rollback detection counts on every version 2 snapshot carrying its number.
        if m.version >= 2 && m.seq.is_none() {
            return Err(Error::integrity(object, "version 2 manifest without seq"));
        }
        // A version 3 snapshot is its root tree; older ones are their node list.
        let tree_ok = if m.version >= 3 {
            m.nodes.is_empty() && m.tree.is_some()
        } else {
            m.tree.is_none()
        };
        if !tree_ok {
            return Err(Error::integrity(
                object,
                "manifest root tree does not match its version",
            ));
        }
        if let Some(t) = &m.tree {
            crate::tree::parse_ref(t, object)?;
        }
        Ok(m)
    }
    /// The root tree's part ids (version 3), checked by `decode`.
    pub(crate) fn root(&self, object: &str) -> Result<Option<Vec<[u8; 32]>>, Error> {
        self.tree
            .as_ref()
            .map(|t| crate::tree::parse_ref(t, object))
            .transpose()
    }
    pub(crate) fn time(&self) -> std::time::SystemTime {
        let t = std::time::UNIX_EPOCH;
        if self.time_ns >= 0 {
            t + std::time::Duration::from_nanos(self.time_ns as u64)
        } else {
            t
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How a path differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DiffKind {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// Content (chunks, size, link target or kind) differs.
    Modified,
    /// Same content, different mode or mtime.
    Metadata,
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    /// Path inside the snapshots (JSON: lossy UTF-8).
    #[serde(serialize_with = "crate::types::lossy")]
    pub path: PathBuf,
    /// What changed.
    pub kind: DiffKind,
}

pub(crate) fn diff(a: &[Node], b: &[Node]) -> Vec<DiffEntry> {
    let ma: BTreeMap<PathBuf, &Node> = a.iter().map(|n| (n.rel_path(), n)).collect();
    let mb: BTreeMap<PathBuf, &Node> = b.iter().map(|n| (n.rel_path(), n)).collect();
    let mut out = Vec::new();
    for (p, na) in &ma {
        match mb.get(p) {
            None => out.push(DiffEntry {
                path: p.clone(),
                kind: DiffKind::Removed,
            }),
            Some(nb) => {
                // A directory's tree changes with anything below it, which is listed itself.
                let content = na.kind != nb.kind
                    || na.size != nb.size
                    || (na.kind != NodeKind::Dir && na.chunks != nb.chunks)
                    || na.target != nb.target;
                let meta = na.mode != nb.mode || na.mtime_ns != nb.mtime_ns;
                if content || (meta && na.kind != NodeKind::Dir) {
                    out.push(DiffEntry {
                        path: p.clone(),
                        kind: if content {
                            DiffKind::Modified
                        } else {
                            DiffKind::Metadata
                        },
                    });
                }
            }
        }
    }
    for p in mb.keys() {
        if !ma.contains_key(p) {
            out.push(DiffEntry {
                path: p.clone(),
                kind: DiffKind::Added,
            });
        }
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out
}
