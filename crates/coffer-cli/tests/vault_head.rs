//! The vault's side of rollback detection and of the last guess, through the real `coffer`
//! binary against a real `coffer-vault`: a new device learns the repository head from the
//! vault and refuses a repository whose newest snapshots the storage dropped; the right
//! password on the last allowed guess connects and keeps password recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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

#[test]
fn a_new_device_refuses_a_repository_rolled_back_below_the_head_kept_in_the_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let vault = Vault::start(root);
    let token = vault.token_file(root, "alice");
    let repo = root.join("cloud");
    let src = sample_folder(root);
    let vault_args = ["--vault", vault.url.as_str(), "--token-file", s(&token)];

    let old = Device::new(root, "old");
    with_vault(&old, "init", &repo, &vault_args);
    let first = old.run(&["--json", "backup", s(&src)], "").ok().json();
    assert_eq!(first["vault_head_kept"], true);
    std::fs::write(src.join("new-message.txt"), b"hello again").unwrap();
    let second = old.run(&["--json", "backup", s(&src)], "").ok().json();
    assert_eq!(second["vault_head_kept"], true);

    // The storage provider drops the newest snapshot: the repository now ends at the first.
    let newest = second["snapshot_id"].as_str().unwrap();
    std::fs::remove_file(repo.join("snapshots").join(newest)).unwrap();

    // A new device has never seen the repository, but the vault has kept its head.
    let new = Device::new(root, "new");
    with_vault(&new, "connect", &repo, &vault_args);
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
    let token = vault.token_file(root, "bob");
    let repo = root.join("cloud");
    let src = sample_folder(root);
    let vault_args = ["--vault", vault.url.as_str(), "--token-file", s(&token)];
    let old = Device::new(root, "old");
    with_vault(&old, "init", &repo, &vault_args);
    old.run(&["backup", s(&src)], "").ok();

    let mut connect = vec!["--json", "connect", "--repo", s(&repo), "--password-stdin"];
    connect.extend(vault_args);
    let typo = Device::new(root, "typo");
    assert_eq!(
        typo.run(&connect, "correct hoarse\n").err_code(),
        "wrong_password"
    );
    // The last allowed guess, right: the key comes back, and the account keeps a record.
    let new = Device::new(root, "new");
    with_vault(&new, "connect", &repo, &vault_args);
    let out = root.join("restored");
    new.run(&["restore", "latest", "--target", s(&out)], "")
        .ok();
    assert_same_tree(&src, &out.join("chat"));
    let status = new.run(&["--json", "status"], "").ok().json();
    assert_eq!(status["vault"]["guesses_left"], 2, "{status}");
    // A third device still recovers with the password.
    with_vault(&Device::new(root, "third"), "connect", &repo, &vault_args);
}
