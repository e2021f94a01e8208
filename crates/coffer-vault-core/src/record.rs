//! The vault record and its sealed form. Byte tables: docs/VAULT-API.md, "Sealed record".
//!
//! The host stores only [`SealedRecord`]s. The AEAD's associated data is
//! `version || credential_id || generation`, so the host can neither read a record, move
//! it to another account, nor edit it (or its generation) undetected.

use rand_core::{CryptoRng, RngCore};
use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use coffer_vault_proto::CredentialId;
use coffer_vault_proto::KsfProfile;

/// Version byte of the sealed record layout.
///
/// Version 2 (this one) added the per-registration OPRF nonce and the owner key; version
/// 1 records came only from pre-release vaults and are refused as unreadable.
pub const RECORD_VERSION: u8 = 2;
const HEADER_LEN: usize = 1 + 8 + NONCE_LEN;
const KIND_LIVE: u8 = 1;
const KIND_DESTROYED: u8 = 2;

/// A record as the host stores it: opaque bytes plus a readable generation.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRecord(Vec<u8>);

impl std::fmt::Debug for SealedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedRecord(gen {:?}, {} bytes)",
            self.generation(),
            self.0.len()
        )
    }
}

impl SealedRecord {
    /// Wraps bytes read from storage; nothing is checked until the core opens it.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The record's generation as written in its (authenticated) header; `None` if the
    /// header is truncated. Only trustworthy once the core has opened the record.
    pub fn generation(&self) -> Option<u64> {
        let b: [u8; 8] = self.0.get(1..9)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    }
}

/// The plaintext inside a sealed record.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) enum Record {
    /// A registered password.
    Live {
        #[zeroize(skip)]
        profile: KsfProfile,
        guesses_used: u32,
        /// The registration's OPRF nonce: opaque-ke's credential identifier is
        /// `credential_id || oprf_nonce` (core.rs, `oprf_identifier`).
        oprf_nonce: [u8; 32],
        /// The Ed25519 owner key derived from K; replacing or deleting this record needs
        /// its signature (owner.rs).
        owner_key: [u8; 32],
        /// The serialized OPAQUE `ServerRegistration` (password file).
        password_file: Vec<u8>,
        /// `wrap(export_key, K)`, opaque to the core.
        wrapped_key: Vec<u8>,
    },
    /// The tombstone left after the last guess was spent: no secrets, only the fact.
    Destroyed,
}

fn aad(cred: &CredentialId, generation: u64) -> [u8; 41] {
    let mut a = [0u8; 41];
    a[0] = RECORD_VERSION;
    a[1..33].copy_from_slice(cred.as_bytes());
    a[33..41].copy_from_slice(&generation.to_le_bytes());
    a
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Both fields are far below 64 KiB (checked at registration).
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn take_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u16::from_le_bytes(input.get(..2)?.try_into().ok()?) as usize;
    let v = input.get(2..2 + len)?;
    *input = &input[2 + len..];
    Some(v)
}

impl Record {
    /// This live record with its guess count set to `guesses_used` (a counted guess, or
    /// the reset after a verified KE3); `None` for a tombstone, which has no count.
    pub(crate) fn with_guesses_used(&self, guesses_used: u32) -> Option<Record> {
        match self {
            Record::Live {
                profile,
                oprf_nonce,
                owner_key,
                password_file,
                wrapped_key,
                ..
            } => Some(Record::Live {
                profile: *profile,
                guesses_used,
                oprf_nonce: *oprf_nonce,
                owner_key: *owner_key,
                password_file: password_file.clone(),
                wrapped_key: wrapped_key.clone(),
            }),
            Record::Destroyed => None,
        }
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        match self {
            Record::Live {
                profile,
                guesses_used,
                oprf_nonce,
                owner_key,
                password_file,
                wrapped_key,
            } => {
                out.push(KIND_LIVE);
                out.push(profile.id());
                out.extend_from_slice(&guesses_used.to_le_bytes());
                out.extend_from_slice(oprf_nonce);
                out.extend_from_slice(owner_key);
                put_bytes(&mut out, password_file);
                put_bytes(&mut out, wrapped_key);
            }
            Record::Destroyed => out.push(KIND_DESTROYED),
        }
        out
    }

    fn decode(mut b: &[u8]) -> Option<Self> {
        let kind = *b.first()?;
        b = &b[1..];
        match kind {
            KIND_LIVE => {
                let profile = KsfProfile::from_id(*b.first()?)?;
                let guesses_used = u32::from_le_bytes(b.get(1..5)?.try_into().ok()?);
                let oprf_nonce = b.get(5..37)?.try_into().ok()?;
                let owner_key = b.get(37..69)?.try_into().ok()?;
                b = &b[69..];
                let password_file = take_bytes(&mut b)?.to_vec();
                let wrapped_key = take_bytes(&mut b)?.to_vec();
                b.is_empty().then_some(Record::Live {
                    profile,
                    guesses_used,
                    oprf_nonce,
                    owner_key,
                    password_file,
                    wrapped_key,
                })
            }
            KIND_DESTROYED => b.is_empty().then_some(Record::Destroyed),
            _ => None,
        }
    }

    /// Seals under `key` for `cred` at `generation`.
    pub(crate) fn seal(
        &self,
        key: &LessSafeKey,
        cred: &CredentialId,
        generation: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<SealedRecord> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut body = self.encode();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(cred, generation)),
            &mut *body,
        )
        .ok()?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&generation.to_le_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Some(SealedRecord(out))
    }

    /// Opens a sealed record of `cred`; returns it with its generation, or `None` if the
    /// bytes are not an authentic record of this account.
    pub(crate) fn open(
        key: &LessSafeKey,
        cred: &CredentialId,
        sealed: &SealedRecord,
    ) -> Option<(Self, u64)> {
        let b = &sealed.0;
        if b.len() < HEADER_LEN || b[0] != RECORD_VERSION {
            return None;
        }
        let generation = sealed.generation()?;
        let nonce: [u8; NONCE_LEN] = b[9..HEADER_LEN].try_into().ok()?;
        let mut body = Zeroizing::new(b[HEADER_LEN..].to_vec());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(cred, generation)),
                body.as_mut(),
            )
            .ok()?;
        Some((Self::decode(plain)?, generation))
    }
}
