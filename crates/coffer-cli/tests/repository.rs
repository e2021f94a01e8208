//! The repository commands as a careless user and a hostile storage would meet them: a
//! typo, unreadable files, a damaged snapshot, a rolled-back folder, a dead lock, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Device, sample_folder};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A recovery-key-only device with a repository at `root/cloud`.
fn device(root: &Path) -> (Device, PathBuf) {
    let dev = Device::new(root, "dev");
    let repo = root.join("cloud");
    dev.run(&["init", "--repo", s(&repo), "--recovery-key-only"], "")
        .ok();
    (dev, repo)
}

fn snapshot_ids(dev: &Device) -> Vec<String> {
    dev.run(&["--json", "snapshots"], "").ok().json()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_relative_repo_is_stored_as_an_absolute_path() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    let out = Command::new(common::coffer_bin())
        .args(["--config-dir", s(&cfg), "--json", "init", "--repo", "repo"])
        .arg("--recovery-key-only")
        .env("COFFER_KEY_STORE", "file")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.join("config.json")).unwrap()).unwrap();
    let want = tmp.path().canonicalize().unwrap().join("repo");
    assert_eq!(
        Path::new(config["repo"].as_str().unwrap())
            .canonicalize()
            .unwrap(),
        want
    );
    assert!(Path::new(config["repo"].as_str().unwrap()).is_absolute());
}

#[test]
fn a_typo_saves_nothing_and_unreadable_files_make_an_incomplete_snapshot_with_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (dev, _) = device(root);
    let src = sample_folder(root);
    dev.run(&["backup", s(&src)], "").ok();
    let r = dev.run(&["--json", "backup", s(&root.join("chta"))], "");
    assert_eq!((r.err_code().as_str(), r.code), ("path_not_found", 1));
    assert_eq!(snapshot_ids(&dev).len(), 1, "the typo saved no snapshot");

    // An unreadable file: as root, the run drops to another user for whom it is.
    let secret = src.join("secret.txt");
    std::fs::write(&secret, b"no").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let as_root = std::fs::read(&secret).is_ok();
    let run = |args: &[&str]| {
        let mut c = if as_root {
            chown_tree(root, 65534);
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(common::coffer_bin());
            c
        } else {
            Command::new(common::coffer_bin())
        };
        c.args(["--config-dir", s(&dev.config)])
            .args(args)
            .envs(dev.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["--json", "backup", s(&src)]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["incomplete"], true);
    assert!(v["snapshot_id"].is_string(), "the snapshot is kept: {v}");
    let out = run(&["--json", "snapshots"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["snapshots"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["incomplete"], false);
    assert_eq!(list[1]["incomplete"], true);
    assert_eq!(list[1]["skipped"], 1);
    let human = run(&["snapshots"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("INCOMPLETE"));
}

fn chown_tree(p: &Path, id: u32) {
    let _ = std::os::unix::fs::lchown(p, Some(id), Some(id));
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), id);
        }
    }
}

#[test]
fn a_damaged_snapshot_is_skipped_with_a_warning_and_forget_id_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (dev, repo) = device(root);
    let src = sample_folder(root);
    dev.run(&["backup", s(&src)], "").ok();
    std::fs::write(src.join("notes.txt"), b"changed").unwrap();
    dev.run(&["backup", s(&src)], "").ok();
    let ids = snapshot_ids(&dev);
    let object = repo.join("snapshots").join(&ids[1]);
    let mut b = std::fs::read(&object).unwrap();
    b[30] ^= 0x40;
    std::fs::write(&object, b).unwrap();

    let r = dev.run(&["snapshots"], "").ok();
    assert!(
        r.stderr.contains(&format!("coffer forget {}", ids[1])),
        "{}",
        r.stderr
    );
    let v = dev.run(&["--json", "snapshots"], "").ok().json();
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(v["damaged"][0]["id"], ids[1].as_str());
    dev.run(&["backup", s(&src)], "").ok();
    let out = root.join("out");
    dev.run(&["restore", "latest", "--target", s(&out)], "")
        .ok();
    let r = dev.run(&["--json", "check"], "");
    assert_eq!(r.code, 6);
    assert!(!r.stdout.contains("a backup run re-uploads"));
    dev.run(&["forget", &ids[1][..16]], "").ok();
    assert!(!object.exists());
    dev.run(&["check", "--read-data"], "").ok();
}

