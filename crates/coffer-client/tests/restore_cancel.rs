//! Cancelling a restore through `Coffer`: it stops with code `cancelled`, every file in
//! the target is either complete or absent (the one being written is removed, nothing
//! is left looking complete), and the same restore run again finishes byte for byte.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use coffer_client::{
    BackupOptions, Coffer, EngineError, Error, ErrorCode, Progress, ProgressEvent, RestoreOptions,
};

mod common;

const FILES: usize = 240;

/// Raises `cancel` when the `after`-th file starts.
struct CancelAfter {
    started: AtomicU64,
    after: u64,
    cancel: Arc<AtomicBool>,
}

impl Progress for CancelAfter {
    fn event(&self, e: &ProgressEvent) {
        if let ProgressEvent::File { .. } = e
            && self.started.fetch_add(1, Ordering::SeqCst) + 1 == self.after
        {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }
}

/// A backed-up folder of `FILES` distinct files (some of several chunks) in two
/// directories, and a device that holds it.
fn setup(root: &Path) -> (Coffer, PathBuf) {
    let data = root.join("data");
    for (i, dir) in (0..FILES).map(|i| (i, if i % 2 == 0 { "chat" } else { "media/2026" })) {
        std::fs::create_dir_all(data.join(dir)).unwrap();
        // Every tenth file is a few MiB: restored in several chunks, so a cancel can
        // land inside it.
        let len = if i % 10 == 0 { 3 << 20 } else { 20_000 + i * 7 };
        let mut x = i as u64 + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(data.join(dir).join(format!("f{i:03}")), bytes).unwrap();
    }
    let coffer = common::device(root);
    coffer
        .backup(std::slice::from_ref(&data), &BackupOptions::default())
        .unwrap();
    (coffer, data)
}

/// Every path below `dir` (files, directories, anything), relative to it.
fn entries(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if p.is_dir() && !p.is_symlink() {
                walk(root, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

#[test]
fn a_cancelled_restore_leaves_only_complete_files_and_a_rerun_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let (coffer, data) = setup(tmp.path());
    let out = tmp.path().join("out");
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = RestoreOptions {
        progress: Some(Arc::new(CancelAfter {
            started: AtomicU64::new(0),
            after: 60,
            cancel: cancel.clone(),
        })),
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    let err = coffer.restore("latest", &out, &[], &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    let Error::Backup(EngineError::RestoreCancelled { files: finished }) = err else {
        panic!("not a cancelled restore: {err:?}");
    };

    // The target: directories, and files that are byte for byte the originals. Nothing
    // else (no temporary name, no half-written file under its real name).
    let restored = out.join("data");
    let mut complete = 0;
    for rel in entries(&restored) {
        let (got, src) = (restored.join(&rel), data.join(&rel));
        if got.is_dir() {
            assert!(src.is_dir(), "{} is not in the source", rel.display());
            continue;
        }
        assert!(src.is_file(), "{} is not in the source", rel.display());
        assert!(
            std::fs::read(&got).unwrap() == std::fs::read(&src).unwrap(),
            "{} is not the complete original",
            rel.display()
        );
        complete += 1;
    }
    assert_eq!(complete, finished, "the error counts the complete files");
    assert!(
        complete >= 1 && complete < FILES as u64 - 1,
        "cancelled mid-way, after {complete} files"
    );

    // The same restore again (Overwrite::Never, the default): the complete files count as
    // unchanged and the rest is written.
    let again = coffer
        .restore("latest", &out, &[], &RestoreOptions::default())
        .unwrap();
    assert!(again.is_complete(), "{again:?}");
    assert_eq!(again.unchanged, complete);
    assert_eq!(again.files, FILES as u64 - complete);
    let (src, got) = (entries(&data), entries(&restored));
    assert_eq!(src, got);
    for rel in src.iter().filter(|r| data.join(r).is_file()) {
        assert!(
            std::fs::read(data.join(rel)).unwrap() == std::fs::read(restored.join(rel)).unwrap(),
            "{} differs after the second restore",
            rel.display()
        );
    }
}

#[test]
fn a_restore_cancelled_before_it_starts_writes_nothing_and_replaces_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (coffer, data) = setup(tmp.path());
    let out = tmp.path().join("out");
    // A target holding an older version of one file, to be replaced (if-changed).
    let old = out.join("data/chat/f002");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, b"an older version").unwrap();
    let opts = RestoreOptions {
        overwrite: coffer_client::Overwrite::IfChanged,
        cancel: Some(Arc::new(AtomicBool::new(true))),
        ..Default::default()
    };
    let err = coffer.restore("latest", &out, &[], &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    assert_eq!(
        entries(&out),
        [
            PathBuf::from("data"),
            "data/chat".into(),
            "data/chat/f002".into()
        ]
    );
    assert_eq!(std::fs::read(&old).unwrap(), b"an older version");
    // Not cancelled: the older version is replaced.
    let opts = RestoreOptions {
        overwrite: coffer_client::Overwrite::IfChanged,
        ..Default::default()
    };
    coffer.restore("latest", &out, &[], &opts).unwrap();
    assert_eq!(
        std::fs::read(&old).unwrap(),
        std::fs::read(data.join("chat/f002")).unwrap()
    );
}
