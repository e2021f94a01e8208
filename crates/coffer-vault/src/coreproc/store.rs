//! The core's own store: `CORE_DIR/core.redb`, one sealed [`Entry`] per credential
//! (coffer-vault-core's entry.rs), written by one group-commit thread.
//!
//! Durability: a batch is one redb write transaction committed with
//! `Durability::Immediate` (redb fsyncs before `commit` returns), and every request in the
//! batch is answered only after that commit returned. So a reply that a guess was counted
//! (KE2) never leaves before the count is on disk, whoever kills the process when; and
//! many concurrent guesses share one fsync.
//!
//! [`EntryStore`] is the seam the replicated vault fills with a Raft log instead
//! (`group/`, docs/VAULT-GROUP.md): `get` reads the applied state, `commit` returns once a
//! majority holds the change, and only if the entry it was decided from is still the
//! group's.
//!
//! [`Entry`]: coffer_vault_core::Entry

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use coffer_vault_proto::CredentialId;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// File name of the store inside the core's directory.
pub const STORE_FILE: &str = "core.redb";
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries_v1");
const MAX_BATCH: usize = 512;

/// The store failed; the request that needed it is refused and nothing is released.
#[derive(Debug, Error, Clone)]
#[error("vault core store: {0}")]
pub struct StoreError(pub String);

/// What the core read of one credential: its sealed entry, and (in a group, which keeps
/// bodies itself) the sealed record body, from one consistent state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    /// The sealed entry.
    pub entry: Option<Vec<u8>>,
    /// The sealed record body (groups only; a single core's host keeps bodies).
    pub body: Option<Vec<u8>>,
}

/// What a commit does to the body a group keeps beside the entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyChange {
    /// Leave it.
    Keep,
    /// Store this body (a registration).
    Put(Vec<u8>),
    /// Remove it (delete, or the last guess destroyed the record key).
    Remove,
}

/// One change to one credential, committed as a unit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Change {
    /// The sealed entry the core decided from. A group commits the change only if this is
    /// still its entry, so a decision taken on a stale copy is never applied.
    pub read: Option<Vec<u8>>,
    /// The new sealed entry; `None` keeps the entry (the commit then only confirms that
    /// `read` is current, which a group needs before it releases a reply).
    pub entry: Option<Vec<u8>>,
    /// The body (groups only).
    pub body: BodyChange,
    /// A repository head to keep (groups only), kept only if its sequence number is above
    /// the kept one's.
    pub head: Option<Vec<u8>>,
}

/// Why a commit did not happen.
#[derive(Debug, Error)]
pub enum CommitError {
    /// The store failed; nothing is known to be committed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The entry is no longer the one read: here is the current state; decide again.
    #[error("the entry changed since it was read")]
    Conflict(Read),
    /// The head is not newer than the one kept (its sequence number).
    #[error("the kept head {0} is not older")]
    HeadNotNewer(u64),
}

/// Where the core keeps its entries.
pub trait EntryStore: Send + Sync + 'static {
    /// The state of `cred`.
    fn get(&self, cred: &CredentialId) -> Result<Read, StoreError>;
    /// Commits `change`; returns once it is durable (a group: committed by a majority).
    fn commit(&self, cred: &CredentialId, change: Change) -> Result<(), CommitError>;
    /// A replicated store: every reply that depends on an entry waits for a commit that
    /// confirms the entry, and the store keeps bodies and heads.
    fn replicated(&self) -> bool {
        false
    }
    /// The repository head kept for `cred` (groups only).
    fn head(&self, cred: &CredentialId) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = cred;
        Ok(None)
    }
}

type Job = (CredentialId, Vec<u8>, Sender<Result<(), StoreError>>);

/// The redb store with its group-commit thread.
pub struct RedbEntryStore {
    db: Arc<Database>,
    tx: Mutex<Option<Sender<Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RedbEntryStore {
    /// Stops the commit thread and waits for it, so the database file is closed (and its
    /// lock released) when the store is gone.
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
        let thread = std::thread::Builder::new()
            .name("core-commit".into())
            .spawn(move || run(&thread_db, &rx))
            .map_err(err)?;
        Ok(Self {
            db,
            tx: Mutex::new(Some(tx)),
            thread: Some(thread),
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
    fn get(&self, cred: &CredentialId) -> Result<Read, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(ENTRIES).map_err(err)?;
        Ok(Read {
            entry: t
                .get(cred.as_bytes().as_slice())
                .map_err(err)?
                .map(|v| v.value().to_vec()),
            body: None,
        })
    }

    /// One process owns this store and the service holds the credential's lock from read
    /// to commit, so `read` is current by construction; bodies and heads are the host's.
    fn commit(&self, cred: &CredentialId, change: Change) -> Result<(), CommitError> {
        let Some(sealed) = change.entry else {
            return Ok(());
        };
        let (done, wait) = channel();
        self.tx
            .lock()
            .map_err(|_| StoreError("commit queue poisoned".into()))?
            .as_ref()
            .ok_or_else(|| StoreError("commit thread stopped".into()))?
            .send((*cred, sealed, done))
            .map_err(|_| StoreError("commit thread stopped".into()))?;
        Ok(wait
            .recv()
            .map_err(|_| StoreError("commit thread stopped".into()))??)
    }
}
