//! End-to-end tests of the vault over real HTTP on loopback with a real redb file.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use coffer_vault_client::{KsfProfile, VaultClient, VaultError};
use common::*;

const P: KsfProfile = KsfProfile::TestCheap;

#[test]
fn register_then_recover_returns_the_same_key() {
    let (tmp, v) = vault(&[]);
    let c = VaultClient::new(&v.url, &token(tmp.path(), "alice", "1h")).unwrap();
    assert_eq!(
        ureq::get(format!("{}/healthz", v.url))
            .call()
            .unwrap()
            .status(),
        200
    );
    assert!(!c.status().unwrap().exists);
    let key = [0x5au8; 32];
    c.register(b"correct horse", &key, P).unwrap();
    assert_eq!(*c.recover(b"correct horse").unwrap(), key);
    let s = c.status().unwrap();
    assert_eq!(
        (s.exists, s.guesses_left, s.max_guesses),
        (true, Some(10), 10)
    );
    // A live record goes only with proof of its key (owner_proof.rs tests the refusals).
    c.delete(Some(&key)).unwrap();
    assert!(matches!(c.delete(None), Err(VaultError::NoRecord)));
    assert!(!c.status().unwrap().exists);
}

#[test]
fn ten_wrong_guesses_destroy_the_record() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let c = VaultClient::new(&v.url, &token(tmp.path(), "bob", "1h")).unwrap();
    let key = [9u8; 32];
    c.register(b"right", &key, P).unwrap();
    for left in [9, 8, 7] {
        assert!(
            matches!(c.recover(b"wrong"), Err(VaultError::WrongPassword { guesses_left }) if guesses_left == left)
        );
    }
    assert_eq!(c.status().unwrap().guesses_left, Some(7));
    assert_eq!(*c.recover(b"right").unwrap(), key);
    assert_eq!(
        c.status().unwrap().guesses_left,
        Some(10),
        "a verified KE3 resets the count"
    );
    for i in 0..10 {
        match c.recover(b"wrong") {
            Err(VaultError::WrongPassword { guesses_left }) => assert_eq!(guesses_left, 9 - i),
            other => panic!("guess {i}: {other:?}"),
        }
    }
    // The tenth wrong guess destroyed the record in its own commit.
    let s = c.status().unwrap();
    assert!(!s.exists && s.destroyed && s.guesses_left.is_none());
    let err = c.recover(b"right").unwrap_err();
    assert!(matches!(err, VaultError::KeyDestroyed), "{err:?}");
    assert!(err.to_string().contains("destroyed after too many wrong"));
    assert!(matches!(c.recover(b"right"), Err(VaultError::KeyDestroyed)));
    let s = c.status().unwrap();
    assert!(!s.exists && s.destroyed);
}

#[test]
fn last_guess_is_still_honoured() {
    let (tmp, v) = vault(&["--rate-limit", "0", "--max-guesses", "3"]);
    let c = VaultClient::new(&v.url, &token(tmp.path(), "carol", "1h")).unwrap();
    c.register(b"right", &[1u8; 32], P).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            c.recover(b"wrong"),
            Err(VaultError::WrongPassword { .. })
        ));
    }
    assert_eq!(
        *c.recover(b"right").unwrap(),
        [1u8; 32],
        "the third and last guess may be right"
    );
    // ... but it destroyed the record all the same: the key left it with that guess.
    // The SDK's connect registers again with the password it just proved.
    assert!(c.status().unwrap().destroyed);
}

#[test]
fn concurrent_guesses_never_exceed_the_limit() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let tok = token(tmp.path(), "dave", "1h");
    VaultClient::new(&v.url, &tok)
        .unwrap()
        .register(b"right", &[3u8; 32], P)
        .unwrap();
    let wrong = Arc::new(AtomicU32::new(0));
    let destroyed = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let (url, tok, wrong, destroyed) =
                (v.url.clone(), tok.clone(), wrong.clone(), destroyed.clone());
            std::thread::spawn(move || {
                match VaultClient::new(&url, &tok).unwrap().recover(b"nope") {
                    Err(VaultError::WrongPassword { .. }) => wrong.fetch_add(1, Ordering::SeqCst),
                    Err(VaultError::KeyDestroyed) => destroyed.fetch_add(1, Ordering::SeqCst),
                    other => panic!("unexpected {other:?}"),
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(wrong.load(Ordering::SeqCst), 10, "exactly max_guesses KE2s");
    assert_eq!(destroyed.load(Ordering::SeqCst), 190);
    assert_eq!(metric(&v.metrics, "coffer_vault_ke2_total"), 10);
}

#[test]
fn sigkill_after_guess_commit() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    let tok = token(tmp.path(), "erin", "1h");
    {
        let v = start(tmp.path(), &[], &[]);
        VaultClient::new(&v.url, &tok)
            .unwrap()
            .register(b"right", &[4u8; 32], P)
            .unwrap();
    }
    let mut v = start(
        tmp.path(),
        &[],
        &[("COFFER_VAULT_FAILPOINT", "hang-after-guess-commit")],
    );
    let (url, t2) = (v.url.clone(), tok.clone());
    std::thread::spawn(move || {
        let _ = VaultClient::new(&url, &t2).unwrap().recover(b"wrong");
    });
    loop {
        let line = v
            .stderr
            .recv_timeout(Duration::from_secs(30))
            .expect("failpoint marker");
        if line.contains("FAILPOINT hang-after-guess-commit") {
            break;
        }
    }
    v.child.kill().unwrap(); // SIGKILL: no graceful anything
    v.child.wait().unwrap();
    drop(v);
    let v = start(tmp.path(), &[], &[]);
    let s = VaultClient::new(&v.url, &tok).unwrap().status().unwrap();
    assert_eq!(
        s.guesses_left,
        Some(9),
        "the committed guess survived SIGKILL"
    );
}

#[test]
fn raw_database_holds_no_secret() {
    let (tmp, v) = vault(&[]);
    let account = "account-id-zq8x3v";
    let password = b"password-Kq7mWv9p";
    let key = [0xc3u8; 32];
    let c = VaultClient::new(&v.url, &token(tmp.path(), account, "1h")).unwrap();
    c.register(password, &key, P).unwrap();
    assert_eq!(*c.recover(password).unwrap(), key);
    drop(v); // closes the database
    let db = std::fs::read(tmp.path().join("vault.redb")).unwrap();
    let has = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(!has(&key), "raw key in the database");
    assert!(!has(&key[..16]));
    assert!(!has(password), "password in the database");
    assert!(!has(account.as_bytes()), "account id in the database");
    assert!(db.len() > 1000);
}

#[test]
fn one_account_cannot_touch_another() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let a = VaultClient::new(&v.url, &token(tmp.path(), "acct-a", "1h")).unwrap();
    let b = VaultClient::new(&v.url, &token(tmp.path(), "acct-b", "1h")).unwrap();
    a.register(b"pw-a", &[0xaa; 32], P).unwrap();
    // B sees no record, cannot recover A's key with A's password, cannot delete it.
    assert!(!b.status().unwrap().exists);
    assert!(matches!(
        b.recover(b"pw-a"),
        Err(VaultError::WrongPassword { .. })
    ));
    assert!(matches!(b.delete(None), Err(VaultError::NoRecord)));
    // B registering its own record leaves A's untouched.
    b.register(b"pw-b", &[0xbb; 32], P).unwrap();
    assert_eq!(a.status().unwrap().guesses_left, Some(10));
    assert_eq!(*a.recover(b"pw-a").unwrap(), [0xaa; 32]);
    assert_eq!(*b.recover(b"pw-b").unwrap(), [0xbb; 32]);
    b.delete(Some(&[0xbb; 32])).unwrap();
    assert_eq!(*a.recover(b"pw-a").unwrap(), [0xaa; 32]);
}

