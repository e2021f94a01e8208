//! Crash simulation for tests: a power cut at the Nth storage step of a local folder.
//!
//! Local storage writes an object in four steps (write to `tmp/`, fsync the file, rename
//! into place, fsync the directory) and deletes one in two (unlink, fsync the directory).
//! [`Faults`] counts those steps; at step `fail_at` it fails it and undoes everything a
//! power cut could lose at that instant: file data written but not fsynced is cut in half,
//! and every rename or unlink whose directory was not fsynced since is rolled back (in
//! reverse order). After that every storage call fails, as in a dead process. Reopen the
//! repository without faults to see what survived.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A planned power cut. Shared by the store of one [`crate::Repository`].
#[derive(Debug)]
pub struct Faults {
    fail_at: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ops: u64,
    crashed: bool,
    undo: Vec<Undo>,
}

/// What a power cut may lose.
#[derive(Debug)]
pub(crate) enum Undo {
    /// Data written to this file and not yet fsynced.
    Data(PathBuf),
    /// A name put in place in `dir` (by rename) that the directory has not made durable;
    /// `prev` is what the name held before.
    Created {
        dir: PathBuf,
        path: PathBuf,
        prev: Option<Vec<u8>>,
    },
    /// A name removed from `dir` that the directory has not made durable.
    Removed {
        dir: PathBuf,
        path: PathBuf,
        content: Vec<u8>,
    },
}

impl Faults {
    /// A power cut at storage step `fail_at` (1-based); 0 or `u64::MAX` never cuts.
    pub fn fail_at(fail_at: u64) -> std::sync::Arc<Faults> {
        std::sync::Arc::new(Faults {
            fail_at,
            state: Mutex::new(State::default()),
        })
    }

    /// Steps counted so far.
    pub fn ops(&self) -> u64 {
        self.state.lock().map(|s| s.ops).unwrap_or(0)
    }

    /// Whether the power cut happened.
    pub fn crashed(&self) -> bool {
        self.state.lock().map(|s| s.crashed).unwrap_or(true)
    }

    /// Fails once the cut happened (reads and listings of a dead process).
    pub(crate) fn alive(&self) -> std::io::Result<()> {
        if self.crashed() {
            return Err(cut());
        }
        Ok(())
    }

    /// Counts one mutating step; at `fail_at` cuts the power instead of doing it.
    pub(crate) fn step(&self) -> std::io::Result<()> {
        let mut s = self.state.lock().map_err(|_| cut())?;
        if s.crashed {
            return Err(cut());
        }
        s.ops += 1;
        if s.ops == self.fail_at {
            s.crashed = true;
            for u in std::mem::take(&mut s.undo).into_iter().rev() {
                undo(u);
            }
            return Err(cut());
        }
        Ok(())
    }

    pub(crate) fn record(&self, u: Undo) {
        if let Ok(mut s) = self.state.lock() {
            s.undo.push(u);
        }
    }

    /// An fsync of a file made its data durable.
    pub(crate) fn synced_file(&self, path: &Path) {
        if let Ok(mut s) = self.state.lock() {
            s.undo.retain(|u| !matches!(u, Undo::Data(p) if p == path));
        }
    }

    /// An fsync of a directory made its renames and unlinks durable.
    pub(crate) fn synced_dir(&self, dir: &Path) {
        if let Ok(mut s) = self.state.lock() {
            s.undo.retain(|u| match u {
                Undo::Created { dir: d, .. } | Undo::Removed { dir: d, .. } => d != dir,
                Undo::Data(_) => true,
            });
        }
    }
}

fn cut() -> std::io::Error {
    std::io::Error::other("simulated power cut")
}

fn undo(u: Undo) {
    match u {
        Undo::Data(p) => {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&p) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = f.set_len(len / 2);
            }
        }
        Undo::Created { path, prev, .. } => {
            let _ = match prev {
                Some(b) => std::fs::write(&path, b),
                None => std::fs::remove_file(&path),
            };
        }
        Undo::Removed { path, content, .. } => {
            let _ = std::fs::write(&path, content);
        }
    }
}
