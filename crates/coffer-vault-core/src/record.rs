//! The record body the host stores: what OPAQUE needs to answer a login and the wrapped
//! key it releases, sealed under the record's own key, which only the core's entry holds
//! (entry.rs). Byte table: docs/VAULT-CORE.md, "Record body".
//!
//! The associated data is `version || credential_id || generation`: the host can neither
//! read a body, move it to another account, nor serve one of another registration
//! undetected. The body holds no count: the host's database changes only when a record
//! is registered, deleted or destroyed, and rolling it back gains nothing.

use rand_core::{CryptoRng, RngCore};
use ring::aead::{AES_256_GCM, LessSafeKey, NONCE_LEN, UnboundKey};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use coffer_vault_proto::wrap::{TAG_LEN, open, seal};
use coffer_vault_proto::{CredentialId, KsfProfile, WRAPPED_KEY_LEN};

/// Version byte of the record body. Version 3 (this one) moved the guess count and the
/// owner key into the core's entry and seals each body under its own key; bodies of
/// versions 1 and 2 (the count inside the host's database) are refused.
pub const RECORD_VERSION: u8 = 3;

/// A body as the host stores it: opaque bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRecord(Vec<u8>);

impl std::fmt::Debug for SealedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedRecord({} bytes)", self.0.len())
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
}

/// The plaintext of a body.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Record {
    #[zeroize(skip)]
    pub(crate) profile: KsfProfile,
    /// The registration's OPRF nonce: opaque-ke's credential identifier is
    /// `credential_id || oprf_nonce` (registration.rs).
    pub(crate) oprf_nonce: [u8; 32],
    /// The serialized OPAQUE `ServerRegistration` (password file).
    pub(crate) password_file: Vec<u8>,
    /// `wrap(export_key, K)`, opaque to the core.
    pub(crate) wrapped_key: Vec<u8>,
}

fn aad(cred: &CredentialId, generation: u64) -> [u8; 40] {
    let mut a = [0u8; 40];
    a[..32].copy_from_slice(cred.as_bytes());
    a[32..].copy_from_slice(&generation.to_le_bytes());
    a
}

fn key(record_key: &[u8; 32]) -> Option<LessSafeKey> {
    Some(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, record_key).ok()?,
    ))
}

impl Record {
    /// Seals the body of `cred`'s registration `generation` under `record_key`.
    pub(crate) fn seal(
        &self,
        record_key: &[u8; 32],
        cred: &CredentialId,
        generation: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<SealedRecord> {
        let len = u16::try_from(self.password_file.len()).ok()?;
        let mut p = Zeroizing::new(Vec::with_capacity(
            1 + 32 + 2 + self.password_file.len() + WRAPPED_KEY_LEN,
        ));
        p.push(self.profile.id());
        p.extend_from_slice(&self.oprf_nonce);
        p.extend_from_slice(&len.to_le_bytes());
        p.extend_from_slice(&self.password_file);
        p.extend_from_slice(&self.wrapped_key);
        seal(
            &key(record_key)?,
            (RECORD_VERSION, &aad(cred, generation)),
            &p,
            rng,
        )
        .map(SealedRecord)
    }

    /// Opens a body sealed by [`Record::seal`] with the same key, credential and
    /// generation; `None` for anything else (another registration's body, an edited
    /// one, one whose key was erased).
    pub(crate) fn open(
        record_key: &[u8; 32],
        cred: &CredentialId,
        generation: u64,
        sealed: &SealedRecord,
    ) -> Option<Self> {
        let plain_len = sealed.0.len().checked_sub(1 + NONCE_LEN + TAG_LEN)?;
        let p = open(
            &key(record_key)?,
            (RECORD_VERSION, &aad(cred, generation)),
            &sealed.0,
            plain_len,
        )?;
        let profile = KsfProfile::from_id(*p.first()?)?;
        let oprf_nonce: [u8; 32] = p.get(1..33)?.try_into().ok()?;
        let len = u16::from_le_bytes(p.get(33..35)?.try_into().ok()?) as usize;
        let password_file = p.get(35..35 + len)?.to_vec();
        let wrapped_key = p.get(35 + len..)?.to_vec();
        if wrapped_key.len() != WRAPPED_KEY_LEN {
            return None;
        }
        Some(Record {
            profile,
            oprf_nonce,
            password_file,
            wrapped_key,
        })
    }
}
