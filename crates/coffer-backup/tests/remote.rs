//! Remote storage through real servers on loopback: WebDAV (wsgidav) and S3 (moto).
//!
//! The servers are Python programs: `python3 -m pip install wsgidav cheroot 'moto[server]'`.
//! Without them these tests print a SKIP line and pass, unless
//! `COFFER_REQUIRE_REMOTE_TESTS=1` (set by .ci/run), where a missing server fails.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_backup::{BackupKey, BackupOptions, Error, KeepPolicy, Repository, RestoreOptions};
use common::*;

/// A server process on a free loopback port, killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        && Command::new(program)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// `None` (after a SKIP line) if `program` is missing and remote tests are optional.
fn require(program: &str) -> Option<()> {
    if on_path(program) {
        return Some(());
    }
    let how = "install it with: python3 -m pip install wsgidav cheroot 'moto[server]'";
    if std::env::var("COFFER_REQUIRE_REMOTE_TESTS").as_deref() == Ok("1") {
        panic!("{program} is not on PATH and COFFER_REQUIRE_REMOTE_TESTS=1; {how}");
    }
    eprintln!("SKIP remote storage test: {program} is not on PATH ({how})");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `program args` (with `{port}` replaced) and waits until the port accepts.
fn spawn(program: &str, args: &[String], log: &Path) -> Server {
    let port = free_port();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "{program} exited with {status} before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{program} did not listen on {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One plain HTTP/1.1 request; returns the status code and the response text.
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (code, resp)
}

fn write_tree(src: &Path, generation: u64) {
    std::fs::create_dir_all(src.join("sub/ünïcødé dir")).unwrap();
    std::fs::write(src.join("big.bin"), pseudo(generation, 5 << 20)).unwrap();
    std::fs::write(src.join("notes.txt"), text(1, 300_000)).unwrap();
    std::fs::write(src.join("sub/ünïcødé dir/small"), b"hi").unwrap();
    std::fs::write(src.join("sub/empty"), b"").unwrap();
}

/// init, two backups, restore both, check --read-data, forget + prune, and the errors a
/// user meets (existing repository, wrong key, damaged object not hidden).
fn exercise(location: &str, tmp: &Path, secret: &str) {
    let key = key();
    let repo = Repository::init(location, &key).unwrap();
    assert!(!repo.location().contains(secret), "{}", repo.location());
    assert!(!format!("{repo:?}").contains(secret));
    let e = Repository::init(location, &key).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert!(!e.to_string().contains(secret), "{e}");

    let src = tmp.join("src");
    write_tree(&src, 1);
    let first = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    let want_first = tree(&src);
    write_tree(&src, 2);
    let second = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert!(second.bytes_added < 6 << 20, "{second:?}");
    let want_second = tree(&src);

    let repo = Repository::open(location, &key).unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 2);
    for (snap, want, name) in [
        (&first.snapshot_id, &want_first, "out1"),
        (&second.snapshot_id, &want_second, "out2"),
    ] {
        let out = tmp.join(name);
        let r = repo
            .restore(snap, &out, &[], &RestoreOptions::default())
            .unwrap();
        assert!(r.failed.is_empty(), "{r:?}");
        assert_eq!(&tree(&out.join("src")), want);
    }
    let c = repo.check(true, None).unwrap();
    assert!(c.is_ok() && c.bytes_verified > 0, "{c:?}");

    let forgot = repo
        .forget(
            &KeepPolicy {
                last: Some(1),
                ..Default::default()
            },
            false,
        )
        .unwrap();
    assert_eq!(forgot.removed.len(), 1);
    let p = repo.prune(None).unwrap();
    assert!(p.bytes_freed >= 4 << 20, "{p:?}");
    let c = repo.check(true, None).unwrap();
    assert!(c.is_ok(), "{c:?}");
    let out = tmp.join("out3");
    repo.restore(&second.snapshot_id, &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(tree(&out.join("src")), want_second);

    let other = BackupKey::from_bytes([8u8; 32]);
    assert!(matches!(
        Repository::open(location, &other),
        Err(Error::WrongKey)
    ));
    drop(repo);
    Repository::destroy(location).unwrap();
    assert!(matches!(
        Repository::open(location, &key),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn webdav_round_trip_check_and_prune() {
    if require("wsgidav").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("dav");
    std::fs::create_dir_all(&root).unwrap();
    let secret = "dav-Secret-9f3a";
    let config = tmp.path().join("wsgidav.json");
    let conf = serde_json::json!({
        "host": "127.0.0.1",
        "provider_mapping": { "/": root },
        "simple_dc": { "user_mapping": { "*": { "coffer": { "password": secret } } } },
        "http_authenticator": {
            "accept_basic": true, "accept_digest": false, "default_to_digest": false
        },
        "verbose": 1,
        "logging": { "enable": false },
    });
    std::fs::write(&config, conf.to_string()).unwrap();
    let server = spawn(
        "wsgidav",
        &[
            "-c".into(),
            config.to_str().unwrap().into(),
            "-p".into(),
            "{port}".into(),
        ],
        &tmp.path().join("wsgidav.log"),
    );
    let port = server.port;

    // A wrong password is an error that names neither password.
    let bad = format!("webdav+http://127.0.0.1:{port}/repo?username=coffer&password=WRONGpass1");
    let e = Repository::init(&bad, &key()).unwrap_err();
    assert!(matches!(e, Error::Storage { .. }), "{e}");
    assert!(!e.to_string().contains("WRONGpass1"), "{e}");

    let loc =
        format!("webdav+http://127.0.0.1:{port}/backups/phone?username=coffer&password={secret}");
    exercise(&loc, tmp.path(), secret);
    // The same server through ?tls=false, and the objects really are on the server.
    let loc =
        format!("webdav://127.0.0.1:{port}/other?tls=false&username=coffer&password={secret}");
    let repo = Repository::init(&loc, &key()).unwrap();
    drop(repo);
    assert!(root.join("other/keys").is_dir());
    assert!(
        std::fs::read_dir(root.join("other/keys"))
            .unwrap()
            .next()
            .is_some()
    );
}

#[test]
fn s3_round_trip_check_and_prune() {
    if require("moto_server").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = spawn(
        "moto_server",
        &[
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            "{port}".into(),
        ],
        &tmp.path().join("moto.log"),
    );
    let port = server.port;
    assert_eq!(http(port, "PUT", "/coffer-test").0, 200, "create bucket");
    let secret = "s3Secret/Key+With=Chars";
    let enc = secret
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    let loc = format!(
        "s3://coffer-test/phone/repo?endpoint=http://127.0.0.1:{port}&region=us-east-1\
         &access_key_id=testing&secret_access_key={enc}"
    );
    exercise(&loc, tmp.path(), secret);
    // The objects really are in the bucket, under the prefix.
    let repo = Repository::init(&loc, &key()).unwrap();
    drop(repo);
    let (code, listing) = http(
        port,
        "GET",
        "/coffer-test?list-type=2&prefix=phone/repo/keys/",
    );
    assert_eq!(code, 200);
    assert!(listing.contains("<Key>phone/repo/keys/"), "{listing}");

    // A missing bucket is a storage error that does not show the secret.
    let loc = format!(
        "s3://no-such-bucket/x?endpoint=http://127.0.0.1:{port}&region=us-east-1\
         &access_key_id=testing&secret_access_key={enc}"
    );
    let e = Repository::init(&loc, &key()).unwrap_err();
    assert!(matches!(e, Error::Storage { .. }), "{e}");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(secret) && !shown.contains(&enc), "{shown}");
}

#[test]
fn unknown_scheme_and_missing_settings_say_what_to_do() {
    let e = Repository::open("ftp://host/x", &key()).unwrap_err();
    assert!(e.to_string().contains("s3://"), "{e}");
    let e = Repository::open("gdrive://Backups?client_id=x", &key()).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("COFFER_GDRIVE_ACCESS_TOKEN") || m.contains("token"),
        "{m}"
    );
    let e = Repository::open("azblob://c/p?account_key=QUJDRA%3D%3D", &key());
    if let Err(e) = e {
        assert!(!e.to_string().contains("QUJDRA"), "{e}");
    }
}
