//! [`Entry`]: what the core itself keeps per credential, in its own store. Byte table:
//! docs/VAULT-CORE.md, "Core store entry".
//!
//! Everything a host could gain guesses or keys from by rolling back lives here, never in
//! the host's record database: the guess count, the generation, the login counter that
//! makes every verified KE3 reset the count at most once, the owner key that alone may
//! replace or delete a live record, and the per-record key without which the host's
//! sealed body opens to nothing. Destroying or deleting a record overwrites the entry
//! with one that holds no key (crypto-erasure): every old copy of the body is then noise,
//! even to someone holding every other key of the core.
//!
//! Entries are sealed (AES-256-GCM under a key derived from the core's sealing key, the
//! credential id as associated data) before they reach storage, so a copy of the store
//! alone reveals no record key, and an entry moved to another credential does not open.

use rand_core::{CryptoRng, RngCore};
use ring::aead::LessSafeKey;
use zeroize::Zeroizing;

use coffer_vault_proto::CredentialId;
use coffer_vault_proto::wrap::{TAG_LEN, open, seal};

/// Version byte of a sealed entry.
pub const ENTRY_VERSION: u8 = 1;
/// HKDF info deriving the entry-sealing key from the core's sealing key.
pub(crate) const ENTRY_INFO: &[u8] = b"coffer/v1/vault/core-entry";
/// Plaintext: kind(1) generation(8) guesses_used(4) attempts(8) reset_below(8)
/// record_key(32) owner_key(32); zeros where a kind has no such field.
const PLAIN_LEN: usize = 1 + 8 + 4 + 8 + 8 + 32 + 32;
/// Length of a sealed entry in the core's store.
pub const ENTRY_LEN: usize = 1 + ring::aead::NONCE_LEN + PLAIN_LEN + TAG_LEN;

const KIND_LIVE: u8 = 1;
const KIND_DESTROYED: u8 = 2;
const KIND_DELETED: u8 = 3;

/// A live registration as the core keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct LiveEntry {
    /// Rises by one with every registration, deletion and destruction; binds the host's
    /// body (its AAD) and owner proofs to one registration.
    pub generation: u64,
    /// Guesses counted since the last verified KE3.
    pub guesses_used: u32,
    /// Counted logins so far in this generation; login tickets carry their number.
    pub attempts: u64,
    /// A verified KE3 resets the count only if its ticket's number is above this, then
    /// raises it to `attempts`: every ticket resets at most once, so a host replaying a
    /// good login cannot hand an attacker's spent guesses back.
    pub reset_below: u64,
    /// AES-256 key of this registration's body; erased with the entry.
    pub record_key: Zeroizing<[u8; 32]>,
    /// Ed25519 public key derived from K (proto's owner.rs).
    pub owner_key: [u8; 32],
}

impl std::fmt::Debug for LiveEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveEntry")
            .field("generation", &self.generation)
            .field("guesses_used", &self.guesses_used)
            .field("attempts", &self.attempts)
            .field("reset_below", &self.reset_below)
            .finish_non_exhaustive()
    }
}

/// The core's state for one credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A registered password.
    Live(LiveEntry),
    /// Every guess was spent: the record key is gone.
    Destroyed {
        /// Generation of the destruction.
        generation: u64,
    },
    /// The owner (or the app, with the reset scope) deleted the record.
    Deleted {
        /// Generation of the deletion.
        generation: u64,
    },
}

impl Entry {
    /// The entry's generation.
    pub fn generation(&self) -> u64 {
        match self {
            Entry::Live(l) => l.generation,
            Entry::Destroyed { generation } | Entry::Deleted { generation } => *generation,
        }
    }

    /// Seals the entry for `cred` under the core's entry key.
    pub(crate) fn seal(
        &self,
        key: &LessSafeKey,
        cred: &CredentialId,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<Vec<u8>> {
        let mut p = Zeroizing::new([0u8; PLAIN_LEN]);
        let (kind, generation) = match self {
            Entry::Live(l) => (KIND_LIVE, l.generation),
            Entry::Destroyed { generation } => (KIND_DESTROYED, *generation),
            Entry::Deleted { generation } => (KIND_DELETED, *generation),
        };
        p[0] = kind;
        p[1..9].copy_from_slice(&generation.to_le_bytes());
        if let Entry::Live(l) = self {
            p[9..13].copy_from_slice(&l.guesses_used.to_le_bytes());
            p[13..21].copy_from_slice(&l.attempts.to_le_bytes());
            p[21..29].copy_from_slice(&l.reset_below.to_le_bytes());
            p[29..61].copy_from_slice(l.record_key.as_ref());
            p[61..93].copy_from_slice(&l.owner_key);
        }
        seal(key, (ENTRY_VERSION, cred.as_bytes()), p.as_ref(), rng)
    }

    /// Opens [`Entry::seal`]'s output; `None` if it is not an entry of `cred` sealed by
    /// this core.
    pub(crate) fn open(key: &LessSafeKey, cred: &CredentialId, sealed: &[u8]) -> Option<Self> {
        let p = open(key, (ENTRY_VERSION, cred.as_bytes()), sealed, PLAIN_LEN)?;
        let u64_at = |i: usize| p.get(i..i + 8)?.try_into().ok().map(u64::from_le_bytes);
        let generation = u64_at(1)?;
        Some(match p[0] {
            KIND_LIVE => {
                let mut record_key = Zeroizing::new([0u8; 32]);
                record_key.copy_from_slice(&p[29..61]);
                Entry::Live(LiveEntry {
                    generation,
                    guesses_used: u32::from_le_bytes(p[9..13].try_into().ok()?),
                    attempts: u64_at(13)?,
                    reset_below: u64_at(21)?,
                    record_key,
                    owner_key: p[61..93].try_into().ok()?,
                })
            }
            KIND_DESTROYED => Entry::Destroyed { generation },
            KIND_DELETED => Entry::Deleted { generation },
            _ => return None,
        })
    }
}
