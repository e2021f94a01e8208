//! Where `coffer` keeps the device's backup key: the OS keyring when one answers, else a
//! 0600 file in the config folder; init, connect, status, rotate-key and disable say which
//! and act on it. Real binaries; a real Secret Service (gnome-keyring on a private D-Bus
//! session bus) where its Debian packages are installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{Device, assert_same_tree, sample_folder};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn hex_digits(recovery_key: &Value) -> String {
    recovery_key.as_str().unwrap().replace('-', "")
}

/// `coffer --json init --repo REPO --recovery-key-only` on `dev`; must succeed.
fn init_json(dev: &Device, repo: &Path) -> Value {
    dev.run(
        &["--json", "init", "--repo", s(repo), "--recovery-key-only"],
        "",
    )
    .ok()
    .json()
}

fn read_config(dev: &Device) -> Value {
    serde_json::from_slice(&std::fs::read(dev.config.join("config.json")).unwrap()).unwrap()
}

#[test]
fn without_a_keyring_the_key_falls_back_to_a_0600_file_and_every_command_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let src = sample_folder(root);
    let repo = root.join("repo");
    let dev = Device::new(root, "dev");
    let key_file = dev.config.join("key");

    let init = init_json(&dev, &repo);
    assert_eq!(init["key_store"], "file", "{init}");
    let reason = init["key_store_fallback_reason"].as_str().unwrap();
    assert!(!reason.is_empty());
    assert!(
        init["key_store_location"]
            .as_str()
            .unwrap()
            .contains(s(&key_file)),
        "{init}"
    );
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(stored.trim(), hex_digits(&init["recovery_key"]));
    let cfg = read_config(&dev);
    assert_eq!(cfg["key_store"], "file");
    assert!(cfg.get("keyring_user").is_none(), "{cfg}");

    let status = dev.run(&["--json", "status"], "").ok().json();
    assert_eq!(status["key_store"], "file", "{status}");
    let human = dev.run(&["status"], "").ok().stdout;
    assert!(
        human.contains(&format!("key store:   file {}", key_file.display())),
        "{human}"
    );

    dev.run(&["backup", s(&src)], "").ok();
    let rot = dev.run(&["--json", "rotate-key"], "").ok().json();
    assert_eq!(rot["key_store"], "file", "{rot}");
    let rotated = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(rotated.trim(), hex_digits(&rot["recovery_key"]));
    assert_ne!(
        rotated, stored,
        "rotate-key must replace the key in the file"
    );
    assert!(!dev.config.join("key.pending").exists());
    let out = root.join("out");
    dev.run(&["restore", "latest", "--target", s(&out)], "")
        .ok();
    assert_same_tree(&src, &out.join("chat"));

    let off = dev.run(&["--json", "disable", "--yes"], "").ok().json();
    assert_eq!(off["key_store"], "file", "{off}");
    assert!(!key_file.exists() && !dev.config.join("config.json").exists());
}

#[test]
fn forced_stores_os_keyring_fails_cleanly_and_file_skips_the_keyring() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("repo");

    // Demanding the keyring where none answers fails before anything exists: no
    // repository whose key would be lost, no configuration.
    let dev = Device::new(root, "dev");
    let r = dev.run(
        &[
            "--json",
            "--key-store",
            "os-keyring",
            "init",
            "--repo",
            s(&repo),
            "--recovery-key-only",
        ],
        "",
    );
    assert_eq!(r.err_code(), "keyring_unavailable", "{}", r.stdout);
    assert!(
        r.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("COFFER_KEY_STORE=file")
    );
    assert!(!repo.exists() && !dev.config.join("config.json").exists());

    // COFFER_KEY_STORE=file: straight to the file, no keyring attempt to report.
    let dev = dev.with_env("COFFER_KEY_STORE", "file");
    let init = init_json(&dev, &repo);
    assert_eq!(init["key_store"], "file");
    assert!(init.get("key_store_fallback_reason").is_none(), "{init}");

    // A new device connecting with the recovery key falls back the same way.
    let other = Device::new(root, "other");
    let rk = init["recovery_key"].as_str().unwrap();
    let con = other
        .run(
            &[
                "--json",
                "connect",
                "--repo",
                s(&repo),
                "--recovery-key-stdin",
            ],
            rk,
        )
        .ok()
        .json();
    assert_eq!(con["key_store"], "file", "{con}");
    assert!(con["key_store_fallback_reason"].is_string(), "{con}");
    assert_eq!(
        std::fs::read_to_string(other.config.join("key"))
            .unwrap()
            .trim(),
        hex_digits(&init["recovery_key"])
    );

    let bad = Device::new(root, "bad").with_env("COFFER_KEY_STORE", "keychain");
    let r = bad.run(&["status"], "");
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// A private D-Bus session bus whose Secret Service is gnome-keyring, unlocked with a
/// known password; keyrings and sockets live under the test's temporary folder.
struct SecretService {
    bus: Child,
    address: String,
}

