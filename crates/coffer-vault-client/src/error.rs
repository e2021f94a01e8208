//! [`VaultError`] and its mapping from the server's JSON error replies.

use coffer_vault_proto::ErrorCode;
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
    // The one place a vault code string is read; a code this build does not know (a newer
    // vault's) falls to the status.
    let code = e.code.parse::<ErrorCode>().ok();
    match (status, code) {
        (_, Some(ErrorCode::WrongPassword)) => VaultError::WrongPassword {
            guesses_left: e.guesses_left.unwrap_or(0),
        },
        (_, Some(ErrorCode::KeyDestroyed)) => VaultError::KeyDestroyed,
        (_, Some(ErrorCode::NoRecord)) => VaultError::NoRecord,
        (_, Some(ErrorCode::StorageRolledBack)) => {
            VaultError::StorageRolledBack { message: e.message }
        }
        (_, Some(ErrorCode::OwnerProofRequired)) => {
            VaultError::OwnerProofRequired { message: e.message }
        }
        (_, Some(ErrorCode::OwnerProofInvalid)) => {
            VaultError::OwnerProofInvalid { message: e.message }
        }
        (_, Some(ErrorCode::OwnerProofStale)) => VaultError::OwnerProofStale,
        (_, Some(ErrorCode::HeadNotNewer)) => VaultError::HeadNotNewer { message: e.message },
        (_, Some(ErrorCode::RateLimited)) => VaultError::RateLimited {
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

impl VaultError {
    /// The error's stable code: the vault's own where it sent one this client acts on.
    pub fn code(&self) -> ErrorCode {
        match self {
            VaultError::WrongPassword { .. } => ErrorCode::WrongPassword,
            VaultError::KeyDestroyed => ErrorCode::KeyDestroyed,
            VaultError::NoRecord => ErrorCode::NoRecord,
            VaultError::Unauthorized { .. } => ErrorCode::Unauthorized,
            VaultError::OwnerProofRequired { .. } => ErrorCode::OwnerProofRequired,
            VaultError::OwnerProofInvalid { .. } => ErrorCode::OwnerProofInvalid,
            VaultError::OwnerProofStale => ErrorCode::OwnerProofStale,
            VaultError::HeadNotNewer { .. } => ErrorCode::HeadNotNewer,
            VaultError::RateLimited { .. } => ErrorCode::RateLimited,
            VaultError::Unreachable { .. } => ErrorCode::VaultUnreachable,
            VaultError::StorageRolledBack { .. } => ErrorCode::StorageRolledBack,
            VaultError::BadRequest { .. }
            | VaultError::Server { .. }
            | VaultError::Protocol { .. } => ErrorCode::VaultError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: &str, extra: &str) -> String {
        format!(r#"{{"v":1,"error":{{"code":"{code}","message":"m"{extra}}}}}"#)
    }

    #[test]
    fn the_body_code_decides_and_an_unknown_code_falls_to_the_status() {
        let e = from_reply(403, &reply("wrong_password", r#","guesses_left":4"#));
        assert!(
            matches!(e, VaultError::WrongPassword { guesses_left: 4 }),
            "{e}"
        );
        assert_eq!(e.code(), ErrorCode::WrongPassword);
        let e = from_reply(429, &reply("rate_limited", r#","retry_after_secs":9"#));
        assert!(
            matches!(
                e,
                VaultError::RateLimited {
                    retry_after_secs: Some(9)
                }
            ),
            "{e}"
        );
        let e = from_reply(401, &reply("token_expired", ""));
        assert_eq!(e.code(), ErrorCode::Unauthorized);
        let e = from_reply(503, &reply("some_future_code", ""));
        assert!(matches!(e, VaultError::Server { status: 503, .. }), "{e}");
        assert_eq!(from_reply(400, "not json").code(), ErrorCode::VaultError);
    }
}
