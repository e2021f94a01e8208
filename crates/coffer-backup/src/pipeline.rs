//! The upload pipeline: the caller's thread reads, chunks and hashes; worker threads
//! compress and encrypt; a packer thread fills packs; uploader threads write each pack and
//! then its index object (F1: data before index before snapshot). Every channel is
//! bounded, so memory stays bounded whatever the data size.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::Error;
use crate::format::{self, BlobEntry};
use crate::keys::Keyring;
use crate::lock::LockGuard;
use crate::repo::Index;
use crate::storage::Store;

/// Packs are closed once they reach this size.
pub(crate) const PACK_TARGET: usize = 8 * 1024 * 1024;
/// Tree packs are closed sooner: readers of trees cache whole packs, and trees are small.
pub(crate) const TREE_PACK_TARGET: usize = 2 * 1024 * 1024;

struct Job {
    id: [u8; 32],
    data: Vec<u8>,
    tree: bool,
}

struct Sealed {
    id: [u8; 32],
    raw_len: u32,
    bytes: Vec<u8>,
    tree: bool,
}

struct Shared {
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    bytes_added: AtomicU64,
    blobs_added: AtomicU64,
}

impl Shared {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        if let Ok(mut g) = self.error.lock()
            && g.is_none()
        {
            *g = Some(e);
        }
    }
}

/// Statistics of a finished pipeline.
pub(crate) struct Stats {
    pub(crate) bytes_added: u64,
    pub(crate) blobs_added: u64,
}

/// A running upload pipeline.
pub(crate) struct Pipeline {
    keyring: Arc<Keyring>,
    index: Arc<Index>,
    fresh: HashSet<[u8; 32]>,
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Pipeline {
    pub(crate) fn start(
        store: &Store,
        keyring: Arc<Keyring>,
        index: Arc<Index>,
        lock: Arc<LockGuard>,
    ) -> Pipeline {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 8);
        let shared = Arc::new(Shared {
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            bytes_added: AtomicU64::new(0),
            blobs_added: AtomicU64::new(0),
        });
        // Memory in flight (FORMAT.md "What is held in memory"): a few chunks per worker,
        // the packs being filled, and one pack per uploader; a finished pack waits for a
        // free uploader instead of queueing.
        let (job_tx, job_rx) = bounded::<Job>(workers * 2);
        let (sealed_tx, sealed_rx) = bounded::<Sealed>(workers * 2);
        let (pack_tx, pack_rx) = bounded::<(Vec<u8>, Vec<BlobEntry>)>(0);
        let mut threads = Vec::new();
        for _ in 0..workers {
            let rx = job_rx.clone();
            let tx = sealed_tx.clone();
            let kr = keyring.clone();
            let sh = shared.clone();
            threads.push(std::thread::spawn(move || seal_worker(rx, tx, kr, sh)));
        }
        drop(sealed_tx);
        {
            let kr = keyring.clone();
            let sh = shared.clone();
            threads.push(std::thread::spawn(move || {
                packer(sealed_rx, pack_tx, kr, sh)
            }));
        }
        for _ in 0..2 {
            let rx = pack_rx.clone();
            let st = store.clone();
            let kr = keyring.clone();
            let sh = shared.clone();
            let lk = lock.clone();
            threads.push(std::thread::spawn(move || uploader(rx, st, kr, sh, lk)));
        }
        Pipeline {
            keyring,
            index,
            fresh: HashSet::new(),
            jobs: Some(job_tx),
            threads,
            shared,
        }
    }

    /// True if the blob is stored already or queued in this run.
    pub(crate) fn has(&self, id: &[u8; 32]) -> bool {
        self.index.contains(id) || self.fresh.contains(id)
    }

    /// Hashes a chunk, queues it unless it is a duplicate, and returns its id.
    pub(crate) fn add(&mut self, data: Vec<u8>) -> Result<[u8; 32], Error> {
        self.queue(data, false)
    }

    /// [`Pipeline::add`] for a part of a tree: the same blob, but packed apart from file
    /// data so that reading trees (re-backup, restore, check, prune) reads no data pack.
    pub(crate) fn add_tree(&mut self, data: Vec<u8>) -> Result<[u8; 32], Error> {
        self.queue(data, true)
    }

    fn queue(&mut self, data: Vec<u8>, tree: bool) -> Result<[u8; 32], Error> {
        let id = self.keyring.current().1.chunk_id(&data);
        if self.shared.failed.load(Ordering::SeqCst) {
            return Err(self.take_error());
        }
        if !self.has(&id) {
            self.fresh.insert(id);
            let sent = self
                .jobs
                .as_ref()
                .map(|tx| tx.send(Job { id, data, tree }).is_ok())
                .unwrap_or(false);
            if !sent {
                return Err(self.take_error());
            }
        }
        Ok(id)
    }

    fn take_error(&self) -> Error {
        self.shared
            .error
            .lock()
            .ok()
            .and_then(|mut g| g.take())
            .unwrap_or(Error::Internal {
                detail: "upload pipeline stopped".into(),
            })
    }

