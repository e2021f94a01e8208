//! A key rotation that crashed after the repository switched keys but before the key file
//! was replaced must leave a device that still opens its repository (rotate_key's order).
#![allow(clippy::unwrap_used)]

// The test plays a crash with the engine directly; an app never needs to.
use coffer_backup::Repository;
use coffer_client::{BackupKey, BackupOptions, Coffer, PENDING_KEY_FILE, RestoreOptions};

mod common;

#[test]
fn crash_between_repository_rotation_and_key_file_swap_is_finished_on_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let repo = tmp.path().join("repo");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), b"before").unwrap();
    // The key in the 0600 file: the test plays the crash with the key files.
    let coffer = common::device(tmp.path());
    coffer
        .backup(std::slice::from_ref(&data), &BackupOptions::default())
        .unwrap();
    let old_key = coffer.recovery_key(None).unwrap().to_backup_key();

    // Steps 2 and 4 of rotate_key, then a "crash": key.pending written, repository
    // rotated, key file not yet replaced.
    let new_key = BackupKey::generate();
    let pending = hex_line(&new_key);
    std::fs::write(dir.join(PENDING_KEY_FILE), pending).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join(PENDING_KEY_FILE),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    Repository::open(repo.to_str().unwrap(), &old_key)
        .unwrap()
        .rotate_key(&new_key)
        .unwrap();
    drop(coffer);

    // Next run: the device's key file still holds the old key, yet everything works.
    let coffer = Coffer::load(&dir, None).unwrap();
    let out = tmp.path().join("out");
    coffer
        .restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    assert_eq!(std::fs::read(out.join("data/a.txt")).unwrap(), b"before");
    assert!(
        !dir.join(PENDING_KEY_FILE).exists(),
        "the pending key was promoted"
    );
    assert!(coffer.recovery_key(None).unwrap().matches(&new_key));
    // A key that opens nothing is reported as such, not as damage.
    std::fs::write(dir.join("key"), hex_line(&BackupKey::generate())).unwrap();
    let err = Coffer::load(&dir, None).unwrap().snapshots().unwrap_err();
    assert_eq!(err.code(), coffer_client::ErrorCode::LocalKeyMismatch);
}

fn hex_line(k: &BackupKey) -> String {
    let mut s: String = k.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    s.push('\n');
    s
}
