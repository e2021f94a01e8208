//! The Coffer vault's trusted core: OPAQUE (RFC 9807) server side, guess counting and
//! record sealing as a sans-IO state machine, plus the client half of the protocol and
//! the JSON wire types both sides share.
//!
//! Nothing here touches the network, files, a clock or an async runtime: the host hands
//! the core the sealed record from storage, the request and an RNG, and gets back the
//! reply plus the state change it must make durable **before** it releases the reply
//! (docs/VAULT-API.md, invariant V2): the record, then the rollback floor the core keeps
//! in a trusted store that record storage cannot roll back (invariant V7, `floor.rs`).
//! The same code is what would run inside an HSM.

pub mod client;
mod core;
mod error;
mod floor;
#[doc(hidden)]
pub mod fuzzing;
pub mod head;
mod login;
pub mod owner;
mod record;
mod registration;
mod suite;
pub mod wire;
mod wrap;

pub use crate::core::{
    CoreKeys, CredentialId, RecoverStartOutcome, Recovered, RegistrationUploadRequest, StateChange,
    Status, VaultCore,
};
pub use crate::error::{
    CoreKeysError, DeleteError, HeadError, OwnerProofError, RecoverFinishError, RecoverStartError,
    RegisterError, StatusError,
};
pub use crate::floor::{FLOOR_LEN, FLOOR_VERSION, Floor, FloorUpdate, Stale};
pub use crate::login::{Ke3Verified, RecoverStarted, TICKET_LEN, TICKET_VERSION, TicketError};
pub use crate::owner::{Authority, OwnerOp};
pub use crate::record::{RECORD_VERSION, SealedRecord};
pub use crate::registration::{
    REGISTRATION_TICKET_LEN, REGISTRATION_TICKET_VERSION, RegisterStarted,
};
pub use crate::suite::{KsfProfile, PROTOCOL_CONTEXT_PREFIX, Suite, context};
pub use crate::wrap::{RELEASE_BLOB_LEN, WRAPPED_KEY_LEN};

/// Default number of wrong guesses an account may spend before its record is destroyed.
pub const DEFAULT_MAX_GUESSES: u32 = 10;
