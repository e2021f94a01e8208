//! Where the backup key K lives on the device: the OS keyring where one answers, else a
//! mode-0600 file in the config directory.
//!
//! The store is chosen once, when the device is set up ([`KeyStore::create`]): with
//! [`KeyStorePreference::Auto`] the OS keyring is tried first (the key is written and
//! read back) and the file is used when no keyring answers, e.g. on a headless Linux
//! machine without a Secret Service daemon. The choice is recorded in `config.json`
//! (`key_store`, and `keyring_user` for the keyring), so every later run loads from the
//! same place and `coffer status` can say which store holds the key.

use std::path::{Path, PathBuf};

use coffer_backup::BackupKey;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::{Config, create_dir_private};
use crate::key_file::KeyFile;
use crate::os_keyring::{KEYRING_SERVICE, KeyringFailure, OsKeyring};

/// Which key store holds the key. Serialized as `"os-keyring"` or `"file"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeyStoreKind {
    /// The OS keyring (Keychain, Credential Manager, Secret Service).
    OsKeyring,
    /// A 0600 file in the config directory.
    File,
}

impl KeyStoreKind {
    /// `"os-keyring"` or `"file"`, as in `config.json` and the CLI's `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStoreKind::OsKeyring => "os-keyring",
            KeyStoreKind::File => "file",
        }
    }
}

/// Where a new setup should keep its key (the CLI's `--key-store` / `COFFER_KEY_STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyStorePreference {
    /// The OS keyring if one answers, else the file.
    #[default]
    Auto,
    /// The OS keyring or fail ([`Error::KeyringUnavailable`]).
    OsKeyring,
    /// The file, even where a keyring exists (tests, servers).
    File,
}

impl KeyStorePreference {
    /// Parses `"auto"`, `"os-keyring"` or `"file"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(KeyStorePreference::Auto),
            "os-keyring" => Some(KeyStorePreference::OsKeyring),
            "file" => Some(KeyStorePreference::File),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Backend {
    OsKeyring(OsKeyring),
    File,
}

/// The key store of one config directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    file: KeyFile,
    backend: Backend,
    fallback_reason: Option<String>,
}

impl KeyStore {
    /// Saves K for a new setup of `dir`, in the store `pref` asks for; see the module docs.
    /// The caller records [`KeyStore::kind`] and [`KeyStore::keyring_user`] in the config.
    pub fn create(dir: &Path, pref: KeyStorePreference, key: &BackupKey) -> Result<Self, Error> {
        create_dir_private(dir)?;
        let file = KeyFile::new(dir);
        let attempt = match pref {
            KeyStorePreference::File => None,
            KeyStorePreference::OsKeyring | KeyStorePreference::Auto => {
                let ring = OsKeyring::new(&keyring_user_for(dir)?);
                Some(ring.save(key, false).map(|()| ring))
            }
        };
        let (backend, fallback_reason) = match (attempt, pref) {
            (Some(Ok(ring)), _) => (Backend::OsKeyring(ring), None),
            (Some(Err(KeyringFailure(reason))), KeyStorePreference::OsKeyring) => {
                return Err(Error::KeyringUnavailable { reason });
            }
            (Some(Err(KeyringFailure(reason))), _) => (Backend::File, Some(reason)),
            (None, _) => (Backend::File, None),
        };
        if let Backend::File = backend {
            file.save(key)?;
        }
        Ok(KeyStore {
            file,
            backend,
            fallback_reason,
        })
    }

    /// The store `config` names for `dir`.
    pub fn for_config(dir: &Path, config: &Config) -> Result<Self, Error> {
        let backend = match (config.key_store, &config.keyring_user) {
            (KeyStoreKind::File, _) => Backend::File,
            (KeyStoreKind::OsKeyring, Some(user)) => Backend::OsKeyring(OsKeyring::new(user)),
            (KeyStoreKind::OsKeyring, None) => {
                return Err(Error::ConfigInvalid {
                    path: Config::path(dir),
                    detail: "key_store is os-keyring but keyring_user is missing".into(),
                });
            }
        };
        Ok(KeyStore {
            file: KeyFile::new(dir),
            backend,
            fallback_reason: None,
        })
    }

    /// Which store this is.
    pub fn kind(&self) -> KeyStoreKind {
        match self.backend {
            Backend::OsKeyring(_) => KeyStoreKind::OsKeyring,
            Backend::File => KeyStoreKind::File,
        }
    }

    /// The keyring entry's user name (None for the file store).
    pub fn keyring_user(&self) -> Option<&str> {
        match &self.backend {
            Backend::OsKeyring(r) => Some(r.user()),
            Backend::File => None,
        }
    }

