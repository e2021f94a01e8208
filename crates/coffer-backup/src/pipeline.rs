//! The upload pipeline: the caller's thread reads, chunks and hashes; worker threads
//! compress and encrypt; a packer thread fills packs; uploader threads write each pack and
//! then its index object (F1: data before index before snapshot). Chunks travel in
//! batches of about [`BATCH_BYTES`], and the bytes between the reading thread and the
//! packer are bounded ([`IN_FLIGHT_BYTES`]), so memory stays bounded whatever the data
//! size.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::Error;
use crate::format::{self, BlobEntry};
use crate::keys::Keyring;
use crate::lock::LockGuard;
use crate::repo::Index;
use crate::storage::Store;

/// Backup and prune close a pack before a blob would take it past this size.
pub(crate) const PACK_TARGET: usize = 8 * 1024 * 1024;
/// Tree packs are closed sooner: readers of trees cache whole packs, and trees are small.
pub(crate) const TREE_PACK_TARGET: usize = 2 * 1024 * 1024;
/// Entries (chunks) per pack at most. A pack's header and its index object list 48 bytes
/// per chunk, more than a tiny file's share of its group: a pack of 8 MiB of tiny chunks
/// would carry a header of several MiB, built in memory three times over (entries,
/// plain, sealed). Capped, a header stays under 1.6 MiB.
pub(crate) const MAX_PACK_BLOBS: usize = 32 * 1024;
/// Whether a pack of `len` bytes holding `blobs` blobs is closed: its blobs and the
/// header they need reach `target`, or it holds [`MAX_PACK_BLOBS`].
pub(crate) fn pack_full(len: usize, blobs: usize, target: usize) -> bool {
    len + blobs * format::ENTRY_LEN >= target || blobs >= MAX_PACK_BLOBS
}
/// Whether a blob of `blob` bytes goes into a pack of `len` bytes holding `blobs` blobs
/// without taking it and its header past `target`. Backup closes a pack before a blob
/// that does not fit, so a pack buffer never holds more than the target: closing after
/// instead let each of the [`DATA_PACK_BUFFERS`] grow to the target plus one largest
/// blob (4 MiB more each, kept since the buffers are reused). A first blob always fits.
/// A group adds an entry per member (`members`), and does not take the pack past
/// [`MAX_PACK_BLOBS`] entries either.
pub(crate) fn fits(len: usize, blobs: usize, blob: usize, members: usize, target: usize) -> bool {
    blobs == 0
        || (len + blob + (blobs + members) * format::ENTRY_LEN <= target
            && blobs + members <= MAX_PACK_BLOBS)
}
/// The capacity that holds any pack a backup fills, with its header's sealing (a lone
/// blob over the target grows it).
fn pack_capacity(target: usize) -> usize {
    target + 256
}
/// Data packs in memory at once: one being filled while the other is written. Each is
/// reused for the next pack when the storage hands it back (a local folder), so the
/// allocator never sees a pack-sized allocation after the first two.
const DATA_PACK_BUFFERS: usize = 2;
/// Chunks queued per worker, and sealed blobs queued per worker. One each held up to
/// 4 MiB less per worker and queue, but backups of all three benchmark sets took 10-45%
/// longer (the reading thread waits on a worker that is briefly busy).
const JOBS_PER_WORKER: usize = 2;
/// Bytes of chunks between the reading thread and the packer at most (queued, being
/// sealed, sealed and queued). The queues' lengths alone bound nothing useful: chunks run
/// from 4 KiB (SQLite pages) to 4 MiB, so ten queued chunks were 40 KiB or 40 MiB.
/// Eight average large chunks keep both workers busy (twelve measured no faster).
const IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;
/// Small chunks travel to the workers, and on to the packer, in batches of about this
/// many bytes: a 200 MB SQLite database is 52,000 one-page chunks, and handing each over
/// alone woke a thread per page (context switches were 13% of a backup's samples).
const BATCH_BYTES: usize = 64 * 1024;
/// Chunks under this size are sealed together in groups (F10): zstd compresses 4 KiB
/// SQLite pages one by one at about 136 MB/s and a 64 KiB run of them at 210, with a
/// better ratio (1.96 against 2.12 on the benchmark's database), since each frame builds
/// its own entropy tables; AES-GCM's nonce and tag are paid once per group too. Larger
/// chunks gain little from it and are sealed alone.
pub(crate) const GROUP_MEMBER_MAX: usize = 32 * 1024;
/// A group is sealed once its data reaches this size (or its batch ends), so a group is
/// at most this plus one member: well within [`format::MAX_GROUP`].
pub(crate) const GROUP_TARGET: usize = 64 * 1024;
/// Members of one group at most: each costs an entry in its pack's header and index.
const GROUP_MAX_MEMBERS: usize = 1024;
const _: () = assert!(GROUP_TARGET + GROUP_MEMBER_MAX <= format::MAX_GROUP as usize);

