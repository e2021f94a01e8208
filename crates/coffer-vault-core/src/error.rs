//! The core's errors: one enum, each variant mapped to the shared [`ErrorCode`] the host
//! answers with. Messages are terse and never contain secrets.

use coffer_vault_proto::ErrorCode;
use thiserror::Error;

/// Loading the core's keys failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreKeysError {
    /// The key blob is truncated, has an unknown version, or its OPAQUE setup is invalid.
    #[error("vault core keys are malformed or of an unknown version")]
    Malformed,
}

/// Replacing or deleting a live record was not authorised (proto's owner.rs).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnerProofError {
    /// A live record exists and the request carries neither an owner proof nor a token
    /// with the reset scope.
    #[error(
        "a live record exists: replacing or deleting it needs an owner proof made with the backup key"
    )]
    Required,
    /// The proof was made for another generation of the record (it changed since the
    /// client read `status`): read it again and sign the current one.
    #[error(
        "the owner proof is for an older state of the record (now generation {generation}); sign the current one"
    )]
    Stale {
        /// The record's current generation.
        generation: u64,
    },
    /// The signature does not verify under the record's owner key.
    #[error("the owner proof does not verify: it was not made with this record's backup key")]
    Invalid,
}

/// Why the core refused a request. Nothing changed in its store when it did.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// A message did not parse or had the wrong length.
    #[error("malformed {what}")]
    Malformed {
        /// Which field.
        what: &'static str,
    },
    /// The KSF profile name is not one this vault knows.
    #[error("unknown key stretching profile")]
    UnknownProfile,
    /// The registration ticket is not one this core sealed for this account, or expired.
    #[error(
        "registration ticket invalid or expired for this account; start the registration again"
    )]
    BadRegistrationTicket,
    /// The login ticket is not one this core sealed for this account, expired, or its
    /// login was superseded by a newer registration or deletion.
    #[error("no such login (expired, another account's, or superseded); start the recovery again")]
    NoLogin,
    /// The KE3 did not verify: wrong password.
    #[error("wrong password; {guesses_left} guesses left")]
    WrongPassword {
        /// Guesses left after the counted one.
        guesses_left: u32,
    },
    /// The record was destroyed after too many wrong guesses.
    #[error("the escrowed key was destroyed after too many wrong guesses")]
    KeyDestroyed {
        /// The host should delete the body it still stores (it opens to nothing now).
        drop_body: bool,
    },
    /// No record for this account.
    #[error("this account has no vault record")]
    NoRecord,
    /// The owner proof is missing, stale or invalid.
    #[error(transparent)]
    Owner(#[from] OwnerProofError),
    /// The body the host sent is not the current registration's (missing, rolled back,
    /// another account's, or edited): nothing was counted.
    #[error(
        "the record database served a body that is not this registration's; restore the latest record database"
    )]
    StorageRolledBack,
    /// A group keeps a repository head at or above this one's sequence number.
    #[error("the vault already keeps head {kept}; a head is only replaced by a newer one")]
    HeadNotNewer {
        /// The sequence number of the head kept.
        kept: u64,
    },
    /// The core's own store failed; nothing was released.
    #[error("the vault core's store is unavailable; retry later")]
    StoreUnavailable,
    /// Sealing failed (should not happen).
    #[error("internal vault core failure")]
    Internal,
}

impl CoreError {
    /// The stable code the host answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::Malformed {
                what: "wrapped key",
            } => ErrorCode::WrappedKey,
            CoreError::Malformed { what: "owner key" } => ErrorCode::OwnerKey,
            CoreError::Malformed { .. } => ErrorCode::MalformedMessage,
            CoreError::UnknownProfile => ErrorCode::UnknownProfile,
            CoreError::BadRegistrationTicket => ErrorCode::NoRegistration,
            CoreError::NoLogin => ErrorCode::NoLogin,
            CoreError::WrongPassword { .. } => ErrorCode::WrongPassword,
            CoreError::KeyDestroyed { .. } => ErrorCode::KeyDestroyed,
            CoreError::NoRecord => ErrorCode::NoRecord,
            CoreError::Owner(OwnerProofError::Required) => ErrorCode::OwnerProofRequired,
            CoreError::Owner(OwnerProofError::Stale { .. }) => ErrorCode::OwnerProofStale,
            CoreError::Owner(OwnerProofError::Invalid) => ErrorCode::OwnerProofInvalid,
            CoreError::StorageRolledBack => ErrorCode::StorageRolledBack,
            CoreError::HeadNotNewer { .. } => ErrorCode::HeadNotNewer,
            CoreError::StoreUnavailable => ErrorCode::StorageUnavailable,
            CoreError::Internal => ErrorCode::Internal,
        }
    }
}
