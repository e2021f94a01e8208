//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Deterministic pseudo-random bytes.
pub fn pseudo(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.finalize_xof().fill(&mut v);
    v
}

/// Compressible text.
pub fn text(seed: u64, n: usize) -> Vec<u8> {
    let words = ["alpha ", "beta ", "gamma ", "delta ", "epsilon\n", "zeta "];
    let r = pseudo(seed, n);
    let mut out = Vec::with_capacity(n + 8);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(words[r[i % n] as usize % words.len()].as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// Every entry below `root`: relative path -> (kind, mode, mtime, content or link target).
pub fn tree(root: &Path) -> Vec<(PathBuf, String, u32, i64, Vec<u8>)> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, p: &Path, out: &mut Vec<(PathBuf, String, u32, i64, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for e in entries {
        let m = std::fs::symlink_metadata(&e).unwrap();
        let rel = e.strip_prefix(root).unwrap().to_path_buf();
        let mode = m.permissions().mode() & 0o7777;
        if m.file_type().is_symlink() {
            use std::os::unix::ffi::OsStrExt;
            let t = std::fs::read_link(&e).unwrap();
            out.push((rel, "link".into(), 0, 0, t.as_os_str().as_bytes().to_vec()));
        } else if m.is_dir() {
            out.push((rel, "dir".into(), mode, 0, vec![]));
            walk(root, &e, out);
        } else {
            out.push((
                rel,
                "file".into(),
                mode,
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                std::fs::read(&e).unwrap(),
            ));
        }
    }
}

/// The fixed test key.
pub fn key() -> coffer_backup::BackupKey {
    coffer_backup::BackupKey::from_bytes([7u8; 32])
}

/// A temporary folder holding an empty `src` folder to back up and a new repository at
/// `repo` under [`key`].
pub fn src_and_repo() -> (tempfile::TempDir, PathBuf, coffer_backup::Repository) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let repo =
        coffer_backup::Repository::init(tmp.path().join("repo").to_str().unwrap(), &key()).unwrap();
    (tmp, src, repo)
}

/// Copies a folder recursively (the fixtures are copied before a test writes to them).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The recovery key of a fixture, as written at init: 16 groups of 4 hex digits.
pub fn fixture_key(fixture: &Path) -> coffer_backup::BackupKey {
    let text = std::fs::read_to_string(fixture.join("recovery-key")).unwrap();
    let digits: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let mut k = [0u8; 32];
    hex::decode_to_slice(&digits, &mut k).unwrap();
    coffer_backup::BackupKey::from_bytes(k)
}