/// A closed pack on its way to an uploader: bytes, entries, and whether it is a data
/// pack (whose buffer goes back to the packer).
struct Finished {
    pack: Vec<u8>,
    entries: Vec<BlobEntry>,
    data: bool,
}

/// A chunk to store.
struct Chunk {
    id: [u8; 32],
    data: Vec<u8>,
    tree: bool,
}

/// A batch of chunks for a sealing worker, holding their bytes' share of
/// [`IN_FLIGHT_BYTES`].
struct Job {
    chunks: Vec<Chunk>,
    permit: Permit,
}

/// A chunk sealed as a blob of its own, or several as a group.
pub(crate) struct Blob {
    /// Each chunk's id, length and start in the group ([`format::ALONE`] alone).
    pub(crate) members: Vec<([u8; 32], u32, u32)>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) tree: bool,
}

impl Blob {
    /// Appends the blob to `pack`, and an entry per chunk in it to `entries`.
    pub(crate) fn append_to(&self, pack: &mut Vec<u8>, entries: &mut Vec<BlobEntry>) {
        for &(id, raw_len, start) in &self.members {
            entries.push(BlobEntry {
                id,
                offset: pack.len() as u32,
                length: self.bytes.len() as u32,
                raw_len,
                start,
            });
        }
        pack.extend_from_slice(&self.bytes);
    }
}

/// Small chunks gathered for one group blob (backup: of one batch; prune: the live
/// members of a group with dead ones).
#[derive(Default)]
pub(crate) struct Group {
    pub(crate) members: Vec<([u8; 32], u32, u32)>,
    data: Vec<u8>,
}

impl Group {
    pub(crate) fn push(&mut self, id: [u8; 32], data: &[u8]) {
        self.members
            .push((id, data.len() as u32, self.data.len() as u32));
        self.data.extend_from_slice(data);
    }

    fn full(&self) -> bool {
        self.data.len() >= GROUP_TARGET || self.members.len() >= GROUP_MAX_MEMBERS
    }

    /// Seals the gathered chunks, one alone as a blob of its own, and empties the group.
    pub(crate) fn seal(
        &mut self,
        key: &ring::aead::LessSafeKey,
        zc: &mut zstd::bulk::Compressor<'static>,
    ) -> Result<Option<Blob>, Error> {
        if self.data.len() > format::MAX_GROUP as usize {
            return Err(Error::Internal {
                detail: format!(
                    "a group of {} bytes, over the format's bound",
                    self.data.len()
                ),
            });
        }
        let mut members = std::mem::take(&mut self.members);
        let bytes = match members.as_mut_slice() {
            [] => return Ok(None),
            [(id, _, start)] => {
                *start = format::ALONE;
                format::seal_blob(key, zc, id, &self.data)?
            }
            _ => format::seal_group(key, zc, &self.data)?,
        };
        self.data.clear();
        Ok(Some(Blob {
            members,
            bytes,
            tree: false,
        }))
    }
}

/// A batch of blobs for the packer.
struct Sealed {
    blobs: Vec<Blob>,
    /// Given back once the packer has copied the blobs into its packs.
    _permit: Permit,
}

