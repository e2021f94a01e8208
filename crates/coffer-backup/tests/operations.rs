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
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let loc = tmp.path().join("repo");
    let loc = loc.to_str().unwrap();
    let repo = Repository::init(loc, &key()).unwrap();
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
