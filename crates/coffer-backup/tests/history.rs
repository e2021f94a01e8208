//! The snapshot history: a typo saves nothing, forget keeps each device's snapshots, a
//! damaged snapshot takes nothing else down, and storage that drops or rolls back
//! snapshots is caught by a device that saw newer ones.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::path::{Path, PathBuf};

use coffer_backup::{BackupOptions, Error, GroupBy, Head, KeepPolicy, Repository, RestoreOptions};
use common::*;

fn setup(tmp: &Path) -> (String, PathBuf, Repository) {
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), text(1, 10_000)).unwrap();
    let loc = tmp.join("repo").to_str().unwrap().to_string();
    let repo = Repository::init(&loc, &key()).unwrap();
    (loc, src, repo)
}

fn backup_version(repo: &Repository, src: &Path, v: u64) -> String {
    std::fs::write(src.join("a"), text(v, 10_000)).unwrap();
    repo.backup(&[src.to_path_buf()], &BackupOptions::default())
        .unwrap()
        .snapshot_id
}

fn snapshot_file(loc: &str, id: &str) -> PathBuf {
    Path::new(loc).join("snapshots").join(id)
}

#[test]
fn a_path_that_does_not_exist_saves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, src, repo) = setup(tmp.path());
    backup_version(&repo, &src, 1);
    let typo = tmp.path().join("sr");
    let e = repo
        .backup(&[typo.clone()], &BackupOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::SourceNotFound { .. }), "{e}");
    assert!(e.to_string().contains("nothing was saved"), "{e}");
    // With a good path beside it: still nothing.
    assert!(
        repo.backup(&[src.clone(), typo], &BackupOptions::default())
            .is_err()
    );
    assert_eq!(repo.snapshots().unwrap().len(), 1);
}

#[test]
fn forget_groups_by_host_and_paths_so_one_device_keeps_the_others_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, src, repo) = setup(tmp.path());
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("b"), b"bbb").unwrap();
    let as_host = |h: &str| BackupOptions {
        host: Some(h.into()),
        ..Default::default()
    };
    let mut laptop = Vec::new();
    for _ in 0..2 {
        laptop.push(
            repo.backup(&[src.clone()], &as_host("laptop"))
                .unwrap()
                .snapshot_id,
        );
    }
    let phone = repo
        .backup(&[src.clone()], &as_host("phone"))
        .unwrap()
        .snapshot_id;
    let other_paths = repo
        .backup(&[other.clone()], &as_host("laptop"))
        .unwrap()
        .snapshot_id;
    let keep1 = KeepPolicy {
        last: Some(1),
        ..Default::default()
    };
    let r = repo.forget(&keep1, true).unwrap();
    let removed: Vec<&String> = r.removed.iter().map(|s| &s.id).collect();
    assert_eq!(
        removed,
        vec![&laptop[0]],
        "only the laptop's older snapshot goes"
    );
    let kept: Vec<&String> = r.kept.iter().map(|s| &s.id).collect();
    for id in [&laptop[1], &phone, &other_paths] {
        assert!(kept.contains(&id));
    }
    // Grouping by nothing counts the whole repository, as before; the head stays.
    let whole = KeepPolicy {
        group_by: GroupBy {
            host: false,
            paths: false,
        },
        ..keep1
    };
    let r = repo.forget(&whole, false).unwrap();
    assert_eq!(r.kept.len(), 1);
    assert_eq!(r.kept[0].id, other_paths);
}

#[test]
fn a_damaged_snapshot_is_skipped_reported_and_forget_id_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (loc, src, repo) = setup(tmp.path());
    backup_version(&repo, &src, 1);
    let good = src.join("a");
    let want = std::fs::read(&good).unwrap();
    let bad = backup_version(&repo, &src, 2);
    // Damage the newest snapshot object on storage (one flipped byte of ciphertext).
    let f = snapshot_file(&loc, &bad);
    let mut b = std::fs::read(&f).unwrap();
    let n = b.len();
    b[n - 20] ^= 1;
    std::fs::write(&f, b).unwrap();

    let repo = Repository::open(&loc, &key()).unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 1);
    let d = repo.damaged_snapshots();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].id, bad);
    // restore latest takes the newest readable snapshot.
    let out = tmp.path().join("out");
    repo.restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(std::fs::read(out.join("src/a")).unwrap(), want);
    // A backup still works, and check names the damaged snapshot with the way out.
    backup_version(&repo, &src, 3);
    let c = repo.check(false, None).unwrap();
    assert!(!c.is_ok());
    assert!(
        c.errors
            .iter()
            .any(|e| e.contains(&format!("coffer forget {bad}"))),
        "{c:?}"
    );
    // Prune refuses while an unreadable snapshot may still need data.
    assert!(repo.prune(None).is_err());
    // forget by a unique prefix removes it without decoding it.
    let removed = repo.forget_ids(&[bad[..10].to_string()], false).unwrap();
    assert_eq!(removed, vec![bad.clone()]);
    assert!(!f.exists());
    assert!(repo.check(true, None).unwrap().is_ok());
    repo.prune(None).unwrap();
    assert!(matches!(
        repo.forget_ids(&["ffffffffffff".into()], false),
        Err(Error::SnapshotNotFound { .. })
    ));
}

