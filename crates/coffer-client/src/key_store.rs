//! Where the backup key K lives on the device.
//!
//! Only the file store exists today: `key` in the config directory, mode 0600, holding
//! K as 64 hex digits. The OS keyring (the `keyring` crate) was not used because the
//! headless Linux machines Coffer is tested on have no Secret Service; [`KeyStoreKind`]
//! is the place to add it, and the CLI always says which store holds the key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use coffer_backup::BackupKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;
use crate::atomic::{remove_durable, write_atomic};
use crate::config::create_dir_private;

/// File name of the key in the config directory.
pub const KEY_FILE: &str = "key";
/// File name of a key written by an unfinished rotation (see [`crate::Coffer::rotate_key`]).
pub const PENDING_KEY_FILE: &str = "key.pending";

/// Which key store holds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyStoreKind {
    /// A 0600 file in the config directory.
    File,
}

/// The key store of one config directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
    kind: KeyStoreKind,
}

impl KeyStore {
    /// The store of `dir`.
    pub fn new(dir: &Path, kind: KeyStoreKind) -> Self {
        KeyStore {
            dir: dir.to_path_buf(),
            kind,
        }
    }

    /// Which store this is.
    pub fn kind(&self) -> KeyStoreKind {
        self.kind
    }

    /// A human description, e.g. "file /home/me/.config/coffer/key (mode 0600)".
    pub fn describe(&self) -> String {
        match self.kind {
            KeyStoreKind::File => format!(
                "file {} (mode 0600; no OS keyring is used)",
                self.path().display()
            ),
        }
    }

    /// Path of the key file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    fn pending_path(&self) -> PathBuf {
        self.dir.join(PENDING_KEY_FILE)
    }

    /// Stores `key` durably, replacing any previous one.
    pub fn save(&self, key: &BackupKey) -> Result<(), Error> {
        create_dir_private(&self.dir)?;
        write_key(&self.path(), key)
    }

    /// Loads the key.
    pub fn load(&self) -> Result<BackupKey, Error> {
        read_key(&self.path())?.ok_or_else(|| Error::ConfigInvalid {
            path: self.path(),
            detail: "the key file is missing; connect this device again".into(),
        })
    }

    /// Stores a rotation's new key beside the current one.
    pub(crate) fn save_pending(&self, key: &BackupKey) -> Result<(), Error> {
        write_key(&self.pending_path(), key)
    }

    /// The key of an unfinished rotation, if any.
    pub(crate) fn load_pending(&self) -> Result<Option<BackupKey>, Error> {
        read_key(&self.pending_path())
    }

    /// Makes the pending key the current one (an atomic rename).
    pub(crate) fn promote_pending(&self) -> Result<(), Error> {
        let (from, to) = (self.pending_path(), self.path());
        std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
        // Until the directory is synced a crash could bring the old key back while the
        // repository only opens with the new one (the pending file would be gone).
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&self.dir, e))
    }

    /// Deletes the key (and any pending key) from this device.
    pub fn delete(&self) -> Result<(), Error> {
        remove_durable(&self.pending_path())?;
        remove_durable(&self.path())
    }
}

fn write_key(path: &Path, key: &BackupKey) -> Result<(), Error> {
    let mut text = Zeroizing::new(hex::encode(key.as_bytes()));
    text.push('\n');
    write_atomic(path, text.as_bytes(), 0o600)
}

fn read_key(path: &Path) -> Result<Option<BackupKey>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::ConfigInvalid {
            path: path.to_path_buf(),
            detail: "the key file is readable by other users; run chmod 600 on it".into(),
        });
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), &mut bytes[..]).map_err(|_| Error::ConfigInvalid {
        path: path.to_path_buf(),
        detail: "the key file does not hold 64 hex digits".into(),
    })?;
    Ok(Some(BackupKey::from_bytes(*bytes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saves_0600_and_loads_back() {
        let d = tempfile::tempdir().unwrap();
        let ks = KeyStore::new(&d.path().join("c"), KeyStoreKind::File);
        let k = BackupKey::generate();
        ks.save(&k).unwrap();
        let mode = std::fs::metadata(ks.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ks.load().unwrap().as_bytes(), k.as_bytes());
        std::fs::set_permissions(ks.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(ks.load(), Err(Error::ConfigInvalid { .. })));
        ks.delete().unwrap();
        assert!(!ks.path().exists());
    }
}
