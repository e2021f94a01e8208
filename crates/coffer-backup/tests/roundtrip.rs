//! Round trips through a real local-folder repository.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use coffer_backup::{BackupOptions, Repository, RestoreOptions};
use common::*;

#[test]
fn files_of_every_kind_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("data");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("small.txt"), text(1, 5000)).unwrap();
    std::fs::write(src.join("sub/large.bin"), pseudo(2, 50 << 20)).unwrap();
    std::fs::write(src.join("sub/deeper/text.log"), text(3, 3 << 20)).unwrap();
    // Sparse: a 64 MiB hole with data at both ends.
    {
        let f = std::fs::File::create(src.join("sparse")).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", 64 << 20).unwrap();
    }
    for name in [
        "ünïcødé 名前 🎒",
        "new\nline",
        "back\\slash",
        " space ",
        "-dash",
        "a:b*c?",
    ] {
        std::fs::write(src.join(name), name.as_bytes()).unwrap();
    }
    let odd = std::ffi::OsStr::from_bytes(b"not-utf8-\xff\xfe");
    std::fs::write(src.join(odd), b"raw bytes name").unwrap();
    std::os::unix::fs::symlink("small.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    std::fs::set_permissions(
        src.join("small.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(src.join("exec.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(src.join("exec.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("readonly"), b"ro").unwrap();
    std::fs::set_permissions(src.join("readonly"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::new(1_000_000_000, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(src.join("small.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let repo_dir = tmp.path().join("repo");
    let repo = Repository::init(repo_dir.to_str().unwrap(), &key()).unwrap();
    let s = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert_eq!(s.files, 14);
    assert!(
        s.bytes_added < (50 << 20) + (8 << 20),
        "sparse hole must dedup: {}",
        s.bytes_added
    );
    // FORMAT.md "Packs": a backup never fills a pack past 8 MiB with its header, so the
    // pack buffers it holds stay within that (50 MiB of 1 MiB chunks makes several packs).
    let mut packs = Vec::new();
    for d in std::fs::read_dir(repo_dir.join("data")).unwrap() {
        let d = d.unwrap().path();
        let files: Vec<_> = if d.is_dir() {
            std::fs::read_dir(&d)
                .unwrap()
                .map(|f| f.unwrap().path())
                .collect()
        } else {
            vec![d]
        };
        packs.extend(files.iter().map(|f| std::fs::metadata(f).unwrap().len()));
    }
    assert!(packs.len() >= 6, "{packs:?}");
    assert!(packs.iter().all(|&n| n <= 8 << 20), "{packs:?}");

    let out = tmp.path().join("out");
    let r = repo
        .restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(tree(&src), tree(&out.join("data")));
    let meta = std::fs::metadata(out.join("data/sparse")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 < 4 << 20,
        "restored sparse file is not sparse"
    );

    // A partial restore writes only what was asked.
    let out2 = tmp.path().join("out2");
    let r = repo
        .restore(
            &s.snapshot_id[..8],
            &out2,
            &[PathBuf::from("data/sub")],
            &RestoreOptions::default(),
        )
        .unwrap();
    assert_eq!(r.files, 2);
    assert!(!out2.join("data/small.txt").exists());
    assert!(repo.check(true, None).unwrap().is_ok());
}

#[test]
fn second_backup_skips_unchanged_files_and_uploads_only_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    std::fs::create_dir_all(&src).unwrap();
    let mut big = pseudo(9, 8 << 20);
    std::fs::write(src.join("big"), &big).unwrap();
    std::fs::write(src.join("same"), text(4, 100_000)).unwrap();
    let loc = format!("memory://incremental-{}", std::process::id());
    let repo = Repository::init(&loc, &key()).unwrap();
    let a = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    big[4_000_000..4_000_100].copy_from_slice(&[0u8; 100]);
    std::fs::write(src.join("big"), &big).unwrap();
    // Reopen: memory:// is shared per name within the process.
    let repo = Repository::open(&loc, &key()).unwrap();
    let b = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert_eq!(b.parent.as_deref(), Some(a.snapshot_id.as_str()));
    assert_eq!(b.files_unchanged, 1);
    assert!(
        b.bytes_added < 1 << 20,
        "changed 100 bytes, added {}",
        b.bytes_added
    );
    let d = repo.diff(&a.snapshot_id, &b.snapshot_id).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].path, PathBuf::from("d/big"));
    let out = tmp.path().join("o");
    repo.restore(&a.snapshot_id, &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_ne!(std::fs::read(out.join("d/big")).unwrap(), big);
}

#[test]
fn streams_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = format!("memory://stream-{}", std::process::id());
    let repo = Repository::init(&loc, &key()).unwrap();
    let data = text(5, 3 << 20);
    let s = repo
        .backup_stream("dump.sql", &mut &data[..], &BackupOptions::default())
        .unwrap();
    assert_eq!(s.bytes_read, data.len() as u64);
    repo.restore("latest", tmp.path(), &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(std::fs::read(tmp.path().join("dump.sql")).unwrap(), data);
}