#[test]
fn a_login_finishes_after_the_vault_is_killed_and_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    let tok = token(tmp.path(), "frank", "1h");
    let ttl = ["--login-ttl", "2"];
    let mut v = start(tmp.path(), &ttl, &[]);
    let c = VaultClient::new(&v.url, &tok).unwrap();
    c.register(b"right", &[6u8; 32], P).unwrap();
    // Another account cannot finish a login (the ticket is bound to the credential).
    let other = VaultClient::new(&v.url, &token(tmp.path(), "mallory", "1h")).unwrap();
    match other.finish_recovery(c.start_recovery(b"right").unwrap()) {
        Err(VaultError::BadRequest { message }) => {
            assert!(message.contains("not a login ticket"), "{message}")
        }
        r => panic!("expected no_login, got {r:?}"),
    }
    // The login state is in the ticket the client holds, not in the process.
    let pending = c.start_recovery(b"right").unwrap();
    v.child.kill().unwrap();
    v.child.wait().unwrap();
    drop(v);
    let v = start(tmp.path(), &ttl, &[]);
    let c = VaultClient::new(&v.url, &tok).unwrap();
    assert_eq!(*c.finish_recovery(pending).unwrap(), [6u8; 32]);
    assert_eq!(c.status().unwrap().guesses_left, Some(10), "count reset");
    // Past --login-ttl the ticket is refused, with the reason.
    let late = c.start_recovery(b"right").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    match c.finish_recovery(late) {
        Err(VaultError::BadRequest { message }) => {
            assert!(message.contains("expired"), "{message}")
        }
        r => panic!("expected an expired login, got {r:?}"),
    }
}

#[test]
fn serve_without_key_file_exits_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("coffer-vault init"), "{err}");
    assert!(!tmp.path().join("vault.key").exists());
    // init refuses to run twice.
    init(tmp.path());
    let again = std::process::Command::new(BIN)
        .args(["init", "--data"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn sigterm_shuts_down_gracefully_and_records_persist() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    let tok = token(tmp.path(), "frank", "1h");
    let mut v = start(tmp.path(), &[], &[]);
    VaultClient::new(&v.url, &tok)
        .unwrap()
        .register(b"pw", &[6u8; 32], P)
        .unwrap();
    // std has no SIGTERM (Child::kill is SIGKILL), and unsafe libc calls are forbidden.
    let st = std::process::Command::new("kill")
        .args(["-TERM", &v.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = v.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful exit, got {status:?}");
    drop(v);
    let v = start(tmp.path(), &[], &[]);
    assert_eq!(
        *VaultClient::new(&v.url, &tok)
            .unwrap()
            .recover(b"pw")
            .unwrap(),
        [6u8; 32]
    );
}

#[test]
fn rate_limit_applies_per_account() {
    let (tmp, v) = vault(&["--rate-limit", "3"]);
    let a = VaultClient::new(&v.url, &token(tmp.path(), "gina", "1h")).unwrap();
    let b = VaultClient::new(&v.url, &token(tmp.path(), "hank", "1h")).unwrap();
    a.register(b"pw", &[1; 32], P).unwrap(); // 1 of 3
    a.recover(b"pw").unwrap(); // 2
    a.recover(b"pw").unwrap(); // 3
    match a.recover(b"pw") {
        Err(VaultError::RateLimited {
            retry_after_secs: Some(s),
        }) => assert!(s >= 1),
        other => panic!("expected rate limit, got {other:?}"),
    }
    assert_eq!(
        a.status().unwrap().guesses_left,
        Some(10),
        "a limited call spends no guess"
    );
    b.register(b"pw", &[2; 32], P).unwrap(); // another account is not limited
}
