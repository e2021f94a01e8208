//! The vault's side of rollback detection and of the last guess, through the real `coffer`
//! binary against a real `coffer-vault`: a new device learns the repository head from the
//! vault and refuses a repository whose newest snapshots the storage dropped; the right
//! password on the last allowed guess connects and keeps password recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Device, Vault, assert_same_tree, sample_folder};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `coffer --json CMD --repo REPO --password-stdin VAULT_ARGS` (init or connect) on
/// `dev` with the password "correct horse" and expects success.
fn with_vault(dev: &Device, cmd: &str, repo: &std::path::Path, vault_args: &[&str]) {
    let mut args = vec!["--json", cmd, "--repo", s(repo), "--password-stdin"];
    args.extend(vault_args);
    dev.run(&args, "correct horse\n").ok();
}

/// A vault, an account's token, the sample folder, and an old device set up with the
/// password against a repository `cloud`.
struct Setup {
    vault: Vault,
    token: PathBuf,
    repo: PathBuf,
    src: PathBuf,
    old: Device,
}

impl Setup {
    fn new(root: &Path, vault: Vault, account: &str) -> Setup {
        let token = vault.token_file(root, account);
        let (repo, src) = (root.join("cloud"), sample_folder(root));
        let old = Device::new(root, "old");
        let setup = Setup {
            vault,
            token,
            repo,
            src,
            old,
        };
        with_vault(&setup.old, "init", &setup.repo, &setup.vault_args());
        setup
    }

    fn vault_args(&self) -> [&str; 4] {
        [
            "--vault",
            self.vault.url.as_str(),
            "--token-file",
            s(&self.token),
        ]
    }
}

#[test]
fn a_new_device_refuses_a_repository_rolled_back_below_the_head_kept_in_the_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let setup = Setup::new(root, Vault::start(root), "alice");
    let (repo, src, old, vault_args) = (&setup.repo, &setup.src, &setup.old, setup.vault_args());
    let first = old.run(&["--json", "backup", s(src)], "").ok().json();
    assert_eq!(first["vault_head_kept"], true);
    std::fs::write(src.join("new-message.txt"), b"hello again").unwrap();
    let second = old.run(&["--json", "backup", s(src)], "").ok().json();
    assert_eq!(second["vault_head_kept"], true);

    // The storage provider drops the newest snapshot: the repository now ends at the first.
    let newest = second["snapshot_id"].as_str().unwrap();
    std::fs::remove_file(repo.join("snapshots").join(newest)).unwrap();

    // A new device has never seen the repository, but the vault has kept its head.
    let new = Device::new(root, "new");
    with_vault(&new, "connect", repo, &vault_args);
    let out = root.join("restored");
    let refused = new.run(&["--json", "restore", "latest", "--target", s(&out)], "");
    assert_eq!(refused.err_code(), "rolled_back", "{}", refused.stdout);
    assert_eq!(refused.code, 6);
    assert!(
        !out.join("chat").exists(),
        "nothing restored from the old head"
    );
    // The user may still take the older data, knowingly.
    new.run(
        &["restore", "latest", "--allow-older", "--target", s(&out)],
        "",
    )
    .ok();
    assert!(out.join("chat").exists());
    assert!(!out.join("chat/new-message.txt").exists());
}

#[test]
fn the_right_password_on_the_last_guess_connects_and_keeps_password_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let vault = Vault::start_with(root, &["--max-guesses", "2", "--rate-limit", "0"]);
    let setup = Setup::new(root, vault, "bob");
    let (repo, src, old, vault_args) = (&setup.repo, &setup.src, &setup.old, setup.vault_args());
    old.run(&["backup", s(src)], "").ok();

    let mut connect = vec!["--json", "connect", "--repo", s(repo), "--password-stdin"];
    connect.extend(vault_args);
    let typo = Device::new(root, "typo");
    assert_eq!(
        typo.run(&connect, "correct hoarse\n").err_code(),
        "wrong_password"
    );
    // The last allowed guess, right: the key comes back, and the account keeps a record.
    let new = Device::new(root, "new");
    with_vault(&new, "connect", repo, &vault_args);
    let out = root.join("restored");
    new.run(&["restore", "latest", "--target", s(&out)], "")
        .ok();
    assert_same_tree(src, &out.join("chat"));
    let status = new.run(&["--json", "status"], "").ok().json();
    assert_eq!(status["vault"]["guesses_left"], 2, "{status}");
    // A third device still recovers with the password.
    with_vault(&Device::new(root, "third"), "connect", repo, &vault_args);
}

#[test]
fn a_new_device_connects_and_restores_right_after_a_key_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let setup = Setup::new(root, Vault::start(root), "carol");
    let (repo, src, old, vault_args) = (&setup.repo, &setup.src, &setup.old, setup.vault_args());
    let backup = old.run(&["--json", "backup", s(src)], "").ok().json();
    assert_eq!(backup["vault_head_kept"], true);

    // The vault keeps the head MAC'd under K; rotation replaces K. No backup follows.
    let rotated = old
        .run(
            &["--json", "rotate-key", "--password-stdin"],
            "correct horse\n",
        )
        .ok()
        .json();
    assert_eq!(rotated["vault_updated"], true, "{rotated}");
    assert_eq!(rotated["vault_head_kept"], true, "{rotated}");

    // A new device gets the new key from the vault and must read the head under it.
    let new = Device::new(root, "new");
    with_vault(&new, "connect", repo, &vault_args);
    let out = root.join("restored");
    new.run(&["restore", "latest", "--target", s(&out)], "")
        .ok();
    assert_same_tree(src, &out.join("chat"));
    // The head the vault kept still guards the new device: dropping the snapshot now is
    // a rollback for it, as before the rotation.
    let id = backup["snapshot_id"].as_str().unwrap();
    std::fs::remove_file(repo.join("snapshots").join(id)).unwrap();
    let refused = new.run(&["--json", "snapshots"], "");
    assert_eq!(refused.err_code(), "rolled_back", "{}", refused.stdout);
}
