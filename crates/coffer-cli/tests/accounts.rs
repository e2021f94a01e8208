//! The account comes from the token, and a new password has a minimum length.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Device, Vault};

#[test]
fn the_account_is_the_tokens_and_short_passwords_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let vault = Vault::start(root);
    let alice = vault.token_file(root, "alice");
    let repo = root.join("cloud");
    let r = |d: &Device, extra: &[&str], stdin: &str| {
        let mut args = vec![
            "--json",
            "init",
            "--repo",
            repo.to_str().unwrap(),
            "--password-stdin",
            "--vault",
            vault.url.as_str(),
            "--token-file",
            alice.to_str().unwrap(),
        ];
        args.extend(extra);
        d.run(&args, stdin)
    };
    let dev = Device::new(root, "dev");
    // carol with alice's token: refused before anything is created or sent.
    let res = r(&dev, &["--account", "carol"], "long enough\n");
    assert_eq!((res.err_code().as_str(), res.code), ("account_mismatch", 2));
    let msg = res.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("alice") && msg.contains("carol"), "{msg}");
    assert!(!dev.config.join("config.json").exists());
    // Too short: refused with the reason.
    let res = r(&dev, &[], "abcde\n");
    assert_eq!(
        (res.err_code().as_str(), res.code),
        ("password_too_short", 2)
    );
    assert!(
        res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("6 characters")
    );
    assert!(!repo.exists(), "nothing was created");
    // No --account: the token's subject is used.
    let v = r(&dev, &[], "long enough\n").ok().json();
    assert_eq!(v["vault"]["account"], "alice");
    let st = dev.run(&["--json", "status"], "").ok().json();
    assert_eq!(st["vault"]["account"], "alice");
    // A second device setting alice up anew is told to connect; nothing is created.
    let other = Device::new(root, "other");
    let res = r(&other, &[], "long enough\n");
    assert_eq!((res.err_code().as_str(), res.code), ("account_in_use", 1));
    assert!(!other.config.join("config.json").exists());
    let res = dev.run(&["--json", "change-password", "--password-stdin"], "x\n");
    assert_eq!(res.err_code(), "password_too_short");
    // A token of another account later: refused, not answered for bob.
    let bob = vault.token_file(root, "bob");
    let res = dev.run(
        &["--json", "--token-file", bob.to_str().unwrap(), "status"],
        "",
    );
    let st = if res.code == 0 {
        res.json()
    } else {
        res.json()["error"].clone()
    };
    assert!(
        st.to_string().contains("account_mismatch") || st.to_string().contains("does not match"),
        "{st}"
    );
}

/// A registration the vault refuses after the device is set up (here: rate limited) says
/// so in the error itself (`registration_pending`), with the registration's own code and
/// the change-password hint; the CLI no longer re-reads the configuration to find out.
#[test]
fn a_failed_registration_is_reported_as_pending_by_the_error_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // One register/start or recover/start per account per minute.
    let vault = Vault::start_with(root, &["--rate-limit", "1"]);
    let alice = vault.token_file(root, "alice");
    let dev = Device::new(root, "dev");
    let init = |d: &Device, repo: &str| {
        d.run(
            &[
                "--json",
                "--token-file",
                alice.to_str().unwrap(),
                "init",
                "--repo",
                repo,
                "--password-stdin",
                "--vault",
                vault.url.as_str(),
            ],
            "long enough\n",
        )
    };
    let first = root.join("first");
    init(&dev, first.to_str().unwrap()).ok();
    dev.run(
        &[
            "--json",
            "--token-file",
            alice.to_str().unwrap(),
            "disable",
            "--yes",
        ],
        "",
    )
    .ok();
    // The record is gone, so a new setup may register, but the minute's allowance is
    // spent: the repository, key and configuration exist, the vault holds nothing.
    let second = root.join("second");
    let res = init(&dev, second.to_str().unwrap());
    assert_eq!((res.err_code().as_str(), res.code), ("rate_limited", 5));
    let e = res.json()["error"].clone();
    assert_eq!(e["registration_pending"], true, "{e}");
    assert!(
        e["hint"].as_str().unwrap().contains("change-password"),
        "{e}"
    );
    assert!(dev.config.join("config.json").exists());
    let st = dev.run(&["--json", "status"], "").ok().json();
    assert_eq!(st["vault"]["stale"], true, "{st}");
}
