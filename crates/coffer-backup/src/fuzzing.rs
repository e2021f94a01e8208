//! Thin entry points for the fuzz targets in `fuzz/` and the corpus replay test
//! (docs/FUZZING.md "Repository objects"). Each feeds arbitrary bytes to one parser of
//! repository objects and must return, never panic or allocate without bound. Keys are
//! fixed, so the sealed forms are reproducible; every target also seals the input itself
//! with that key, so the fuzzer reaches the parser behind the AEAD. Not a stable API.

use std::sync::OnceLock;

use crate::format;
use crate::keys::{Epoch, Keyring};
use crate::snapshot::Manifest;

/// The fixed K of the fuzz targets.
pub const FUZZ_K: [u8; 32] = [7u8; 32];

fn keyring() -> &'static Keyring {
    static KR: OnceLock<Option<Keyring>> = OnceLock::new();
    #[allow(clippy::expect_used)]
    KR.get_or_init(|| {
        Epoch::from_keys([1u8; 32], [2u8; 32])
            .ok()
            .map(|e| Keyring {
                repo_id: [3u8; 16],
                epochs: vec![e],
            })
    })
    .as_ref()
    .expect("a fixed AES key always sets up")
}

/// A pack: the input as a whole pack, then the input as the plaintext of the sealed
/// header of a pack whose blob area is `data[0]` bytes long.
pub fn pack_header(data: &[u8]) {
    let kr = keyring();
    let _ = format::pack_header(kr, data, "fuzz");
    let Some((&filler, plain)) = data.split_first() else {
        return;
    };
    let mut pack = format::pack_start(0);
    pack.resize(pack.len() + filler as usize, 0);
    if let Ok(sealed) = format::seal(&kr.current().1.data, &format::pack_header_aad(&pack), plain) {
        pack.extend_from_slice(&sealed);
        pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let _ = format::pack_header(kr, &pack, "fuzz");
    }
}

/// An index object: the input as a sealed object, as a payload, and sealed by us.
pub fn index(data: &[u8]) {
    let kr = keyring();
    if let Ok(p) = format::open_object(kr, format::KIND_INDEX, data, "fuzz") {
        let _ = format::decode_index(&p, "fuzz");
    }
    let _ = format::decode_index(data, "fuzz");
    if let Ok(obj) = format::seal_object(kr, format::KIND_INDEX, data) {
        let _ = format::open_object(kr, format::KIND_INDEX, &obj, "fuzz")
            .and_then(|p| format::decode_index(&p, "fuzz"));
    }
}

/// A snapshot: the input as a sealed object, as a compressed manifest, and as manifest
/// JSON (compressed by us), then everything restore and ls derive from its nodes.
pub fn manifest(data: &[u8]) {
    let kr = keyring();
    if let Ok(p) = format::open_object(kr, format::KIND_SNAPSHOT, data, "fuzz") {
        use_manifest(Manifest::decode(&p, "fuzz"));
    }
    use_manifest(Manifest::decode(data, "fuzz"));
    if let Ok(z) = zstd::bulk::compress(data, 1) {
        use_manifest(Manifest::decode(&z, "fuzz"));
    }
}

fn use_manifest(m: Result<Manifest, crate::Error>) {
    let Ok(m) = m else { return };
    let nodes: Vec<_> = m.nodes.iter().map(|n| n.to_node()).collect();
    for n in &nodes {
        let _ = n.chunks_valid() && !n.chunks.is_empty();
        let _ = crate::ls::entry(n);
    }
    let _ = m.root("fuzz");
    let _ = crate::snapshot::diff(&nodes, &nodes);
    let _ = serde_json::to_string(&crate::snapshot::diff(&nodes, &nodes));
}

/// A tree (FORMAT.md "Trees"): the input decoded as an encoded tree, and every entry it
/// yields re-encoded, which must decode to the same entries.
pub fn tree(data: &[u8]) {
    let Ok(entries) = crate::tree::decode(data, "fuzz") else {
        return;
    };
    let mut w = crate::tree::TreeWriter::new();
    for e in &entries {
        assert!(w.push(e).is_ok(), "a decoded entry does not encode");
    }
    let again = w
        .finish("fuzz")
        .map(|b| crate::tree::decode(&b, "fuzz").ok());
    assert!(
        matches!(again, Ok(Some(ref e)) if *e == entries),
        "tree round trip changed"
    );
    for e in entries {
        let _ = crate::ls::entry(&crate::snapshot::Node::from_entry(
            std::path::Path::new("d"),
            e,
        ));
    }
}

/// A keyring object: the input as the sealed object (under the fixed K), as the
/// payload, and sealed by us.
pub fn keyring_object(data: &[u8]) {
    let _ = format::open_keyring(&FUZZ_K, data, "fuzz");
    let _ = Keyring::decode(data, "fuzz");
    let kr = keyring();
    if let Ok(obj) = format::seal_keyring(&FUZZ_K, kr) {
        // The real object with one byte of the input spliced in.
        let mut obj = obj;
        if let Some((&at, rest)) = data.split_first() {
            let at = at as usize % obj.len();
            obj.truncate(at);
            obj.extend_from_slice(rest);
        }
        let _ = format::open_keyring(&FUZZ_K, &obj, "fuzz");
    }
}

