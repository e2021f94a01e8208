//! restore, ls and diff through the real `coffer` binary with a recovery-key-only setup:
//! odd names never panic, path filters that match nothing fail, local edits are not
//! overwritten silently, and a hostile snapshot's refused entries give exit code 8.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::Device;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A recovery-key-only device with a repository; returns it, the repository and the key.
fn setup(root: &Path) -> (Device, PathBuf, String) {
    let dev = Device::new(root, "dev");
    let repo = root.join("repo");
    let init = dev
        .run(
            &["--json", "init", "--repo", s(&repo), "--recovery-key-only"],
            "",
        )
        .ok()
        .json();
    let rk = init["recovery_key"].as_str().unwrap().to_string();
    (dev, repo, rk)
}

fn long_name() -> String {
    "n".repeat(251) + ".txt"
}

/// A folder with a 255-byte name, a name that is not UTF-8, and a FIFO (skipped) whose
/// name is not UTF-8 either.
fn odd_folder(root: &Path) -> PathBuf {
    let dir = root.join("odd");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    assert_eq!(long_name().len(), 255);
    std::fs::write(dir.join(long_name()), b"long name").unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"bad-\xff\xfe")), b"raw name").unwrap();
    std::fs::write(dir.join("sub/notes.txt"), b"notes v1").unwrap();
    let fifo = dir.join(OsStr::from_bytes(b"fifo-\xff"));
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    dir
}

#[test]
fn long_and_non_utf8_names_back_up_restore_list_and_diff_without_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let (dev, _, _) = setup(tmp.path());
    let src = odd_folder(tmp.path());
    let b1 = dev.run(&["--json", "backup", s(&src)], "").ok().json();
    let skipped = b1["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{b1}");
    assert!(skipped[0][0].as_str().unwrap().contains("fifo-"));
    // Without --json the skipped name is a warning line.
    let human = dev.run(&["backup", s(&src)], "").ok();
    assert!(human.stderr.contains("fifo-"), "{}", human.stderr);

    std::fs::write(src.join(OsStr::from_bytes(b"bad-\xff\xfe")), b"changed").unwrap();
    std::fs::write(src.join(OsStr::from_bytes(b"new-\xfa")), b"new").unwrap();
    let b2 = dev.run(&["--json", "backup", s(&src)], "").ok().json();
    let (id1, id2) = (
        b1["snapshot_id"].as_str().unwrap(),
        b2["snapshot_id"].as_str().unwrap(),
    );
    let d = dev.run(&["--json", "diff", id1, id2], "").ok().json();
    assert_eq!(d["changes"].as_array().unwrap().len(), 2, "{d}");
    let d = dev.run(&["diff", id1, id2], "").ok();
    assert_eq!(d.stdout.lines().count(), 2, "{}", d.stdout);

    let ls = dev.run(&["--json", "ls", id2], "").ok().json();
    let entries = ls["entries"].as_array().unwrap();
    let raw: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["path_hex"].as_str())
        .collect();
    assert!(
        raw.contains(&hex::encode(b"odd/bad-\xff\xfe").as_str()),
        "{ls}"
    );
    assert!(dev.run(&["ls", id2], "").ok().stdout.contains(&long_name()));

    let out = tmp.path().join("out");
    dev.run(&["restore", id2, "--target", s(&out)], "").ok();
    assert_eq!(
        std::fs::read(out.join("odd").join(long_name())).unwrap(),
        b"long name"
    );
    assert_eq!(
        std::fs::read(out.join("odd").join(OsStr::from_bytes(b"bad-\xff\xfe"))).unwrap(),
        b"changed"
    );
}

