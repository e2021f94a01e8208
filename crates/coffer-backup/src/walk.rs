//! Walking a snapshot, whatever its version: version 3 snapshots are walked tree by tree,
//! depth first, holding only the trees on the current path (FORMAT.md "What is held in
//! memory"); version 1 and 2 manifests list their nodes themselves.
//!
//! Trees come from a snapshot that may have been written by a compromised device, so
//! every tree is read as a verified blob (F6: its id is recomputed from its bytes, so a
//! tree can not be swapped and can not contain itself), its size is checked against the
//! index before a part is read, its entries against every rule of [`crate::tree::decode`],
//! and the walk stops at [`MAX_DEPTH`] and at any tree already on its path.

use std::collections::HashSet;
use std::path::Path;

use crate::Error;
use crate::blob_reader::{BlobReader, TREE_CACHE};
use crate::platform;
use crate::repo::{Index, Repository};
use crate::snapshot::{Manifest, Node, NodeKind};
use crate::tree::{self, MAX_DEPTH, MAX_TREE, MAX_TREE_PARTS, TreeEntry};

/// Reads tree objects.
pub(crate) struct Trees<'a> {
    reader: BlobReader<'a>,
    index: &'a Index,
}

impl<'a> Trees<'a> {
    pub(crate) fn new(repo: &'a Repository, index: &'a Index) -> Self {
        Trees {
            reader: BlobReader::new(&repo.store, &repo.keyring, index, TREE_CACHE),
            index,
        }
    }

    /// The entries of the tree made of `parts`, the directory at `dir`.
    pub(crate) fn load(&self, parts: &[[u8; 32]], dir: &Path) -> Result<Vec<TreeEntry>, Error> {
        let object = match parts.first() {
            Some(id) => format!("tree {} ({})", hex::encode(&id[..8]), shown(dir)),
            None => format!("tree ({})", shown(dir)),
        };
        if parts.is_empty() || parts.len() > MAX_TREE_PARTS {
            return Err(Error::integrity(&object, "impossible number of tree parts"));
        }
        // The size is known from the index: an oversized tree is refused unread.
        let mut total = 0usize;
        for id in parts {
            let loc = self.index.get(id).ok_or_else(|| {
                Error::integrity(
                    &object,
                    format!("part {} is not in the index", hex::encode(id)),
                )
            })?;
            total += loc.entry.raw_len as usize;
        }
        if total > MAX_TREE {
            return Err(Error::integrity(
                &object,
                "tree larger than the format's cap",
            ));
        }
        let mut bytes = Vec::with_capacity(total);
        for id in parts {
            let b = self
                .reader
                .blob(id)
                .map_err(|d| Error::integrity(&object, d))?;
            bytes.extend_from_slice(&b);
        }
        tree::decode(&bytes, &object)
    }
}

fn shown(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        "snapshot root".into()
    } else {
        dir.display().to_string()
    }
}

/// Refuses a walk that goes too deep or reaches a tree already on its path.
fn enter(stack: &mut Vec<Vec<[u8; 32]>>, parts: &[[u8; 32]], dir: &Path) -> Result<(), Error> {
    let object = format!("tree ({})", shown(dir));
    if stack.len() >= MAX_DEPTH {
        return Err(Error::integrity(
            object,
            format!("directories nested deeper than {MAX_DEPTH}"),
        ));
    }
    if stack.iter().any(|s| s == parts) {
        return Err(Error::integrity(object, "a tree contains itself"));
    }
    stack.push(parts.to_vec());
    Ok(())
}

/// Calls `f` for every node of snapshot `m`, depth first, each directory before what is
/// in it. In a tree snapshot a directory's content is walked only when `descend` says so.
pub(crate) fn nodes(
    trees: &Trees<'_>,
    m: &Manifest,
    object: &str,
    descend: &mut dyn FnMut(&Path) -> bool,
    f: &mut dyn FnMut(Node) -> Result<(), Error>,
) -> Result<(), Error> {
    match m.root(object)? {
        None => m.nodes.iter().try_for_each(|n| f(n.to_node())),
        Some(root) => walk_nodes(trees, &root, Path::new(""), &mut Vec::new(), descend, f),
    }
}

