//! The Coffer vault's trusted core: OPAQUE (RFC 9807) server side, guess counting and
//! record sealing as a sans-IO state machine. The wire types, error codes and the client
//! half of the protocol live in `coffer-vault-proto`; nothing here is client code.
//!
//! Nothing here touches the network, files, a clock or an async runtime. The core's
//! driver (the `coffer-vault core` process, or an HSM's firmware) reads the credential's
//! [`Entry`] from the core's own store, hands it to a handler with the request, and gets
//! back the reply plus the entry it must make durable **before** it releases the reply
//! (docs/VAULT-CORE.md). The host, which stores the sealed record bodies, only ever sees
//! replies, through [`protocol`]. The same code is what would run inside an HSM.

#![forbid(unsafe_code)]

mod authority;
mod core;
mod entry;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod login;
pub mod protocol;
mod record;
mod registration;

pub use crate::authority::Authority;
pub use crate::core::{
    Challenge, CoreKeys, Gated, Recovered, Registered, RegistrationUploadRequest, Status, VaultCore,
};
pub use crate::entry::{ENTRY_LEN, ENTRY_VERSION, Entry, LiveEntry};
pub use crate::error::{CoreError, CoreKeysError, OwnerProofError};
pub use crate::login::{Ke3Verified, RecoverStarted, TICKET_LEN, TICKET_VERSION, TicketError};
pub use crate::protocol::{Reply, Request};
pub use crate::record::{RECORD_VERSION, SealedRecord};
pub use crate::registration::{
    REGISTRATION_TICKET_LEN, REGISTRATION_TICKET_VERSION, RegisterStarted,
};
pub use coffer_vault_proto::{CredentialId, DEFAULT_MAX_GUESSES, KsfProfile};
