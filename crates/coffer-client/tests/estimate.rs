//! `Coffer::estimate_backup` against a real repository (OpenDAL fs): what the next backup
//! would upload, so an app can wait for Wi-Fi.
#![allow(clippy::unwrap_used)]

mod common;

use coffer_client::{BackupOptions, Error};

use common::device as setup;

#[test]
fn estimate_is_everything_first_nothing_when_unchanged_and_one_file_after_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let coffer = setup(tmp.path());
    let data = tmp.path().join("chat");
    std::fs::create_dir_all(data.join("media")).unwrap();
    std::fs::write(data.join("db"), vec![1u8; 100_000]).unwrap();
    std::fs::write(data.join("media/a.jpg"), vec![2u8; 300_000]).unwrap();
    std::fs::write(data.join("media/b.jpg"), vec![3u8; 50_000]).unwrap();
    let paths = [data.clone()];

    let first = coffer.estimate_backup(&paths).unwrap();
    assert_eq!((first.files, first.files_changed), (3, 3));
    assert_eq!(first.bytes_total, 450_000);
    assert_eq!(first.bytes_to_upload, 450_000);
    assert_eq!(first.bytes_to_read, 450_000);
    // Estimating writes nothing: still no snapshot.
    assert!(coffer.snapshots().unwrap().is_empty());

    coffer.backup(&paths, &BackupOptions::default()).unwrap();
    let unchanged = coffer.estimate_backup(&paths).unwrap();
    assert_eq!(unchanged.files, 3);
    assert_eq!(unchanged.files_changed, 0);
    assert_eq!(unchanged.bytes_to_upload, 0);
    assert_eq!(unchanged.bytes_total, 450_000);

    std::fs::write(data.join("media/b.jpg"), vec![4u8; 60_000]).unwrap();
    let one = coffer.estimate_backup(&paths).unwrap();
    assert_eq!(one.files_changed, 1);
    assert_eq!(one.bytes_to_upload, 60_000);
    // The backup then stores no more than the estimate's bound (plus its own metadata).
    let s = coffer.backup(&paths, &BackupOptions::default()).unwrap();
    assert_eq!(s.bytes_read, 60_000);
    assert!(s.bytes_added <= one.bytes_to_upload + 4096, "{s:?}");

    // Another set of paths has no parent snapshot: all of it is new.
    let other = coffer.estimate_backup(&[data.join("media")]).unwrap();
    assert_eq!(other.bytes_to_upload, 360_000);

    let missing = coffer
        .estimate_backup(&[tmp.path().join("nope")])
        .unwrap_err();
    assert!(matches!(missing, Error::SourceNotFound { .. }), "{missing}");
}