/// A blob: `raw_len` (4 bytes LE) then the plaintext (flag byte and data), sealed by us
/// and opened with the bounded decompression restore uses.
pub fn blob(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let raw_len = crate::keys::read_u32(data, 0);
    let id = [9u8; 32];
    let key = &keyring().current().1.data;
    if let Ok(sealed) = format::seal(key, &format::blob_aad(&id), &data[4..])
        && let Some(out) = format::open_blob(key, &id, raw_len, &sealed)
    {
        assert!(out.len() <= format::MAX_BLOB as usize, "blob bound broken");
    }
    // The same plaintext as a group's: bounded by the group cap whatever it declares.
    if let Ok(sealed) = format::seal(key, format::GROUP_AAD, &data[4..])
        && let Some(out) = format::open_group(key, &sealed)
    {
        assert!(
            out.len() <= format::MAX_GROUP as usize,
            "group bound broken"
        );
    }
    let _ = format::decompress_bounded(&data[4..], 1 << 20);
}

/// Valid inputs for each target (`target name`, bytes): the seeds of the corpora in
/// `fuzz/corpus/<target>/`, written by the ignored test `write_fuzz_seeds`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    let entry = |n: u8, offset: u32, length: u32, raw_len: u32, start: u32| format::BlobEntry {
        id: [n; 32],
        offset,
        length,
        raw_len,
        start,
    };
    let alone = format::ALONE;
    let tables: [Vec<format::BlobEntry>; 3] = [
        vec![],
        vec![entry(1, 9, 40, 20, alone)],
        // A group of two members, then a blob of its own.
        vec![
            entry(1, 9, 60, 20, 0),
            entry(2, 9, 60, 30, 20),
            entry(3, 69, 40, 20, alone),
        ],
    ];
    for (filler, t) in [0u8, 40, 100].into_iter().zip(&tables) {
        let mut plain = vec![filler];
        format::encode_entries(t, &mut plain);
        v.push(("pack_header", plain));
        v.push(("index", format::encode_index(&[5u8; 32], 1234, t)));
    }
    let m = br#"{"version":1,"time_ns":1700000000000000000,"hostname":"h","paths":["/home/me/chat"],"parent":null,"files":2,"bytes":5,"nodes":[{"path":"chat","kind":"dir","mode":493,"mtime_ns":1,"size":0},{"path":"chat/a","kind":"file","mode":420,"mtime_ns":2,"size":5,"chunks":"0101010101010101010101010101010101010101010101010101010101010101"},{"path":"6368617420ff","raw":true,"kind":"symlink","mode":511,"mtime_ns":3,"size":0,"target":"2e2e2f6574632f706173737764"}]}"#;
    v.push(("manifest", m.to_vec()));
    if let Ok(z) = zstd::bulk::compress(m, 3) {
        v.push(("manifest", z));
    }
    let kr = keyring();
    v.push(("keyring", kr.encode().to_vec()));
    if let Ok(obj) = format::seal_keyring(&FUZZ_K, kr) {
        let mut s = vec![0u8];
        s.extend_from_slice(&obj);
        v.push(("keyring", obj));
        v.push(("keyring", s));
    }
    for data in [&b"short"[..], &[0u8; 300][..], b"text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text text"] {
        let mut stored = (data.len() as u32).to_le_bytes().to_vec();
        stored.push(0);
        stored.extend_from_slice(data);
        v.push(("blob", stored));
        if let Ok(z) = zstd::bulk::compress(data, 3) {
            let mut c = (data.len() as u32).to_le_bytes().to_vec();
            c.push(1);
            c.extend_from_slice(&z);
            v.push(("blob", c));
        }
    }
    // Last, so that the numbered seed files of the other targets keep their names.
    for t in tree_seeds() {
        v.push(("tree", t));
    }
    v
}

/// Encoded trees: empty, then growing mixes of files, directories and symlinks.
fn tree_seeds() -> Vec<Vec<u8>> {
    use crate::snapshot::NodeKind;
    use crate::tree::{TreeEntry, TreeWriter};
    (0u8..10)
        .filter_map(|n| {
            let mut w = TreeWriter::new();
            for i in 0..n {
                let kind = [NodeKind::File, NodeKind::Dir, NodeKind::Symlink][usize::from(i % 3)];
                let e = TreeEntry {
                    kind,
                    name: vec![b'a' + i, 0xff],
                    mode: 0o644,
                    mtime_ns: i64::from(i),
                    ctime_ns: 2,
                    ino: 3,
                    size: if kind == NodeKind::File { 9000 } else { 0 },
                    refs: vec![
                        [i; 32];
                        if kind == NodeKind::Symlink {
                            0
                        } else {
                            1 + usize::from(i)
                        }
                    ],
                    target: if kind == NodeKind::Symlink {
                        b"../x".to_vec()
                    } else {
                        vec![]
                    },
                };
                w.push(&e).ok()?;
            }
            w.finish("seed").ok()
        })
        .collect()
}
