//! The device's configuration: `config.json` in the config directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::atomic::write_atomic;
use crate::key_store::KeyStoreKind;

/// Version of the `config.json` layout.
pub const CONFIG_VERSION: u32 = 1;
/// File name of the configuration inside the config directory.
pub const CONFIG_FILE: &str = "config.json";

/// Where the vault is and how to authenticate to it. The token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultConfig {
    /// Base URL, e.g. `http://127.0.0.1:8443`.
    pub url: String,
    /// The account id (the token's subject), for display.
    pub account: String,
    /// File holding the bearer token, read on every vault call (tokens are short-lived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// The configuration of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Layout version, [`CONFIG_VERSION`].
    pub version: u32,
    /// Repository location (path, `memory://`, or OpenDAL URL).
    pub repo: String,
    /// The vault, or `None` for a recovery-key-only setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultConfig>,
    /// Where the backup key is kept on this device.
    pub key_store: KeyStoreKind,
    /// The user of the OS keyring entry (service `coffer`) holding the key, when
    /// `key_store` is `os-keyring`: the config directory's path at setup time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring_user: Option<String>,
    /// KSF profile name used when registering passwords.
    pub ksf_profile: String,
    /// Set while a key rotation has changed the repository key but the vault has not yet
    /// been given the new key: the vault's copy is stale until `change-password` succeeds.
    #[serde(default)]
    pub vault_stale: bool,
}

impl Config {
    /// Path of the configuration file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CONFIG_FILE)
    }

    /// Reads `dir/config.json`; [`Error::ConfigMissing`] when there is none.
    pub fn load(dir: &Path) -> Result<Config, Error> {
        let path = Config::path(dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ConfigMissing {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let cfg: Config = serde_json::from_slice(&text).map_err(|e| Error::ConfigInvalid {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if cfg.version != CONFIG_VERSION {
            return Err(Error::ConfigInvalid {
                path,
                detail: format!(
                    "version {} (this build reads version {CONFIG_VERSION})",
                    cfg.version
                ),
            });
        }
        Ok(cfg)
    }

    /// Writes `dir/config.json` atomically, creating `dir` (mode 0700) if needed.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        create_dir_private(dir)?;
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| Error::ConfigInvalid {
            path: Config::path(dir),
            detail: e.to_string(),
        })?;
        text.push(b'\n');
        write_atomic(&Config::path(dir), &text, 0o600)
    }
}

/// Creates the config directory readable only by its owner: mode 0700 on Unix (Android
/// and iOS, where it sits in the app's sandbox anyway, included). Windows has no modes: a
/// folder under the user's profile inherits its ACL (the user and administrators).
pub(crate) fn create_dir_private(dir: &Path) -> Result<(), Error> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_and_reports_missing() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cfg");
        assert!(matches!(
            Config::load(&dir),
            Err(Error::ConfigMissing { .. })
        ));
        let cfg = Config {
            version: CONFIG_VERSION,
            repo: "/tmp/r".into(),
            vault: Some(VaultConfig {
                url: "http://127.0.0.1:1".into(),
                account: "alice".into(),
                token_file: Some("/tmp/t".into()),
            }),
            key_store: KeyStoreKind::OsKeyring,
            keyring_user: Some("/home/alice/.config/coffer".into()),
            ksf_profile: "argon2id-test".into(),
            vault_stale: false,
        };
        cfg.save(&dir).unwrap();
        assert_eq!(Config::load(&dir).unwrap(), cfg);
        let text = std::fs::read_to_string(Config::path(&dir)).unwrap();
        assert!(text.contains("\"key_store\": \"os-keyring\""), "{text}");
        std::fs::write(Config::path(&dir), b"{nope").unwrap();
        assert!(matches!(
            Config::load(&dir),
            Err(Error::ConfigInvalid { .. })
        ));
    }
}
