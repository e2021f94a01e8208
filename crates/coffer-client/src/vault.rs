//! How the SDK reaches the vault: URL, account and bearer token.

use std::path::{Path, PathBuf};

use coffer_vault_client::VaultClient;
use zeroize::Zeroizing;

use crate::Error;

/// Everything needed to call the vault for one account.
#[derive(Clone)]
pub struct VaultAccess {
    /// Base URL, e.g. `http://127.0.0.1:8443`.
    pub url: String,
    /// Account id (the token's subject), kept for display.
    pub account: String,
    /// The bearer JWT.
    pub token: Zeroizing<String>,
    /// The file the token came from, remembered in the configuration so later commands
    /// read a fresh token from it.
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for VaultAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultAccess")
            .field("url", &self.url)
            .field("account", &self.account)
            .field("token", &"<redacted>")
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl VaultAccess {
    /// A blocking client for this account.
    pub fn client(&self) -> Result<VaultClient, Error> {
        Ok(VaultClient::new(&self.url, self.token.trim())?)
    }
}

/// Reads a token file: the JWT is its last non-empty line (so `coffer-vault token`'s
/// output can be redirected into it as is).
pub fn read_token_file(path: &Path) -> Result<Zeroizing<String>, Error> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?);
    let line = text.lines().rev().find(|l| !l.trim().is_empty());
    match line {
        Some(l) => Ok(Zeroizing::new(l.trim().to_string())),
        None => Err(Error::ConfigInvalid {
            path: path.to_path_buf(),
            detail: "the token file is empty".into(),
        }),
    }
}