struct Shared {
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    bytes_added: AtomicU64,
    blobs_added: AtomicU64,
    /// Bytes of chunks in flight ([`IN_FLIGHT_BYTES`]), and its wake-up.
    in_flight: Mutex<usize>,
    returned: Condvar,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            bytes_added: AtomicU64::new(0),
            blobs_added: AtomicU64::new(0),
            in_flight: Mutex::new(0),
            returned: Condvar::new(),
        }
    }

    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        if let Ok(mut g) = self.error.lock()
            && g.is_none()
        {
            *g = Some(e);
        }
        // The reading thread may wait for bytes that no stage returns any more.
        let _guard = self.in_flight.lock();
        self.returned.notify_all();
    }

    /// Waits until `n` more bytes fit in [`IN_FLIGHT_BYTES`] (a chunk alone always fits);
    /// `None` once the pipeline failed.
    fn admit(self: &Arc<Self>, n: usize) -> Option<Permit> {
        let mut used = self.in_flight.lock().ok()?;
        while *used > 0 && *used + n > IN_FLIGHT_BYTES {
            if self.failed.load(Ordering::SeqCst) {
                return None;
            }
            used = self.returned.wait(used).ok()?;
        }
        *used += n;
        Some(Permit {
            shared: self.clone(),
            n,
        })
    }
}

/// A chunk's share of [`IN_FLIGHT_BYTES`], carried from the reading thread through the
/// sealing worker to the packer. Given back when dropped, wherever that happens: a stage
/// that skips work after a failure, a channel dropped with messages in it, or a thread
/// unwinding, so the reading thread never waits on bytes nobody will return.
struct Permit {
    shared: Arc<Shared>,
    n: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut used) = self.shared.in_flight.lock() {
            *used -= self.n;
            self.shared.returned.notify_all();
        }
    }
}

/// Held by every pipeline thread: a thread that panics fails the pipeline, so the
/// others stop and the reading thread does not wait on it.
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail(Error::Internal {
                detail: "a pipeline thread panicked".into(),
            });
        }
    }
}

/// The ids of the blobs queued in this run, which the index does not hold yet: 32 bytes
/// each in a sorted array, the newest few thousand in a hash set until they are merged
/// in. A hash set of them all would take 56 to 110 bytes per id, and twice that while it
/// grows (26 MB at 300,000 new blobs, the largest share of a first backup's memory).
#[derive(Default)]
struct Fresh {
    sorted: Vec<[u8; 32]>,
    recent: HashSet<[u8; 32]>,
}

impl Fresh {
    /// Ids held in the hash set before they are merged into the array: a merge moves
    /// the whole array, so it is done once per this many new blobs.
    const RECENT: usize = 16 * 1024;

    fn contains(&self, id: &[u8; 32]) -> bool {
        self.recent.contains(id) || self.sorted.binary_search(id).is_ok()
    }

