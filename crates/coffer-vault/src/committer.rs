//! Group commit: one thread batches every write waiting for it into one durable redb
//! transaction, so concurrent requests share one fsync.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError, Write};

type Job = (Write, oneshot::Sender<Result<(), String>>);

/// Handle to the committer thread.
#[derive(Clone)]
pub struct Committer {
    tx: Sender<Job>,
}

/// Most writes in one transaction.
const MAX_BATCH: usize = 512;

impl Committer {
    /// Starts the committer thread over `storage`.
    pub fn start(storage: Arc<dyn Storage>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("vault-committer".into())
            .spawn(move || run(storage, metrics, rx))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start committer thread: {e}"));
        Self { tx }
    }

    /// Writes durably; returns once the write's batch has been committed and fsynced.
    pub async fn commit(&self, write: Write) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((write, done))
            .map_err(|_| StorageError("committer stopped".into()))?;
        match wait.await {
            Ok(r) => r.map_err(StorageError),
            Err(_) => Err(StorageError("committer stopped".into())),
        }
    }
}

fn run(storage: Arc<dyn Storage>, metrics: Arc<Metrics>, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let (writes, waiters): (Vec<Write>, Vec<_>) = jobs.into_iter().unzip();
        // One durable transaction for the whole batch; no waiter is told "done" (and so
        // no reply leaves) before it returns.
        let res = storage.commit(&writes).map_err(|e| e.0);
        metrics.commit_batch(writes.len());
        if let Err(e) = &res {
            tracing::error!(error = %e, "durable commit failed");
        }
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}