fn walk_nodes(
    trees: &Trees<'_>,
    parts: &[[u8; 32]],
    dir: &Path,
    stack: &mut Vec<Vec<[u8; 32]>>,
    descend: &mut dyn FnMut(&Path) -> bool,
    f: &mut dyn FnMut(Node) -> Result<(), Error>,
) -> Result<(), Error> {
    enter(stack, parts, dir)?;
    for e in trees.load(parts, dir)? {
        let node = Node::from_entry(dir, e);
        if node.kind == NodeKind::Dir && descend(&node.path) {
            let (sub, path) = (node.chunks.clone(), node.path.clone());
            f(node)?;
            walk_nodes(trees, &sub, &path, stack, descend, f)?;
        } else {
            f(node)?;
        }
    }
    stack.pop();
    Ok(())
}

/// A blob a snapshot names, as [`Reach`] finds it.
pub(crate) enum Found<'p> {
    /// A part of a tree.
    TreePart(&'p [u8; 32]),
    /// A chunk of a file.
    Chunk(&'p [u8; 32]),
    /// A version 1/2 file node whose chunk list is malformed.
    Malformed(&'p Path),
}

/// Finds every blob snapshots name (check, prune), visiting each distinct tree once over
/// all the snapshots it is given: unchanged directories shared by many snapshots cost
/// one visit, and memory holds the ids of the trees seen, not their content.
#[derive(Default)]
pub(crate) struct Reach {
    seen: HashSet<Vec<[u8; 32]>>,
}

impl Reach {
    /// Reports every blob of `m` not reported before to `found`. A tree that can not be
    /// read goes to `bad`: its error stops the walk, `Ok` skips that tree.
    pub(crate) fn snapshot(
        &mut self,
        trees: &Trees<'_>,
        m: &Manifest,
        object: &str,
        found: &mut dyn FnMut(Found<'_>),
        bad: &mut dyn FnMut(Error) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let root = match m.root(object) {
            Ok(r) => r,
            Err(e) => return bad(e),
        };
        let Some(root) = root else {
            for n in m.nodes.iter().filter(|n| n.kind == NodeKind::File) {
                let n = n.to_node();
                if !n.chunks_valid() {
                    found(Found::Malformed(&n.path));
                }
                n.chunks.iter().for_each(|id| found(Found::Chunk(id)));
            }
            return Ok(());
        };
        self.walk(trees, &root, Path::new(""), &mut Vec::new(), found, bad)
    }

    fn walk(
        &mut self,
        trees: &Trees<'_>,
        parts: &[[u8; 32]],
        dir: &Path,
        stack: &mut Vec<Vec<[u8; 32]>>,
        found: &mut dyn FnMut(Found<'_>),
        bad: &mut dyn FnMut(Error) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // Seen before: every blob below it was reported then (and a tree that contains
        // itself ends here too).
        if !self.seen.insert(parts.to_vec()) {
            return Ok(());
        }
        parts.iter().for_each(|id| found(Found::TreePart(id)));
        if let Err(e) = enter(stack, parts, dir) {
            return bad(e);
        }
        let entries = match trees.load(parts, dir) {
            Ok(e) => e,
            Err(e) => {
                stack.pop();
                return bad(e);
            }
        };
        for e in entries {
            match e.kind {
                NodeKind::File => e.refs.iter().for_each(|id| found(Found::Chunk(id))),
                NodeKind::Dir => {
                    let path = dir.join(platform::os_from_bytes(e.name));
                    self.walk(trees, &e.refs, &path, stack, found, bad)?;
                }
                NodeKind::Symlink => {}
            }
        }
        stack.pop();
        Ok(())
    }
}
