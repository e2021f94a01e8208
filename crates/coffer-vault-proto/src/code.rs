//! [`ErrorCode`]: the one stable vocabulary of failures, shared by the vault's HTTP API,
//! the vault client, the SDK, the CLI's `--json` output and the language bindings.
//!
//! A code names what happened in terms a caller can act on; its string form is stable
//! (renaming one is a breaking change of every interface above). Messages travel beside
//! the code and may change freely.

use std::fmt;
use std::str::FromStr;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $s:literal,)*) => {
        /// A stable error code. `as_str` gives its wire form (`snake_case`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code's stable string form.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $s,)*
                }
            }
        }

        impl FromStr for ErrorCode {
            type Err = UnknownErrorCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(ErrorCode::$variant),)*
                    _ => Err(UnknownErrorCode),
                }
            }
        }
    };
}

codes! {
    // Authentication of the app's token (docs/VAULT-API.md, "Tokens").
    /// No bearer token.
    MissingToken = "missing_token",
    /// The token does not parse or its signature does not verify.
    BadToken = "bad_token",
    /// The token expired.
    TokenExpired = "token_expired",
    /// The token's `nbf` lies in the future.
    TokenNotYetValid = "token_not_yet_valid",
    /// The token's `iat` lies in the future.
    TokenIssuedInFuture = "token_issued_in_future",
    /// The token is for another vault.
    WrongAudience = "wrong_audience",
    /// The token's tenant is not configured.
    UnknownTenant = "unknown_tenant",
    /// The token's algorithm is not the one its key is for.
    WrongAlgorithm = "wrong_algorithm",
    /// Development tokens are refused by this vault.
    DevTokensDisabled = "dev_tokens_disabled",
    /// The token's signature does not verify.
    BadSignature = "bad_signature",

    // Requests.
    /// The body is not JSON of the expected shape.
    BadJson = "bad_json",
    /// A field is missing or malformed.
    BadBody = "bad_body",
    /// The body is larger than the vault accepts.
    BodyTooLarge = "body_too_large",
    /// The content type is not `application/json`.
    WrongContentType = "wrong_content_type",
    /// The message's version byte is not one this vault speaks.
    UnsupportedVersion = "unsupported_version",
    /// An OPAQUE message does not parse.
    MalformedMessage = "malformed_message",
    /// The wrapped key has the wrong length.
    WrappedKey = "wrapped_key",
    /// The owner key has the wrong length.
    OwnerKey = "owner_key",
    /// The KSF profile is not one this vault knows.
    UnknownProfile = "unknown_profile",
    /// No such route.
    NotFound = "not_found",

    // The vault's answers.
    /// The password was wrong; `guesses_left` says how many remain.
    WrongPassword = "wrong_password",
    /// Every guess was spent: the escrowed key is gone for good.
    KeyDestroyed = "key_destroyed",
    /// No record for this account.
    NoRecord = "no_record",
    /// The login ticket is not valid (expired, another account's, or tampered).
    NoLogin = "no_login",
    /// The registration ticket is not valid.
    NoRegistration = "no_registration",
    /// A live record exists: replacing or deleting it needs an owner proof.
    OwnerProofRequired = "owner_proof_required",
    /// The owner proof does not verify.
    OwnerProofInvalid = "owner_proof_invalid",
    /// The owner proof is for an older generation: read status and sign again.
    OwnerProofStale = "owner_proof_stale",
    /// The repository head is older than the stored one (the name is kept for stability).
    HeadNotNewer = "head_not_newer",
    /// The vault's record storage served an older state than its core has seen.
    StorageRolledBack = "storage_rolled_back",
    /// The vault's storage or core is unavailable; retry later.
    StorageUnavailable = "storage_unavailable",
    /// Too many requests; retry after `retry_after_secs`.
    RateLimited = "rate_limited",
    /// The vault failed internally.
    Internal = "internal",

    // The device: made by the vault client, the SDK and the CLI, never sent by the vault.
    // The SDK's `Error::code`, the CLI's `--json` and the bindings' exceptions carry them.
    /// The vault could not be reached (network, DNS, TLS, a timeout).
    VaultUnreachable = "vault_unreachable",
    /// The vault refused the token (any of the token codes above, or no usable token).
    Unauthorized = "unauthorized",
    /// Any other vault failure: a bad request, a server error, a protocol violation.
    VaultError = "vault_error",
    /// The account already has a key in the vault: connect instead of setting up anew.
    AccountInUse = "account_in_use",
    /// After an interrupted key rotation the vault holds the previous key: changing the
    /// password needs the current one.
    PreviousKeyInVault = "previous_key_in_vault",
    /// The setup is recovery-key-only: there is no vault to ask.
    NoVault = "no_vault",
    /// No access token was given and none is configured.
    TokenMissing = "token_missing",
    /// The account given is not the token's subject.
    AccountMismatch = "account_mismatch",
    /// A new password is too short.
    PasswordTooShort = "password_too_short",
    /// The recovery key does not open the repository.
    WrongRecoveryKey = "wrong_recovery_key",
    /// The recovery key text is malformed (not 64 hex digits).
    InvalidRecoveryKey = "invalid_recovery_key",
    /// The key the vault released does not open the repository.
    VaultKeyMismatch = "vault_key_mismatch",
    /// The key kept on this device does not open the repository.
    LocalKeyMismatch = "local_key_mismatch",
    /// No repository at the location.
    RepositoryNotFound = "repository_not_found",
    /// A repository already exists at the location.
    RepositoryExists = "repository_exists",
    /// A stored object is damaged or was tampered with.
    IntegrityError = "integrity_error",
    /// The repository's head is older than the one this device saw.
    RolledBack = "rolled_back",
    /// No snapshot matches the id or prefix.
    SnapshotNotFound = "snapshot_not_found",
    /// A path to back up does not exist, or a path to restore is not in the snapshot.
    PathNotFound = "path_not_found",
    /// Restore found differing files in the target; nothing was written.
    WouldOverwrite = "would_overwrite",
    /// Restore left out entries it names (they would write outside the target).
    RestoreIncomplete = "restore_incomplete",
    /// The storage is full.
    StorageFull = "storage_full",
    /// The operation was cancelled; the repository stays valid.
    Cancelled = "cancelled",
    /// Any other failure of the backup engine.
    BackupError = "backup_error",
    /// The operation is not supported on this platform.
    Unsupported = "unsupported",
    /// This device is not set up.
    ConfigMissing = "config_missing",
    /// This device is already set up.
    AlreadyConfigured = "already_configured",
    /// The configuration or key file cannot be understood.
    ConfigInvalid = "config_invalid",
    /// The OS keyring was required but does not answer.
    KeyringUnavailable = "keyring_unavailable",
    /// The OS keyring holding the key failed.
    KeyringError = "keyring_error",
    /// A local file could not be read or written.
    Io = "io",
    /// The command line is wrong (the CLI only).
    Usage = "usage",
    /// The user did not confirm (the CLI only).
    Aborted = "aborted",
}

/// A code string this build does not know (a newer peer's); callers keep the string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownErrorCode;

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown error code")
    }
}

impl std::error::Error for UnknownErrorCode {}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom(format!("unknown error code {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(*c));
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
        assert_eq!("no_such_code".parse::<ErrorCode>(), Err(UnknownErrorCode));
    }
}
