//! Selecting entries of a snapshot by path (restore's PATH arguments, `ls`), and listing.

use std::path::{Component, Path, PathBuf};

use crate::Error;
use crate::platform;
use crate::repo::{Index, Repository};
use crate::snapshot::{Manifest, Node, NodeKind};
use crate::types::LsEntry;
use crate::walk::Trees;

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

/// The nodes at or below any of `include` (all nodes if empty), in snapshot order. A
/// path that matches nothing is an error naming it: a typo must not restore zero files
/// and succeed. In a tree snapshot only the trees on the way to `include` are read.
pub(crate) fn select(
    repo: &Repository,
    index: &Index,
    id: &str,
    m: &Manifest,
    include: &[PathBuf],
) -> Result<Vec<Node>, Error> {
    let mut wanted = Vec::with_capacity(include.len());
    for p in include {
        let r = resolve(m, p).ok_or_else(|| Error::PathNotInSnapshot {
            path: p.clone(),
            snapshot: id.to_string(),
        })?;
        wanted.push(r);
    }
    let mut hit = vec![false; wanted.len()];
    let mut out = Vec::new();
    let trees = Trees::new(repo, index);
    let object = format!("snapshots/{id}");
    crate::walk::nodes(
        &trees,
        m,
        &object,
        &mut |dir| {
            wanted.is_empty()
                || wanted
                    .iter()
                    .any(|w| w.starts_with(dir) || dir.starts_with(w))
        },
        &mut |n| {
            let mut keep = wanted.is_empty();
            for (w, h) in wanted.iter().zip(hit.iter_mut()) {
                if n.path.starts_with(w) {
                    *h = true;
                    keep = true;
                }
            }
            if keep {
                out.push(n);
            }
            Ok(())
        },
    )?;
    if let Some(i) = hit.iter().position(|h| !h) {
        return Err(Error::PathNotInSnapshot {
            path: include[i].clone(),
            snapshot: id.to_string(),
        });
    }
    Ok(out)
}

pub(crate) fn entry(n: &Node) -> LsEntry {
    let path = n.rel_path();
    LsEntry {
        path_hex: platform::utf8_path(&path)
            .is_none()
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
