//! End-to-end: the real `coffer` binary against a real `coffer-vault` on loopback, with
//! one config folder per device. COFFER_KSF_PROFILE=argon2id-test keeps Argon2id cheap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Device, Vault, assert_same_tree, sample_folder};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn old_device_to_new_device_password_recovery_key_change_rotate_disable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let vault = Vault::start(root);
    let token = vault.token_file(root, "alice");
    let repo = root.join("cloud");
    let src = sample_folder(root);
    let vault_args = [
        "--vault",
        vault.url.as_str(),
        "--account",
        "alice",
        "--token-file",
        s(&token),
    ];

    // Old device: init with a password, back up.
    let old = Device::new(root, "old");
    let mut args = vec!["--json", "init", "--repo", s(&repo), "--password-stdin"];
    args.extend(vault_args);
    let init = old.run(&args, "correct horse\n").ok().json();
    assert_eq!(init["vault"]["account"], "alice");
    assert!(
        init.get("recovery_key").is_none(),
        "vault setups do not print the key at init"
    );
    let b1 = old.run(&["backup", s(&src), "--json"], "").ok().json();
    let snap1 = b1["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(b1["files"], 4);

    // New device: connect with only the password, restore, compare bytes.
    let new = Device::new(root, "new");
    let mut args = vec!["connect", "--repo", s(&repo), "--password-stdin", "--json"];
    args.extend(vault_args);
    let c = new.run(&args, "correct horse\n").ok().json();
    assert_eq!(c["key_from"], "vault");
    let out1 = root.join("restore-new");
    new.run(&["restore", "latest", "--target", s(&out1)], "")
        .ok();
    assert_same_tree(&src, &out1.join("chat"));

    // The recovery key, shown after the password, sets up a third device without the vault.
    let rk = old
        .run(
            &["--json", "recovery-key", "--password-stdin"],
            "correct horse\n",
        )
        .ok()
        .json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rk.split('-').count(), 16);
    let third = Device::new(root, "third");
    // Any case and spaces are accepted.
    let typed = rk.replace('-', " ").to_uppercase();
    third
        .run(
            &[
                "connect",
                "--repo",
                s(&repo),
                "--recovery-key-stdin",
                "--json",
            ],
            &typed,
        )
        .ok();
    let out3 = root.join("restore-third");
    third.run(&["restore", "--target", s(&out3)], "").ok();
    assert_same_tree(&src, &out3.join("chat"));

    // Change the password: the old one then fails (spending one guess), the new one works.
    old.run(
        &["change-password", "--password-stdin", "--json"],
        "battery staple\n",
    )
    .ok();
    let fresh = Device::new(root, "fresh");
    let mut args = vec!["--json", "connect", "--repo", s(&repo), "--password-stdin"];
    args.extend(vault_args);
    let r = fresh.run(&args, "correct horse\n");
    assert_eq!(r.err_code(), "wrong_password");
    assert_eq!(r.json()["error"]["guesses_left"], 9);
    assert_eq!(r.code, 3);
    assert!(
        !fresh.config.join("config.json").exists(),
        "a failed connect saves nothing"
    );
    fresh.run(&args, "battery staple\n").ok();

    // Rotate the key on the old device, back up changed data: both snapshots restore,
    // on the old device and on a device connecting with the password afterwards.
    old.run(
        &["rotate-key", "--password-stdin", "--json"],
        "battery staple\n",
    )
    .ok();
    std::fs::write(src.join("notes.txt"), b"written after the rotation\n").unwrap();
    let snap2 = old.run(&["backup", s(&src), "--json"], "").ok().json()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let after = Device::new(root, "after-rotation");
    let mut args = vec!["connect", "--repo", s(&repo), "--password-stdin"];
    args.extend(vault_args);
    after.run(&args, "battery staple\n").ok();
    let o1 = root.join("rot-1");
    let o2 = root.join("rot-2");
    after
        .run(&["restore", &snap1[..12], "--target", s(&o1)], "")
        .ok();
    after
        .run(&["restore", &snap2[..12], "--target", s(&o2)], "")
        .ok();
    assert_same_tree(&src, &o2.join("chat"));
    assert_eq!(
        std::fs::read(o1.join("chat/notes.txt")).unwrap(),
        b"hello from the old phone\n"
    );
    assert_eq!(
        std::fs::read(o1.join("chat/msgstore.db")).unwrap(),
        std::fs::read(src.join("msgstore.db")).unwrap()
    );
    // The device connected with the pre-rotation key no longer opens the repository.
    assert_eq!(
        third.run(&["--json", "snapshots"], "").err_code(),
        "local_key_mismatch"
    );

    // Disable: the vault forgets the key, this device forgets its key and config; the
    // backups stay and the (new) recovery key still opens them.
    let rk2 = old
        .run(
            &["--json", "recovery-key", "--password-stdin"],
            "battery staple\n",
        )
        .ok()
        .json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rk, rk2);
    let d = old.run(&["disable", "--yes", "--json"], "").ok().json();
    assert_eq!(d["vault_record_deleted"], true);
    assert!(!old.config.join("key").exists() && !old.config.join("config.json").exists());
    let late = Device::new(root, "late");
    let mut args = vec!["--json", "connect", "--repo", s(&repo), "--password-stdin"];
    args.extend(vault_args);
    assert_eq!(
        late.run(&args, "battery staple\n").err_code(),
        "key_destroyed"
    );
    late.run(
        &["connect", "--repo", s(&repo), "--recovery-key-stdin"],
        &rk2,
    )
    .ok();
    assert_eq!(
        late.run(&["--json", "snapshots"], "").ok().json()["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn ten_wrong_passwords_destroy_the_key_but_the_recovery_key_still_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let vault = Vault::start(root);
    let token = vault.token_file(root, "bob");
    let repo = root.join("cloud");
    let src = sample_folder(root);
    let vault_args = [
        "--vault",
        vault.url.as_str(),
        "--account",
        "bob",
        "--token-file",
        s(&token),
    ];

    let old = Device::new(root, "old");
    let mut args = vec!["init", "--repo", s(&repo), "--password-stdin"];
    args.extend(vault_args);
    old.run(&args, "right-pw\n").ok();
    old.run(&["backup", s(&src)], "").ok();
    let rk = old
        .run(
            &["recovery-key", "--password-stdin", "--json"],
            "right-pw\n",
        )
        .ok()
        .json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_string();

    let thief = Device::new(root, "thief");
    let mut args = vec!["--json", "connect", "--repo", s(&repo), "--password-stdin"];
    args.extend(vault_args);
    for i in 1..=9u64 {
        let r = thief.run(&args, &format!("guess-{i}\n"));
        assert_eq!(r.err_code(), "wrong_password", "guess {i}");
        assert_eq!(r.json()["error"]["guesses_left"], 10 - i, "guess {i}");
    }
    // The last allowed guess is announced before it is spent (human mode).
    let mut human = vec!["connect", "--repo", s(&repo), "--password-stdin"];
    human.extend(vault_args);
    let last = thief.run(&human, "guess-10\n");
    assert_ne!(last.code, 0);
    assert!(
        last.stderr.contains("LAST allowed guess"),
        "stderr: {}",
        last.stderr
    );
    // Now even the right password cannot recover the key.
    let r = thief.run(&args, "right-pw\n");
    assert_eq!(r.err_code(), "key_destroyed");
    assert_eq!(r.code, 4);
    let st = old.run(&["status", "--json"], "").ok().json();
    assert_eq!(st["vault"]["exists"], false);

    // The recovery key does not depend on the vault.
    let new = Device::new(root, "new");
    new.run(
        &["connect", "--repo", s(&repo), "--recovery-key-stdin"],
        &format!("{rk}\n"),
    )
    .ok();
    let out = root.join("out");
    new.run(&["restore", "latest", "--target", s(&out)], "")
        .ok();
    assert_same_tree(&src, &out.join("chat"));
}

#[test]
fn recovery_key_only_setup_and_error_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("cloud");
    let src = sample_folder(root);
    let old = Device::new(root, "old");

    let init = old
        .run(
            &["init", "--repo", s(&repo), "--recovery-key-only", "--json"],
            "",
        )
        .ok()
        .json();
    let rk = init["recovery_key"].as_str().unwrap().to_string();
    let groups: Vec<&str> = rk.split('-').collect();
    assert_eq!(groups.len(), 16);
    assert!(groups.iter().all(|g| g.len() == 4));
    let human_key = old.run(&["recovery-key"], "").ok().stdout;
    assert!(human_key.contains(&rk));
    old.run(&["backup", s(&src)], "").ok();
    let st = old.run(&["status"], "").ok().stdout;
    assert!(
        st.contains("recovery-key-only") && st.contains("mode 0600"),
        "{st}"
    );

    let new = Device::new(root, "new");
    let connect = [
        "--json",
        "connect",
        "--repo",
        s(&repo),
        "--recovery-key-stdin",
    ];
    // One digit changed: does not match this repository (exit 3).
    let mut wrong = rk.clone();
    let flipped = if wrong.starts_with('0') { "1" } else { "0" };
    wrong.replace_range(0..1, flipped);
    let r = new.run(&connect, &wrong);
    assert_eq!((r.err_code().as_str(), r.code), ("wrong_recovery_key", 3));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not match this repository")
    );
    // Malformed: says what is wrong, never echoes the input.
    let r = new.run(&connect, &rk[..20]);
    assert_eq!(r.err_code(), "invalid_recovery_key");
    assert!(!r.stdout.contains(&rk[..9]));
    // Human form: an error line and a hint line on stderr, nothing on stdout.
    let r = new.run(&connect[1..], &wrong);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr
            .starts_with("error: this recovery key does not match this repository\nhint: "),
        "{}",
        r.stderr
    );

    new.run(&connect, &rk).ok();
    let out = root.join("out");
    new.run(&["restore", "--target", s(&out), "--json"], "")
        .ok();
    assert_same_tree(&src, &out.join("chat"));
    new.run(&["check", "--read-data"], "").ok();

    // Usage errors and missing setups are JSON too, with --json before or after the command.
    let r = Device::new(root, "x").run(&["connect", "--json"], "");
    assert_eq!((r.err_code().as_str(), r.code), ("usage", 2));
    let r = Device::new(root, "x").run(&["snapshots", "--json"], "");
    assert_eq!((r.err_code().as_str(), r.code), ("config_missing", 7));
    // A token that is not a JWT for a vault: unauthorized, before any network traffic.
    let tok = root.join("tok");
    std::fs::write(&tok, "x.y.z\n").unwrap();
    let unreachable = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let connect_pw = |tok: &std::path::Path| {
        Device::new(root, "y").run(
            &[
                "--json",
                "connect",
                "--repo",
                s(&repo),
                "--vault",
                &unreachable,
                "--account",
                "a",
                "--token-file",
                s(tok),
                "--password-stdin",
            ],
            "pw\n",
        )
    };
    let r = connect_pw(&tok);
    assert_eq!((r.err_code().as_str(), r.code), ("unauthorized", 5));
    // A well-formed token, but nobody listens at the vault URL.
    std::fs::write(&tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIiwiYXVkIjoiMDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmYiLCJleHAiOjQxMDI0NDQ4MDB9.c2ln\n").unwrap();
    let r = connect_pw(&tok);
    assert_eq!((r.err_code().as_str(), r.code), ("vault_unreachable", 5));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&unreachable)
    );
    // No terminal and no --password-stdin: a usage error, not a hang.
    let r = Device::new(root, "z").run(
        &[
            "--json",
            "init",
            "--repo",
            s(&root.join("r2")),
            "--vault",
            "http://127.0.0.1:1",
            "--account",
            "a",
            "--token-file",
            s(&tok),
        ],
        "",
    );
    assert_eq!(r.err_code(), "usage");

    // Disable with --delete-backups removes the repository.
    new.run(&["disable", "--yes", "--delete-backups"], "").ok();
    let again = Device::new(root, "again");
    assert_eq!(again.run(&connect, &rk).err_code(), "repository_not_found");
}

