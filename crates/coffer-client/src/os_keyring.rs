//! The OS keyring key store, through the `keyring` crate: the Keychain on macOS, the
//! Credential Manager on Windows, the Secret Service (GNOME Keyring, KWallet, KeePassXC)
//! on Linux.
//!
//! One entry per config directory: service [`KEYRING_SERVICE`], user = the directory's
//! absolute path when it was set up (recorded in `config.json`, so a moved folder still
//! finds its key and two folders on one machine never share an entry). The secret is K
//! as 64 hex digits, the same text as the key file. A rotation's new key waits in a
//! second entry, user + [`PENDING_SUFFIX`].
//!
//! Every call runs on a thread of its own, with a deadline: with the `tokio` runtime the
//! Secret Service client may deadlock when called from a thread that already runs an
//! async runtime (an app embedding this SDK), and a keyring waiting on an unlock prompt
//! nobody answers must not hang `coffer` forever.

use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use coffer_backup::BackupKey;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::key_file::parse_hex_key;

/// The keyring service name of every Coffer entry.
pub const KEYRING_SERVICE: &str = "coffer";
/// Appended to the user of the entry holding an unfinished rotation's key.
pub const PENDING_SUFFIX: &str = "#pending";
/// How long one keyring call may take (an unlock prompt on a desktop counts).
const DEADLINE: Duration = Duration::from_secs(60);

/// Why a keyring call failed, in words for the user; never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyringFailure(pub(crate) String);

/// One config directory's entries in the OS keyring.
#[derive(Debug, Clone)]
pub(crate) struct OsKeyring {
    user: String,
}

impl OsKeyring {
    pub(crate) fn new(user: &str) -> Self {
        OsKeyring {
            user: user.to_string(),
        }
    }

    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    fn entry_user(&self, pending: bool) -> String {
        if pending {
            format!("{}{PENDING_SUFFIX}", self.user)
        } else {
            self.user.clone()
        }
    }

    /// Stores K and reads it back: a keyring that accepts a write but cannot return it
    /// (a locked collection, a stub store) must not be trusted with the only copy.
    pub(crate) fn save(&self, key: &BackupKey, pending: bool) -> Result<(), KeyringFailure> {
        let user = self.entry_user(pending);
        let text = Zeroizing::new(hex::encode(key.as_bytes()));
        let back = on_own_thread(move || {
            let entry = keyring::Entry::new(KEYRING_SERVICE, &user)?;
            entry.set_password(&text)?;
            entry.get_password().map(Zeroizing::new)
        })?;
        let back = parse_hex_key(&back).ok_or_else(|| {
            KeyringFailure("the OS keyring returned something else than the key just stored".into())
        })?;
        if bool::from(back.as_bytes().ct_eq(key.as_bytes())) {
            Ok(())
        } else {
            Err(KeyringFailure(
                "the OS keyring returned another key than the one just stored".into(),
            ))
        }
    }

    /// K, or `None` when the keyring has no such entry.
    pub(crate) fn load(&self, pending: bool) -> Result<Option<BackupKey>, KeyringFailure> {
        let user = self.entry_user(pending);
        let text = on_own_thread(move || {
            let entry = keyring::Entry::new(KEYRING_SERVICE, &user)?;
            match entry.get_password() {
                Ok(t) => Ok(Some(Zeroizing::new(t))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        match text {
            None => Ok(None),
            Some(t) => parse_hex_key(&t).map(Some).ok_or_else(|| {
                KeyringFailure("the OS keyring entry does not hold 64 hex digits".into())
            }),
        }
    }

    /// Deletes the entry; an absent one is not an error.
    pub(crate) fn delete(&self, pending: bool) -> Result<(), KeyringFailure> {
        let user = self.entry_user(pending);
        on_own_thread(move || {
            let entry = keyring::Entry::new(KEYRING_SERVICE, &user)?;
            match entry.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

fn on_own_thread<T: Send + 'static>(
    call: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<T, KeyringFailure> {
    let (tx, rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("coffer-keyring".into())
        .spawn(move || {
            // The receiver is gone only after the deadline passed; nothing to tell then.
            let _ = tx.send(call());
        })
        .map_err(|e| KeyringFailure(format!("could not start a thread for the OS keyring: {e}")))?;
    match rx.recv_timeout(DEADLINE) {
        Ok(r) => r.map_err(|e| KeyringFailure(describe(&e))),
        Err(RecvTimeoutError::Timeout) => Err(KeyringFailure(format!(
            "the OS keyring did not answer within {} s (locked, waiting for an unlock prompt?)",
            DEADLINE.as_secs()
        ))),
        Err(RecvTimeoutError::Disconnected) => {
            Err(KeyringFailure("the OS keyring library crashed".into()))
        }
    }
}

/// The error in words, without ever echoing stored bytes (`BadEncoding` carries them).
fn describe(e: &keyring::Error) -> String {
    match e {
        keyring::Error::NoStorageAccess(inner) => format!("access denied: {inner}"),
        keyring::Error::PlatformFailure(inner) => inner.to_string(),
        keyring::Error::NoEntry => "no such entry".into(),
        keyring::Error::BadEncoding(_) => "the entry is not text".into(),
        keyring::Error::TooLong(what, max) => {
            format!("the keyring {what} is longer than the {max} characters allowed")
        }
        keyring::Error::Invalid(what, why) => format!("invalid keyring {what}: {why}"),
        keyring::Error::Ambiguous(_) => "several entries match this config folder".into(),
        _ => "unknown error".into(),
    }
}
