//! The Coffer vault's trusted core: OPAQUE (RFC 9807) server side, guess counting and
//! record sealing as a sans-IO state machine. The wire types, error codes and the client
//! half of the protocol live in `coffer-vault-proto`; nothing here is client code.
//!
//! Nothing here touches the network, files, a clock or an async runtime: the host hands
//! the core the sealed record from storage, the request and an RNG, and gets back the
//! reply plus the state change it must make durable **before** it releases the reply
//! (docs/VAULT-API.md, invariant V2): the record, then the rollback floor the core keeps
//! in a trusted store that record storage cannot roll back (invariant V7, `floor.rs`).
//! The same code is what would run inside an HSM.

#![forbid(unsafe_code)]

mod authority;
mod core;
mod error;
mod floor;
#[doc(hidden)]
pub mod fuzzing;
mod login;
mod record;
mod registration;

pub use crate::authority::Authority;
pub use crate::core::{
    CoreKeys, RecoverStartOutcome, Recovered, RegistrationUploadRequest, StateChange, Status,
    VaultCore,
};
pub use crate::error::{
    CoreKeysError, DeleteError, HeadError, OwnerProofError, RecoverFinishError, RecoverStartError,
    RegisterError, StatusError,
};
pub use crate::floor::{FLOOR_LEN, FLOOR_VERSION, Floor, FloorUpdate, Stale};
pub use crate::login::{Ke3Verified, RecoverStarted, TICKET_LEN, TICKET_VERSION, TicketError};
pub use crate::record::{RECORD_VERSION, SealedRecord};
pub use crate::registration::{
    REGISTRATION_TICKET_LEN, REGISTRATION_TICKET_VERSION, RegisterStarted,
};
pub use coffer_vault_proto::{CredentialId, DEFAULT_MAX_GUESSES, KsfProfile};
