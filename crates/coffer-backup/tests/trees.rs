//! Trees per directory (FORMAT.md "Trees"), through real folders and OpenDAL fs storage:
//! an unchanged backup stores nothing but its snapshot, a changed file stores only the
//! trees on its path, old and new snapshots live in one repository, and a hostile tree
//! is refused without writing anything.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use coffer_backup::testing::{
    CraftedTreeEntry, CraftedTreeKind, chunk_id, encode_tree, write_blob, write_pack,
    write_tree_snapshot,
};
use coffer_backup::{BackupOptions, Error, Repository, RestoreOptions};
use common::{copy_dir, fixture_key, key};

/// Object count and bytes under each folder of a local repository.
fn usage(repo: &Path) -> Vec<(String, usize, u64)> {
    ["data", "index", "snapshots"]
        .iter()
        .map(|d| {
            let mut n = 0;
            let mut bytes = 0;
            if let Ok(rd) = std::fs::read_dir(repo.join(d)) {
                for e in rd {
                    n += 1;
                    bytes += e.unwrap().metadata().unwrap().len();
                }
            }
            (d.to_string(), n, bytes)
        })
        .collect()
}

/// src/a/b/c/f.txt plus siblings at every level, and 40 files in src/many.
fn make_tree(src: &Path) {
    for d in ["a/b/c", "a/x", "many", "empty"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("a/b/c/f.txt"), b"the file that changes").unwrap();
    std::fs::write(src.join("a/b/sibling"), b"b's own").unwrap();
    std::fs::write(src.join("a/x/other"), b"elsewhere").unwrap();
    std::fs::write(src.join("top"), common::pseudo(1, 300_000)).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("many/{i}")), format!("tiny {i}")).unwrap();
    }
    std::os::unix::fs::symlink("a/x/other", src.join("link")).unwrap();
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Repository) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let rp = t.path().join("repo");
    let repo = Repository::init(rp.to_str().unwrap(), &key()).unwrap();
    (t, src, rp, repo)
}