#[test]
fn path_filters_take_both_forms_and_a_miss_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (dev, _, _) = setup(tmp.path());
    let src = odd_folder(tmp.path());
    dev.run(&["backup", s(&src)], "").ok();

    let abs = src.join("sub/notes.txt");
    let out1 = tmp.path().join("abs");
    let r = dev
        .run(
            &["--json", "restore", "latest", "--target", s(&out1), s(&abs)],
            "",
        )
        .ok()
        .json();
    assert_eq!(r["files"], 1, "{r}");
    assert_eq!(
        std::fs::read(out1.join("odd/sub/notes.txt")).unwrap(),
        b"notes v1"
    );

    let out2 = tmp.path().join("rel");
    let r = dev
        .run(
            &[
                "--json",
                "restore",
                "latest",
                "--target",
                s(&out2),
                "odd/sub",
            ],
            "",
        )
        .ok()
        .json();
    assert_eq!(r["files"], 1, "{r}");

    for typo in ["odd/sub/nope.txt", "/no/such/place"] {
        let r = dev.run(
            &["--json", "restore", "latest", "--target", s(&out2), typo],
            "",
        );
        assert_eq!(r.code, 7);
        assert_eq!(r.err_code(), "path_not_found");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(typo)
        );
        let r = dev.run(&["ls", "latest", typo], "");
        assert_eq!(r.code, 7, "{}", r.stderr);
        assert!(r.stderr.contains(typo), "{}", r.stderr);
    }
    let ls = dev.run(&["ls", "latest", s(&abs)], "").ok();
    assert_eq!(ls.stdout.lines().count(), 1, "{}", ls.stdout);
    assert!(ls.stdout.starts_with("file "), "{}", ls.stdout);
}

#[test]
fn restoring_over_local_edits_needs_an_overwrite_choice() {
    let tmp = tempfile::tempdir().unwrap();
    let (dev, _, _) = setup(tmp.path());
    let src = odd_folder(tmp.path());
    dev.run(&["backup", s(&src)], "").ok();
    let out = tmp.path().join("out");
    dev.run(&["restore", "--target", s(&out)], "").ok();
    // Restoring again over an untouched restore is fine: everything is unchanged.
    let again = dev
        .run(&["--json", "restore", "--target", s(&out)], "")
        .ok()
        .json();
    assert_eq!(again["files"], 0);
    assert_eq!(again["unchanged"], 3);

    let notes = out.join("odd/sub/notes.txt");
    std::fs::write(&notes, b"my local edit").unwrap();
    let r = dev.run(&["--json", "restore", "--target", s(&out)], "");
    assert_eq!(r.code, 1);
    assert_eq!(r.err_code(), "would_overwrite");
    assert_eq!(r.json()["error"]["paths"][0], "odd/sub/notes.txt");
    assert_eq!(
        std::fs::read(&notes).unwrap(),
        b"my local edit",
        "nothing was written"
    );
    let human = dev.run(&["restore", "--target", s(&out)], "");
    assert!(
        human.stderr.contains("odd/sub/notes.txt"),
        "{}",
        human.stderr
    );
    assert!(human.stderr.contains("--overwrite"), "{}", human.stderr);

    let overwrite = |how: &str| {
        dev.run(
            &["--json", "restore", "--target", s(&out), "--overwrite", how],
            "",
        )
        .ok()
        .json()
    };
    let r = overwrite("if-changed");
    assert_eq!(
        (r["files"].as_u64(), r["unchanged"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(std::fs::read(&notes).unwrap(), b"notes v1");
    let r = overwrite("always");
    assert_eq!(r["files"], 3);
}

#[test]
fn a_hostile_snapshot_restores_what_is_safe_and_exits_8_naming_the_rest() {
    use coffer_backup::testing::{CraftedEntry, CraftedKind, write_snapshot};
    let tmp = tempfile::tempdir().unwrap();
    let (dev, repo, rk) = setup(tmp.path());
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut k = [0u8; 32];
    hex::decode_to_slice(rk.replace('-', ""), &mut k).unwrap();
    let r = coffer_backup::Repository::open(s(&repo), &coffer_backup::BackupKey::from_bytes(k))
        .unwrap();
    let e = |path: &[u8], kind| CraftedEntry {
        path: path.to_vec(),
        kind,
        mode: 0o644,
        mtime_ns: 0,
    };
    write_snapshot(
        &r,
        &[
            e(
                b"h",
                CraftedKind::Symlink(outside.as_os_str().as_bytes().to_vec()),
            ),
            e(
                b"h/authorized_keys",
                CraftedKind::File(b"attacker key".to_vec()),
            ),
            e(b"../escape", CraftedKind::File(b"x".to_vec())),
            e(b"fine", CraftedKind::File(b"ok".to_vec())),
        ],
    )
    .unwrap();
    let out = tmp.path().join("out");
    let run = dev.run(&["--json", "restore", "--target", s(&out)], "");
    assert_eq!(run.code, 8, "{}", run.stdout);
    assert_eq!(run.err_code(), "restore_incomplete");
    let refused: Vec<String> = run.json()["error"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refused, ["../escape", "h"]);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(std::fs::read(out.join("fine")).unwrap(), b"ok");
    assert!(!tmp.path().join("escape").exists());
}
