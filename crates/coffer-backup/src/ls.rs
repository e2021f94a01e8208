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

/// The entries of a snapshot at or below some paths (all if none), walked as often as a
/// caller needs without holding them: in a tree snapshot each walk reads only the trees
/// on the way to the paths and below them.
pub(crate) struct Selection<'a> {
    trees: Trees<'a>,
    m: &'a Manifest,
    object: String,
    wanted: Vec<PathBuf>,
}

impl<'a> Selection<'a> {
    /// The selection of `include` in snapshot `id`. A path that matches nothing is an
    /// error naming it, found before anything is done with the rest (a typo must not
    /// restore zero files and succeed); finding it reads only the trees on its way.
    pub(crate) fn new(
        repo: &'a Repository,
        index: &'a Index,
        id: &str,
        m: &'a Manifest,
        include: &[PathBuf],
    ) -> Result<Selection<'a>, Error> {
        let mut wanted = Vec::with_capacity(include.len());
        for p in include {
            let r = resolve(m, p).ok_or_else(|| Error::PathNotInSnapshot {
                path: p.clone(),
                snapshot: id.to_string(),
            })?;
            wanted.push(r);
        }
        let sel = Selection {
            trees: Trees::new(repo, index),
            m,
            object: format!("snapshots/{id}"),
            wanted,
        };
        if sel.wanted.is_empty() {
            return Ok(sel);
        }
        let mut hit = vec![false; sel.wanted.len()];
        crate::walk::nodes(
            &sel.trees,
            m,
            &sel.object,
            // Only the directories above a wanted path: the path's own node is in its
            // parent's tree.
            &mut |dir| sel.wanted.iter().any(|w| w != dir && w.starts_with(dir)),
            &mut |n| {
                for (w, h) in sel.wanted.iter().zip(hit.iter_mut()) {
                    *h |= n.path.starts_with(w);
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
        Ok(sel)
    }

    /// True for a tree snapshot, whose walk gives each directory before what is in it
    /// and what is in it before anything else; a version 1/2 manifest's list has no
    /// order.
    pub(crate) fn is_tree(&self) -> bool {
        self.m.tree.is_some()
    }

    /// Calls `f` for every selected node, in snapshot order.
    pub(crate) fn each(&self, f: &mut dyn FnMut(Node) -> Result<(), Error>) -> Result<(), Error> {
        let wanted = &self.wanted;
        crate::walk::nodes(
            &self.trees,
            self.m,
            &self.object,
            &mut |dir| {
                wanted.is_empty()
                    || wanted
                        .iter()
                        .any(|w| w.starts_with(dir) || dir.starts_with(w))
            },
            &mut |n| {
                if wanted.is_empty() || wanted.iter().any(|w| n.path.starts_with(w)) {
                    f(n)
                } else {
                    Ok(())
                }
            },
        )
    }
}

/// The nodes at or below any of `include` (all nodes if empty), in snapshot order; see
/// [`Selection`].
pub(crate) fn select(
    repo: &Repository,
    index: &Index,
    id: &str,
    m: &Manifest,
    include: &[PathBuf],
) -> Result<Vec<Node>, Error> {
    let mut out = Vec::new();
    Selection::new(repo, index, id, m, include)?.each(&mut |n| {
        out.push(n);
        Ok(())
    })?;
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
