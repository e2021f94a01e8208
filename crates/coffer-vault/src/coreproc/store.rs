//! The core's own store: `CORE_DIR/core.redb`, one sealed [`Entry`] per credential
//! (coffer-vault-core's entry.rs), written by one group-commit thread.
//!
//! Durability: a batch is one redb write transaction committed with
//! `Durability::Immediate` (redb fsyncs before `commit` returns), and every request in the
//! batch is answered only after that commit returned. So a reply that a guess was counted
//! (KE2) never leaves before the count is on disk, whoever kills the process when; and
//! many concurrent guesses share one fsync.
//!
//! [`EntryStore`] is the seam the replicated vault fills with a Raft log instead: `get`
//! reads the applied state, `commit` returns once a majority holds the entry.
//!
//! [`Entry`]: coffer_vault_core::Entry

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use coffer_vault_proto::CredentialId;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use thiserror::Error;

/// File name of the store inside the core's directory.
pub const STORE_FILE: &str = "core.redb";
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries_v1");
const MAX_BATCH: usize = 512;

/// The store failed; the request that needed it is refused and nothing is released.
#[derive(Debug, Error, Clone)]
#[error("vault core store: {0}")]
pub struct StoreError(pub String);

/// Where the core keeps its entries.
pub trait EntryStore: Send + Sync + 'static {
    /// The sealed entry of `cred`, if any.
    fn get(&self, cred: &CredentialId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Makes `sealed` `cred`'s entry; returns once it is durable.
    fn commit(&self, cred: &CredentialId, sealed: Vec<u8>) -> Result<(), StoreError>;
}

type Job = (CredentialId, Vec<u8>, Sender<Result<(), StoreError>>);

/// The redb store with its group-commit thread.
pub struct RedbEntryStore {
    db: Arc<Database>,
    tx: Mutex<Sender<Job>>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl RedbEntryStore {
    /// Opens (or creates) `path` and starts the commit thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Arc::new(
            Database::create(path)
                .map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?,
        );
        // Creates the table so that reads on a fresh store do not fail.
        let w = db.begin_write().map_err(err)?;
        w.open_table(ENTRIES).map_err(err)?;
        w.commit().map_err(err)?;
        let (tx, rx) = channel::<Job>();
        let thread_db = db.clone();
        std::thread::Builder::new()
            .name("core-commit".into())
            .spawn(move || run(&thread_db, &rx))
            .map_err(err)?;
        Ok(Self {
            db,
            tx: Mutex::new(tx),
        })
    }
}

fn run(db: &Database, rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let res = (|| {
            let mut w = db.begin_write().map_err(err)?;
            // Immediate: commit() returns only after the fsync (module comment).
            w.set_durability(Durability::Immediate).map_err(err)?;
            {
                let mut t = w.open_table(ENTRIES).map_err(err)?;
                for (cred, sealed, _) in &jobs {
                    t.insert(cred.as_bytes().as_slice(), sealed.as_slice())
                        .map_err(err)?;
                }
            }
            w.commit().map_err(err)
        })();
        if let Err(e) = &res {
            tracing::error!(error = %e, "core store commit failed");
        }
        for (_, _, done) in jobs {
            let _ = done.send(res.clone());
        }
    }
}

impl EntryStore for RedbEntryStore {
    fn get(&self, cred: &CredentialId) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(ENTRIES).map_err(err)?;
        Ok(t.get(cred.as_bytes().as_slice())
            .map_err(err)?
            .map(|v| v.value().to_vec()))
    }

    fn commit(&self, cred: &CredentialId, sealed: Vec<u8>) -> Result<(), StoreError> {
        let (done, wait) = channel();
        self.tx
            .lock()
            .map_err(|_| StoreError("commit queue poisoned".into()))?
            .send((*cred, sealed, done))
            .map_err(|_| StoreError("commit thread stopped".into()))?;
        wait.recv()
            .map_err(|_| StoreError("commit thread stopped".into()))?
    }
}
