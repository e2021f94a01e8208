//! The Coffer vault protocol, shared by every party that speaks it: the JSON wire types
//! of the HTTP API, the one stable error-code vocabulary ([`ErrorCode`]), the OPAQUE
//! ciphersuite and KSF profiles, the client half of the protocol, and the small keyed
//! formats both sides compute (owner proofs, repository heads, the wrapped key).
//!
//! The trusted core (`coffer-vault-core`) builds on this crate and holds the server half;
//! nothing here holds a server key.

#![forbid(unsafe_code)]

pub mod client;
mod code;
pub mod head;
pub mod owner;
mod suite;
pub mod wire;
pub mod wrap;

pub use crate::code::{ErrorCode, UnknownErrorCode};
pub use crate::owner::OwnerOp;
pub use crate::suite::{KsfProfile, PROTOCOL_CONTEXT_PREFIX, Suite, context, decode_exact};
pub use crate::wrap::{RELEASE_BLOB_LEN, WRAPPED_KEY_LEN};

/// Default number of wrong guesses an account may spend before its record is destroyed.
pub const DEFAULT_MAX_GUESSES: u32 = 10;

/// The id a record is stored under: `HMAC-SHA256(credential-id key, tenant || 0x00 ||
/// account)`, computed by the host. Never the raw account id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct CredentialId([u8; 32]);

impl CredentialId {
    /// Wraps 32 bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}
