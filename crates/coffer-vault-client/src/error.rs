//! [`VaultError`] and its mapping from the server's JSON error replies.

use coffer_vault_proto::wire::ErrorReply;
use thiserror::Error;

/// Anything a vault call can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The password is wrong (also what an unknown account looks like at recover).
    #[error("wrong password; {guesses_left} guesses left before the key is destroyed")]
    WrongPassword {
        /// Guesses left.
        guesses_left: u32,
    },
    /// Too many wrong guesses: the record is gone.
    #[error(
        "the backup key was destroyed after too many wrong password guesses; use the recovery key"
    )]
    KeyDestroyed,
    /// Status/delete of an account without a record.
    #[error("this account has no vault record")]
    NoRecord,
    /// 401/403: token missing, expired, or for another vault.
    #[error("not authorised by the vault: {message}")]
    Unauthorized {
        /// The server's message.
        message: String,
    },
    /// The account has a live record and replacing or deleting it needs an owner proof
    /// made with its backup key, which this request did not carry.
    #[error("the account's vault record belongs to another backup key: {message}")]
    OwnerProofRequired {
        /// The server's message.
        message: String,
    },
    /// The owner proof was made with a key that is not this record's.
    #[error("the vault record was not made with this backup key: {message}")]
    OwnerProofInvalid {
        /// The server's message.
        message: String,
    },
    /// The record changed between signing and sending; sign again.
    #[error("the vault record changed while it was being replaced; retry")]
    OwnerProofStale,
    /// The vault keeps a newer repository head than the one sent.
    #[error("the vault already keeps a newer repository head: {message}")]
    HeadNotNewer {
        /// The server's message.
        message: String,
    },
    /// Per-account rate limit.
    #[error("rate limited by the vault; retry after {retry_after_secs:?} s")]
    RateLimited {
        /// Seconds to wait, if the server said.
        retry_after_secs: Option<u64>,
    },
    /// No connection.
    #[error("cannot reach the vault at {url}: {reason}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// Transport error.
        reason: String,
    },
    /// Another 4xx.
    #[error("vault rejected the request: {message}")]
    BadRequest {
        /// The server's message.
        message: String,
    },
    /// The vault refused this account's record as older than its trusted state: its
    /// record database was restored from an old copy. Nothing was released or counted;
    /// only the vault's operator can fix it (restore the latest database). Retry later.
    #[error(
        "vault storage was rolled back to an old copy; the vault operator must restore it: {message}"
    )]
    StorageRolledBack {
        /// The server's message.
        message: String,
    },
    /// 5xx.
    #[error("vault server error {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A malformed reply or an OPAQUE failure not attributable to the password.
    #[error("vault protocol error: {message}")]
    Protocol {
        /// What failed.
        message: String,
    },
}

pub(crate) fn from_reply(status: u16, text: &str) -> VaultError {
    let Ok(r) = serde_json::from_str::<ErrorReply>(text) else {
        let message = format!("HTTP {status} without a JSON error body");
        return if status >= 500 {
            VaultError::Server { status, message }
        } else {
            VaultError::BadRequest { message }
        };
    };
    let e = r.error;
    match (status, e.code.as_str()) {
        (_, "wrong_password") => VaultError::WrongPassword {
            guesses_left: e.guesses_left.unwrap_or(0),
        },
        (_, "key_destroyed") => VaultError::KeyDestroyed,
        (_, "no_record") => VaultError::NoRecord,
        (_, "storage_rolled_back") => VaultError::StorageRolledBack { message: e.message },
        (_, "owner_proof_required") => VaultError::OwnerProofRequired { message: e.message },
        (_, "owner_proof_invalid") => VaultError::OwnerProofInvalid { message: e.message },
        (_, "owner_proof_stale") => VaultError::OwnerProofStale,
        (_, "head_not_newer") => VaultError::HeadNotNewer { message: e.message },
        (_, "rate_limited") => VaultError::RateLimited {
            retry_after_secs: e.retry_after_secs,
        },
        (401 | 403, _) => VaultError::Unauthorized { message: e.message },
        (500.., _) => VaultError::Server {
            status,
            message: e.message,
        },
        _ => VaultError::BadRequest { message: e.message },
    }
}
