//! A repository written by the format-v1 `coffer` binary of its time
//! (tests/fixtures/v1, made by make_v1_repo.py with a recovery-key-only setup) must restore
//! byte for byte with every later build. Never regenerate the fixture to make this pass:
//! a failure means old repositories no longer restore.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use coffer_backup::{Repository, RestoreOptions};
use common::{copy_dir, fixture_key};
use sha2::{Digest, Sha256};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// The restored tree in expected.tsv's form.
fn describe(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap();
        let (kind, detail) = if m.file_type().is_symlink() {
            (
                "symlink",
                hex::encode(std::fs::read_link(&p).unwrap().as_os_str().as_bytes()),
            )
        } else if m.is_dir() {
            describe(root, &p, out);
            ("dir", "-".to_string())
        } else {
            (
                "file",
                hex::encode(Sha256::digest(std::fs::read(&p).unwrap())),
            )
        };
        let mtime = if kind == "symlink" {
            0
        } else {
            m.mtime() * 1_000_000_000 + m.mtime_nsec()
        };
        let size = if kind == "file" { m.size() } else { 0 };
        out.push(format!(
            "{kind}\t{:o}\t{mtime}\t{size}\t{detail}\t{}",
            m.mode() & 0o7777,
            hex::encode(rel.as_os_str().as_bytes())
        ));
    }
}

#[test]
fn format_v1_fixture_restores_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    copy_dir(&fixture().join("repo"), &repo_dir);
    let repo = Repository::open(repo_dir.to_str().unwrap(), &fixture_key(&fixture())).unwrap();
    let id = std::fs::read_to_string(fixture().join("snapshot-id")).unwrap();
    let id = id.trim();
    let list = repo.snapshots().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].files, 7);

    let out = tmp.path().join("out");
    let s = repo
        .restore(id, &out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(s.is_complete(), "{s:?}");
    assert_eq!(s.files, 7);

    let expected: Vec<String> = std::fs::read_to_string(fixture().join("expected.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut got = Vec::new();
    describe(&out, &out, &mut got);
    // The root folder of the backup itself is not in the list.
    got.retain(|l| !l.ends_with(&format!("\t{}", hex::encode("tree"))));
    got.sort_by(|a, b| a.rsplit('\t').next().cmp(&b.rsplit('\t').next()));
    assert_eq!(got, expected);
    assert!(repo.check(true, None).unwrap().is_ok());
}
