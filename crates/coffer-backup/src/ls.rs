//! Selecting entries of a snapshot by path (restore's PATH arguments, `ls`), and listing.

use std::path::{Component, Path, PathBuf};

use crate::Error;
use crate::platform;
use crate::snapshot::{Manifest, Node, NodeKind};
use crate::types::LsEntry;

/// Maps a path given by the user onto the snapshot's names. Relative paths are snapshot
/// names already (`chat/db`); absolute ones are the backed-up locations as `snapshots`
/// shows them (`/home/me/chat/db`), whose top folder is stored under its last name.
fn resolve(m: &Manifest, p: &Path) -> Option<PathBuf> {
    let clean: PathBuf = p
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if !clean.is_absolute() {
        return Some(clean);
    }
    m.paths.iter().find_map(|root| {
        let root = Path::new(root);
        let rest = clean.strip_prefix(root).ok()?;
        Some(PathBuf::from(root.file_name()?).join(rest))
    })
}

/// The nodes at or below any of `include` (all nodes if empty). A path that matches
/// nothing is an error naming it: a typo must not restore zero files and succeed.
pub(crate) fn select<'m>(
    id: &str,
    m: &'m Manifest,
    include: &[PathBuf],
) -> Result<Vec<&'m Node>, Error> {
    if include.is_empty() {
        return Ok(m.nodes.iter().collect());
    }
    let mut wanted = Vec::with_capacity(include.len());
    for p in include {
        let missing = || Error::PathNotInSnapshot {
            path: p.clone(),
            snapshot: id.to_string(),
        };
        let r = resolve(m, p).ok_or_else(missing)?;
        if !m.nodes.iter().any(|n| n.rel_path().starts_with(&r)) {
            return Err(missing());
        }
        wanted.push(r);
    }
    Ok(m.nodes
        .iter()
        .filter(|n| {
            let rel = n.rel_path();
            wanted.iter().any(|w| rel.starts_with(w))
        })
        .collect())
}

pub(crate) fn entry(n: &Node) -> LsEntry {
    let path = n.rel_path();
    LsEntry {
        path_hex: n
            .raw
            .then(|| hex::encode(platform::os_bytes(path.as_os_str()))),
        path,
        kind: match n.kind {
            NodeKind::File => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink => "symlink",
        },
        size: n.size,
        mode: n.mode,
        mtime_ns: n.mtime_ns,
        target: n
            .target
            .as_ref()
            .and_then(|t| hex::decode(t).ok())
            .map(|t| PathBuf::from(platform::os_from_bytes(t))),
    }
}