    /// Why the OS keyring was not used, when [`KeyStore::create`] fell back to the file.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Where exactly, for people: e.g. `file /home/me/.config/coffer/key (mode 0600)` or
    /// `OS keyring (service "coffer", user "/home/me/.config/coffer")`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::OsKeyring(r) => {
                format!(
                    "OS keyring (service \"{KEYRING_SERVICE}\", user \"{}\")",
                    r.user()
                )
            }
            Backend::File => format!("file {} (mode 0600)", self.file.path().display()),
        }
    }

    /// Path of the key file (used by the file store; also where it would be).
    pub fn path(&self) -> PathBuf {
        self.file.path()
    }

    /// Replaces the stored key durably.
    pub fn save(&self, key: &BackupKey) -> Result<(), Error> {
        match &self.backend {
            Backend::OsKeyring(r) => r.save(key, false).map_err(keyring_error("store")),
            Backend::File => self.file.save(key),
        }
    }

    /// Loads the key.
    pub fn load(&self) -> Result<BackupKey, Error> {
        match &self.backend {
            Backend::OsKeyring(r) => r
                .load(false)
                .map_err(keyring_error("read"))?
                .ok_or_else(|| Error::Keyring {
                    action: "read",
                    reason: format!(
                        "it has no entry for service \"{KEYRING_SERVICE}\", user \"{}\"; connect this device again",
                        r.user()
                    ),
                }),
            Backend::File => self.file.load()?.ok_or_else(|| Error::ConfigInvalid {
                path: self.file.path(),
                detail: "the key file is missing; connect this device again".into(),
            }),
        }
    }

    /// Stores a rotation's new key beside the current one.
    pub(crate) fn save_pending(&self, key: &BackupKey) -> Result<(), Error> {
        match &self.backend {
            Backend::OsKeyring(r) => r.save(key, true).map_err(keyring_error("store")),
            Backend::File => self.file.save_pending(key),
        }
    }

    /// The key of an unfinished rotation, if any.
    pub(crate) fn load_pending(&self) -> Result<Option<BackupKey>, Error> {
        match &self.backend {
            Backend::OsKeyring(r) => r.load(true).map_err(keyring_error("read")),
            Backend::File => self.file.load_pending(),
        }
    }

    /// Makes the pending key the current one.
    pub(crate) fn promote_pending(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::OsKeyring(r) => {
                // Two steps, each durable in the keyring's own storage: the main entry is
                // overwritten first, so a crash in between leaves two equal entries (the
                // stale pending one is overwritten by the next rotation, deleted by
                // `disable`), never a main entry that no longer opens the repository.
                let Some(new) = r.load(true).map_err(keyring_error("read"))? else {
                    return Ok(());
                };
                r.save(&new, false).map_err(keyring_error("store"))?;
                r.delete(true).map_err(keyring_error("delete"))
            }
            Backend::File => self.file.promote_pending(),
        }
    }

    /// Deletes the key (and any pending key) from this device: from the keyring entries
    /// and the key files alike, so nothing is left behind whichever store was used.
    pub fn delete(&self) -> Result<(), Error> {
        if let Backend::OsKeyring(r) = &self.backend {
            r.delete(true).map_err(keyring_error("delete"))?;
            r.delete(false).map_err(keyring_error("delete"))?;
        }
        self.file.delete()
    }
}

fn keyring_error(action: &'static str) -> impl Fn(KeyringFailure) -> Error {
    move |KeyringFailure(reason)| Error::Keyring { action, reason }
}

/// The keyring user for a config directory: its absolute path, which no other config
/// directory on this machine has at the same time.
fn keyring_user_for(dir: &Path) -> Result<String, Error> {
    let abs = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    Ok(abs.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forced_file_store_saves_loads_and_deletes() {
        let d = tempfile::tempdir().unwrap();
        let k = BackupKey::generate();
        let ks = KeyStore::create(d.path(), KeyStorePreference::File, &k).unwrap();
        assert_eq!(ks.kind(), KeyStoreKind::File);
        assert!(ks.fallback_reason().is_none() && ks.keyring_user().is_none());
        assert!(ks.describe().starts_with("file ") && ks.describe().contains("0600"));
        assert_eq!(ks.load().unwrap().as_bytes(), k.as_bytes());
        ks.delete().unwrap();
        assert!(!ks.path().exists());
        assert!(matches!(ks.load(), Err(Error::ConfigInvalid { .. })));
    }

    #[test]
    fn kind_and_preference_names() {
        assert_eq!(
            serde_json::to_string(&KeyStoreKind::OsKeyring).unwrap(),
            "\"os-keyring\""
        );
        assert_eq!(
            serde_json::to_string(&KeyStoreKind::File).unwrap(),
            "\"file\""
        );
        for k in [KeyStoreKind::OsKeyring, KeyStoreKind::File] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(
            KeyStorePreference::parse("file"),
            Some(KeyStorePreference::File)
        );
        assert_eq!(
            KeyStorePreference::parse("os-keyring"),
            Some(KeyStorePreference::OsKeyring)
        );
        assert_eq!(
            KeyStorePreference::parse("auto"),
            Some(KeyStorePreference::Auto)
        );
        assert_eq!(KeyStorePreference::parse("keyring"), None);
    }

    #[test]
    fn keyring_config_without_user_is_invalid() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Config {
            version: crate::CONFIG_VERSION,
            repo: "/r".into(),
            vault: None,
            key_store: KeyStoreKind::OsKeyring,
            keyring_user: None,
            ksf_profile: "argon2id-test".into(),
            vault_stale: false,
        };
        assert!(matches!(
            KeyStore::for_config(d.path(), &cfg),
            Err(Error::ConfigInvalid { .. })
        ));
    }
}
