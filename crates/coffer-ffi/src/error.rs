//! The one error type that crosses the boundary.

use std::sync::Arc;

/// Why a call failed: a stable `code` (the SDK's [`coffer_client::Error::code`], the same
/// strings as the CLI's `--json`), a message for people, and what the app needs to act.
///
/// It crosses as an object (Kotlin `CofferException`, Swift and Python `CofferError`), so
/// an app catches one type and switches on `code()`. The message never holds a secret:
/// the SDK's messages do not, and nothing here adds one.
#[derive(Debug, thiserror::Error, uniffi::Object)]
#[error("{message}")]
#[uniffi::export(Debug, Display)]
pub struct CofferError {
    code: String,
    message: String,
    guesses_left: Option<u32>,
    retry_after_secs: Option<u64>,
}

#[uniffi::export]
impl CofferError {
    /// The stable machine-readable code, e.g. `wrong_password`, `key_destroyed`,
    /// `cancelled`, `vault_unreachable` (docs/SDK.md lists them).
    pub fn code(&self) -> String {
        self.code.clone()
    }

    /// What went wrong, for people.
    pub fn message(&self) -> String {
        self.message.clone()
    }

    /// With `wrong_password`: wrong guesses the vault still allows before it destroys the
    /// key (announce the last one before asking again).
    pub fn guesses_left(&self) -> Option<u32> {
        self.guesses_left
    }

    /// With `rate_limited`: seconds to wait, when the vault says.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }
}

/// The result type of every call that can fail.
pub(crate) type Result<T> = std::result::Result<T, Arc<CofferError>>;

impl CofferError {
    /// An error this layer finds itself (bad argument, a setup that was disabled).
    pub(crate) fn new(code: coffer_client::ErrorCode, message: impl Into<String>) -> Arc<Self> {
        Arc::new(CofferError {
            code: code.as_str().to_string(),
            message: message.into(),
            guesses_left: None,
            retry_after_secs: None,
        })
    }
}

/// `.ffi()` turns an SDK result into this crate's (the orphan rule forbids a `From` into
/// `Arc<CofferError>`, the type uniffi throws).
pub(crate) trait Ffi<T> {
    fn ffi(self) -> Result<T>;
}

impl<T> Ffi<T> for std::result::Result<T, coffer_client::Error> {
    fn ffi(self) -> Result<T> {
        self.map_err(|e| Arc::new(e.into()))
    }
}

impl From<coffer_client::Error> for CofferError {
    fn from(e: coffer_client::Error) -> Self {
        use coffer_client::Error as E;
        let (guesses_left, retry_after_secs) = match &e {
            E::WrongPassword { guesses_left } => (Some(*guesses_left), None),
            E::RateLimited { retry_after_secs } => (None, *retry_after_secs),
            _ => (None, None),
        };
        CofferError {
            code: e.code().as_str().to_string(),
            message: e.to_string(),
            guesses_left,
            retry_after_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_code_and_the_guesses_cross_unchanged() {
        let e = CofferError::from(coffer_client::Error::WrongPassword { guesses_left: 7 });
        assert_eq!(e.code(), "wrong_password");
        assert_eq!(e.guesses_left(), Some(7));
        assert!(e.message().contains("7 guesses left"), "{}", e.message());
        let e = CofferError::from(coffer_client::Error::Cancelled);
        assert_eq!((e.code().as_str(), e.guesses_left()), ("cancelled", None));
    }
}
