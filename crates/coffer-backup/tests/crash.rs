//! A backup process killed with SIGKILL at random points always leaves a repository that
//! passes check, and the next backup completes and restores.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coffer_backup::{BackupOptions, Repository, RestoreOptions};
use common::*;

#[test]
fn sigkill_during_backup_never_breaks_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6u64 {
        std::fs::write(src.join(format!("m{i}")), pseudo(i, 4 << 20)).unwrap();
        std::fs::write(src.join(format!("t{i}")), text(i, 1 << 20)).unwrap();
    }
    let repo_dir = tmp.path().join("repo");
    let loc = repo_dir.to_str().unwrap().to_string();
    Repository::init(&loc, &key()).unwrap();
    let exe = env!("CARGO_BIN_EXE_coffer-backup-bench");
    let hexkey = hex::encode([7u8; 32]);

    let run_to_end = || {
        let ok = Command::new(exe)
            .args(["backup", &loc, src.to_str().unwrap()])
            .env("COFFER_KEY", &hexkey)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
    };
    run_to_end();
    // Time an incremental run like the ones below (the first, full run is much longer),
    // to spread the kill points over it.
    std::fs::write(src.join("warmup"), pseudo(999, 6 << 20)).unwrap();
    let t = Instant::now();
    run_to_end();
    let full = t.elapsed().as_millis().max(50) as u64;

    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut killed = 0;
    for run in 0..16u64 {
        // New content each run so every run has data to upload.
        std::fs::write(src.join(format!("new{run}")), pseudo(1000 + run, 6 << 20)).unwrap();
        std::fs::write(src.join("t0"), text(500 + run, 1 << 20)).unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = seed % (full * 3 / 2);
        let mut child = Command::new(exe)
            .args(["backup", &loc, src.to_str().unwrap()])
            .env("COFFER_KEY", &hexkey)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        let repo = Repository::open(&loc, &key()).unwrap();
        let c = repo.check(run % 4 == 0, None).unwrap();
        assert!(c.is_ok(), "run {run} (killed after {delay} ms): {c:?}");
    }
    assert!(killed >= 4, "only {killed} runs were killed mid-way");

    let repo = Repository::open(&loc, &key()).unwrap();
    let s = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert!(repo.check(true, None).unwrap().is_ok());
    let out = tmp.path().join("out");
    let r = repo
        .restore(&s.snapshot_id, &out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(r.failed.is_empty());
    assert_eq!(tree(&src), tree(&out.join("src")));
}
