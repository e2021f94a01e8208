//! The file key store: K as 64 hex digits in a mode-0600 file of the config directory.
//!
//! Used where no OS keyring answers (headless Linux without a Secret Service daemon,
//! servers, containers) or when the user forces it (`COFFER_KEY_STORE=file`).

use std::path::{Path, PathBuf};

use coffer_backup::BackupKey;
use zeroize::Zeroizing;

use crate::Error;
use crate::atomic::{remove_durable, write_atomic};
use crate::config::create_dir_private;

/// File name of the key in the config directory.
pub const KEY_FILE: &str = "key";
/// File name of a key written by an unfinished rotation (see [`crate::Coffer::rotate_key`]).
pub const PENDING_KEY_FILE: &str = "key.pending";

/// The key files of one config directory.
#[derive(Debug, Clone)]
pub(crate) struct KeyFile {
    dir: PathBuf,
}

impl KeyFile {
    pub(crate) fn new(dir: &Path) -> Self {
        KeyFile {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    fn pending_path(&self) -> PathBuf {
        self.dir.join(PENDING_KEY_FILE)
    }

    pub(crate) fn save(&self, key: &BackupKey) -> Result<(), Error> {
        create_dir_private(&self.dir)?;
        write_key(&self.path(), key)
    }

    pub(crate) fn load(&self) -> Result<Option<BackupKey>, Error> {
        read_key(&self.path())
    }

    pub(crate) fn save_pending(&self, key: &BackupKey) -> Result<(), Error> {
        write_key(&self.pending_path(), key)
    }

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

    pub(crate) fn delete(&self) -> Result<(), Error> {
        remove_durable(&self.pending_path())?;
        remove_durable(&self.path())
    }
}

fn write_key(path: &Path, key: &BackupKey) -> Result<(), Error> {
    let mut text = Zeroizing::new(hex::encode(key.as_bytes()));
    text.push('\n');
    write_atomic(path, text.as_bytes(), 0o600)
}

/// Refuses a key file other users can read (Unix, Android and iOS included: mode bits).
/// Windows has no mode bits; the file's ACL comes from the user's profile folder, which
/// admits only the user and administrators, so there is nothing to check here.
fn refuse_shared(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::ConfigInvalid {
                path: path.to_path_buf(),
                detail: "the key file is readable by other users; run chmod 600 on it".into(),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn read_key(path: &Path) -> Result<Option<BackupKey>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    refuse_shared(path)?;
    parse_hex_key(&text)
        .map(Some)
        .ok_or_else(|| Error::ConfigInvalid {
            path: path.to_path_buf(),
            detail: "the key file does not hold 64 hex digits".into(),
        })
}

/// K from its 64-hex-digit text (the format of both stores), `None` if malformed.
pub(crate) fn parse_hex_key(text: &str) -> Option<BackupKey> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), &mut bytes[..]).ok()?;
    Some(BackupKey::from_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[cfg(unix)]
    #[test]
    fn saves_0600_and_loads_back() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = KeyFile::new(&d.path().join("c"));
        assert!(f.load().unwrap().is_none());
        let k = BackupKey::generate();
        f.save(&k).unwrap();
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(f.load().unwrap().unwrap().as_bytes(), k.as_bytes());
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(f.load(), Err(Error::ConfigInvalid { .. })));
        f.delete().unwrap();
        assert!(!f.path().exists());
    }

    #[test]
    fn pending_key_is_promoted() {
        let d = tempfile::tempdir().unwrap();
        let f = KeyFile::new(d.path());
        let (old, new) = (BackupKey::generate(), BackupKey::generate());
        f.save(&old).unwrap();
        f.save_pending(&new).unwrap();
        assert_eq!(f.load().unwrap().unwrap().as_bytes(), old.as_bytes());
        f.promote_pending().unwrap();
        assert_eq!(f.load().unwrap().unwrap().as_bytes(), new.as_bytes());
        assert!(f.load_pending().unwrap().is_none());
    }

    #[test]
    fn rejects_malformed_text() {
        assert!(parse_hex_key("abc").is_none());
        assert!(parse_hex_key(&"zz".repeat(32)).is_none());
        assert!(parse_hex_key(&format!("{}\n", "ab".repeat(32))).is_some());
    }
}
