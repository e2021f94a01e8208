//! Replays every file of the fuzz corpora (fuzz/corpus/<target>/) through the same entry
//! points the fuzz targets call, on stable Rust: a crash the fuzzer once found stays fixed.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use coffer_backup::fuzzing;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// A target's name and its entry point.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 6] = [
    ("pack_header", fuzzing::pack_header),
    ("index", fuzzing::index),
    ("manifest", fuzzing::manifest),
    ("keyring", fuzzing::keyring_object),
    ("blob", fuzzing::blob),
    ("tree", fuzzing::tree),
];

#[test]
fn every_corpus_file_replays_without_panic() {
    for (target, f) in TARGETS {
        let mut n = 0;
        for e in std::fs::read_dir(corpus(target)).unwrap() {
            let p = e.unwrap().path();
            f(&std::fs::read(&p).unwrap());
            n += 1;
        }
        assert!(n >= 10, "corpus of {target} has only {n} files");
    }
}

#[test]
fn seeds_replay_without_panic() {
    for (target, bytes) in fuzzing::seeds() {
        let f = TARGETS.iter().find(|(t, _)| *t == target).unwrap().1;
        f(&bytes);
    }
}

/// Writes the seeds into the corpora: `cargo test -p coffer-backup --test fuzz_corpus --
/// --ignored write_fuzz_seeds` (docs/FUZZING.md).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    for (i, (target, bytes)) in fuzzing::seeds().into_iter().enumerate() {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{i:02}")), bytes).unwrap();
    }
}
