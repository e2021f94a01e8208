//! One error enum per core operation. Messages are terse and never contain secrets.

use thiserror::Error;

use crate::floor::Stale;

/// Loading the core's keys failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreKeysError {
    /// The key blob is truncated, has an unknown version, or its OPAQUE setup is invalid.
    #[error("vault core keys are malformed or of an unknown version")]
    Malformed,
}

/// Replacing or deleting a live record was not authorised (owner.rs).
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
    /// The signature does not verify under the record's owner key: not made with this
    /// record's backup key.
    #[error("the owner proof does not verify: it was not made with this record's backup key")]
    Invalid,
}

/// `register/start` or `register/finish` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A message did not parse or had the wrong length.
    #[error("malformed {what}")]
    Malformed {
        /// Which field.
        what: &'static str,
    },
    /// The KSF profile name is not one this vault knows.
    #[error("unknown key stretching profile")]
    UnknownProfile,
    /// The stored record does not authenticate for this account.
    #[error("stored vault record fails authentication (tampered, or another vault's key)")]
    CorruptRecord,
    /// The registration ticket is not one this core sealed for this account.
    #[error("registration ticket invalid for this account; start the registration again")]
    BadTicket,
    /// The registration ticket expired.
    #[error("registration ticket expired; start the registration again")]
    TicketExpired,
    /// A live record exists and the caller did not prove ownership.
    #[error(transparent)]
    Owner(OwnerProofError),
    /// Sealing failed (should not happen with a valid key).
    #[error("internal sealing failure")]
    Internal,
}

/// `recover/start` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecoverStartError {
    /// KE1 did not parse or had the wrong length.
    #[error("malformed KE1")]
    Malformed,
    /// The stored record does not authenticate for this account.
    #[error("stored vault record fails authentication (tampered, or another vault's key)")]
    CorruptRecord,
    /// The stored record is older than the trusted floor (or missing where the floor
    /// says one exists): record storage was rolled back. Nothing was released or counted.
    #[error("{0}; restore the latest record database")]
    StorageRolledBack(Stale),
    /// OPAQUE or sealing failed internally.
    #[error("internal protocol failure")]
    Internal,
}

/// `recover/finish` failed. Nothing is reset by any of these.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecoverFinishError {
    /// KE3 did not parse or had the wrong length.
    #[error("malformed KE3")]
    Malformed,
    /// KE3 did not verify: wrong password (or an unknown account).
    #[error("wrong password; {guesses_left} guesses left")]
    WrongPassword {
        /// Guesses the account has left.
        guesses_left: u32,
    },
    /// The record changed since `recover/start` (a newer guess, registration or delete):
    /// this login may not reset the newer count. Start again.
    #[error("login superseded by a newer change to the record; start again")]
    Superseded,
    /// The stored record does not authenticate for this account.
    #[error("stored vault record fails authentication (tampered, or another vault's key)")]
    CorruptRecord,
    /// The stored record is older than the trusted floor (or missing where the floor
    /// says one exists): record storage was rolled back. Nothing was released or counted.
    #[error("{0}; restore the latest record database")]
    StorageRolledBack(Stale),
    /// Sealing failed internally.
    #[error("internal sealing failure")]
    Internal,
}

/// `status` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The stored record does not authenticate for this account.
    #[error("stored vault record fails authentication (tampered, or another vault's key)")]
    CorruptRecord,
    /// The stored record is older than the trusted floor (or missing where the floor
    /// says one exists): record storage was rolled back. Nothing was released or counted.
    #[error("{0}; restore the latest record database")]
    StorageRolledBack(Stale),
}

/// `delete` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeleteError {
    /// Neither a record nor a floor saying one should exist: nothing to delete.
    #[error("this account has no vault record")]
    NoRecord,
    /// The stored record does not authenticate for this account.
    #[error("stored vault record fails authentication (tampered, or another vault's key)")]
    CorruptRecord,
    /// A live record exists and the caller did not prove ownership.
    #[error(transparent)]
    Owner(OwnerProofError),
}

/// Storing a repository head was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HeadError {
    /// No live record: a head is kept only beside a password record.
    #[error("this account has no live vault record to keep a head beside")]
    NoRecord,
    /// The caller did not prove ownership of the live record.
    #[error(transparent)]
    Owner(OwnerProofError),
    /// The stored record does not authenticate for this account.
    #[error("stored vault record fails authentication (tampered, or another vault's key)")]
    CorruptRecord,
    /// The stored record is older than the trusted floor.
    #[error("{0}; restore the latest record database")]
    StorageRolledBack(Stale),
}
