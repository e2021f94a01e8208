//! How restore writes: in place into names that did not exist, through a temporary name
//! and a rename over names that did, and from pack ranges when one file's blobs lie in
//! several packs. Each case compares the whole tree (content, mode, mtime, link targets)
//! with the source.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use coffer_backup::{BackupOptions, Error, Overwrite, Repository, RestoreOptions};
use common::*;

fn set_mtime(p: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::new(secs, 987_654_321))
        .unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree of several directories, modes, times, an empty and a sparse file, links.
fn source(root: &Path) -> PathBuf {
    let src = root.join("data");
    for d in 0..5 {
        let dir = src.join(format!("d{d}/inner"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..40 {
            let p = dir.join(format!("f{f}"));
            std::fs::write(&p, text(d * 100 + f, 10 + f as usize * 37)).unwrap();
            set_mtime(&p, 1_600_000_000 + f);
        }
    }
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("big.bin"), pseudo(9, 3 << 20)).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(src.join("sparse")).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.set_len(9 << 20).unwrap();
    }
    std::fs::write(src.join("exec.sh"), b"#!/bin/sh\n").unwrap();
    chmod(&src.join("exec.sh"), 0o755);
    std::fs::write(src.join("readonly"), b"ro").unwrap();
    chmod(&src.join("readonly"), 0o444);
    std::os::unix::fs::symlink("d0/inner/f1", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere", src.join("d1/dangling")).unwrap();
    chmod(&src.join("d2"), 0o700);
    src
}

fn leftovers(root: &Path) -> Vec<PathBuf> {
    tree(root)
        .into_iter()
        .map(|e| e.0)
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".coffer-"))
        })
        .collect()
}

fn backed_up(tmp: &Path) -> (Repository, PathBuf) {
    let src = source(tmp);
    let repo = Repository::init(tmp.join("repo").to_str().unwrap(), &key()).unwrap();
    repo.backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    (repo, src)
}

fn if_changed() -> RestoreOptions {
    RestoreOptions {
        overwrite: Overwrite::IfChanged,
        ..Default::default()
    }
}

#[test]
fn fresh_target_restores_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = backed_up(tmp.path());
    // A new target and an existing empty one are both fresh.
    for (name, make) in [("new", false), ("empty", true)] {
        let out = tmp.path().join(name);
        if make {
            std::fs::create_dir(&out).unwrap();
        }
        let r = repo
            .restore("latest", &out, &[], &RestoreOptions::default())
            .unwrap();
        assert!(r.is_complete(), "{r:?}");
        assert_eq!(r.files, 5 * 40 + 5);
        assert_eq!(tree(&src), tree(&out.join("data")), "{name}");
        assert!(leftovers(&out).is_empty());
        let sparse = std::fs::metadata(out.join("data/sparse")).unwrap();
        assert_eq!(sparse.len(), 9 << 20);
        assert!(sparse.blocks() * 512 < 1 << 20, "the hole was written");
    }
}