#[test]
fn rollback_is_refused_until_allow_older() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (dev, repo) = device(root);
    let src = sample_folder(root);
    dev.run(&["backup", s(&src)], "").ok();
    std::fs::write(src.join("notes.txt"), b"newer").unwrap();
    let newest = dev.run(&["--json", "backup", s(&src)], "").ok().json()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(dev.config.join("heads.json").exists());
    // The provider drops the newest snapshot.
    std::fs::remove_file(repo.join("snapshots").join(&newest)).unwrap();
    for args in [
        vec!["--json", "snapshots"],
        vec![
            "--json",
            "restore",
            "latest",
            "--target",
            s(&root.join("o")),
        ],
        vec!["--json", "backup", s(&src)],
    ] {
        let r = dev.run(&args, "");
        assert_eq!(
            (r.err_code().as_str(), r.code),
            ("rolled_back", 6),
            "{args:?}"
        );
        assert!(r.stdout.contains("--allow-older"), "{}", r.stdout);
    }
    assert_eq!(dev.run(&["check"], "").code, 6);
    // Another device that never saw it cannot tell (THREAT_MODEL.md).
    dev.run(&["--allow-older", "snapshots"], "").ok();
    dev.run(&["snapshots"], "").ok();
    dev.run(&["backup", s(&src)], "").ok();
}

#[test]
fn unlock_removes_a_dead_backups_lock_and_force_removes_all() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (dev, repo) = device(root);
    let locks = repo.join("locks");
    std::fs::write(
        locks.join("0123"),
        br#"{"version":1,"exclusive":false,"time_s":1000,"pid":1}"#,
    )
    .unwrap();
    std::fs::write(
        locks.join("4567"),
        format!(
            r#"{{"version":1,"exclusive":false,"time_s":{},"pid":1,"hostname":"elsewhere"}}"#,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        ),
    )
    .unwrap();
    let r = dev.run(&["--json", "prune"], "");
    assert_ne!(r.code, 0, "a live lock of another host blocks prune");
    assert!(r.stdout.contains("coffer unlock"), "{}", r.stdout);
    let v = dev.run(&["--json", "unlock"], "").ok().json();
    assert_eq!(v["removed"], serde_json::json!(["0123"]));
    assert_eq!(v["live"].as_array().unwrap().len(), 1);
    let r = dev.run(&["unlock", "--force"], "").ok();
    assert!(r.stderr.contains("warning"));
    assert_eq!(std::fs::read_dir(&locks).unwrap().count(), 0);
    dev.run(&["prune"], "").ok();
}

#[test]
fn sigterm_stops_a_backup_like_ctrl_c_releasing_the_lock_with_json_output() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (dev, repo) = device(root);
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    // A large sparse file: reading and chunking it takes seconds, storing it almost nothing.
    let f = std::fs::File::create(src.join("disk.img")).unwrap();
    f.set_len(64 << 30).unwrap();
    drop(f);
    let child = Command::new(common::coffer_bin())
        .args(["--config-dir", s(&dev.config), "--json", "backup", s(&src)])
        .envs(dev.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the backup holds its lock, then SIGTERM as systemd or timeout(1) would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_dir(repo.join("locks")).unwrap().count() == 0 {
        assert!(std::time::Instant::now() < deadline, "no lock appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["error"]["code"], "cancelled");
    assert_eq!(
        std::fs::read_dir(repo.join("locks")).unwrap().count(),
        0,
        "the lock was released"
    );
    assert_eq!(snapshot_ids(&dev).len(), 0);
}

#[test]
fn backup_dry_run_shows_what_would_upload_and_saves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (dev, _) = device(tmp.path());
    let data = sample_folder(tmp.path());
    let est = |dev: &Device| {
        dev.run(&["--json", "backup", "--dry-run", s(&data)], "")
            .ok()
            .json()
    };
    let first = est(&dev);
    assert_eq!(first["files"], 4);
    assert_eq!(first["bytes_to_upload"], first["bytes_total"]);
    assert!(snapshot_ids(&dev).is_empty(), "a dry run saves no snapshot");
    let human = dev.run(&["backup", "--dry-run", s(&data)], "").ok().stdout;
    assert!(
        human.contains("4 new or changed") && human.contains("at most"),
        "{human}"
    );

    dev.run(&["backup", s(&data)], "").ok();
    assert_eq!(est(&dev)["bytes_to_upload"], 0);
    std::fs::write(data.join("notes.txt"), vec![b'x'; 1234]).unwrap();
    let after = est(&dev);
    assert_eq!(
        (
            after["files_changed"].as_u64(),
            after["bytes_to_upload"].as_u64()
        ),
        (Some(1), Some(1234))
    );
}
