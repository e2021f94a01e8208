//! A SQLite database backed up while another process keeps committing to it, in
//! rollback-journal and in WAL mode: every restored copy must be a whole database
//! (`PRAGMA integrity_check`) holding the state after some transaction, never a mix.
//!
//! The writer is this test binary re-run as a child process (the ignored test
//! `writer_child`), so the writer's locks are another process's POSIX locks, as with a
//! real messaging app.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_backup::{BackupOptions, Repository, RestoreOptions};
use common::*;
use rusqlite::Connection;

const ACCOUNTS: i64 = 1500;

/// Kills the writer (SIGKILL) however the test ends.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A database whose invariants every transaction of the writer keeps:
/// `sum(acct.bal) = 0`, `meta.n = count(ledger)`, `meta.total = sum(ledger.amount)`.
fn create(db: &Path, wal: bool) {
    let c = Connection::open(db).unwrap();
    c.execute_batch(if wal {
        "PRAGMA journal_mode=WAL;"
    } else {
        "PRAGMA journal_mode=DELETE;"
    })
    .unwrap();
    c.execute_batch(
        "PRAGMA page_size=4096;
         CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL, pad BLOB);
         CREATE TABLE ledger(n INTEGER PRIMARY KEY, amount INTEGER NOT NULL, pad BLOB);
         CREATE TABLE meta(k INTEGER PRIMARY KEY, n INTEGER NOT NULL, total INTEGER NOT NULL);
         INSERT INTO meta VALUES (1, 0, 0);",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for id in 0..ACCOUNTS {
        tx.execute("INSERT INTO acct VALUES (?1, 0, randomblob(1200))", [id])
            .unwrap();
    }
    tx.commit().unwrap();
}

/// The writer's loop: transfers between random accounts (pages all over the file),
/// ledger rows appended and old ones deleted (free-list churn), each in one transaction.
#[test]
#[ignore = "run by the concurrent-writer tests as their child process"]
fn writer_child() {
    let (Ok(db), Ok(ready)) = (
        std::env::var("COFFER_TEST_SQLITE_WRITER"),
        std::env::var("COFFER_TEST_SQLITE_READY"),
    ) else {
        return;
    };
    let c = Connection::open(&db).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(60)).unwrap();
    c.execute_batch("PRAGMA synchronous=OFF;").unwrap();
    let mut i: u64 = 0;
    loop {
        let r = pseudo(i, 16);
        let n = |k: usize| u64::from_le_bytes(r[k..k + 8].try_into().unwrap());
        let from = (n(0) % ACCOUNTS as u64) as i64;
        let to = (n(8) % ACCOUNTS as u64) as i64;
        let amount = (n(0) % 1000) as i64 + 1;
        let tx = c.unchecked_transaction().unwrap();
        tx.execute(
            "UPDATE acct SET bal = bal - ?1, pad = randomblob(1200) WHERE id = ?2",
            [amount, from],
        )
        .unwrap();
        tx.execute(
            "UPDATE acct SET bal = bal + ?1, pad = randomblob(1200) WHERE id = ?2",
            [amount, to],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO ledger(amount, pad) VALUES (?1, randomblob(3000))",
            [amount],
        )
        .unwrap();
        tx.execute(
            "UPDATE meta SET n = n + 1, total = total + ?1 WHERE k = 1",
            [amount],
        )
        .unwrap();
        if i % 7 == 6 {
            tx.execute_batch(
                "UPDATE meta SET n = n - (SELECT count(*) FROM ledger WHERE n % 5 = 0),
                     total = total - (SELECT coalesce(sum(amount), 0) FROM ledger WHERE n % 5 = 0)
                     WHERE k = 1;
                 DELETE FROM ledger WHERE n % 5 = 0;",
            )
            .unwrap();
        }
        tx.commit().unwrap();
        if i == 0 {
            std::fs::write(&ready, b"").unwrap();
        }
        i += 1;
    }
}

