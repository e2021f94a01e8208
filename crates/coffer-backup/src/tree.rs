//! Tree objects (FORMAT.md "Trees"): one per directory, byte layout only, no I/O.
//!
//! A tree is the sorted list of a directory's entries. Its encoding is cut into parts of
//! at most [`TREE_PART`] bytes and each part is stored as a blob, exactly like a chunk of
//! a file: keyed id, sealed, packed, indexed, deduplicated. An unchanged directory
//! encodes to the same bytes, so its parts have the same ids and nothing new is stored.
//! A directory entry names its subtree by the list of part ids (as a file entry names
//! its content by the list of chunk ids).
//!
//! Every rule a reader checks is here, in [`decode`]; a tree that breaks one is damaged
//! (a correct writer never makes it), whoever sealed it.

use crate::Error;
use crate::keys::{read_u32, read_u64};
use crate::snapshot::NodeKind;

/// Magic at the start of every encoded tree.
pub(crate) const TREE_MAGIC: &[u8; 4] = b"CFTR";
/// Tree encoding version written by this build.
pub(crate) const TREE_VERSION: u8 = 1;
/// Encoded trees are cut into blobs of this size (the last part may be shorter).
pub(crate) const TREE_PART: usize = 1 << 20;
/// The largest encoded tree (one directory): about 600,000 entries of small files.
/// Readers refuse more before reading a part; backup refuses to write more.
pub(crate) const MAX_TREE: usize = 64 << 20;
/// The most parts one tree reference may list.
pub(crate) const MAX_TREE_PARTS: usize = MAX_TREE / TREE_PART;
/// The deepest directory nesting a snapshot may hold (a walk deeper is refused).
pub(crate) const MAX_DEPTH: usize = 512;
/// Longest name of an entry (as most file systems).
pub(crate) const MAX_NAME: usize = 255;
/// Longest symlink target (Linux's PATH_MAX).
pub(crate) const MAX_TARGET: usize = 4096;

/// Bytes of an entry besides its name, refs and target.
const ENTRY_FIXED: usize = 1 + 2 + 4 + 8 + 8 + 8 + 8 + 4 + 2;
/// Header: magic, version, entry count.
const HEADER: usize = 4 + 1 + 4;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeEntry {
    pub(crate) kind: NodeKind,
    /// One path component: never empty, `.` or `..`, no `/` or NUL.
    pub(crate) name: Vec<u8>,
    pub(crate) mode: u32,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
    pub(crate) ino: u64,
    /// File size; 0 for directories and symlinks.
    pub(crate) size: u64,
    /// File: chunk ids of its content. Directory: part ids of its tree. Symlink: none.
    pub(crate) refs: Vec<[u8; 32]>,
    /// Symlink target; empty otherwise.
    pub(crate) target: Vec<u8>,
}

fn kind_byte(k: NodeKind) -> u8 {
    match k {
        NodeKind::File => 1,
        NodeKind::Dir => 2,
        NodeKind::Symlink => 3,
    }
}

/// Builds one encoded tree; entries must be pushed in strictly increasing name order.
pub(crate) struct TreeWriter {
    buf: Vec<u8>,
    count: u32,
}

impl TreeWriter {
    pub(crate) fn new() -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(TREE_MAGIC);
        buf.push(TREE_VERSION);
        buf.extend_from_slice(&0u32.to_le_bytes());
        TreeWriter { buf, count: 0 }
    }

    /// Appends an entry. Names that a reader would refuse are refused here first.
    pub(crate) fn push(&mut self, e: &TreeEntry) -> Result<(), Error> {
        let invalid = |detail: String| Error::InvalidArgument { detail };
        if let Err(why) = name_ok(&e.name) {
            return Err(invalid(format!(
                "{}: {why}",
                String::from_utf8_lossy(&e.name)
            )));
        }
        if e.target.len() > MAX_TARGET || e.mode > 0o7777 {
            return Err(invalid(format!(
                "{}: symlink target longer than {MAX_TARGET} bytes or mode beyond 7777",
                String::from_utf8_lossy(&e.name)
            )));
        }
        self.push_unchecked(e);
        Ok(())
    }

    /// Appends an entry as given (tests of hostile trees write what a reader must refuse).
    pub(crate) fn push_unchecked(&mut self, e: &TreeEntry) {
        let b = &mut self.buf;
        b.push(kind_byte(e.kind));
        b.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        b.extend_from_slice(&e.name);
        b.extend_from_slice(&e.mode.to_le_bytes());
        b.extend_from_slice(&e.mtime_ns.to_le_bytes());
        b.extend_from_slice(&e.ctime_ns.to_le_bytes());
        b.extend_from_slice(&e.ino.to_le_bytes());
        b.extend_from_slice(&e.size.to_le_bytes());
        b.extend_from_slice(&(e.refs.len() as u32).to_le_bytes());
        for r in &e.refs {
            b.extend_from_slice(r);
        }
        b.extend_from_slice(&(e.target.len() as u16).to_le_bytes());
        b.extend_from_slice(&e.target);
        self.count += 1;
    }

    /// The encoded tree, or an error when it is over [`MAX_TREE`].
    pub(crate) fn finish(mut self, dir: &str) -> Result<Vec<u8>, Error> {
        if self.buf.len() > MAX_TREE {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "{dir} lists too many entries ({} MiB of metadata, the format allows {} MiB per folder); split it into subfolders",
                    self.buf.len() >> 20,
                    MAX_TREE >> 20
                ),
            });
        }
        let count = self.count.to_le_bytes();
        self.buf[5..9].copy_from_slice(&count);
        Ok(self.buf)
    }
}

