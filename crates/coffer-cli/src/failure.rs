//! Failures of a command: stable code, message, hint, exit code, and the JSON shape.

use coffer_client::Error;
use serde_json::{Value, json};

/// A command failure as the user sees it.
#[derive(Debug)]
pub struct Failure {
    /// Stable snake_case code (`--json`).
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Process exit code (see `EXIT_CODES`).
    pub exit: u8,
    /// Extra JSON fields (guesses_left, failed files, ...).
    pub extra: Vec<(&'static str, Value)>,
}

impl Failure {
    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            code: "usage",
            message: message.into(),
            hint: Some(hint.into()),
            exit: 2,
            extra: Vec::new(),
        }
    }

    /// Some other failure.
    pub fn other(
        code: &'static str,
        exit: u8,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        Failure {
            code,
            message: message.into(),
            hint,
            exit,
            extra: Vec::new(),
        }
    }

    /// The `{"error": {...}}` object printed with `--json`.
    pub fn to_json(&self) -> Value {
        let mut e = serde_json::Map::new();
        e.insert("code".into(), json!(self.code));
        e.insert("message".into(), json!(self.message));
        if let Some(h) = &self.hint {
            e.insert("hint".into(), json!(h));
        }
        e.insert("exit_code".into(), json!(self.exit));
        for (k, v) in &self.extra {
            e.insert((*k).into(), v.clone());
        }
        json!({ "error": e })
    }

    /// The two lines printed on stderr without `--json`.
    pub fn to_human(&self) -> String {
        match &self.hint {
            Some(h) => format!("error: {}\nhint: {h}", self.message),
            None => format!("error: {}", self.message),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        use coffer_client::EngineError as Engine;
        let code = match &e {
            Error::Backup(Engine::WouldOverwrite { .. }) => "would_overwrite",
            Error::Backup(Engine::PathNotInSnapshot { .. }) => "path_not_found",
            _ => e.code(),
        };
        let message = e.to_string();
        let mut extra = Vec::new();
        let (exit, hint): (u8, Option<String>) = match &e {
            Error::WrongPassword { guesses_left } => {
                extra.push(("guesses_left", json!(guesses_left)));
                (3, Some(match guesses_left {
                    0 => "the vault allows no more guesses; use your recovery key (coffer connect --recovery-key-stdin)".into(),
                    1 => "only ONE guess is left: if you are not sure, use your recovery key instead (--recovery-key-stdin)".into(),
                    n => format!("check the password and try again ({n} guesses left); or use your recovery key (--recovery-key-stdin)"),
                }))
            }
            Error::KeyDestroyed => (4, Some("connect with your 64-digit recovery key instead: coffer connect --repo LOCATION --recovery-key-stdin".into())),
            Error::WrongRecoveryKey => (3, Some("check for a mistyped group of 4 digits, and that --repo points to the right repository".into())),
            Error::InvalidRecoveryKey(_) => (3, Some("the recovery key is 16 groups of 4 digits 0-9 and a-f; type it again".into())),
            Error::VaultKeyMismatch => (3, Some("the vault holds the key of another repository (or an older key): check --repo, or connect with the recovery key".into())),
            Error::LocalKeyMismatch => (7, Some("this device's key no longer opens the repository (rotated on another device?): connect again with the password or recovery key in a fresh --config-dir".into())),
            Error::VaultUnreachable { .. } => (5, Some("check the --vault URL and your network, then try again".into())),
            Error::Unauthorized { .. } => (5, Some("get a fresh access token (--token-file FILE or COFFER_VAULT_TOKEN) for this vault".into())),
            Error::RateLimited { retry_after_secs } => {
                extra.push(("retry_after_secs", json!(retry_after_secs)));
                (5, Some("wait and try again later".into()))
            }
            Error::Vault { .. } => (1, Some("see the message; if it persists, check the vault's logs".into())),
            Error::NotRecordOwner { .. } => (5, Some("the vault's record for this account was made with another backup key: connect with that key (its password or recovery key) in a fresh --config-dir first; if both are lost, your app's support can reset the account".into())),
            Error::PreviousKeyInVault => (5, Some("run coffer change-password again and enter the current vault password when asked (with --password-stdin: the new password, then the current one)".into())),
            Error::NoVault => (2, Some("this setup is recovery-key-only: there is no vault password to use or change".into())),
            Error::TokenMissing => (5, Some("pass --token-file FILE or set COFFER_VAULT_TOKEN".into())),
            Error::AccountMismatch { .. } => (2, Some("leave out --account (it is taken from the token), or use a token of that account".into())),
            Error::TokenInvalid { .. } => (5, Some("use the token your app's auth server issued for this vault (--token-file FILE or COFFER_VAULT_TOKEN)".into())),
            Error::PasswordTooShort { .. } => (2, Some("choose a longer password; a passphrase of a few words is easy to remember".into())),
            Error::SourceNotFound { .. } => (1, Some("check the spelling of the path; no snapshot was made".into())),
            Error::StorageFull { .. } => (1, Some("free space: coffer forget (--keep-last N, or IDs) then coffer prune, which deletes unused data before writing anything; or make room on the storage".into())),
            Error::RolledBack { .. } => (6, Some("the storage lost or replaced recent snapshots: restore its newer copy if you can; to go on with what is there, run the command again with --allow-older (this device then accepts the older state)".into())),
            Error::RepositoryNotFound { .. } => (7, Some("check --repo (a folder path or an OpenDAL URL); create one with coffer init".into())),
            Error::RepositoryExists { .. } => (1, Some("use coffer connect to use the existing repository, or pick another --repo".into())),
            Error::Integrity { object, .. } => (6, Some(match object.strip_prefix("snapshots/") {
                Some(id) => format!("coffer forget {id} removes this damaged snapshot; coffer check --read-data shows any other damage"),
                None => "run coffer check --read-data to see the extent of the damage".into(),
            })),
            Error::SnapshotNotFound { .. } => (7, Some("list the snapshots with coffer snapshots".into())),
            Error::Backup(Engine::WouldOverwrite { paths }) => {
                let names: Vec<String> = paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                extra.push(("paths", json!(names)));
                (1, Some("nothing was written; restore into an empty folder, or pass --overwrite if-changed (replace what differs) or --overwrite always".into()))
            }
            Error::Backup(Engine::PathNotInSnapshot { snapshot, .. }) => (7, Some(format!("list what the snapshot holds with coffer ls {}", snapshot.get(..12).unwrap_or(snapshot)))),
            Error::Cancelled => (130, Some("run the same backup again: it resumes, reusing what was uploaded".into())),
            Error::ConfigMissing { .. } => (7, Some("run coffer init (first device) or coffer connect (new device), or pass --config-dir".into())),
            Error::AlreadyConfigured { dir } => (1, Some(format!("this config folder is in use; pass another --config-dir, or run coffer disable first (removes {})", dir.display()))),
            Error::ConfigInvalid { .. } => (1, Some("fix or remove the file named above".into())),
            Error::Io { .. } => (1, Some("check the path and its permissions".into())),
            Error::KeyringUnavailable { .. } => (1, Some("start or unlock your keyring (GNOME Keyring, KWallet, KeePassXC), or keep the key in a 0600 file instead: --key-store file (COFFER_KEY_STORE=file)".into())),
            Error::Keyring { .. } => (1, Some("unlock the OS keyring, which holds this device's key, and try again; if its entry is gone, connect this device again in a fresh --config-dir".into())),
            _ => (1, None),
        };
        Failure {
            code,
            message,
            hint,
            exit,
            extra,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wrong_password_json_has_code_message_and_guesses_left() {
        let f = Failure::from(Error::WrongPassword { guesses_left: 7 });
        let v = f.to_json();
        assert_eq!(v["error"]["code"], "wrong_password");
        assert_eq!(v["error"]["guesses_left"], 7);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("7 guesses left")
        );
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(f.exit, 3);
    }

    #[test]
    fn stable_codes_and_exit_codes() {
        let cases: Vec<(Error, &str, u8)> = vec![
            (Error::KeyDestroyed, "key_destroyed", 4),
            (Error::WrongRecoveryKey, "wrong_recovery_key", 3),
            (
                Error::VaultUnreachable {
                    url: "http://x".into(),
                    reason: "refused".into(),
                },
                "vault_unreachable",
                5,
            ),
            (
                Error::Unauthorized {
                    message: "expired".into(),
                },
                "unauthorized",
                5,
            ),
            (
                Error::RepositoryNotFound {
                    location: "/r".into(),
                },
                "repository_not_found",
                7,
            ),
            (
                Error::Integrity {
                    object: "data/ab".into(),
                    detail: "tag".into(),
                },
                "integrity_error",
                6,
            ),
            (
                Error::RateLimited {
                    retry_after_secs: Some(3),
                },
                "rate_limited",
                5,
            ),
        ];
        for (e, code, exit) in cases {
            let f = Failure::from(e);
            assert_eq!((f.code, f.exit), (code, exit));
            let v = f.to_json();
            assert_eq!(v["error"]["code"], code);
            assert!(v["error"]["hint"].is_string(), "{code} has a hint");
        }
    }

    #[test]
    fn human_form_is_error_then_hint() {
        let f = Failure::from(Error::WrongRecoveryKey);
        let text = f.to_human();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "error: this recovery key does not match this repository"
        );
        assert!(lines[1].starts_with("hint: "));
    }
}