fn start_writer(db: &Path, ready: &Path) -> Writer {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_child", "--ignored", "--test-threads=1"])
        .env("COFFER_TEST_SQLITE_WRITER", db)
        .env("COFFER_TEST_SQLITE_READY", ready)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut writer = Writer(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if let Some(status) = writer.0.try_wait().unwrap() {
            panic!("writer exited with {status} before its first commit");
        }
        assert!(Instant::now() < deadline, "writer made no commit in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    writer
}

/// Returns the restored database's ledger count after checking it whole and consistent.
fn verify(db: &Path) -> i64 {
    let c = Connection::open(db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "{}", db.display());
    let sum: i64 = c
        .query_row("SELECT sum(bal) FROM acct", [], |r| r.get(0))
        .unwrap();
    let accounts: i64 = c
        .query_row("SELECT count(*) FROM acct", [], |r| r.get(0))
        .unwrap();
    let (n, total): (i64, i64) = c
        .query_row("SELECT n, total FROM meta WHERE k = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let (count, amount): (i64, i64) = c
        .query_row(
            "SELECT count(*), coalesce(sum(amount), 0) FROM ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((sum, accounts), (0, ACCOUNTS), "transfers torn apart");
    assert_eq!((n, total), (count, amount), "ledger and meta disagree");
    n
}

fn backups_under_a_writer(wal: bool, rounds: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("app");
    std::fs::create_dir_all(&src).unwrap();
    let db = src.join("chat.db");
    create(&db, wal);
    let loc = format!("memory://sqlite-writer-{wal}-{}", std::process::id());
    let repo = Repository::init(&loc, &key()).unwrap();
    let writer = start_writer(&db, &tmp.path().join("writer-ready"));
    let mut states = std::collections::BTreeSet::new();
    for round in 0..rounds {
        let s = repo
            .backup(&[src.clone()], &BackupOptions::default())
            .unwrap();
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
        let out = tmp.path().join(format!("out{round}"));
        repo.restore(&s.snapshot_id, &out, &[], &RestoreOptions::default())
            .unwrap();
        let names: Vec<_> = std::fs::read_dir(out.join("app"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["chat.db"], "sidecars are not backed up");
        states.insert(verify(&out.join("app/chat.db")));
        std::fs::remove_dir_all(&out).unwrap();
    }
    drop(writer);
    // The writer really ran during the backups: the snapshots hold different states.
    assert!(states.len() >= rounds / 2, "states seen: {states:?}");
    assert!(repo.check(false, None).unwrap().is_ok());
}

#[test]
fn rollback_journal_database_under_a_writer_restores_whole() {
    backups_under_a_writer(false, 20);
}

#[test]
fn wal_database_under_a_writer_restores_whole() {
    backups_under_a_writer(true, 20);
}

/// A commit that stays in the WAL leaves the main file's size and mtime alone; the next
/// backup must still pick it up.
#[test]
fn wal_commit_with_unchanged_main_file_is_backed_up() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("app");
    std::fs::create_dir_all(&src).unwrap();
    let db = src.join("chat.db");
    create(&db, true);
    let c = Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let repo = Repository::init(
        &format!("memory://sqlite-wal-only-{}", std::process::id()),
        &key(),
    )
    .unwrap();
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    let before = std::fs::metadata(&db).unwrap();
    c.execute_batch(
        "BEGIN; INSERT INTO ledger(amount) VALUES (5);
         UPDATE meta SET n = n + 1, total = total + 5 WHERE k = 1; COMMIT;",
    )
    .unwrap();
    let after = std::fs::metadata(&db).unwrap();
    assert_eq!(
        (before.len(), before.modified().unwrap()),
        (after.len(), after.modified().unwrap()),
        "the commit stayed in the WAL"
    );
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    let out = tmp.path().join("out");
    repo.restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(verify(&out.join("app/chat.db")), 1);
}