#[test]
fn unchanged_backup_stores_only_its_snapshot() {
    let (t, src, rp, repo) = setup();
    let first = repo
        .backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    assert!(first.blobs_added > 40);
    let before = usage(&rp);
    let again = repo
        .backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    let after = usage(&rp);
    assert_eq!(again.blobs_added, 0);
    assert_eq!(again.files_unchanged, again.files);
    // Packs and indexes: not one object or byte more.
    assert_eq!(before[..2], after[..2]);
    // One snapshot object more, of a few hundred bytes, and that is all that was added.
    assert_eq!(after[2].1, before[2].1 + 1);
    let snapshot_bytes = after[2].2 - before[2].2;
    assert!(snapshot_bytes < 600, "snapshot of {snapshot_bytes} bytes");
    assert_eq!(again.bytes_added, snapshot_bytes);

    // And it restores the same tree.
    let out = t.path().join("out");
    let r = repo
        .restore(&again.snapshot_id, &out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(r.is_complete(), "{r:?}");
    assert_eq!(common::tree(&src), common::tree(&out.join("src")));
}

#[test]
fn one_changed_file_stores_its_chunk_and_the_trees_on_its_path() {
    let (t, src, rp, repo) = setup();
    repo.backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    let before = usage(&rp);
    std::fs::write(src.join("a/b/c/f.txt"), b"the file that changed!").unwrap();
    let s = repo
        .backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    // The chunk, and the trees of c, b, a, src and the snapshot root: nothing of
    // a/x, many, empty or the large file.
    assert_eq!(s.blobs_added, 1 + 5);
    assert_eq!(s.bytes_read, 22);
    let after = usage(&rp);
    // One data pack and one tree pack, each with its index.
    assert_eq!(after[0].1, before[0].1 + 2);
    assert_eq!(after[1].1, before[1].1 + 2);
    let out = t.path().join("out");
    repo.restore(&s.snapshot_id, &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(common::tree(&src), common::tree(&out.join("src")));
    // Restoring one path reads only the trees on the way to it.
    let one = t.path().join("one");
    let r = repo
        .restore(
            "latest",
            &one,
            &[PathBuf::from("src/a/b")],
            &RestoreOptions::default(),
        )
        .unwrap();
    assert_eq!(r.files, 2);
    assert_eq!(
        std::fs::read(one.join("src/a/b/c/f.txt")).unwrap(),
        b"the file that changed!"
    );
    assert!(!one.join("src/many").exists());
    let (_, ls) = repo.ls("latest", Some(Path::new("src/a"))).unwrap();
    assert_eq!(ls.len(), 7, "{ls:?}");
}

/// The v1 fixture's repository with a tree snapshot added: check, prune, forget and
/// restore work across both formats.
#[test]
fn old_and_new_snapshots_share_one_repository() {
    let t = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let rp = t.path().join("repo");
    copy_dir(&fixture.join("repo"), &rp);
    let k = fixture_key(&fixture);
    let old_id = std::fs::read_to_string(fixture.join("snapshot-id")).unwrap();
    let old_id = old_id.trim();
    let repo = Repository::open(rp.to_str().unwrap(), &k).unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let new = repo
        .backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    let c = repo.check(true, None).unwrap();
    assert!(c.is_ok(), "{c:?}");
    assert_eq!(c.snapshots, 2);
    // Both are in use: prune removes nothing.
    let p = repo.prune(None).unwrap();
    assert_eq!(p.blobs_removed, 0, "{p:?}");
    let old_out = t.path().join("old");
    let r = repo
        .restore(old_id, &old_out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(r.is_complete() && r.files > 0, "{r:?}");
    let old_tree = common::tree(&old_out);

    // Without the old snapshot, prune frees its data and the new one still restores.
    repo.forget_ids(&[old_id.to_string()], false).unwrap();
    let p = repo.prune(None).unwrap();
    assert!(p.blobs_removed > 0, "{p:?}");
    let c = repo.check(true, None).unwrap();
    assert!(c.is_ok(), "{c:?}");
    let out = t.path().join("new");
    repo.restore(&new.snapshot_id, &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(common::tree(&src), common::tree(&out.join("src")));

    // And the reverse: the tree snapshot forgotten, the old one alone still restores.
    let repo2_path = t.path().join("repo2");
    copy_dir(&fixture.join("repo"), &repo2_path);
    let repo2 = Repository::open(repo2_path.to_str().unwrap(), &k).unwrap();
    let s = repo2
        .backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    repo2.forget_ids(&[s.snapshot_id], false).unwrap();
    let p = repo2.prune(None).unwrap();
    assert!(p.blobs_removed > 40, "{p:?}");
    assert!(repo2.check(true, None).unwrap().is_ok());
    let out2 = t.path().join("old2");
    repo2
        .restore(old_id, &out2, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(old_tree, common::tree(&out2));
}

fn file(name: &[u8], size: u64, refs: Vec<[u8; 32]>) -> CraftedTreeEntry {
    CraftedTreeEntry {
        name: name.to_vec(),
        kind: CraftedTreeKind::File,
        mode: 0o644,
        size,
        refs,
        target: vec![],
    }
}

fn dir(name: &[u8], refs: Vec<[u8; 32]>) -> CraftedTreeEntry {
    CraftedTreeEntry {
        name: name.to_vec(),
        kind: CraftedTreeKind::Dir,
        mode: 0o755,
        size: 0,
        refs,
        target: vec![],
    }
}

/// Restoring, checking and pruning a snapshot whose root tree is `root` all refuse it:
/// restore with an integrity error and nothing written, check with an error, prune
/// without deleting anything.
fn refused(repo: &Repository, root: &[[u8; 32]], t: &Path, why: &str) {
    let id = write_tree_snapshot(repo, root).unwrap();
    let target = t.join(format!("target-{}", &id[..8]));
    std::fs::create_dir(&target).unwrap();
    match repo.restore(&id, &target, &[], &RestoreOptions::default()) {
        Err(Error::Integrity { detail, .. }) => {
            assert!(detail.contains(why), "{detail}")
        }
        other => panic!("restore of a hostile tree: {other:?}"),
    }
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    let c = repo.check(false, None).unwrap();
    assert!(c.errors.iter().any(|e| e.contains(why)), "{c:?}");
    let packs = std::fs::read_dir(t.join("repo/data")).unwrap().count();
    assert!(repo.prune(None).is_err());
    assert_eq!(
        std::fs::read_dir(t.join("repo/data")).unwrap().count(),
        packs
    );
    repo.forget_ids(&[id], false).unwrap();
}

#[test]
fn hostile_trees_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let rp = t.path().join("repo");
    let repo = Repository::init(rp.to_str().unwrap(), &key()).unwrap();
    let content = b"written by the attacker";
    let chunk = write_blob(&repo, content, None).unwrap();
    let n = content.len() as u64;

    // Names that would leave the directory, or are not one component.
    for name in [&b"../evil"[..], b"..", b".", b"a/b", b"/etc", b"", b"x\0y"] {
        let tree = encode_tree(&[file(name, n, vec![chunk])]);
        let root = write_blob(&repo, &tree, None).unwrap();
        refused(&repo, &[root], t.path(), "tree");
    }
    // Two entries of the same name, and names out of order.
    let same = encode_tree(&[file(b"a", n, vec![chunk]), file(b"a", n, vec![chunk])]);
    refused(
        &repo,
        &[write_blob(&repo, &same, None).unwrap()],
        t.path(),
        "order",
    );
    // Absurd sizes: a file larger than its chunks can hold, a directory of too many parts.
    let huge = encode_tree(&[file(b"f", u64::MAX, vec![chunk])]);
    refused(
        &repo,
        &[write_blob(&repo, &huge, None).unwrap()],
        t.path(),
        "impossible",
    );
    let wide = encode_tree(&[dir(b"d", vec![chunk; 65])]);
    refused(
        &repo,
        &[write_blob(&repo, &wide, None).unwrap()],
        t.path(),
        "impossible",
    );
    // A tree stored under an id that is not its hash: the blob check refuses it. It is
    // the only way to make a tree that contains itself (a cycle).
    let forged = [0x42u8; 32];
    let cycle = encode_tree(&[dir(b"loop", vec![forged])]);
    write_blob(&repo, &cycle, Some(forged)).unwrap();
    refused(&repo, &[forged], t.path(), "does not match its id");
    // A data chunk given as a tree.
    refused(&repo, &[chunk], t.path(), "magic");
    // A chain of directories deeper than the format allows, with honest ids.
    let mut blobs = Vec::new();
    let mut below = encode_tree(&[]);
    for _ in 0..520 {
        let id = chunk_id(&repo, &below);
        let mut plain = vec![0u8];
        plain.extend_from_slice(&below);
        blobs.push((id, below.len() as u32, plain));
        below = encode_tree(&[dir(b"d", vec![id])]);
    }
    write_pack(&repo, &blobs).unwrap();
    let top = write_blob(&repo, &below, None).unwrap();
    refused(&repo, &[top], t.path(), "deeper");

    // After all that, nothing outside any target was touched, and the repository minus
    // the forgotten snapshots is sound in structure (read_data still finds the blob
    // stored under a forged id).
    assert!(!t.path().join("evil").exists());
    assert!(repo.check(false, None).unwrap().is_ok());
    let c = repo.check(true, None).unwrap();
    assert_eq!(c.errors.len(), 1, "{c:?}");
}
