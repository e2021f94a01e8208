//! The trusted store (`DIR/trusted.redb`): the software stand-in for an HSM's NV memory,
//! holding the core's rollback floors (docs/VAULT-API.md, "Trusted store").
//!
//! It is a file apart from the record database on purpose: an attacker who restores an
//! old copy of `vault.redb` leaves this file current, and the core refuses the stale
//! records. One who rolls back both files together beats the stand-in; a real HSM's
//! monotonic NV storage, or floors agreed by a majority of replicas, closes that.

use std::path::{Path, PathBuf};

use coffer_vault_core::{CredentialId, Floor, FloorUpdate};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;

use crate::storage::StorageError;

/// File name of the trusted store inside the data directory.
pub const TRUSTED_FILE: &str = "trusted.redb";

/// Key: credential id (32 bytes); value: a serialized `Floor` (docs/VAULT-API.md).
const FLOORS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("floors_v1");

/// Opening or reading the trusted store failed; the vault does not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrustedStoreError {
    /// `serve` without `trusted.redb`.
    #[error(
        "trusted store {path} is missing; restore it from where it was (serving without it would accept any rolled-back record), or run `coffer-vault init` for a new vault"
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `init` over an existing trusted store.
    #[error("{path} already exists; refusing to replace an existing vault's trusted store")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// An entry that is not a floor of a known version.
    #[error(
        "trusted store {path} holds a malformed entry; it is damaged or from a newer vault version"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// redb failed.
    #[error("trusted store {path}: {reason}")]
    Db {
        /// The file.
        path: PathBuf,
        /// What redb said.
        reason: String,
    },
}

/// The open trusted store.
pub struct TrustedStore {
    db: Database,
    path: PathBuf,
}

impl TrustedStore {
    /// Creates a new, empty trusted store (`coffer-vault init`).
    pub fn create(path: &Path) -> Result<Self, TrustedStoreError> {
        if path.exists() {
            return Err(TrustedStoreError::Exists {
                path: path.to_path_buf(),
            });
        }
        let db = Database::create(path).map_err(|e| db_err(path, e))?;
        let s = Self {
            db,
            path: path.to_path_buf(),
        };
        // Creates the table durably, so `open` and `load` on a fresh vault succeed.
        s.commit(&[]).map_err(|e| TrustedStoreError::Db {
            path: path.to_path_buf(),
            reason: e.0,
        })?;
        Ok(s)
    }

    /// Opens an existing trusted store (`coffer-vault serve`); never creates one, since a
    /// fresh empty store next to an existing record database would accept any rollback.
    pub fn open(path: &Path) -> Result<Self, TrustedStoreError> {
        if !path.exists() {
            return Err(TrustedStoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let db = Database::open(path).map_err(|e| db_err(path, e))?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Every floor, to build the core with at startup.
    pub fn load(&self) -> Result<Vec<FloorUpdate>, TrustedStoreError> {
        let p = &self.path;
        let tx = self.db.begin_read().map_err(|e| db_err(p, e))?;
        let table = tx.open_table(FLOORS).map_err(|e| db_err(p, e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| db_err(p, e))? {
            let (k, v) = entry.map_err(|e| db_err(p, e))?;
            let malformed = || TrustedStoreError::Malformed { path: p.clone() };
            let id: [u8; 32] = k.value().try_into().map_err(|_| malformed())?;
            let floor = Floor::from_bytes(v.value()).ok_or_else(malformed)?;
            out.push(FloorUpdate {
                credential_id: CredentialId::from_bytes(id),
                floor,
            });
        }
        Ok(out)
    }

    /// Writes a batch of floors in one durable transaction. A floor never goes down: an
    /// update older than the stored entry is skipped (they only arrive in order, but the
    /// store does not rely on it).
    pub fn commit(&self, updates: &[FloorUpdate]) -> Result<(), StorageError> {
        let e = |e: &dyn std::fmt::Display| StorageError(format!("trusted store: {e}"));
        let tx = self.db.begin_write().map_err(|x| e(&x))?;
        {
            let mut table = tx.open_table(FLOORS).map_err(|x| e(&x))?;
            for u in updates {
                let key = u.credential_id.as_bytes().as_slice();
                let older = table
                    .get(key)
                    .map_err(|x| e(&x))?
                    .and_then(|old| Floor::from_bytes(old.value()))
                    .is_some_and(|old| old.generation() > u.floor.generation());
                if !older {
                    table
                        .insert(key, u.floor.to_bytes().as_slice())
                        .map_err(|x| e(&x))?;
                }
            }
        }
        // Durability::Immediate (redb's default): fsynced before commit returns. The
        // reply that depends on these floors is released only after this, so a crash
        // cannot leave a released KE2 whose floor a restart forgets (the record itself
        // was committed before, see committer.rs).
        tx.commit().map_err(|x| e(&x))
    }
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> TrustedStoreError {
    TrustedStoreError::Db {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
