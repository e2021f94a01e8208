//! Failures of a command: stable code, message, hint, exit code, and the JSON shape.

use coffer_client::{EngineError as Engine, Error, ErrorCode};
use serde_json::{Value, json};

/// A command failure as the user sees it.
#[derive(Debug)]
pub struct Failure {
    /// Stable code (`--json`): the SDK's, or the CLI's own (usage, aborted, ...).
    pub code: ErrorCode,
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
            code: ErrorCode::Usage,
            message: message.into(),
            hint: Some(hint.into()),
            exit: 2,
            extra: Vec::new(),
        }
    }

    /// Some other failure.
    pub fn other(
        code: ErrorCode,
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
        e.insert("code".into(), json!(self.code.as_str()));
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
        let code = e.code();
        let message = e.to_string();
        let mut extra = Vec::new();
        if let Some(g) = e.guesses_left() {
            extra.push(("guesses_left", json!(g)));
        }
        if code == ErrorCode::RateLimited {
            extra.push(("retry_after_secs", json!(e.retry_after_secs())));
        }
        if let Error::Backup(Engine::WouldOverwrite { paths }) = &e {
            let names: Vec<String> = paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            extra.push(("paths", json!(names)));
        }
        let exit = exit_code(code, &e);
        let hint = if e.registration_pending() {
            extra.push(("registration_pending", json!(true)));
            Some("this device uses its key, but the vault does not hold it yet, so the password does not recover it: run coffer change-password".into())
        } else {
            hint(code, e.cause())
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

/// The process exit code of an error, by its code (see `EXIT_CODES`).
fn exit_code(code: ErrorCode, e: &Error) -> u8 {
    use ErrorCode as C;
    match code {
        C::WrongPassword | C::WrongRecoveryKey | C::InvalidRecoveryKey | C::VaultKeyMismatch => 3,
        C::KeyDestroyed | C::NoRecord => 4,
        C::VaultUnreachable
        | C::Unauthorized
        | C::RateLimited
        | C::OwnerProofInvalid
        | C::OwnerProofRequired
        | C::PreviousKeyInVault
        | C::TokenMissing => 5,
        C::IntegrityError | C::RolledBack => 6,
        // A backup path that does not exist is a typo (1); a path not in a snapshot is a
        // lookup that found nothing (7).
        C::PathNotFound if matches!(e, Error::SourceNotFound { .. }) => 1,
        C::LocalKeyMismatch
        | C::RepositoryNotFound
        | C::SnapshotNotFound
        | C::PathNotFound
        | C::ConfigMissing => 7,
        C::RestoreIncomplete => 8,
        C::NoVault | C::AccountMismatch | C::PasswordTooShort | C::Usage => 2,
        C::Cancelled => 130,
        _ => 1,
    }
}

/// What to do about an error: the one place the CLI's hints are written.
fn hint(code: ErrorCode, e: &Error) -> Option<String> {
    use ErrorCode as C;
    Some(match code {
        C::WrongPassword => match e.guesses_left().unwrap_or(0) {
            0 => "the vault allows no more guesses; use your recovery key (coffer connect --recovery-key-stdin)".into(),
            1 => "only ONE guess is left: if you are not sure, use your recovery key instead (--recovery-key-stdin)".into(),
            n => format!("check the password and try again ({n} guesses left); or use your recovery key (--recovery-key-stdin)"),
        },
        C::KeyDestroyed => "connect with your 64-digit recovery key instead: coffer connect --repo LOCATION --recovery-key-stdin".into(),
        C::WrongRecoveryKey => "check for a mistyped group of 4 digits, and that --repo points to the right repository".into(),
        C::InvalidRecoveryKey => "the recovery key is 16 groups of 4 digits 0-9 and a-f; type it again".into(),
        C::VaultKeyMismatch => "the vault holds the key of another repository (or an older key): check --repo, or connect with the recovery key".into(),
        C::LocalKeyMismatch => "this device's key no longer opens the repository (rotated on another device?): connect again with the password or recovery key in a fresh --config-dir".into(),
        C::VaultUnreachable => "check the --vault URL and your network, then try again".into(),
        C::Unauthorized if matches!(e, Error::TokenInvalid { .. }) => "use the token your app's auth server issued for this vault (--token-file FILE or COFFER_VAULT_TOKEN)".into(),
        C::Unauthorized => "get a fresh access token (--token-file FILE or COFFER_VAULT_TOKEN) for this vault".into(),
        C::RateLimited => "wait and try again later".into(),
        C::VaultError => "see the message; if it persists, check the vault's logs".into(),
        C::AccountInUse => "connect this device instead (coffer connect), or disable the old setup first".into(),
        C::OwnerProofInvalid => "the vault's record for this account was made with another backup key: connect with that key (its password or recovery key) in a fresh --config-dir first; if both are lost, your app's support can reset the account".into(),
        C::PreviousKeyInVault => "run coffer change-password again and enter the current vault password when asked (with --password-stdin: the new password, then the current one)".into(),
        C::NoVault => "this setup is recovery-key-only: there is no vault password to use or change".into(),
        C::TokenMissing => "pass --token-file FILE or set COFFER_VAULT_TOKEN".into(),
        C::AccountMismatch => "leave out --account (it is taken from the token), or use a token of that account".into(),
        C::PasswordTooShort => "choose a longer password; a passphrase of a few words is easy to remember".into(),
        C::PathNotFound => match e {
            Error::Backup(Engine::PathNotInSnapshot { snapshot, .. }) => format!("list what the snapshot holds with coffer ls {}", snapshot.get(..12).unwrap_or(snapshot)),
            _ => "check the spelling of the path; no snapshot was made".into(),
        },
        C::StorageFull => "free space: coffer forget (--keep-last N, or IDs) then coffer prune, which deletes unused data before writing anything; or make room on the storage".into(),
        C::RolledBack => "the storage lost or replaced recent snapshots: restore its newer copy if you can; to go on with what is there, run the command again with --allow-older (this device then accepts the older state)".into(),
        C::RepositoryNotFound => "check --repo (a folder path or an OpenDAL URL); create one with coffer init".into(),
        C::RepositoryExists => "use coffer connect to use the existing repository, or pick another --repo".into(),
        C::IntegrityError => match e {
            Error::Integrity { object, .. } => match object.strip_prefix("snapshots/") {
                Some(id) => format!("coffer forget {id} removes this damaged snapshot; coffer check --read-data shows any other damage"),
                None => "run coffer check --read-data to see the extent of the damage".into(),
            },
            _ => "run coffer check --read-data to see the extent of the damage".into(),
        },
        C::SnapshotNotFound => "list the snapshots with coffer snapshots".into(),
        C::WouldOverwrite => "nothing was written; restore into an empty folder, or pass --overwrite if-changed (replace what differs) or --overwrite always".into(),
        C::Cancelled => match e {
            Error::Backup(Engine::RestoreCancelled { .. }) => "run the same restore again: it keeps the files already restored and writes the rest".into(),
            _ => "run the same backup again: it resumes, reusing what was uploaded".into(),
        },
        C::ConfigMissing => "run coffer init (first device) or coffer connect (new device), or pass --config-dir".into(),
        C::AlreadyConfigured => match e {
            Error::AlreadyConfigured { dir } => format!("this config folder is in use; pass another --config-dir, or run coffer disable first (removes {})", dir.display()),
            _ => return None,
        },
        C::ConfigInvalid => "fix or remove the file named above".into(),
        C::Io => "check the path and its permissions".into(),
        C::KeyringUnavailable => "start or unlock your keyring (GNOME Keyring, KWallet, KeePassXC), or keep the key in a 0600 file instead: --key-store file (COFFER_KEY_STORE=file)".into(),
        C::KeyringError => "unlock the OS keyring, which holds this device's key, and try again; if its entry is gone, connect this device again in a fresh --config-dir".into(),
        C::Unsupported => "run this on Linux, macOS, Android or iOS".into(),
        _ => return None,
    })
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
            assert_eq!((f.code.as_str(), f.exit), (code, exit));
            let v = f.to_json();
            assert_eq!(v["error"]["code"], code);
            assert!(v["error"]["hint"].is_string(), "{code} has a hint");
        }
    }

    #[test]
    fn a_pending_registration_keeps_its_code_and_says_to_change_the_password() {
        let e = Error::WrongPassword { guesses_left: 2 };
        // What init and rotate-key return when the vault refused the registration.
        let pending = Error::RegistrationPending {
            source: Box::new(e),
        };
        assert!(pending.registration_pending());
        assert_eq!(pending.guesses_left(), Some(2));
        let f = Failure::from(pending);
        assert_eq!((f.code, f.exit), (ErrorCode::WrongPassword, 3));
        let v = f.to_json();
        assert_eq!(v["error"]["registration_pending"], true);
        assert_eq!(v["error"]["guesses_left"], 2);
        assert!(f.hint.unwrap().contains("coffer change-password"));
        let f = Failure::from(Error::RegistrationPending {
            source: Box::new(Error::VaultUnreachable {
                url: "http://x".into(),
                reason: "refused".into(),
            }),
        });
        assert_eq!((f.code.as_str(), f.exit), ("vault_unreachable", 5));
    }

    #[test]
    fn every_code_the_cli_prints_is_one_of_the_shared_enum() {
        let f = Failure::from(Error::AccountInUse {
            account: "alice".into(),
        });
        assert_eq!((f.code.as_str(), f.exit), ("account_in_use", 1));
        for c in [
            "usage",
            "aborted",
            "restore_incomplete",
            "would_overwrite",
            "path_not_found",
        ] {
            assert!(c.parse::<ErrorCode>().is_ok(), "{c}");
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