    /// Adds an id that is not in the set.
    fn insert(&mut self, id: [u8; 32]) {
        self.recent.insert(id);
        if self.recent.len() < Self::RECENT {
            return;
        }
        let mut batch: Vec<[u8; 32]> = self.recent.drain().collect();
        batch.sort_unstable();
        // Merged from the back in place: no second copy of the array.
        let old = self.sorted.len();
        self.sorted.reserve_exact(batch.len());
        self.sorted.resize(old + batch.len(), [0; 32]);
        let (mut i, mut k) = (old, self.sorted.len());
        while let Some(b) = batch.last() {
            k -= 1;
            if i > 0 && self.sorted[i - 1] > *b {
                i -= 1;
                self.sorted[k] = self.sorted[i];
            } else {
                self.sorted[k] = *b;
                batch.pop();
            }
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
    fresh: Fresh,
    /// Chunks gathered for the next [`Job`], and their bytes.
    batch: Vec<Chunk>,
    batch_bytes: usize,
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
        let shared = Arc::new(Shared::new());
        // Memory in flight (FORMAT.md "What is held in memory"): [`IN_FLIGHT_BYTES`] of
        // chunks between the reading thread and the packer (in batches: at most two
        // queued and one being sealed per worker, two sealed per worker queued), and
        // [`DATA_PACK_BUFFERS`] data packs (one filling, the rest being written); a
        // finished pack waits for a free uploader instead of queueing.
        let (job_tx, job_rx) = bounded::<Job>(workers * JOBS_PER_WORKER);
        let (sealed_tx, sealed_rx) = bounded::<Sealed>(workers * JOBS_PER_WORKER);
        let (pack_tx, pack_rx) = bounded::<Finished>(0);
        let (free_tx, free_rx) = bounded::<Option<Vec<u8>>>(DATA_PACK_BUFFERS);
        for _ in 0..DATA_PACK_BUFFERS {
            let _ = free_tx.send(None);
        }
        let mut threads = Vec::new();
        for _ in 0..workers {
            let rx = job_rx.clone();
            let tx = sealed_tx.clone();
            let kr = keyring.clone();
            let sh = shared.clone();
            threads.push(std::thread::spawn(move || {
                let _f = FailOnPanic(sh.clone());
                seal_worker(rx, tx, kr, sh)
            }));
        }
        drop(sealed_tx);
        {
            let kr = keyring.clone();
            let sh = shared.clone();
            threads.push(std::thread::spawn(move || {
                let _f = FailOnPanic(sh.clone());
                packer(sealed_rx, pack_tx, free_rx, kr, sh)
            }));
        }
        for _ in 0..2 {
            let rx = pack_rx.clone();
            let free = free_tx.clone();
            let st = store.clone();
            let kr = keyring.clone();
            let sh = shared.clone();
            let lk = lock.clone();
            threads.push(std::thread::spawn(move || {
                let _f = FailOnPanic(sh.clone());
                uploader(rx, free, st, kr, sh, lk)
            }));
        }
        Pipeline {
            keyring,
            index,
            fresh: Fresh::default(),
            batch: Vec::new(),
            batch_bytes: 0,
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
            self.batch_bytes += data.len();
            self.batch.push(Chunk { id, data, tree });
            if self.batch_bytes >= BATCH_BYTES {
                self.send_batch()?;
            }
        }
        Ok(id)
    }

    /// Hands the gathered chunks to the workers, once their bytes fit in flight.
    fn send_batch(&mut self) -> Result<(), Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(permit) = self.shared.admit(self.batch_bytes) else {
            return Err(self.take_error());
        };
        self.batch_bytes = 0;
        let job = Job {
            chunks: std::mem::take(&mut self.batch),
            permit,
        };
        let sent = self
            .jobs
            .as_ref()
            .map(|tx| tx.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(self.take_error());
        }
        Ok(())
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
        if let Err(e) = self.send_batch() {
            self.abort();
            return Err(e);
        }
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
    let mut group = Group::default();
    for job in rx {
        if sh.failed.load(Ordering::Relaxed) {
            continue;
        }
        let mut blobs = Vec::with_capacity(job.chunks.len());
        let sealed = (|| {
            for c in job.chunks {
                if !c.tree && c.data.len() < GROUP_MEMBER_MAX {
                    group.push(c.id, &c.data);
                    if group.full() {
                        blobs.extend(group.seal(&epoch.data, &mut zc)?);
                    }
                    continue;
                }
                let bytes = format::seal_blob(&epoch.data, &mut zc, &c.id, &c.data)?;
                blobs.push(Blob {
                    members: vec![(c.id, c.data.len() as u32, format::ALONE)],
                    bytes,
                    tree: c.tree,
                });
                // `c.data` is dropped here: only the sealed copy goes on.
            }
            // A group never spans batches: the permit of a batch is given back once its
            // blobs are in packs.
            blobs.extend(group.seal(&epoch.data, &mut zc)?);
            Ok::<(), Error>(())
        })();
        if let Err(e) = sealed {
            sh.fail(e);
            continue;
        }
        let s = Sealed {
            blobs,
            _permit: job.permit,
        };
        if tx.send(s).is_err() {
            return;
        }
    }
}

fn packer(
    rx: Receiver<Sealed>,
    tx: Sender<Finished>,
    free: Receiver<Option<Vec<u8>>>,
    kr: Arc<Keyring>,
    sh: Arc<Shared>,
) {
    let (epoch_no, epoch) = kr.current();
    let targets = [PACK_TARGET, TREE_PACK_TARGET];
    // Index 0 fills data packs, 1 tree packs; a data pack starts only when a buffer is
    // free (DATA_PACK_BUFFERS), which is what bounds the packs in memory. `None`: the
    // uploaders are gone.
    let new_pack = |k: usize| -> Option<Vec<u8>> {
        let buf = if k == 0 { free.recv().ok()? } else { None };
        let mut p = buf.unwrap_or_default();
        p.clear();
        // Sized once for a full pack: growing by doubling would copy the pack and leave
        // freed buffers behind in the allocator.
        p.reserve(pack_capacity(targets[k]));
        p.extend_from_slice(&format::pack_start(epoch_no));
        Some(p)
    };
    let mut packs: [Option<Vec<u8>>; 2] = [None, None];
    let mut entries: [Vec<BlobEntry>; 2] = [Vec::new(), Vec::new()];
    let close = |k: usize, pack: Vec<u8>, entries: &mut Vec<BlobEntry>| -> bool {
        let mut p = pack;
        let e = std::mem::take(entries);
        if let Err(err) = format::pack_finish(&epoch.data, &mut p, &e) {
            sh.fail(err);
            return false;
        }
        tx.send(Finished {
            pack: p,
            entries: e,
            data: k == 0,
        })
        .is_ok()
    };
    for batch in rx {
        // The batch's bytes count as in flight until every blob of it is in a pack.
        let Sealed {
            blobs,
            _permit: permit,
        } = batch;
        for s in blobs {
            if sh.failed.load(Ordering::Relaxed) {
                continue;
            }
            let k = usize::from(s.tree);
            let n = s.members.len();
            let mut pack = match packs[k].take() {
                Some(p) if fits(p.len(), entries[k].len(), s.bytes.len(), n, targets[k]) => p,
                full => {
                    if let Some(p) = full
                        && !close(k, p, &mut entries[k])
                    {
                        return;
                    }
                    let Some(p) = new_pack(k) else {
                        return;
                    };
                    p
                }
            };
            s.append_to(&mut pack, &mut entries[k]);
            drop(s);
            if pack_full(pack.len(), entries[k].len(), targets[k]) {
                if !close(k, pack, &mut entries[k]) {
                    return;
                }
            } else {
                packs[k] = Some(pack);
            }
        }
        drop(permit);
    }
    for (k, pack) in packs.into_iter().enumerate() {
        if let Some(pack) = pack
            && !entries[k].is_empty()
            && !sh.failed.load(Ordering::Relaxed)
            && !close(k, pack, &mut entries[k])
        {
            return;
        }
    }
}

fn uploader(
    rx: Receiver<Finished>,
    free: Sender<Option<Vec<u8>>>,
    store: Store,
    kr: Arc<Keyring>,
    sh: Arc<Shared>,
    lock: Arc<LockGuard>,
) {
    for f in rx {
        let mut back = None;
        if !sh.failed.load(Ordering::Relaxed) {
            match store_pack(&store, &kr, kr.current().0, !f.data, f.pack, &f.entries) {
                Ok((n, buf)) => {
                    sh.bytes_added.fetch_add(n, Ordering::SeqCst);
                    sh.blobs_added
                        .fetch_add(f.entries.len() as u64, Ordering::SeqCst);
                    lock.refresh();
                    back = buf;
                }
                Err(e) => sh.fail(e),
            }
        }
        // The packer waits for this buffer (or the right to allocate one) before it
        // starts the next data pack; it never blocks here, since there are only
        // DATA_PACK_BUFFERS of them.
        if f.data {
            let _ = free.try_send(back);
        }
    }
}

/// Writes a finished pack of key epoch `epoch` and then its index object; returns the
/// bytes stored, and the pack's buffer when the storage gives it back for reuse. Data
/// packs bypass the page cache where they can (`Store::write_pack`); tree packs, read
/// again by every backup's change detection, do not.
pub(crate) fn store_pack(
    store: &Store,
    kr: &Keyring,
    epoch: u32,
    trees: bool,
    pack: Vec<u8>,
    entries: &[BlobEntry],
) -> Result<(u64, Option<Vec<u8>>), Error> {
    let id = *blake3::hash(&pack).as_bytes();
    let name = hex::encode(id);
    let len = pack.len() as u64;
    let index = format::seal_object_epoch(
        kr,
        epoch,
        format::KIND_INDEX,
        &format::encode_index(&id, len, entries),
    )?;
    let ilen = index.len() as u64;
    // F1: the pack is complete on storage before an index names it, so an index
    // never points at missing data after a crash.
    let back = store.write_pack(&format!("data/{name}"), pack, !trees)?;
    store.write(&format!("index/{name}"), index)?;
    Ok((len + ilen, back))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_that_would_overfill_a_pack_waits_for_the_next() {
        let t = PACK_TARGET;
        let e = format::ENTRY_LEN;
        assert!(fits(9, 0, 2 * t, 1, t), "a first blob always fits");
        assert!(
            fits(1000, 3, t - 1000 - 4 * e, 1, t),
            "up to the target with the header"
        );
        assert!(!fits(1000, 3, t - 1000 - 4 * e + 1, 1, t));
        // A group needs an entry per member, and the pack's entries stay within the cap.
        assert!(!fits(1000, 3, t - 1000 - 5 * e + 1, 2, t));
        assert!(fits(1000, 3, t - 1000 - 5 * e, 2, t));
        assert!(!fits(1000, MAX_PACK_BLOBS - 1, 10, 2, 1 << 30));
        // What fits, closed with its header, stays within the buffer's capacity.
        assert!(1000 + (t - 1000 - 4 * e) + 4 * e + 64 <= pack_capacity(t));
    }

    #[test]
    fn chunks_in_flight_are_bounded_in_bytes_and_a_failure_wakes_the_reader() {
        let sh = Arc::new(Shared::new());
        let used = |sh: &Shared| *sh.in_flight.lock().expect("lock");
        // A chunk alone is admitted even if it is over the budget.
        let big = sh.admit(IN_FLIGHT_BYTES + 1).expect("admitted");
        drop(big);
        assert_eq!(used(&sh), 0);
        let a = sh.admit(IN_FLIGHT_BYTES - 10).expect("admitted");
        let b = sh.admit(10).expect("admitted");
        // The next byte waits until a permit is dropped (by whatever stage held it).
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let sh = sh.clone();
            std::thread::spawn(move || tx.send(sh.admit(4096).map(|p| p.n)))
        };
        let wait = std::time::Duration::from_millis(200);
        assert!(rx.recv_timeout(wait).is_err(), "admitted over the budget");
        drop(b);
        assert!(
            rx.recv_timeout(wait).is_err(),
            "4096 bytes do not fit in 10"
        );
        drop(a);
        assert_eq!(rx.recv_timeout(wait * 50).expect("woken"), Some(4096));
        waiter.join().expect("join").expect("sent");
        assert_eq!(used(&sh), 0, "every permit given back");
        // A failed pipeline releases a waiting reader with nothing.
        let full = sh.admit(IN_FLIGHT_BYTES).expect("admitted");
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let sh = sh.clone();
            std::thread::spawn(move || tx.send(sh.admit(1).is_none()))
        };
        assert!(rx.recv_timeout(wait).is_err());
        sh.fail(Error::Internal {
            detail: "test".into(),
        });
        assert!(rx.recv_timeout(wait * 50).expect("woken"), "refused");
        waiter.join().expect("join").expect("sent");
        drop(full);
    }

    #[test]
    fn fresh_ids_are_found_before_and_after_merges() {
        let id = |n: u32| *blake3::hash(&n.to_le_bytes()).as_bytes();
        let mut f = Fresh::default();
        let n = Fresh::RECENT as u32 * 2 + 77;
        for k in 0..n {
            assert!(!f.contains(&id(k)));
            f.insert(id(k));
        }
        assert_eq!(f.sorted.len() + f.recent.len(), n as usize);
        assert!(f.sorted.windows(2).all(|w| w[0] < w[1]));
        assert!((0..n).all(|k| f.contains(&id(k))));
        assert!(!f.contains(&id(n)));
    }
}
