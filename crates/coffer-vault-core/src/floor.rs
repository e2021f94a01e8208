//! The rollback floor: per-credential state that record storage cannot roll back.
//!
//! A host that restores an old copy of record storage could hand the core a record with
//! a lower guess count (DESIGN.md, "The vault core boundary"). The core therefore keeps,
//! per credential, the newest generation whose change is known to be durable (the
//! *floor*), in a trusted store apart from record storage (an HSM's NV memory; in the
//! software stand-in the file `trusted.redb`). Rules (docs/VAULT-API.md, invariant V7):
//!
//! | floor | stored record | verdict |
//! |---|---|---|
//! | none | anything authentic, or none | fresh |
//! | `Record { g, d }` | generation > g | fresh (the floor write after a record commit was lost in a crash; it catches up) |
//! | `Record { g, d }` | generation = g and SHA-256 = d | fresh |
//! | `Record { g, d }` | generation = g, other digest | stale (a fork: a record committed at g that the floor never accepted) |
//! | `Record { g, d }` | generation < g, or no record | stale |
//! | `Deleted { g }` | no record, or generation > g | fresh |
//! | `Deleted { g }` | generation <= g | stale (a deleted record restored from an old copy) |
//!
//! Byte layout of one entry: docs/VAULT-API.md, "Trusted store".

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::record::SealedRecord;
use coffer_vault_proto::CredentialId;

/// Version byte of a serialized [`Floor`].
pub const FLOOR_VERSION: u8 = 1;
/// Length of a serialized [`Floor`]: version, kind, generation, digest.
pub const FLOOR_LEN: usize = 1 + 1 + 8 + 32;
const KIND_RECORD: u8 = 1;
const KIND_DELETED: u8 = 2;

/// The trusted lower bound on one credential's record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Floor {
    /// A record (live or tombstone) of at least `generation` must exist; at exactly
    /// `generation` it must be the one whose sealed bytes hash to `digest`.
    Record {
        /// Generation of the newest durable record.
        generation: u64,
        /// SHA-256 of that record's sealed bytes.
        digest: [u8; 32],
    },
    /// The record was deleted by the change of `generation`: no record may exist unless
    /// it is newer (a later registration).
    Deleted {
        /// Generation of the delete.
        generation: u64,
    },
}

impl Floor {
    /// The floor's generation.
    pub fn generation(&self) -> u64 {
        match self {
            Floor::Record { generation, .. } | Floor::Deleted { generation } => *generation,
        }
    }

    /// The floor a durable `record` of `generation` sets.
    pub(crate) fn for_record(record: &SealedRecord, generation: u64) -> Self {
        Floor::Record {
            generation,
            digest: Sha256::digest(record.as_bytes()).into(),
        }
    }

    /// `version (1) || kind (1) || generation (8, LE) || digest (32, zero for Deleted)`.
    pub fn to_bytes(&self) -> [u8; FLOOR_LEN] {
        let mut b = [0u8; FLOOR_LEN];
        b[0] = FLOOR_VERSION;
        let (kind, generation, digest) = match self {
            Floor::Record { generation, digest } => (KIND_RECORD, *generation, *digest),
            Floor::Deleted { generation } => (KIND_DELETED, *generation, [0u8; 32]),
        };
        b[1] = kind;
        b[2..10].copy_from_slice(&generation.to_le_bytes());
        b[10..42].copy_from_slice(&digest);
        b
    }

    /// Parses [`Floor::to_bytes`] output; `None` for a wrong length, version or kind, or
    /// a `Deleted` entry with a non-zero digest.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != FLOOR_LEN || b[0] != FLOOR_VERSION {
            return None;
        }
        let generation = u64::from_le_bytes(b[2..10].try_into().ok()?);
        let digest: [u8; 32] = b[10..42].try_into().ok()?;
        match b[1] {
            KIND_RECORD => Some(Floor::Record { generation, digest }),
            KIND_DELETED if digest == [0u8; 32] => Some(Floor::Deleted { generation }),
            _ => None,
        }
    }
}

/// The floor one state change sets; the host persists it in the trusted store.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FloorUpdate {
    /// The credential.
    pub credential_id: CredentialId,
    /// Its new floor.
    pub floor: Floor,
}

/// Why a stored record was refused: storage is older than the trusted floor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stale {
    /// Generation of the stored record (`None`: no record where one must exist).
    pub stored: Option<u64>,
    /// The trusted floor it fell below.
    pub floor: Floor,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.stored {
            None => "no record".to_string(),
            Some(g) => format!("a record of generation {g}"),
        };
        let floor = match self.floor {
            Floor::Record { generation, .. } => format!("a record of generation {generation}"),
            Floor::Deleted { generation } => format!("a delete at generation {generation}"),
        };
        write!(
            f,
            "storage holds {what} but the trusted floor records {floor}: record storage was rolled back"
        )
    }
}

/// The in-memory copy of the trusted floors. It only ever rises.
pub(crate) struct Floors(Mutex<HashMap<CredentialId, Floor>>);

impl Floors {
    pub(crate) fn new(entries: impl IntoIterator<Item = FloorUpdate>) -> Self {
        let mut map = HashMap::new();
        for u in entries {
            raise(&mut map, u);
        }
        Self(Mutex::new(map))
    }

    pub(crate) fn get(&self, cred: &CredentialId) -> Option<Floor> {
        // A poisoned lock only means another thread panicked between two plain map
        // operations; the map itself is always consistent.
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(cred).copied()
    }

    pub(crate) fn raise(&self, update: FloorUpdate) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        raise(&mut map, update);
    }
}

fn raise(map: &mut HashMap<CredentialId, Floor>, u: FloorUpdate) {
    let keep_old = map
        .get(&u.credential_id)
        .is_some_and(|old| old.generation() > u.floor.generation());
    if !keep_old {
        map.insert(u.credential_id, u.floor);
    }
}

/// Checks a stored record (already authenticated, with its generation) against `floor`.
pub(crate) fn check(
    floor: Option<Floor>,
    stored: Option<(&SealedRecord, u64)>,
) -> Result<(), Stale> {
    let Some(floor) = floor else { return Ok(()) };
    let fresh = match (floor, stored) {
        (Floor::Record { .. }, None) => false,
        (Floor::Record { generation, digest }, Some((rec, g))) => {
            g > generation
                || (g == generation && <[u8; 32]>::from(Sha256::digest(rec.as_bytes())) == digest)
        }
        (Floor::Deleted { .. }, None) => true,
        (Floor::Deleted { generation }, Some((_, g))) => g > generation,
    };
    if fresh {
        Ok(())
    } else {
        Err(Stale {
            stored: stored.map(|(_, g)| g),
            floor,
        })
    }
}
