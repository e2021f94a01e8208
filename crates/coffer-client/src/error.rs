//! The SDK's error type, with a stable machine-readable [`Error::code`].

use std::path::PathBuf;

use coffer_vault_proto::ErrorCode;

use crate::recovery_key::RecoveryKeyError;

/// What went wrong in a [`crate::Coffer`] operation.
///
/// Messages are terse and factual and never contain a password or key; the CLI adds the
/// likely fix. [`Error::code`] is the stable [`ErrorCode`] apps and scripts match on;
/// [`Error::guesses_left`], [`Error::retry_after_secs`] and
/// [`Error::registration_pending`] say what a caller needs to act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault rejected the password; `guesses_left` more wrong guesses destroy the record.
    #[error("wrong password ({guesses_left} guesses left before the vault destroys the key)")]
    WrongPassword {
        /// Wrong guesses the vault still allows.
        guesses_left: u32,
    },
    /// The vault destroyed the key after too many wrong guesses (or it never held one).
    #[error(
        "the vault no longer holds a key for this account (too many wrong passwords, or none was registered)"
    )]
    KeyDestroyed,
    /// The recovery key does not open the repository.
    #[error("this recovery key does not match this repository")]
    WrongRecoveryKey,
    /// The vault released a key, but it does not open the repository.
    #[error("the key the vault holds does not match this repository")]
    VaultKeyMismatch,
    /// The key kept on this device does not open the repository.
    #[error("the key stored on this device does not match this repository")]
    LocalKeyMismatch,
    /// The vault did not answer.
    #[error("the vault at {url} did not answer: {reason}")]
    VaultUnreachable {
        /// The vault URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The vault refused the token.
    #[error("the vault refused the access token: {message}")]
    Unauthorized {
        /// The vault's explanation.
        message: String,
    },
    /// The vault asks the client to slow down.
    #[error("the vault is rate limiting this account{}", retry_after_secs.map(|s| format!("; retry in {s} s")).unwrap_or_default())]
    RateLimited {
        /// Seconds to wait, when the vault says.
        retry_after_secs: Option<u64>,
    },
    /// Any other vault failure (bad request, server error, protocol violation).
    #[error("vault error: {message}")]
    Vault {
        /// What the vault or the protocol reported.
        message: String,
    },
    /// `init` found a key in the vault for this account already (another device's).
    #[error("account {account} already has a key in the vault")]
    AccountInUse {
        /// The account.
        account: String,
    },
    /// The device is set up, or its key rotated, but registering the password with the
    /// vault failed with `source`: the vault does not hold this device's key yet.
    #[error("{source} (the password is not registered with the vault yet)")]
    RegistrationPending {
        /// Why the registration failed.
        source: Box<Error>,
    },
    /// The vault's live record for this account was made with another backup key: it is
    /// replaced or deleted only with proof of that key.
    #[error("the vault record of this account belongs to another backup key: {message}")]
    NotRecordOwner {
        /// The vault's explanation.
        message: String,
    },
    /// After an interrupted key rotation the vault still holds the previous key; changing
    /// the password needs the current vault password to prove it.
    #[error("the vault still holds the key from before an interrupted key rotation")]
    PreviousKeyInVault,
    /// The operation needs a vault but this setup uses only a recovery key.
    #[error("this setup has no vault (recovery-key-only)")]
    NoVault,
    /// No vault token was given and the configuration names no token file.
    #[error("no vault access token: none given and the configuration names no token file")]
    TokenMissing,
    /// The account given (or configured) is not the token's subject.
    #[error(
        "--account {given} does not match the access token, which is for account {token_subject}"
    )]
    AccountMismatch {
        /// The account given on the command line or in the configuration.
        given: String,
        /// The token's `sub`.
        token_subject: String,
    },
    /// The access token could not be read as a JWT naming an account.
    #[error("the access token cannot be used: {detail}")]
    TokenInvalid {
        /// What is wrong with it.
        detail: String,
    },
    /// A new password is too short.
    #[error(
        "the password is too short: use at least {min} characters (the vault allows 10 guesses, but a short password is among the first guesses anyone tries)"
    )]
    PasswordTooShort {
        /// The minimum number of characters.
        min: usize,
    },
    /// A path given to backup does not exist; nothing was saved.
    #[error("{}: {reason}; nothing was saved", path.display())]
    SourceNotFound {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The storage is full.
    #[error("the storage is full (writing {object})")]
    StorageFull {
        /// The object that could not be written.
        object: String,
    },
    /// The repository's head is older than the one this device saw.
    #[error(
        "the repository was rolled back: this device saw snapshot {seen_id} (sequence {seen_seq}), the newest there now has sequence {found}; the storage dropped snapshots or put back an older copy"
    )]
    RolledBack {
        /// The sequence number this device remembers.
        seen_seq: u64,
        /// The snapshot id this device remembers.
        seen_id: String,
        /// The highest sequence number found.
        found: u64,
    },
    /// No repository at the location.
    #[error("no repository at {location}")]
    RepositoryNotFound {
        /// The location.
        location: String,
    },
    /// `init` found a repository already there.
    #[error("a repository already exists at {location}")]
    RepositoryExists {
        /// The location.
        location: String,
    },
    /// A stored object failed authentication: damaged or tampered with.
    #[error("repository object {object} is damaged: {detail}")]
    Integrity {
        /// Object name.
        object: String,
        /// What did not verify.
        detail: String,
    },
    /// No snapshot matches.
    #[error("no snapshot matches {query:?}")]
    SnapshotNotFound {
        /// The id prefix or "latest".
        query: String,
    },
    /// The operation was cancelled; the repository stays valid.
    #[error("cancelled; the repository is valid and the next backup resumes")]
    Cancelled,
    /// Any other backup engine failure.
    #[error(transparent)]
    Backup(coffer_backup::Error),
    /// This device is not set up.
    #[error("coffer is not set up in {}", dir.display())]
    ConfigMissing {
        /// The config directory.
        dir: PathBuf,
    },
    /// The device is already set up.
    #[error("coffer is already set up in {}", dir.display())]
    AlreadyConfigured {
        /// The config directory.
        dir: PathBuf,
    },
    /// The configuration or key file could not be understood.
    #[error("{} is invalid: {detail}", path.display())]
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The recovery key text is malformed.
    #[error(transparent)]
    InvalidRecoveryKey(#[from] RecoveryKeyError),
    /// The OS keyring was required (`--key-store os-keyring`) but did not work.
    #[error("the OS keyring is not available: {reason}")]
    KeyringUnavailable {
        /// What the keyring reported.
        reason: String,
    },
    /// The OS keyring holding this device's key failed.
    #[error("could not {action} the key in the OS keyring: {reason}")]
    Keyring {
        /// `"read"`, `"store"` or `"delete"`.
        action: &'static str,
        /// What the keyring reported.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The error's stable code: the same vocabulary as the vault's API, the CLI's `--json`
    /// and the bindings' exceptions (one enum, [`ErrorCode`]). Match on it, not on messages.
    pub fn code(&self) -> ErrorCode {
        use coffer_backup::Error as E;
        match self {
            Error::WrongPassword { .. } => ErrorCode::WrongPassword,
            Error::KeyDestroyed => ErrorCode::KeyDestroyed,
            Error::WrongRecoveryKey => ErrorCode::WrongRecoveryKey,
            Error::VaultKeyMismatch => ErrorCode::VaultKeyMismatch,
            Error::LocalKeyMismatch => ErrorCode::LocalKeyMismatch,
            Error::VaultUnreachable { .. } => ErrorCode::VaultUnreachable,
            Error::Unauthorized { .. } | Error::TokenInvalid { .. } => ErrorCode::Unauthorized,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Vault { .. } => ErrorCode::VaultError,
            Error::AccountInUse { .. } => ErrorCode::AccountInUse,
            Error::NotRecordOwner { .. } => ErrorCode::OwnerProofInvalid,
            Error::PreviousKeyInVault => ErrorCode::PreviousKeyInVault,
            Error::NoVault => ErrorCode::NoVault,
            Error::TokenMissing => ErrorCode::TokenMissing,
            Error::AccountMismatch { .. } => ErrorCode::AccountMismatch,
            Error::PasswordTooShort { .. } => ErrorCode::PasswordTooShort,
            Error::SourceNotFound { .. } => ErrorCode::PathNotFound,
            Error::StorageFull { .. } => ErrorCode::StorageFull,
            Error::RolledBack { .. } => ErrorCode::RolledBack,
            Error::RepositoryNotFound { .. } => ErrorCode::RepositoryNotFound,
            Error::RepositoryExists { .. } => ErrorCode::RepositoryExists,
            Error::Integrity { .. } => ErrorCode::IntegrityError,
            Error::SnapshotNotFound { .. } => ErrorCode::SnapshotNotFound,
            Error::Cancelled => ErrorCode::Cancelled,
            Error::Backup(E::RestoreCancelled { .. }) => ErrorCode::Cancelled,
            Error::Backup(E::WouldOverwrite { .. }) => ErrorCode::WouldOverwrite,
            Error::Backup(E::PathNotInSnapshot { .. }) => ErrorCode::PathNotFound,
            Error::Backup(E::Unsupported { .. }) => ErrorCode::Unsupported,
            Error::Backup(_) => ErrorCode::BackupError,
            Error::ConfigMissing { .. } => ErrorCode::ConfigMissing,
            Error::AlreadyConfigured { .. } => ErrorCode::AlreadyConfigured,
            Error::ConfigInvalid { .. } => ErrorCode::ConfigInvalid,
            Error::InvalidRecoveryKey(_) => ErrorCode::InvalidRecoveryKey,
            Error::KeyringUnavailable { .. } => ErrorCode::KeyringUnavailable,
            Error::Keyring { .. } => ErrorCode::KeyringError,
            Error::Io { .. } => ErrorCode::Io,
            Error::RegistrationPending { source } => source.code(),
        }
    }

    /// For [`ErrorCode::WrongPassword`]: the wrong guesses the vault still allows (at 0
    /// the next wrong one destroys the key; use the recovery key instead).
    pub fn guesses_left(&self) -> Option<u32> {
        match self.cause() {
            Error::WrongPassword { guesses_left } => Some(*guesses_left),
            _ => None,
        }
    }

    /// For [`ErrorCode::RateLimited`]: seconds to wait, when the vault said.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self.cause() {
            Error::RateLimited { retry_after_secs } => *retry_after_secs,
            _ => None,
        }
    }

    /// The device is set up (or its key rotated) but the vault does not hold its key yet:
    /// the registration failed with this error. [`crate::Coffer::change_password`]
    /// registers it; until then the password does not recover the key.
    pub fn registration_pending(&self) -> bool {
        matches!(self, Error::RegistrationPending { .. })
    }

    /// The error itself, or for [`Error::RegistrationPending`] the failure it wraps.
    pub fn cause(&self) -> &Error {
        match self {
            Error::RegistrationPending { source } => source.cause(),
            other => other,
        }
    }

    /// `self` as the failure of a password registration that left the device set up
    /// without its key in the vault.
    pub(crate) fn pending(self) -> Self {
        Error::RegistrationPending {
            source: Box::new(self),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<coffer_backup::Error> for Error {
    fn from(e: coffer_backup::Error) -> Self {
        match e {
            coffer_backup::Error::NotFound { location } => Error::RepositoryNotFound { location },
            coffer_backup::Error::AlreadyExists { location } => {
                Error::RepositoryExists { location }
            }
            coffer_backup::Error::Integrity { object, detail } => {
                Error::Integrity { object, detail }
            }
            coffer_backup::Error::SnapshotNotFound { query } => Error::SnapshotNotFound { query },
            coffer_backup::Error::Cancelled => Error::Cancelled,
            // WrongKey is translated at each call site, which knows where the key came from.
            coffer_backup::Error::WrongKey => Error::LocalKeyMismatch,
            coffer_backup::Error::SourceNotFound { path, source } => Error::SourceNotFound {
                path,
                reason: source.to_string(),
            },
            coffer_backup::Error::StorageFull { object } => Error::StorageFull { object },
            coffer_backup::Error::RolledBack {
                seen_seq,
                seen_id,
                found,
            } => Error::RolledBack {
                seen_seq,
                seen_id,
                found,
            },
            other => Error::Backup(other),
        }
    }
}

impl From<coffer_vault_client::VaultError> for Error {
    fn from(e: coffer_vault_client::VaultError) -> Self {
        use coffer_vault_client::VaultError as V;
        match e {
            V::WrongPassword { guesses_left } => Error::WrongPassword { guesses_left },
            V::KeyDestroyed | V::NoRecord => Error::KeyDestroyed,
            V::Unauthorized { message } => Error::Unauthorized { message },
            V::RateLimited { retry_after_secs } => Error::RateLimited { retry_after_secs },
            V::Unreachable { url, reason } => Error::VaultUnreachable { url, reason },
            V::OwnerProofRequired { message } | V::OwnerProofInvalid { message } => {
                Error::NotRecordOwner { message }
            }
            other => Error::Vault {
                message: other.to_string(),
            },
        }
    }
}
