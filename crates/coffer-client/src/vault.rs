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
    /// Access for the account the token names. `account`, when given, must be the token's
    /// subject: a token of one account used with another's id would make the vault
    /// answer for the token's account while the device shows the other.
    pub fn for_token(
        url: &str,
        account: Option<&str>,
        token: Zeroizing<String>,
        token_file: Option<PathBuf>,
    ) -> Result<VaultAccess, Error> {
        let account = check_subject(&token, account)?;
        Ok(VaultAccess {
            url: url.to_string(),
            account,
            token,
            token_file,
        })
    }

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

/// The token's subject (`sub`), read from the JWT payload without verifying it (the vault
/// verifies the signature; the device only needs to know whose token it holds), and
/// refused when it is not `expected`.
pub fn check_subject(token: &str, expected: Option<&str>) -> Result<String, Error> {
    use base64::Engine as _;
    let invalid = |detail: &str| Error::TokenInvalid {
        detail: detail.to_string(),
    };
    let payload = token
        .trim()
        .split('.')
        .nth(1)
        .ok_or_else(|| invalid("it is not a JWT (header.payload.signature)"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| invalid("its payload is not base64url"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("its payload is not JSON"))?;
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("it names no account (no sub claim)"))?;
    match expected {
        Some(a) if a != sub => Err(Error::AccountMismatch {
            given: a.to_string(),
            token_subject: sub.to_string(),
        }),
        _ => Ok(sub.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine as _;

    fn jwt(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2ln", b(r#"{"alg":"EdDSA"}"#), b(claims))
    }

    #[test]
    fn the_account_comes_from_the_token_and_a_mismatch_is_refused() {
        let t = jwt(r#"{"sub":"alice","aud":"v"}"#);
        assert_eq!(check_subject(&t, None).unwrap(), "alice");
        assert_eq!(check_subject(&t, Some("alice")).unwrap(), "alice");
        let e = check_subject(&t, Some("carol")).unwrap_err();
        assert!(matches!(e, Error::AccountMismatch { .. }), "{e}");
        assert!(e.to_string().contains("alice") && e.to_string().contains("carol"));
        for bad in ["nodots", "a.%%%.c", &jwt("[1]"), &jwt(r#"{"aud":"v"}"#)] {
            assert!(
                matches!(check_subject(bad, None), Err(Error::TokenInvalid { .. })),
                "{bad}"
            );
        }
    }
}
