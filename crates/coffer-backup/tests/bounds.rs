//! No stored object can make a reader allocate without bound (FORMAT.md "Bounds"): a
//! device holding K can seal a zstd bomb, and the repository must survive it. The bombs
//! here are sealed with the real key. One test function, so that the process's peak
//! memory (VmHWM) measures only these reads.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use coffer_backup::testing::{
    CraftedEntry, CraftedKind, chunk_id, write_pack, write_snapshot, write_snapshot_payload,
};
use coffer_backup::{Error, Repository, RestoreOptions};
use common::key;

/// zstd of `n` zero bytes, compressed as a stream (never held whole).
fn bomb(n: u64) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..n >> 20 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

/// Peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn zstd_bombs_are_refused_with_bounded_memory() {
    const GIB: u64 = 1 << 30;
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::init(tmp.path().join("repo").to_str().unwrap(), &key()).unwrap();
    let good = write_snapshot(
        &repo,
        &[CraftedEntry {
            path: b"ok".to_vec(),
            kind: CraftedKind::File(b"fine".to_vec()),
            mode: 0o644,
            mtime_ns: 0,
        }],
    )
    .unwrap();

    // A 4 GiB manifest in a few hundred KiB.
    let manifest_bomb = bomb(4 * GIB);
    assert!(manifest_bomb.len() < 1 << 20);
    let bad = write_snapshot_payload(&repo, &manifest_bomb).unwrap();

    // A blob declaring 4 MiB (the format's cap) whose frame expands to 1 GiB, and one
    // declaring 3 GiB.
    let mut blob = vec![1u8];
    blob.extend_from_slice(&bomb(GIB));
    let expanding = chunk_id(&repo, b"expanding");
    write_pack(&repo, &[(expanding, 4 << 20, blob)]).unwrap();
    let oversized = chunk_id(&repo, b"oversized");
    write_pack(&repo, &[(oversized, 3 << 30, vec![0u8; 64])]).unwrap();
    let files = write_snapshot(
        &repo,
        &[
            CraftedEntry {
                path: b"expanding".to_vec(),
                kind: CraftedKind::Chunks(vec![expanding], 4 << 20),
                mode: 0o644,
                mtime_ns: 0,
            },
            CraftedEntry {
                path: b"oversized".to_vec(),
                kind: CraftedKind::Chunks(vec![oversized], 3 << 30),
                mode: 0o644,
                mtime_ns: 0,
            },
        ],
    )
    .unwrap();
    drop(manifest_bomb);

    let before = peak_rss();
    let target = tmp.path().join("out");
    match repo.restore(&bad, &target, &[], &RestoreOptions::default()) {
        Err(Error::Integrity { detail, .. }) => {
            assert!(detail.contains("more than 128 MiB"), "{detail}")
        }
        other => panic!("manifest bomb: {other:?}"),
    }
    // Listing either reports the damaged snapshot or skips it; it never aborts.
    match repo.snapshots() {
        Ok(list) => assert!(list.iter().all(|s| s.id != bad)),
        Err(e) => assert!(matches!(e, Error::Integrity { .. }), "{e}"),
    }
    let s = repo
        .restore(&files, &target, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(s.files, 0);
    let failed: Vec<_> = s.failed.iter().map(|(p, _)| p.to_str().unwrap()).collect();
    assert_eq!(failed, ["expanding", "oversized"], "{s:?}");
    let report = repo.check(true, None).unwrap();
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("over the format's 4 MiB")),
        "{:?}",
        report.errors
    );
    assert!(!report.is_ok());
    let grew = peak_rss().saturating_sub(before);
    assert!(grew < 700 << 20, "peak memory grew by {} MiB", grew >> 20);

    // The rest of the repository still restores.
    let s = repo
        .restore(
            &good,
            &tmp.path().join("good"),
            &[],
            &RestoreOptions::default(),
        )
        .unwrap();
    assert!(s.is_complete() && s.files == 1, "{s:?}");
}
