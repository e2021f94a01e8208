//! Power cuts at every storage step: a storage layer (`testing::Faults`) fails the Nth
//! step and loses what was not yet synced (file data not fsynced, renames and unlinks in
//! a directory not fsynced). Unlike SIGKILL, which keeps the page cache, this shows that
//! the write order and the syncs (FORMAT.md F1) are enough. After every cut the repository
//! passes check and the last completed snapshot restores byte for byte.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::path::Path;

use coffer_backup::testing::Faults;
use coffer_backup::{BackupOptions, KeepPolicy, Repository, RestoreOptions};
use common::*;

fn write_source(src: &Path, version: u64) {
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("big"), pseudo(version, 600_000)).unwrap();
    std::fs::write(src.join("sub/t"), text(version, 50_000)).unwrap();
}

/// Opens without faults, checks, and restores "latest", which must equal `want`.
fn assert_valid(loc: &str, want: &[(std::path::PathBuf, String, u32, i64, Vec<u8>)], out: &Path) {
    let repo = Repository::open(loc, &key()).unwrap();
    let c = repo.check(true, None).unwrap();
    assert!(c.is_ok(), "{c:?}");
    let _ = std::fs::remove_dir_all(out);
    let r = repo
        .restore("latest", out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(r.failed.is_empty(), "{r:?}");
    assert_eq!(tree(&out.join("src")), want);
}

/// Runs `op` with a power cut at each step 1, 2, ... until a run completes; `prepare`
/// makes a fresh repository holding the state before `op`, and returns the tree that
/// "latest" must restore if `op` did not complete.
fn cut_everywhere(
    name: &str,
    prepare: impl Fn(&Path) -> Vec<(std::path::PathBuf, String, u32, i64, Vec<u8>)>,
    op: impl Fn(&Repository, &Path) -> bool,
    after: impl Fn(&Path) -> Vec<(std::path::PathBuf, String, u32, i64, Vec<u8>)>,
) {
    let mut n = 1;
    loop {
        let tmp = tempfile::tempdir().unwrap();
        let before = prepare(tmp.path());
        let loc = tmp.path().join("repo").to_str().unwrap().to_string();
        let faults = Faults::fail_at(n);
        let done = {
            let repo = Repository::open_with_faults(&loc, &key(), faults.clone()).unwrap();
            op(&repo, tmp.path())
        };
        let want = if done { after(tmp.path()) } else { before };
        assert!(
            done || faults.crashed(),
            "{name}: step {n} failed without a cut"
        );
        assert_valid(&loc, &want, &tmp.path().join("out"));
        // The next prune completes on what the cut left, once the dead run's lock is gone
        // (its pid is this test's, so it does not look dead by itself).
        let repo = Repository::open(&loc, &key()).unwrap();
        repo.unlock(true).unwrap();
        repo.prune(None).unwrap();
        assert!(repo.check(false, None).unwrap().is_ok(), "{name}: step {n}");
        if !faults.crashed() {
            assert!(n > 10, "{name}: only {n} steps");
            return;
        }
        n += 1;
    }
}

#[test]
fn a_power_cut_at_any_step_of_a_backup_leaves_the_last_snapshot_restorable() {
    let prepare = |root: &Path| {
        let src = root.join("src");
        write_source(&src, 1);
        let loc = root.join("repo");
        let repo = Repository::init(loc.to_str().unwrap(), &key()).unwrap();
        repo.backup(&[src.clone()], &BackupOptions::default())
            .unwrap();
        let before = tree(&src);
        write_source(&src, 2);
        before
    };
    cut_everywhere(
        "backup",
        prepare,
        |repo, root| {
            repo.backup(&[root.join("src")], &BackupOptions::default())
                .is_ok()
        },
        |root| tree(&root.join("src")),
    );
}

#[test]
fn a_power_cut_at_any_step_of_forget_and_prune_leaves_the_kept_snapshot_restorable() {
    let prepare = |root: &Path| {
        let src = root.join("src");
        let loc = root.join("repo");
        let repo = Repository::init(loc.to_str().unwrap(), &key()).unwrap();
        for v in 1..=3 {
            write_source(&src, v);
            repo.backup(&[src.clone()], &BackupOptions::default())
                .unwrap();
        }
        tree(&src)
    };
    let keep1 = KeepPolicy {
        last: Some(1),
        ..Default::default()
    };
    cut_everywhere(
        "forget+prune",
        prepare,
        |repo, _| repo.forget(&keep1, false).is_ok() && repo.prune(None).is_ok(),
        |root| tree(&root.join("src")),
    );
}

/// A storage failure while far more is read than the pipeline holds in flight: the
/// reading thread, waiting for sealed chunks to be packed, is released and the backup
/// ends in an error instead of waiting on stages that stopped. Cuts at steps spread over
/// a whole run, each into a fresh repository (so nothing is deduplicated away).
#[test]
fn a_backup_larger_than_what_is_in_flight_fails_cleanly_wherever_storage_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3 {
        std::fs::write(src.join(format!("big{i}")), pseudo(i, 24 << 20)).unwrap();
    }
    let run = |n: u64| {
        let loc = tmp.path().join(format!("repo{n}"));
        let loc = loc.to_str().unwrap().to_string();
        Repository::init(&loc, &key()).unwrap();
        let faults = Faults::fail_at(n);
        let repo = Repository::open_with_faults(&loc, &key(), faults.clone()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let s = src.clone();
        std::thread::spawn(move || {
            let _ = tx.send(repo.backup(&[s], &BackupOptions::default()).is_ok());
        });
        let done = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("step {n}: the backup hangs after a storage failure"));
        (done, faults)
    };
    let (done, all) = run(u64::MAX);
    assert!(done);
    let total = all.ops();
    assert!(total > 20, "{total} steps");
    for n in [2, total / 4, total / 2, total * 3 / 4] {
        let (done, faults) = run(n);
        assert!(!done && faults.crashed(), "step {n} of {total}: no failure");
    }
}
