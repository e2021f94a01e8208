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