/// Why a name can not be one path component, if it can not.
pub(crate) fn name_ok(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("name empty or longer than 255 bytes");
    }
    if name == b"." || name == b".." {
        return Err("name is . or ..");
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err("name contains / or NUL");
    }
    Ok(())
}

/// Decodes an encoded tree, enforcing every rule of FORMAT.md "Trees".
pub(crate) fn decode(b: &[u8], object: &str) -> Result<Vec<TreeEntry>, Error> {
    let bad = |d: String| Error::integrity(object, format!("tree: {d}"));
    if b.len() > MAX_TREE {
        return Err(bad("larger than the format's cap".into()));
    }
    if b.len() < HEADER || &b[..4] != TREE_MAGIC {
        return Err(bad("bad magic or truncated".into()));
    }
    if b[4] != TREE_VERSION {
        return Err(Error::UnsupportedVersion {
            object: object.into(),
            version: b[4],
        });
    }
    let n = read_u32(b, 5) as usize;
    // Each entry takes at least ENTRY_FIXED + 1 bytes: checked before allocating.
    if n.saturating_mul(ENTRY_FIXED + 1) > b.len() - HEADER {
        return Err(bad(format!("{n} entries can not fit in {} bytes", b.len())));
    }
    let mut out: Vec<TreeEntry> = Vec::with_capacity(n);
    let mut p = HEADER;
    let need = |p: usize, k: usize| -> Result<(), Error> {
        if b.len() - p < k {
            Err(bad("entry truncated".into()))
        } else {
            Ok(())
        }
    };
    for _ in 0..n {
        need(p, 3)?;
        let kind = match b[p] {
            1 => NodeKind::File,
            2 => NodeKind::Dir,
            3 => NodeKind::Symlink,
            k => return Err(bad(format!("unknown entry kind {k}"))),
        };
        let nl = u16::from_le_bytes([b[p + 1], b[p + 2]]) as usize;
        p += 3;
        need(p, nl)?;
        let name = b[p..p + nl].to_vec();
        p += nl;
        let shown = String::from_utf8_lossy(&name).into_owned();
        name_ok(&name).map_err(|why| bad(format!("{shown:?}: {why}")))?;
        if let Some(prev) = out.last()
            && prev.name >= name
        {
            return Err(bad(format!(
                "{shown:?}: names not in strictly increasing order"
            )));
        }
        need(p, 40)?;
        let mode = read_u32(b, p);
        let mtime_ns = read_u64(b, p + 4) as i64;
        let ctime_ns = read_u64(b, p + 12) as i64;
        let ino = read_u64(b, p + 20);
        let size = read_u64(b, p + 28);
        let r = read_u32(b, p + 36) as usize;
        p += 40;
        // The refs are checked against the bytes present before anything is allocated.
        if r.checked_mul(32).is_none_or(|l| l > b.len() - p) {
            return Err(bad(format!("{shown:?}: {r} references can not fit")));
        }
        let refs: Vec<[u8; 32]> = b[p..p + 32 * r]
            .chunks_exact(32)
            .map(|c| {
                let mut id = [0u8; 32];
                id.copy_from_slice(c);
                id
            })
            .collect();
        p += 32 * r;
        need(p, 2)?;
        let tl = u16::from_le_bytes([b[p], b[p + 1]]) as usize;
        p += 2;
        need(p, tl)?;
        let target = b[p..p + tl].to_vec();
        p += tl;
        if mode > 0o7777 {
            return Err(bad(format!(
                "{shown:?}: mode {mode:o} has bits beyond 7777"
            )));
        }
        let ok = match kind {
            // Every chunk holds at most MAX_BLOB bytes: a larger size is a lie.
            NodeKind::File => tl == 0 && size <= r as u64 * u64::from(crate::format::MAX_BLOB),
            NodeKind::Dir => tl == 0 && size == 0 && (1..=MAX_TREE_PARTS).contains(&r),
            NodeKind::Symlink => r == 0 && size == 0 && (1..=MAX_TARGET).contains(&tl),
        };
        if !ok {
            return Err(bad(format!(
                "{shown:?}: size, references or target impossible for its kind"
            )));
        }
        out.push(TreeEntry {
            kind,
            name,
            mode,
            mtime_ns,
            ctime_ns,
            ino,
            size,
            refs,
            target,
        });
    }
    if p != b.len() {
        return Err(bad("bytes after the last entry".into()));
    }
    Ok(out)
}