#[test]
fn overwrite_restore_replaces_changed_entries_and_never_writes_through_a_hard_link() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = backed_up(tmp.path());
    let out = tmp.path().join("out");
    repo.restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    let data = out.join("data");
    // Changed content and time; a file where a link was; a link where a file was; a file
    // that shares its inode with one outside the target.
    std::fs::write(data.join("d0/inner/f3"), b"changed").unwrap();
    set_mtime(&data.join("d1/inner/f2"), 5);
    std::fs::remove_file(data.join("link")).unwrap();
    std::fs::write(data.join("link"), b"not a link").unwrap();
    std::fs::remove_file(data.join("d2/inner/f4")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", data.join("d2/inner/f4")).unwrap();
    let outside = tmp.path().join("outside");
    std::fs::write(data.join("d3/inner/f5"), b"shared inode").unwrap();
    std::fs::hard_link(data.join("d3/inner/f5"), &outside).unwrap();

    let refused = repo.restore("latest", &out, &[], &RestoreOptions::default());
    let Err(Error::WouldOverwrite { paths }) = refused else {
        panic!("expected WouldOverwrite, got {refused:?}");
    };
    assert_eq!(paths.len(), 5, "{paths:?}");

    let r = repo.restore("latest", &out, &[], &if_changed()).unwrap();
    assert!(r.is_complete(), "{r:?}");
    assert_eq!(r.files, 4, "only the changed files are written: {r:?}");
    assert_eq!(tree(&src), tree(&data));
    assert!(leftovers(&out).is_empty());
    assert_eq!(std::fs::read(&outside).unwrap(), b"shared inode");

    // Always rewrites every file, again through a rename: the outside name keeps its
    // content and the restored tree is still exact.
    std::fs::hard_link(data.join("d4/inner/f6"), tmp.path().join("outside2")).unwrap();
    let before = std::fs::read(tmp.path().join("outside2")).unwrap();
    let all = RestoreOptions {
        overwrite: Overwrite::Always,
        ..Default::default()
    };
    let r = repo.restore("latest", &out, &[], &all).unwrap();
    assert_eq!(r.files, 5 * 40 + 5);
    assert_eq!(tree(&src), tree(&data));
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_ne!(
        ino(&data.join("d4/inner/f6")),
        ino(&tmp.path().join("outside2"))
    );
    assert_eq!(std::fs::read(tmp.path().join("outside2")).unwrap(), before);
}

#[test]
fn a_file_left_half_written_by_a_killed_restore_is_replaced_on_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = backed_up(tmp.path());
    let out = tmp.path().join("out");
    repo.restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    // What an in-place write leaves when killed: the final name, mode 0, part of the data.
    let half = out.join("data/big.bin");
    std::fs::remove_file(&half).unwrap();
    std::fs::write(&half, pseudo(9, 1 << 20)).unwrap();
    chmod(&half, 0);
    // And one file never reached.
    std::fs::remove_file(out.join("data/d4/inner/f39")).unwrap();

    let r = repo
        .restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(r.is_complete(), "{r:?}");
    assert_eq!(r.files, 2);
    assert_eq!(tree(&src), tree(&out.join("data")));
}

#[test]
fn a_file_whose_blobs_lie_in_several_packs_restores_from_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let repo = Repository::init(tmp.path().join("repo").to_str().unwrap(), &key()).unwrap();
    // First backup: a 12 MiB file fills more than one 8 MiB pack.
    let first = pseudo(1, 12 << 20);
    std::fs::write(src.join("first"), &first).unwrap();
    repo.backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    // Second: a file made of new data around all of `first`, so its blobs are spread
    // over the first backup's packs and the second's, not in file order.
    let mut mixed = pseudo(2, 2 << 20);
    mixed.extend_from_slice(&first[6 << 20..]);
    mixed.extend_from_slice(&pseudo(3, 1 << 20));
    mixed.extend_from_slice(&first[..6 << 20]);
    mixed.extend_from_slice(&pseudo(4, 300_000));
    std::fs::write(src.join("mixed"), &mixed).unwrap();
    std::fs::remove_file(src.join("first")).unwrap();
    let s = repo
        .backup(std::slice::from_ref(&src), &BackupOptions::default())
        .unwrap();
    assert!(
        s.bytes_added < 5 << 20,
        "the reused part must dedup: {}",
        s.bytes_added
    );
    let packs = std::fs::read_dir(tmp.path().join("repo/data"))
        .unwrap()
        .count();
    assert!(packs >= 3, "{packs} packs");

    let out = tmp.path().join("out");
    let r = repo
        .restore(
            "latest",
            &out,
            &[PathBuf::from("src/mixed")],
            &RestoreOptions::default(),
        )
        .unwrap();
    assert!(r.is_complete(), "{r:?}");
    assert_eq!(std::fs::read(out.join("src/mixed")).unwrap(), mixed);
    assert!(repo.check(true, None).unwrap().is_ok());
}
