//! Group commit: batches every waiting state change into one durable record-database
//! transaction followed by one durable trusted-store transaction, so concurrent requests
//! share both fsyncs.
//!
//! Order per batch (docs/VAULT-API.md, "Durability order"):
//! 1. records, one redb transaction in `vault.redb` (thread `vault-committer`);
//! 2. floors, one redb transaction in `trusted.redb` (thread `vault-floors`);
//! 3. waiters told "done"; each handler then confirms its floor to the core and replies.
//!
//! A count reset carries no floor (`StateChange::floor` is `None`: rolling one back only
//! takes guesses away), so its waiter hears "done" after step 1, and a batch of resets
//! alone skips step 2.
//!
//! The two threads form a pipeline: batch N's floors are synced while batch N+1's records
//! are, which is safe because no change in batch N+1 can build on a floored change in
//! batch N (the host's per-credential lock is held until the change is confirmed, after
//! step 2). A change in N+1 may build on a reset in N, whose lock is freed after step 1,
//! but a reset has no floor for the two floor commits to race on.
//!
//! A crash after 1 and before 2 leaves records one generation ahead of their floors,
//! which the core accepts (the floors catch up with the next change); no waiter was told
//! "done", so no reply (no KE2, no released key) depended on the missing floors. The
//! reverse order could leave a floor above every stored record: a sound account refused
//! as rolled back.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use coffer_vault_core::{FloorUpdate, StateChange};
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError, Write};
use crate::trusted::TrustedStore;

type Waiter = oneshot::Sender<Result<(), String>>;
type Job = (StateChange, Waiter);
/// A batch whose records are committed, waiting for its floors.
type FloorJob = (Vec<FloorUpdate>, Vec<Waiter>);

/// Test-only failpoint: the committer hangs after the record commit and before the floor
/// commit of a batch, so a test can SIGKILL the process exactly there.
pub const FAILPOINT_BETWEEN_COMMITS: &str = "hang-between-record-and-floor-commit";

/// Handle to the committer thread.
#[derive(Clone)]
pub struct Committer {
    tx: Sender<Job>,
}

/// Most changes in one batch.
const MAX_BATCH: usize = 512;

impl Committer {
    /// Starts the committer thread over `storage` and `trusted`. `failpoint` is the
    /// test-only `COFFER_VAULT_FAILPOINT` value.
    pub fn start(
        storage: Arc<dyn Storage>,
        trusted: Arc<TrustedStore>,
        metrics: Arc<Metrics>,
        failpoint: Option<String>,
    ) -> Self {
        let (tx, rx) = channel::<Job>();
        let (floor_tx, floor_rx) = channel::<FloorJob>();
        let hang = failpoint.as_deref() == Some(FAILPOINT_BETWEEN_COMMITS);
        // If either thread fails to start, its channel closes and every commit fails with
        // "committer stopped" (503): nothing is ever released without both commits.
        std::thread::Builder::new()
            .name("vault-floors".into())
            .spawn(move || run_floors(trusted, floor_rx))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start floor committer thread: {e}"));
        std::thread::Builder::new()
            .name("vault-committer".into())
            .spawn(move || run_records(storage, metrics, rx, floor_tx, hang))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start committer thread: {e}"));
        Self { tx }
    }

    /// Makes `change` durable; returns once its batch's record transaction and, if the
    /// change has a floor, its floor transaction have committed. The caller then confirms
    /// the floor to the core.
    pub async fn commit(&self, change: StateChange) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((change, done))
            .map_err(|_| StorageError("committer stopped".into()))?;
        match wait.await {
            Ok(r) => r.map_err(StorageError),
            Err(_) => Err(StorageError("committer stopped".into())),
        }
    }
}

fn run_records(
    storage: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
    rx: Receiver<Job>,
    floors_tx: Sender<FloorJob>,
    hang_between_commits: bool,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut writes: Vec<Write> = Vec::with_capacity(jobs.len());
        let mut floors: Vec<FloorUpdate> = Vec::with_capacity(jobs.len());
        // Waiters of changes with a floor, which hear "done" only after the floor commit,
        // and of count resets, which need none and hear it after the record commit.
        let mut waiters = Vec::with_capacity(jobs.len());
        let mut reset_waiters = Vec::new();
        for (change, done) in jobs {
            writes.push((change.credential_id, change.record));
            match change.floor {
                Some(f) => {
                    floors.push(f);
                    waiters.push(done);
                }
                None => reset_waiters.push(done),
            }
        }
        // Records first, in one durable transaction (fsynced inside): see the module
        // comment for why before the floors. No waiter of a floored change hears "done"
        // (so no reply leaves) before the floor thread has committed its floor too.
        let res = storage.commit(&writes);
        metrics.commit_batch(writes.len());
        match res {
            Err(e) => {
                tracing::error!(error = %e, "durable record commit failed");
                for w in waiters.into_iter().chain(reset_waiters) {
                    let _ = w.send(Err(e.0.clone()));
                }
            }
            Ok(()) => {
                if hang_between_commits {
                    eprintln!("FAILPOINT {FAILPOINT_BETWEEN_COMMITS} reached");
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
                for w in reset_waiters {
                    let _ = w.send(Ok(()));
                }
                if floors.is_empty() {
                    continue;
                }
                if let Err(std::sync::mpsc::SendError((_, waiters))) =
                    floors_tx.send((floors, waiters))
                {
                    for w in waiters {
                        let _ = w.send(Err("floor committer stopped".into()));
                    }
                }
            }
        }
    }
}

fn run_floors(trusted: Arc<TrustedStore>, rx: Receiver<FloorJob>) {
    while let Ok((mut floors, mut waiters)) = rx.recv() {
        // Batches that queued up while the last sync ran share this one.
        while let Ok((f, w)) = rx.try_recv() {
            floors.extend(f);
            waiters.extend(w);
        }
        // Floors second, one durable transaction in the trusted store, for batches whose
        // records are already committed. If it fails the records stay ahead of their
        // floors (accepted) and every waiter gets an error, so nothing is released on a
        // floor that is not durable.
        let res = trusted.commit(&floors).map_err(|e| e.0);
        if let Err(e) = &res {
            tracing::error!(error = %e, "durable floor commit failed");
        }
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}
