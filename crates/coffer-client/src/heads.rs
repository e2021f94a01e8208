//! The newest repository head this device has seen, per repository: `heads.json` in the
//! config directory (docs/THREAT_MODEL.md "Rollback"). A device that later finds a lower
//! head knows the storage dropped or rolled back snapshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coffer_backup::Head;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::atomic::write_atomic;

/// File name of the remembered heads inside the config directory.
pub const HEADS_FILE: &str = "heads.json";

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Heads {
    version: u32,
    /// Repository id (hex) -> the highest head seen.
    repositories: BTreeMap<String, Head>,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(HEADS_FILE)
}

impl Heads {
    pub(crate) fn load(dir: &Path) -> Result<Heads, Error> {
        let p = path(dir);
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Heads::default()),
            Err(e) => return Err(Error::io(&p, e)),
        };
        // Refuse rather than start over: forgetting the head would switch detection off.
        serde_json::from_slice(&text).map_err(|e| Error::ConfigInvalid {
            path: p,
            detail: e.to_string(),
        })
    }

    pub(crate) fn get(&self, repo_id: &str) -> Option<&Head> {
        self.repositories.get(repo_id)
    }

    /// Saves `head` for `repo_id`. Durable (fsynced file and directory) before the
    /// command reports success: a crash must not bring back an older head, which would
    /// let a rollback to just that point pass.
    pub(crate) fn store(dir: &Path, repo_id: &str, head: Option<Head>) -> Result<(), Error> {
        let mut h = Heads::load(dir)?;
        h.version = 1;
        match head {
            Some(head) => h.repositories.insert(repo_id.to_string(), head),
            None => h.repositories.remove(repo_id),
        };
        let mut text = serde_json::to_vec_pretty(&h).map_err(|e| Error::ConfigInvalid {
            path: path(dir),
            detail: e.to_string(),
        })?;
        text.push(b'\n');
        write_atomic(&path(dir), &text, 0o600)
    }
}