impl SecretService {
    /// `None` (test skipped) when the tools are missing and `COFFER_TEST_SECRET_SERVICE`
    /// is unset; `COFFER_TEST_SECRET_SERVICE=1` makes missing tools a failure, `=0` skips.
    fn start(root: &Path) -> Option<SecretService> {
        let want = std::env::var("COFFER_TEST_SECRET_SERVICE").ok();
        if want.as_deref() == Some("0") {
            return None;
        }
        let have = |tool: &str| {
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        };
        if !(have("dbus-daemon") && have("gnome-keyring-daemon")) {
            assert!(
                want.is_none(),
                "COFFER_TEST_SECRET_SERVICE=1 but dbus-daemon or gnome-keyring-daemon is missing: apt-get install dbus-daemon gnome-keyring"
            );
            eprintln!(
                "skipped: no dbus-daemon or gnome-keyring-daemon (apt-get install dbus-daemon gnome-keyring)"
            );
            return None;
        }
        let home = root.join("ss-home");
        let run = root.join("ss-run");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let env = session_env(&home, &run);
        // The bus starts gnome-keyring on the first Secret Service call (D-Bus activation)
        // with the bus's own environment: hence HOME and XDG_* on the bus too.
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:path={}", run.join("bus").display()))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        // Creates the login keyring with this password and leaves it unlocked, so no
        // prompt ever waits for a person.
        let mut unlock = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        unlock
            .stdin
            .take()
            .unwrap()
            .write_all(b"coffer-test-keyring")
            .unwrap();
        assert!(unlock.wait().unwrap().success());
        Some(SecretService { bus, address })
    }

    fn device(&self, root: &Path, name: &str) -> Device {
        let home = root.join("ss-home");
        let mut d = Device::new(root, name).with_env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        d.env.extend(session_env(&home, &root.join("ss-run")));
        d
    }
}

fn session_env(home: &Path, run: &Path) -> Vec<(String, String)> {
    vec![
        ("HOME".into(), s(home).into()),
        ("XDG_DATA_HOME".into(), s(&home.join("data")).into()),
        ("XDG_RUNTIME_DIR".into(), s(run).into()),
    ]
}

impl Drop for SecretService {
    fn drop(&mut self) {
        // gnome-keyring-daemon exits by itself when its session bus goes away.
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

#[test]
fn with_a_secret_service_each_config_folder_keeps_its_key_in_the_keyring() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let Some(ss) = SecretService::start(root) else {
        return;
    };
    let src = sample_folder(root);
    let (repo_a, repo_b) = (root.join("repo-a"), root.join("repo-b"));
    let a = ss.device(root, "a");
    let b = ss.device(root, "b");

    let init_a = init_json(&a, &repo_a);
    assert_eq!(init_a["key_store"], "os-keyring", "{init_a}");
    assert!(init_a.get("key_store_fallback_reason").is_none());
    assert!(
        !a.config.join("key").exists(),
        "no key file beside a keyring"
    );
    let cfg = read_config(&a);
    let canonical: PathBuf = a.config.canonicalize().unwrap();
    assert_eq!(cfg["key_store"], "os-keyring");
    assert_eq!(cfg["keyring_user"], s(&canonical));

    // A second config folder on the same machine gets its own entry: both still open
    // their own repositories.
    let init_b = init_json(&b, &repo_b);
    assert_eq!(init_b["key_store"], "os-keyring");
    assert_ne!(init_a["recovery_key"], init_b["recovery_key"]);
    for d in [&a, &b] {
        let st = d.run(&["--json", "status"], "").ok().json();
        assert_eq!(st["key_store"], "os-keyring", "{st}");
        assert!(st["repository_error"].is_null(), "{st}");
    }
    let human = a.run(&["status"], "").ok().stdout;
    assert!(
        human.contains("key store:   OS keyring (service \"coffer\""),
        "{human}"
    );

    // rotate-key replaces the key in the keyring; old and new snapshots restore.
    a.run(&["backup", s(&src)], "").ok();
    let rot = a.run(&["--json", "rotate-key"], "").ok().json();
    assert_eq!(rot["key_store"], "os-keyring");
    assert!(!a.config.join("key").exists() && !a.config.join("key.pending").exists());
    a.run(&["backup", s(&src)], "").ok();
    let out = root.join("out-a");
    a.run(&["restore", "latest", "--target", s(&out)], "").ok();
    assert_same_tree(&src, &out.join("chat"));

    // A new device connecting with the new recovery key keeps it in the keyring too.
    let c = ss.device(root, "c");
    let con = c
        .run(
            &[
                "--json",
                "connect",
                "--repo",
                s(&repo_a),
                "--recovery-key-stdin",
            ],
            rot["recovery_key"].as_str().unwrap(),
        )
        .ok()
        .json();
    assert_eq!(con["key_store"], "os-keyring", "{con}");
    let out_c = root.join("out-c");
    c.run(&["restore", "latest", "--target", s(&out_c)], "")
        .ok();
    assert_same_tree(&src, &out_c.join("chat"));

    // disable deletes the keyring entry: putting the configuration back finds no key.
    let cfg_text = std::fs::read(a.config.join("config.json")).unwrap();
    let off = a.run(&["--json", "disable", "--yes"], "").ok().json();
    assert_eq!(off["key_store"], "os-keyring");
    std::fs::write(a.config.join("config.json"), cfg_text).unwrap();
    let r = a.run(&["--json", "status"], "");
    assert_eq!(r.err_code(), "keyring_error", "{}", r.stdout);
    // ... and only a's: b and c are untouched.
    for d in [&b, &c] {
        d.run(&["--json", "status"], "").ok();
        d.run(&["--json", "disable", "--yes"], "").ok();
    }
}
