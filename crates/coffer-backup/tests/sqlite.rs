//! A SQLite database is cut at page boundaries: a day's scattered page changes upload
//! little.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::io::{Seek, SeekFrom, Write};

use coffer_backup::{BackupOptions, Repository, RestoreOptions};
use common::*;

#[test]
fn eight_changed_pages_and_an_append_upload_under_two_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("db");
    std::fs::create_dir_all(&src).unwrap();
    let db = src.join("chat.sqlite");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA page_size=4096; CREATE TABLE m(id INTEGER PRIMARY KEY, body BLOB);",
        )
        .unwrap();
        let tx = c.unchecked_transaction().unwrap();
        let blob = pseudo(1, 100 << 20);
        {
            let mut st = tx.prepare("INSERT INTO m(body) VALUES (?1)").unwrap();
            for chunk in blob.chunks(3000) {
                st.execute([chunk]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let size = std::fs::metadata(&db).unwrap().len();
    assert!(size > 100 << 20);
    let repo =
        Repository::init(&format!("memory://sqlite-{}", std::process::id()), &key()).unwrap();
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();

    // Change 8 random pages in place (not page 1, so the file stays a valid database
    // header) and append 64 KiB, as a day of chat does.
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    let pages = size / 4096;
    for i in 0..8u64 {
        let p = 1 + (i * 7919 + 13) * 104_729 % (pages - 1);
        f.seek(SeekFrom::Start(p * 4096)).unwrap();
        f.write_all(&pseudo(100 + i, 4096)).unwrap();
    }
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(&pseudo(200, 64 * 1024)).unwrap();
    drop(f);

    let s = repo
        .backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert!(s.bytes_added < 2 << 20, "added {} bytes", s.bytes_added);
    let out = tmp.path().join("out");
    let r = repo
        .restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(r.failed.is_empty());
    assert_eq!(
        std::fs::read(out.join("db/chat.sqlite")).unwrap(),
        std::fs::read(&db).unwrap()
    );
}
