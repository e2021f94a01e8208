//! Keys, snapshot housekeeping and cancellation.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use coffer_backup::{BackupKey, BackupOptions, Error, KeepPolicy, Repository, RestoreOptions};
use common::*;

#[test]
fn wrong_key_missing_and_existing_repositories_are_told_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = tmp.path().join("repo");
    let loc = loc.to_str().unwrap();
    assert!(matches!(
        Repository::open(loc, &key()),
        Err(Error::NotFound { .. })
    ));
    Repository::init(loc, &key()).unwrap();
    assert!(matches!(
        Repository::init(loc, &key()),
        Err(Error::AlreadyExists { .. })
    ));
    let other = BackupKey::from_bytes([8u8; 32]);
    assert!(matches!(
        Repository::open(loc, &other),
        Err(Error::WrongKey)
    ));
    Repository::open(loc, &key()).unwrap();
    Repository::destroy(loc).unwrap();
    assert!(matches!(
        Repository::open(loc, &key()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn rotated_key_opens_old_and_new_snapshots_and_old_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), text(1, 300_000)).unwrap();
    let loc = format!("memory://rotate-{}", std::process::id());
    let mut repo = Repository::init(&loc, &key()).unwrap();
    let first = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    let new_key = BackupKey::generate();
    repo.rotate_key(&new_key).unwrap();
    std::fs::write(src.join("b"), text(2, 300_000)).unwrap();
    let second = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert!(matches!(
        Repository::open(&loc, &key()),
        Err(Error::WrongKey)
    ));
    let repo = Repository::open(&loc, &new_key).unwrap();
    for (snap, n) in [(&first.snapshot_id, 1), (&second.snapshot_id, 2)] {
        let out = tmp.path().join(snap.as_str());
        let r = repo
            .restore(snap, &out, &[], &RestoreOptions::default())
            .unwrap();
        assert_eq!(r.files, n);
        assert_eq!(std::fs::read(out.join("src/a")).unwrap(), text(1, 300_000));
    }
    assert!(repo.check(true, None).unwrap().is_ok());
    drop(repo);
    Repository::destroy(&loc).unwrap();
    assert!(matches!(
        Repository::open(&loc, &new_key),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn forget_and_prune_free_space_and_keep_the_rest_restorable() {
    let (tmp, src, repo) = src_and_repo();
    let mut ids = vec![];
    for i in 0..4u64 {
        std::fs::write(src.join("f"), pseudo(i, 3 << 20)).unwrap();
        std::fs::write(src.join("keep"), text(99, 200_000)).unwrap();
        ids.push(
            repo.backup(&[src.clone()], &BackupOptions::default())
                .unwrap()
                .snapshot_id,
        );
    }
    assert!(matches!(
        repo.forget(&KeepPolicy::default(), true),
        Err(Error::InvalidArgument { .. })
    ));
    let policy = KeepPolicy {
        last: Some(2),
        ..Default::default()
    };
    let dry = repo.forget(&policy, true).unwrap();
    assert_eq!(dry.removed.len(), 2);
    assert_eq!(repo.snapshots().unwrap().len(), 4);
    let done = repo.forget(&policy, false).unwrap();
    assert_eq!(
        done.removed.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&ids[0], &ids[1]]
    );
    let snaps = repo.snapshots().unwrap();
    assert_eq!(
        snaps.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&ids[2], &ids[3]]
    );
    let daily = repo
        .forget(
            &KeepPolicy {
                daily: Some(1),
                ..Default::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(daily.kept.len(), 1, "all snapshots are from today");
    let p = repo.prune(None).unwrap();
    assert!(p.bytes_freed >= 5 << 20, "{p:?}");
    let c = repo.check(true, None).unwrap();
    assert!(c.is_ok(), "{c:?}");
    let out = tmp.path().join("out");
    let r = repo
        .restore(&ids[2], &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(
        std::fs::read(out.join("src/f")).unwrap(),
        pseudo(2, 3 << 20)
    );
    assert_eq!(r.files, 2);
    assert!(matches!(
        repo.restore(&ids[0], &out, &[], &RestoreOptions::default()),
        Err(Error::SnapshotNotFound { .. })
    ));
}

/// Bytes under `dir`.
fn size_of(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => size_of(&e.path()),
            false => e.metadata().unwrap().len(),
        })
        .sum()
}

#[test]
fn prune_seals_the_live_members_of_a_group_again_and_drops_the_dead_ones() {
    // Small files are sealed together in groups (FORMAT.md F10). Once half of them are
    // gone from every snapshot, prune must not keep the dead half inside the live
    // groups: it opens each such group and seals its live members as a new one.
    let (tmp, src, repo) = src_and_repo();
    let loc = tmp.path().join("repo");
    // Incompressible, so that the dead half is half the pack's bytes.
    let file = |i: u64| pseudo(i, 3000);
    for i in 0..200 {
        std::fs::write(src.join(format!("f{i:03}")), file(i)).unwrap();
    }
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    for i in (0..200).step_by(2) {
        std::fs::remove_file(src.join(format!("f{i:03}"))).unwrap();
    }
    let kept = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap()
        .snapshot_id;
    let policy = KeepPolicy {
        last: Some(1),
        ..Default::default()
    };
    repo.forget(&policy, false).unwrap();
    let before = size_of(&loc.join("data"));
    let p = repo.prune(None).unwrap();
    assert!(p.packs_rewritten >= 1, "{p:?}");
    // The dead files, and the first snapshot's two trees (its root and `src`).
    assert_eq!(p.blobs_removed, 100 + 2, "{p:?}");
    let after = size_of(&loc.join("data"));
    assert!(
        after < before / 2 + 20_000,
        "dead members still stored: {before} bytes before prune, {after} after"
    );
    let c = repo.check(true, None).unwrap();
    assert!(c.is_ok(), "{c:?}");
    // What prune wrote is all live: a second prune finds nothing to do.
    let again = repo.prune(None).unwrap();
    assert_eq!(
        (again.packs_rewritten, again.blobs_removed),
        (0, 0),
        "{again:?}"
    );
    let out = tmp.path().join("out");
    let r = repo
        .restore(&kept, &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(r.files, 100);
    for i in (1..200).step_by(2) {
        assert_eq!(
            std::fs::read(out.join(format!("src/f{i:03}"))).unwrap(),
            file(i)
        );
    }
}

#[test]
fn prune_leaves_packs_of_tiny_grouped_files_alone() {
    // A pack of tiny files is mostly its header (48 bytes per chunk against a few bytes of
    // each compressed group): counted by blob bytes alone it looked a quarter used, and
    // every prune copied it whole into a new pack.
    let (_tmp, src, repo) = src_and_repo();
    for i in 0..3000 {
        std::fs::write(src.join(format!("t{i}")), format!("setting {i} = on\n")).unwrap();
    }
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    let p = repo.prune(None).unwrap();
    assert_eq!(
        (p.packs_rewritten, p.packs_deleted, p.blobs_removed),
        (0, 0, 0),
        "{p:?}"
    );
}

#[test]
fn prune_keeps_every_pack_it_writes_within_the_entry_cap() {
    // 50,000 tiny files fill one pack to within a group of the cap of 32,768 entries
    // (FORMAT.md F7) and a second one; with every third file gone both are rewritten, the
    // live members of each group sealed again as a group of about 667. Prune closed a pack
    // only once it reached the cap, so its 50th group took it to about 33,350 entries: it
    // now closes before a group that does not fit, as a backup does.
    const CAP: usize = 32 * 1024;
    let (tmp, src, repo) = src_and_repo();
    for d in 0..50 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
    }
    let file = |i: usize| src.join(format!("d{}/t{i}", i / 1000));
    for i in 0..50_000 {
        std::fs::write(file(i), format!("setting {i} = on\n")).unwrap();
    }
    let first = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    let full = coffer_backup::testing::pack_entry_counts(&repo).unwrap();
    assert!(
        full.iter().any(|&c| c > CAP - 1024),
        "the set-up must fill a pack to within a group of the cap: {full:?}"
    );
    for i in (0..50_000).step_by(3) {
        std::fs::remove_file(file(i)).unwrap();
    }
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    repo.forget_ids(&[first.snapshot_id], false).unwrap();
    let p = repo.prune(None).unwrap();
    assert!(p.packs_rewritten >= 2, "{p:?}");
    let counts = coffer_backup::testing::pack_entry_counts(&repo).unwrap();
    assert!(counts.iter().all(|&c| c <= CAP), "{counts:?}");
    let c = repo.check(true, None).unwrap();
    assert!(c.is_ok(), "{c:?}");
    let out = tmp.path().join("out");
    repo.restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    for i in [1, 2, 4, 49_999] {
        assert_eq!(
            std::fs::read_to_string(out.join(format!("src/d{}/t{i}", i / 1000))).unwrap(),
            format!("setting {i} = on\n")
        );
    }
}

#[test]
fn prune_refuses_while_a_backup_holds_its_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = tmp.path().join("repo");
    let loc = loc.to_str().unwrap();
    let repo = Repository::init(loc, &key()).unwrap();
    // A live backup's shared lock, as a backup process writes it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::create_dir_all(tmp.path().join("repo/locks")).unwrap();
    std::fs::write(
        tmp.path().join("repo/locks/abcd"),
        format!(r#"{{"version":1,"exclusive":false,"time_s":{now},"pid":1}}"#),
    )
    .unwrap();
    assert!(matches!(repo.prune(None), Err(Error::Locked { .. })));
    // A stale lock (an hour old) from a dead process does not block.
    std::fs::write(
        tmp.path().join("repo/locks/abcd"),
        format!(
            r#"{{"version":1,"exclusive":false,"time_s":{},"pid":1}}"#,
            now - 3600
        ),
    )
    .unwrap();
    repo.prune(None).unwrap();
}

#[test]
fn cancelled_backup_leaves_a_valid_repository_and_the_next_one_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), pseudo(1, 20 << 20)).unwrap();
    let loc = format!("memory://cancel-{}", std::process::id());
    let repo = Repository::init(&loc, &key()).unwrap();
    let cancel = Arc::new(AtomicBool::new(true));
    let opts = BackupOptions {
        cancel: Some(cancel),
        ..Default::default()
    };
    assert!(matches!(
        repo.backup(&[src.clone()], &opts),
        Err(Error::Cancelled)
    ));
    assert!(repo.snapshots().unwrap().is_empty());
    assert!(repo.check(true, None).unwrap().is_ok());
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 1);
}