    /// Flushes the last pack and waits for every upload.
    pub(crate) fn finish(mut self) -> Result<Stats, Error> {
        self.jobs = None;
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                self.shared.fail(Error::Internal {
                    detail: "a pipeline thread panicked".into(),
                });
            }
        }
        if self.shared.failed.load(Ordering::SeqCst) {
            return Err(self.take_error());
        }
        Ok(Stats {
            bytes_added: self.shared.bytes_added.load(Ordering::SeqCst),
            blobs_added: self.shared.blobs_added.load(Ordering::SeqCst),
        })
    }

    /// Stops without flushing (cancel / error): queued data is dropped, uploaded packs stay.
    pub(crate) fn abort(mut self) {
        self.shared.failed.store(true, Ordering::SeqCst);
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn seal_worker(rx: Receiver<Job>, tx: Sender<Sealed>, kr: Arc<Keyring>, sh: Arc<Shared>) {
    let mut zc = match zstd::bulk::Compressor::new(1) {
        Ok(z) => z,
        Err(e) => return sh.fail(Error::io("zstd", e)),
    };
    let (_, epoch) = kr.current();
    for job in rx {
        if sh.failed.load(Ordering::Relaxed) {
            continue;
        }
        match format::seal_blob(&epoch.data, &mut zc, &job.id, &job.data) {
            Ok(bytes) => {
                let s = Sealed {
                    id: job.id,
                    raw_len: job.data.len() as u32,
                    bytes,
                    tree: job.tree,
                };
                if tx.send(s).is_err() {
                    return;
                }
            }
            Err(e) => sh.fail(e),
        }
    }
}

fn packer(
    rx: Receiver<Sealed>,
    tx: Sender<(Vec<u8>, Vec<BlobEntry>)>,
    kr: Arc<Keyring>,
    sh: Arc<Shared>,
) {
    let (epoch_no, epoch) = kr.current();
    // Sized once for a full pack and its largest last blob: growing by doubling would
    // copy the pack and leave freed buffers behind in the allocator.
    let fresh = |target: usize| {
        let mut p = format::pack_start(epoch_no);
        p.reserve(target + format::MAX_BLOB as usize + 64);
        p
    };
    // Index 0 fills data packs, 1 tree packs.
    let mut packs = [fresh(PACK_TARGET), fresh(TREE_PACK_TARGET)];
    let mut entries: [Vec<BlobEntry>; 2] = [Vec::new(), Vec::new()];
    let close = |pack: &mut Vec<u8>, entries: &mut Vec<BlobEntry>| -> bool {
        let target = if pack.capacity() > PACK_TARGET + format::MAX_BLOB as usize {
            PACK_TARGET
        } else {
            TREE_PACK_TARGET
        };
        let mut p = std::mem::replace(pack, fresh(target));
        let e = std::mem::take(entries);
        if let Err(err) = format::pack_finish(&epoch.data, &mut p, &e) {
            sh.fail(err);
            return false;
        }
        tx.send((p, e)).is_ok()
    };
    for s in rx {
        if sh.failed.load(Ordering::Relaxed) {
            continue;
        }
        let k = usize::from(s.tree);
        let (pack, list) = (&mut packs[k], &mut entries[k]);
        list.push(BlobEntry {
            id: s.id,
            offset: pack.len() as u32,
            length: s.bytes.len() as u32,
            raw_len: s.raw_len,
        });
        pack.extend_from_slice(&s.bytes);
        let target = if s.tree {
            TREE_PACK_TARGET
        } else {
            PACK_TARGET
        };
        if pack.len() >= target && !close(pack, list) {
            return;
        }
    }
    for (pack, list) in packs.iter_mut().zip(entries.iter_mut()) {
        if !list.is_empty() && !sh.failed.load(Ordering::Relaxed) && !close(pack, list) {
            return;
        }
    }
}

fn uploader(
    rx: Receiver<(Vec<u8>, Vec<BlobEntry>)>,
    store: Store,
    kr: Arc<Keyring>,
    sh: Arc<Shared>,
    lock: Arc<LockGuard>,
) {
    for (pack, entries) in rx {
        if sh.failed.load(Ordering::Relaxed) {
            continue;
        }
        match store_pack(&store, &kr, pack, &entries) {
            Ok(n) => {
                sh.bytes_added.fetch_add(n, Ordering::SeqCst);
                sh.blobs_added
                    .fetch_add(entries.len() as u64, Ordering::SeqCst);
                lock.refresh();
            }
            Err(e) => sh.fail(e),
        }
    }
}

/// Writes a finished pack and then its index object; returns the bytes stored.
pub(crate) fn store_pack(
    store: &Store,
    kr: &Keyring,
    pack: Vec<u8>,
    entries: &[BlobEntry],
) -> Result<u64, Error> {
    let id = *blake3::hash(&pack).as_bytes();
    let name = hex::encode(id);
    let len = pack.len() as u64;
    let index = format::seal_object(
        kr,
        format::KIND_INDEX,
        &format::encode_index(&id, len, entries),
    )?;
    let ilen = index.len() as u64;
    // F1: the pack is complete on storage before an index names it, so an index
    // never points at missing data after a crash.
    store.write(&format!("data/{name}"), pack)?;
    store.write(&format!("index/{name}"), index)?;
    Ok(len + ilen)
}