#[test]
fn dropping_the_newest_snapshot_is_a_rollback_for_a_device_that_saw_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (loc, src, repo) = setup(tmp.path());
    backup_version(&repo, &src, 1);
    let second = backup_version(&repo, &src, 2);
    let head = repo.seen_head().unwrap();
    assert_eq!(
        head,
        Head {
            seq: 2,
            id: second.clone()
        }
    );

    std::fs::remove_file(snapshot_file(&loc, &second)).unwrap();
    let repo = Repository::open(&loc, &key()).unwrap();
    // A device that never saw it cannot tell (documented); one that did refuses.
    assert_eq!(repo.snapshots().unwrap().len(), 1);
    repo.set_known_head(Some(head.clone()), false);
    for e in [
        repo.snapshots().unwrap_err(),
        repo.restore(
            "latest",
            &tmp.path().join("o"),
            &[],
            &RestoreOptions::default(),
        )
        .unwrap_err(),
        repo.backup(&[src.clone()], &BackupOptions::default())
            .unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                Error::RolledBack {
                    seen_seq: 2,
                    found: 1,
                    ..
                }
            ),
            "{e}"
        );
    }
    let c = repo.check(false, None).unwrap();
    assert!(c.errors.iter().any(|e| e.contains("rolled back")), "{c:?}");
    // --allow-older goes on and the next snapshot continues the sequence.
    repo.set_known_head(Some(head), true);
    let s = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert_eq!(s.seq, 2);
}

#[test]
fn an_older_copy_of_the_snapshots_folder_is_a_rollback_and_gaps_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (loc, src, repo) = setup(tmp.path());
    backup_version(&repo, &src, 1);
    let saved = tmp.path().join("old-snapshots");
    copy_dir(&Path::new(&loc).join("snapshots"), &saved);
    let ids: Vec<String> = (2..5).map(|v| backup_version(&repo, &src, v)).collect();
    let head = repo.seen_head().unwrap();
    assert_eq!(head.seq, 4);

    // A gap in the middle passes check with a warning (forget makes gaps too).
    std::fs::remove_file(snapshot_file(&loc, &ids[0])).unwrap();
    let c = repo.check(false, None).unwrap();
    assert!(c.is_ok(), "{c:?}");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("sequence numbers 2 are missing")),
        "{c:?}"
    );

    // The provider puts back the old folder.
    let dir = Path::new(&loc).join("snapshots");
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&saved, &dir);
    let repo = Repository::open(&loc, &key()).unwrap();
    repo.set_known_head(Some(head), false);
    assert!(matches!(
        repo.restore(
            "latest",
            &tmp.path().join("o"),
            &[],
            &RestoreOptions::default()
        ),
        Err(Error::RolledBack {
            seen_seq: 4,
            found: 1,
            ..
        })
    ));
    assert!(!repo.check(false, None).unwrap().is_ok());
}

#[test]
fn a_damaged_head_is_reported_as_damage_not_as_a_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let (loc, src, repo) = setup(tmp.path());
    backup_version(&repo, &src, 1);
    let second = backup_version(&repo, &src, 2);
    let head = repo.seen_head().unwrap();
    std::fs::write(snapshot_file(&loc, &second), b"garbage").unwrap();
    let repo = Repository::open(&loc, &key()).unwrap();
    repo.set_known_head(Some(head), false);
    assert_eq!(repo.snapshots().unwrap().len(), 1);
    assert_eq!(repo.damaged_snapshots()[0].id, second);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
