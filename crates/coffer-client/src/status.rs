//! `status`: what this device knows about its repository and vault.

use std::path::PathBuf;

use coffer_backup::SnapshotInfo;
use serde::Serialize;

use crate::{Coffer, KeyStoreKind};

/// The vault part of [`StatusReport`].
#[derive(Debug, Clone, Serialize)]
pub struct VaultStatusReport {
    /// Vault URL.
    pub url: String,
    /// Account id.
    pub account: String,
    /// Whether the vault holds a key for the account (None: the vault could not be asked).
    pub exists: Option<bool>,
    /// Wrong guesses still allowed.
    pub guesses_left: Option<u32>,
    /// The vault's limit.
    pub max_guesses: Option<u32>,
    /// The vault holds an older key than this device (run change-password).
    pub stale: bool,
    /// Why the vault could not be asked: `(code, message)`.
    pub error: Option<(String, String)>,
}

/// The result of [`Coffer::status`].
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Config directory.
    pub config_dir: PathBuf,
    /// Repository location.
    pub repo: String,
    /// Which store keeps the key: `"os-keyring"` or `"file"`.
    pub key_store: KeyStoreKind,
    /// Where exactly, for people (see [`crate::KeyStore::describe`]).
    pub key_store_location: String,
    /// The vault, or None for recovery-key-only setups.
    pub vault: Option<VaultStatusReport>,
    /// Number of snapshots (None if the repository could not be read).
    pub snapshots: Option<usize>,
    /// The newest snapshot.
    pub last_backup: Option<SnapshotInfo>,
    /// Why the repository could not be read: `(code, message)`.
    pub repository_error: Option<(String, String)>,
}

impl Coffer {
    /// Gathers the status; failures of the vault or the repository are reported inside.
    pub fn status(&self) -> StatusReport {
        let vault = self.config().vault.as_ref().map(|v| {
            let mut r = VaultStatusReport {
                url: v.url.clone(),
                account: v.account.clone(),
                exists: None,
                guesses_left: None,
                max_guesses: None,
                stale: self.config().vault_stale,
                error: None,
            };
            let st = self
                .vault_access_for_status()
                .unwrap_or(Err(crate::Error::NoVault))
                .and_then(|a| Coffer::vault_status(&a));
            match st {
                Ok(s) => {
                    r.exists = Some(s.exists);
                    r.guesses_left = s.guesses_left;
                    r.max_guesses = Some(s.max_guesses);
                }
                Err(e) => r.error = Some((e.code().to_string(), e.to_string())),
            }
            r
        });
        let (snapshots, last_backup, repository_error) =
            match self.repository().and_then(|r| Ok(r.snapshots()?)) {
                Ok(s) => (Some(s.len()), s.last().cloned(), None),
                Err(e) => (None, None, Some((e.code().to_string(), e.to_string()))),
            };
        StatusReport {
            config_dir: self.dir().to_path_buf(),
            repo: self.config().repo.clone(),
            key_store: self.key_store().kind(),
            key_store_location: self.key_store().describe(),
            vault,
            snapshots,
            last_backup,
            repository_error,
        }
    }
}
