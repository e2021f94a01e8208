//! Flipping any single byte of any stored object is detected by check --read-data;
//! restore refuses exactly the damaged files and restores the rest.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

mod common;

use std::path::{Path, PathBuf};

use coffer_backup::{BackupOptions, Error, Repository, RestoreOptions};
use common::*;

fn objects(repo: &Path) -> Vec<PathBuf> {
    let mut v = vec![];
    for d in ["keys", "index", "data", "snapshots"] {
        for e in std::fs::read_dir(repo.join(d)).unwrap() {
            v.push(e.unwrap().path());
        }
    }
    v.sort();
    v
}

#[test]
fn tamper_any_byte_of_any_object_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4u64 {
        std::fs::write(src.join(format!("media{i}.bin")), pseudo(i, 200_000)).unwrap();
        std::fs::write(src.join(format!("note{i}.txt")), text(i, 50_000)).unwrap();
    }
    let repo_dir = tmp.path().join("repo");
    let loc = repo_dir.to_str().unwrap().to_string();
    let repo = Repository::init(&loc, &key()).unwrap();
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    let first = tree(&src);
    // A second backup with one changed file, so there are two packs, indexes and snapshots.
    std::fs::write(src.join("note0.txt"), text(100, 60_000)).unwrap();
    repo.backup(&[src.clone()], &BackupOptions::default())
        .unwrap();
    assert!(repo.check(true, None).unwrap().is_ok());
    drop(repo);
    let original = tree(&src);

    let mut state = 0x1234_5678_u64;
    let mut rnd = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut damaged_files_named = 0;
    let mut flips = 0;
    for obj in objects(&repo_dir) {
        let bytes = std::fs::read(&obj).unwrap();
        let n = bytes.len();
        let mut positions: Vec<usize> = (0..12).chain(n - 8..n).collect();
        positions.extend((0..10).map(|_| rnd(n)));
        for pos in positions {
            flips += 1;
            let mut bad = bytes.clone();
            bad[pos] ^= 0x01 << (pos % 8);
            std::fs::write(&obj, &bad).unwrap();
            let what = format!("{} byte {pos}", obj.display());
            match Repository::open(&loc, &key()) {
                Err(Error::WrongKey) => panic!("{what}: damage reported as a wrong key"),
                Err(_) => {}
                Ok(repo) => {
                    let c = repo.check(true, None);
                    assert!(
                        c.as_ref().map(|r| !r.is_ok()).unwrap_or(true),
                        "{what}: check passed"
                    );
                    let out = tmp.path().join(format!("out{flips}"));
                    match repo.restore("latest", &out, &[], &RestoreOptions::default()) {
                        // Trees are metadata like snapshots (FORMAT.md "Trees"): a
                        // damaged tree stops the restore, naming the tree.
                        Err(e) => assert!(
                            obj.starts_with(repo_dir.join("snapshots"))
                                || matches!(&e, Error::Integrity { object, .. } if object.starts_with("tree ")),
                            "{what}: restore failed as a whole: {e}"
                        ),
                        // A damaged newest snapshot is skipped: latest is then the
                        // first snapshot, restored whole.
                        Ok(r) if obj.starts_with(repo_dir.join("snapshots")) => {
                            let got = tree(&out.join("src"));
                            assert!(r.failed.is_empty(), "{what}: {r:?}");
                            assert!(got == original || got == first, "{what}: wrong content");
                        }
                        Ok(r) => {
                            let got = tree(&out.join("src"));
                            let failed: Vec<&PathBuf> = r.failed.iter().map(|f| &f.0).collect();
                            for entry in &original {
                                let p = PathBuf::from("src").join(&entry.0);
                                match got.iter().find(|g| g.0 == entry.0) {
                                    Some(g) => {
                                        assert_eq!(g.4, entry.4, "{what}: {} differs", p.display())
                                    }
                                    None => assert!(
                                        failed.contains(&&p),
                                        "{what}: {} neither restored nor named",
                                        p.display()
                                    ),
                                }
                            }
                            damaged_files_named += r.failed.len();
                        }
                    }
                    std::fs::remove_dir_all(&out).ok();
                }
            }
            std::fs::write(&obj, &bytes).unwrap();
        }
    }
    assert!(
        damaged_files_named > 0,
        "no flip ever damaged a file's data"
    );
    let repo = Repository::open(&loc, &key()).unwrap();
    assert!(repo.check(true, None).unwrap().is_ok());
}