#[test]
fn ctrl_c_stops_a_backup_cleanly_and_the_next_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("cloud");
    let src = sample_folder(root);
    // Enough incompressible data that the backup is still running when Ctrl-C arrives.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..6_000_000)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    std::fs::write(src.join("video.mp4"), &big).unwrap();
    let dev = Device::new(root, "dev");
    dev.run(&["init", "--repo", s(&repo), "--recovery-key-only"], "")
        .ok();

    // SIGINT (what a terminal's Ctrl-C sends; std has no signal API, kill(1) does) at a
    // few delays: each run is either cancelled cleanly (130, "cancelled"), finished (0), or
    // killed before the handler was installed (no exit code); at least one must be a
    // clean cancellation, and the repository must stay valid in every case.
    let mut cancelled = 0;
    for delay_ms in [60u64, 120, 240] {
        let child = std::process::Command::new(common::coffer_bin())
            .args(["--config-dir", s(&dev.config), "--json", "backup", s(&src)])
            .env("COFFER_KSF_PROFILE", "argon2id-test")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        match out.status.code() {
            Some(130) => {
                let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
                assert_eq!(v["error"]["code"], "cancelled");
                cancelled += 1;
            }
            Some(0) | None => {}
            other => panic!("backup exited with {other:?}: {stdout}"),
        }
        dev.run(&["check"], "").ok();
    }
    assert!(cancelled > 0, "no run was cancelled cleanly");
    // The repository is valid and the next run completes.
    dev.run(&["check"], "").ok();
    dev.run(&["backup", s(&src)], "").ok();
    let out_dir = root.join("out");
    dev.run(&["restore", "--target", s(&out_dir)], "").ok();
    assert_same_tree(&src, &out_dir.join("chat"));
}