/// Parses a tree reference (part ids, 64 hex digits each) from a snapshot manifest.
pub(crate) fn parse_ref(hex_ids: &str, object: &str) -> Result<Vec<[u8; 32]>, Error> {
    let b = hex_ids.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(64) || b.len() / 64 > MAX_TREE_PARTS {
        return Err(Error::integrity(object, "malformed root tree reference"));
    }
    b.chunks(64)
        .map(|c| {
            let mut id = [0u8; 32];
            hex::decode_to_slice(c, &mut id)
                .map_err(|_| Error::integrity(object, "malformed root tree reference"))?;
            Ok(id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(name: &str, refs: usize) -> TreeEntry {
        TreeEntry {
            kind: NodeKind::File,
            name: name.as_bytes().to_vec(),
            mode: 0o644,
            mtime_ns: 1,
            ctime_ns: 2,
            ino: 3,
            size: 5,
            refs: vec![[9u8; 32]; refs],
            target: vec![],
        }
    }

    fn encode(entries: &[TreeEntry]) -> Vec<u8> {
        let mut w = TreeWriter::new();
        for e in entries {
            w.push(e).unwrap();
        }
        w.finish("t").unwrap()
    }

    #[test]
    fn round_trip_and_exact_bytes() {
        let link = TreeEntry {
            kind: NodeKind::Symlink,
            name: b"l".to_vec(),
            mode: 0o777,
            mtime_ns: -1,
            ctime_ns: 0,
            ino: 0,
            size: 0,
            refs: vec![],
            target: b"/x".to_vec(),
        };
        let es = vec![file("a", 1), link];
        let b = encode(&es);
        assert_eq!(&b[..9], b"CFTR\x01\x02\x00\x00\x00");
        // file "a": kind, name, 36 bytes of metadata, 1 ref, no target.
        assert_eq!(b[9], 1);
        assert_eq!(&b[10..13], b"\x01\x00a");
        assert_eq!(b.len(), 9 + (45 + 1 + 32) + (45 + 1 + 2));
        assert_eq!(decode(&b, "t").unwrap(), es);
    }

    #[test]
    fn hostile_trees_are_refused() {
        let ok = encode(&[file("a", 1), file("b", 1)]);
        // Names out of order or repeated.
        let mut swapped = ok.clone();
        swapped[12] = b'c';
        assert!(decode(&swapped, "t").is_err());
        let mut dup = ok.clone();
        // The second name starts after the header, the first entry (78 bytes) and 3 bytes.
        dup[9 + 78 + 3] = b'a';
        assert!(decode(&dup, "t").is_err());
        // Names with '/', '..', NUL.
        for bad in [&b"/"[..], b"\0"] {
            let mut v = ok.clone();
            v[12] = bad[0];
            assert!(decode(&v, "t").is_err(), "{bad:?}");
        }
        // An absurd entry count, ref count or size.
        let mut count = ok.clone();
        count[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&count, "t").is_err());
        let mut refs = ok.clone();
        refs[13 + 36..13 + 40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&refs, "t").is_err());
        let mut size = ok.clone();
        size[13 + 28..13 + 36].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&size, "t").is_err());
        // Trailing bytes, truncation, another version.
        let mut long = ok.clone();
        long.push(0);
        assert!(decode(&long, "t").is_err());
        assert!(decode(&ok[..ok.len() - 1], "t").is_err());
        let mut v2 = ok.clone();
        v2[4] = 2;
        assert!(matches!(
            decode(&v2, "t"),
            Err(Error::UnsupportedVersion { .. })
        ));
        assert!(decode(&ok, "t").is_ok());
    }

    #[test]
    fn writer_refuses_names_a_reader_would() {
        for n in ["", ".", "..", "a/b"] {
            assert!(TreeWriter::new().push(&file(n, 0)).is_err(), "{n:?}");
        }
    }

    #[test]
    fn decoding_never_panics_on_truncations() {
        let b = encode(&[file("a", 3), file("b", 0)]);
        for i in 0..b.len() {
            let _ = decode(&b[..i], "t");
        }
    }
}
