//! Record storage behind a trait, so PostgreSQL can follow the embedded redb default.

use std::path::Path;

use coffer_vault_core::{CredentialId, SealedRecord};
use redb::{Database, ReadableDatabase, TableDefinition};
use thiserror::Error;

/// A storage failure; the request fails with 503 and nothing is released.
#[derive(Debug, Error)]
#[error("vault storage: {0}")]
pub struct StorageError(pub String);

/// One write of a batch: put a record, or delete it (`None`).
pub type Write = (CredentialId, Option<SealedRecord>);

/// Durable record storage keyed by credential id.
pub trait Storage: Send + Sync + 'static {
    /// Reads the record of `id`.
    fn get(&self, id: &CredentialId) -> Result<Option<SealedRecord>, StorageError>;
    /// Applies all writes atomically and durably (fsynced) before returning. Deleting a
    /// record deletes its repository head too.
    fn commit(&self, writes: &[Write]) -> Result<(), StorageError>;
    /// Reads the repository head stored beside `id`'s record (docs/VAULT-API.md).
    fn head(&self, id: &CredentialId) -> Result<Option<Vec<u8>>, StorageError> {
        let _ = id;
        Err(StorageError(
            "this storage keeps no repository heads".into(),
        ))
    }
    /// Stores the repository head of `id` durably before returning.
    fn put_head(&self, id: &CredentialId, head: &[u8]) -> Result<(), StorageError> {
        let _ = (id, head);
        Err(StorageError(
            "this storage keeps no repository heads".into(),
        ))
    }
}

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records_v1");
/// Repository heads (client-MAC'd blobs), keyed like records.
const HEADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("heads_v1");

/// The single-file redb store.
pub struct RedbStorage {
    db: Database,
}

impl RedbStorage {
    /// Opens or creates the database file.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = Database::create(path)
            .map_err(|e| StorageError(format!("opening {}: {e}", path.display())))?;
        let s = Self { db };
        // Creates the tables so that reads on a fresh database do not fail.
        s.commit(&[])?;
        Ok(s)
    }

    /// The value of `id` in `table`, in its own read transaction.
    fn read(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        id: &CredentialId,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| StorageError(e.to_string()))?;
        let table = tx
            .open_table(table)
            .map_err(|e| StorageError(e.to_string()))?;
        let v = table
            .get(id.as_bytes().as_slice())
            .map_err(|e| StorageError(e.to_string()))?;
        Ok(v.map(|g| g.value().to_vec()))
    }
}

impl Storage for RedbStorage {
    fn get(&self, id: &CredentialId) -> Result<Option<SealedRecord>, StorageError> {
        Ok(self.read(RECORDS, id)?.map(SealedRecord::from_bytes))
    }

    fn head(&self, id: &CredentialId) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(HEADS, id)
    }

    fn put_head(&self, id: &CredentialId, head: &[u8]) -> Result<(), StorageError> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| StorageError(e.to_string()))?;
        {
            let mut heads = tx
                .open_table(HEADS)
                .map_err(|e| StorageError(e.to_string()))?;
            heads
                .insert(id.as_bytes().as_slice(), head)
                .map_err(|e| StorageError(e.to_string()))?;
        }
        // Immediate durability, as for records: the client is told its head is kept.
        tx.commit().map_err(|e| StorageError(e.to_string()))
    }

    fn commit(&self, writes: &[Write]) -> Result<(), StorageError> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| StorageError(e.to_string()))?;
        {
            let mut table = tx
                .open_table(RECORDS)
                .map_err(|e| StorageError(e.to_string()))?;
            let mut heads = tx
                .open_table(HEADS)
                .map_err(|e| StorageError(e.to_string()))?;
            for (id, rec) in writes {
                let key = id.as_bytes().as_slice();
                match rec {
                    Some(r) => table.insert(key, r.as_bytes()).map(drop),
                    // A deleted account leaves no head behind for a later one to trip on.
                    None => table.remove(key).and_then(|_| heads.remove(key)).map(drop),
                }
                .map_err(|e| StorageError(e.to_string()))?;
            }
        }
        // Durability::Immediate (redb's default) fsyncs before commit returns: a crash
        // after this cannot lose a counted guess whose KE2 we are about to release.
        tx.commit().map_err(|e| StorageError(e.to_string()))
    }
}
