//! The repository handle: init, open, key rotation, destroy, and loading of the index and
//! snapshots that every operation shares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::Error;
use crate::format::{self, BlobEntry, KeyringOpen};
use crate::keys::{BackupKey, Epoch, Keyring, fill_random};
use crate::snapshot::{DiffEntry, Manifest};
use crate::storage::{self, Store};
use crate::types::*;

/// An open repository. Operations take `&self` and may run concurrently with other
/// processes using the same repository (see FORMAT.md "Locks").
pub struct Repository {
    pub(crate) location: String,
    pub(crate) store: Store,
    pub(crate) keyring: Arc<Keyring>,
    key_object: String,
    heads: Mutex<HeadState>,
    /// Snapshot objects found unreadable by the last listing: id -> reason.
    damaged: Mutex<BTreeMap<String, String>>,
}

/// What this handle knows about the repository head (docs/THREAT_MODEL.md "Rollback").
#[derive(Default)]
struct HeadState {
    /// The highest head the device saw before (set by the caller).
    known: Option<Head>,
    /// Proceed even when the repository's head is below `known`.
    allow_older: bool,
    /// The highest head this handle has seen (listed or written).
    seen: Option<Head>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.location)
            .field("epochs", &self.keyring.epochs.len())
            .finish()
    }
}

/// Where one blob lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlobLoc {
    pub(crate) pack: u32,
    pub(crate) entry: BlobEntry,
}

/// The in-memory index: every indexed pack and blob, held compactly (FORMAT.md "What is
/// held in memory"): the entries of all packs back to back in pack order (48 bytes
/// each, as on storage) and their positions sorted by id (4 bytes each) for lookups.
/// No per-chunk heap object, so a million chunks take 52 MB, not several hundred.
#[derive(Default)]
pub(crate) struct Index {
    /// Pack ids (hex) with their length and entry range.
    pub(crate) packs: Vec<PackInfo>,
    entries: Vec<BlobEntry>,
    /// Positions into `entries`, sorted by id; equal ids keep load order, so the first
    /// pack loaded that holds a blob is where the blob is read from.
    by_id: Vec<u32>,
    /// Where in `by_id` the ids starting with each 12-bit prefix begin (16 KiB): ids are
    /// keyed hashes, spread evenly, so a lookup searches a few entries of one bucket
    /// instead of the whole table. Each probe of that search is a cache miss into
    /// `entries`; a restore looks up every chunk, and the full search was 7% of it.
    fanout: Vec<u32>,
}

/// Bits of an id's prefix that pick its [`Index::fanout`] bucket.
const FANOUT_BITS: u32 = 12;

fn bucket(id: &[u8; 32]) -> usize {
    ((usize::from(id[0]) << 8) | usize::from(id[1])) >> (16 - FANOUT_BITS)
}

/// One indexed pack.
#[derive(Clone, Debug)]
pub(crate) struct PackInfo {
    pub(crate) name: String,
    pub(crate) len: u64,
    /// Its entries: `Index::pack_entries`.
    range: std::ops::Range<u32>,
}

impl Index {
    pub(crate) fn add_pack(&mut self, name: String, len: u64, entries: Vec<BlobEntry>) {
        let start = self.entries.len() as u32;
        self.entries.extend_from_slice(&entries);
        let end = self.entries.len() as u32;
        self.packs.push(PackInfo {
            name,
            len,
            range: start..end,
        });
    }

    /// Sorts the lookup table; call once after the last `add_pack`.
    pub(crate) fn seal(&mut self) {
        let mut by_id: Vec<u32> = (0..self.entries.len() as u32).collect();
        let entries = &self.entries;
        by_id.sort_by(|a, b| entries[*a as usize].id.cmp(&entries[*b as usize].id));
        let mut fanout = vec![0u32; (1 << FANOUT_BITS) + 1];
        for &p in &by_id {
            fanout[bucket(&entries[p as usize].id) + 1] += 1;
        }
        for b in 1..fanout.len() {
            fanout[b] += fanout[b - 1];
        }
        self.by_id = by_id;
        self.fanout = fanout;
    }

    /// The entries of pack `p`, in pack order.
    pub(crate) fn pack_entries(&self, p: usize) -> &[BlobEntry] {
        let r = &self.packs[p].range;
        &self.entries[r.start as usize..r.end as usize]
    }

    /// The position (in pack order) of the copy of `id` that is read.
    pub(crate) fn position(&self, id: &[u8; 32]) -> Option<usize> {
        let b = bucket(id);
        let (lo, hi) = (
            *self.fanout.get(b)? as usize,
            *self.fanout.get(b + 1)? as usize,
        );
        let i = lo + self.by_id[lo..hi].partition_point(|&p| self.entries[p as usize].id < *id);
        let p = *self.by_id[..hi].get(i)? as usize;
        (self.entries[p].id == *id).then_some(p)
    }

    pub(crate) fn contains(&self, id: &[u8; 32]) -> bool {
        self.position(id).is_some()
    }

    pub(crate) fn get(&self, id: &[u8; 32]) -> Option<BlobLoc> {
        let p = self.position(id)?;
        let pack = self.packs.partition_point(|x| x.range.end as usize <= p) as u32;
        Some(BlobLoc {
            pack,
            entry: self.entries[p],
        })
    }

    /// Indexed blob entries, duplicates included.
    pub(crate) fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Distinct indexed blobs.
    pub(crate) fn blob_count(&self) -> usize {
        let e = &self.entries;
        self.by_id
            .windows(2)
            .filter(|w| e[w[0] as usize].id != e[w[1] as usize].id)
            .count()
            + usize::from(!self.by_id.is_empty())
    }

    /// The first position of pack `p` (positions are `pack start + entry number`).
    pub(crate) fn pack_start(&self, p: usize) -> usize {
        self.packs[p].range.start as usize
    }
}

impl Repository {
    /// Creates a repository at `location` (a local path, "memory://NAME" or an OpenDAL URL).
    /// Refuses if one exists there.
    pub fn init(location: &str, key: &BackupKey) -> Result<Repository, Error> {
        let store = storage::connect(location, true)?;
        if !store.list("keys/")?.is_empty() {
            return Err(Error::AlreadyExists {
                location: crate::location::redact(location),
            });
        }
        let mut repo_id = [0u8; 16];
        fill_random(&mut repo_id);
        let keyring = Keyring {
            repo_id,
            epochs: vec![Epoch::generate()?],
        };
        let key_object = write_keyring(&store, key, &keyring)?;
        Ok(Repository::new(location, store, keyring, key_object))
    }

    /// Opens an existing repository. [`Error::NotFound`] if there is none,
    /// [`Error::WrongKey`] if `key` does not match it.
    pub fn open(location: &str, key: &BackupKey) -> Result<Repository, Error> {
        Self::open_store(location, key, storage::connect(location, false)?)
    }

    /// [`Repository::open`] over a local folder whose storage simulates a power cut at
    /// the operation `faults` names (crash tests; see [`crate::testing`]).
    #[doc(hidden)]
    pub fn open_with_faults(
        location: &str,
        key: &BackupKey,
        faults: Arc<crate::testing::Faults>,
    ) -> Result<Repository, Error> {
        let mut store = storage::connect(location, false)?;
        store.faults = Some(faults);
        Self::open_store(location, key, store)
    }

    fn new(location: &str, store: Store, keyring: Keyring, key_object: String) -> Repository {
        Repository {
            location: crate::location::redact(location),
            store,
            keyring: Arc::new(keyring),
            key_object,
            heads: Mutex::new(HeadState::default()),
            damaged: Mutex::new(BTreeMap::new()),
        }
    }

    fn open_store(location: &str, key: &BackupKey, store: Store) -> Result<Repository, Error> {
        let names = store.list("keys/")?;
        if names.is_empty() {
            return Err(Error::NotFound {
                location: crate::location::redact(location),
            });
        }
        let mut damage = None;
        // Several keyring objects exist only inside rotate_key's crash window (FORMAT.md
        // "Key rotation"); any one that this key opens is valid.
        for (name, _) in names {
            let object = format!("keys/{name}");
            let Some(bytes) = store.read_opt(&object)? else {
                continue;
            };
            match format::open_keyring(key.as_bytes(), &bytes, &object) {
                Ok(KeyringOpen::Opened(keyring)) => {
                    return Ok(Repository::new(location, store, keyring, object));
                }
                Ok(KeyringOpen::WrongKey) => {}
                Err(e) => damage = Some(e),
            }
        }
        Err(damage.unwrap_or(Error::WrongKey))
    }

    /// New key for data written from now on: adds an epoch and re-wraps the keyring under
    /// `new_key`; afterwards only `new_key` opens the repository, and every old snapshot
    /// still restores.
    pub fn rotate_key(&mut self, new_key: &BackupKey) -> Result<(), Error> {
        let mut epochs = Vec::with_capacity(self.keyring.epochs.len() + 1);
        let plain = self.keyring.encode();
        let copy = Keyring::decode(&plain, &self.key_object)?;
        epochs.extend(copy.epochs);
        epochs.push(Epoch::generate()?);
        let keyring = Keyring {
            repo_id: self.keyring.repo_id,
            epochs,
        };
        // The new keyring is complete on storage before the old one goes: a crash in
        // between leaves both keys able to open the repository, never neither (F9).
        let new_object = write_keyring(&self.store, new_key, &keyring)?;
        self.store.delete(&self.key_object)?;
        self.key_object = new_object;
        self.keyring = Arc::new(keyring);
        Ok(())
    }

    /// Deletes every object of the repository (turn backups off).
    pub fn destroy(location: &str) -> Result<(), Error> {
        let store = storage::connect(location, false)?;
        store.remove_everything()?;
        if let Some(root) = &store.local_root {
            // Leave no empty directories behind; a non-empty root (foreign files) stays.
            for d in ["keys", "snapshots", "index", "data", "locks", "tmp"] {
                let _ = std::fs::remove_dir(root.join(d));
            }
            let _ = std::fs::remove_dir(root);
        }
        Ok(())
    }

    /// All readable snapshots, oldest first (by sequence number, then time). Damaged ones
    /// are skipped and then listed by [`Repository::damaged_snapshots`].
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, Error> {
        let mut v = Vec::new();
        for (id, m) in self.load_manifests()? {
            v.push(info(&id, &m));
        }
        Ok(v)
    }

    /// Backs up files and folders into a new snapshot.
    pub fn backup(&self, paths: &[PathBuf], opts: &BackupOptions) -> Result<BackupSummary, Error> {
        crate::backup::backup_paths(self, paths, opts)
    }

    /// Backs up a stream (e.g. stdin) as a single file called `name`.
    pub fn backup_stream(
        &self,
        name: &str,
        reader: &mut dyn std::io::Read,
        opts: &BackupOptions,
    ) -> Result<BackupSummary, Error> {
        crate::backup::backup_stream(self, name, reader, opts)
    }

    /// Restores a snapshot ("latest" or an id prefix) into `target`; `include` limits it to
    /// these paths and what is below them: snapshot names (`chat/db`) or the backed-up
    /// locations as [`Repository::snapshots`] lists them (`/home/me/chat/db`). A path that
    /// matches nothing is [`Error::PathNotInSnapshot`]. Nothing is written outside
    /// `target` whatever the snapshot holds; see [`RestoreSummary::refused`].
    pub fn restore(
        &self,
        snapshot: &str,
        target: &Path,
        include: &[PathBuf],
        opts: &RestoreOptions,
    ) -> Result<RestoreSummary, Error> {
        crate::restore::restore(self, snapshot, target, include, opts)
    }

    /// The entries of a snapshot, in snapshot order; with `path`, only those at or below
    /// it (same forms as restore's paths). Returns the snapshot id too.
    pub fn ls(&self, snapshot: &str, path: Option<&Path>) -> Result<(String, Vec<LsEntry>), Error> {
        let (id, m) = self.find_snapshot(snapshot)?;
        let include: Vec<PathBuf> = path.map(Path::to_path_buf).into_iter().collect();
        let index = self.index_for(&m)?;
        let entries = crate::ls::select(self, &index, &id, &m, &include)?
            .iter()
            .map(crate::ls::entry)
            .collect();
        Ok((id, entries))
    }

    /// Verifies the repository structure, and with `read_data` every byte of every pack.
    pub fn check(
        &self,
        read_data: bool,
        progress: Option<&dyn Progress>,
    ) -> Result<CheckReport, Error> {
        crate::check::check(self, read_data, progress)
    }

    /// Removes the snapshots with these ids (full ids or unique prefixes), readable or not:
    /// the way to drop a damaged snapshot. Returns the removed ids.
    pub fn forget_ids(&self, ids: &[String], dry_run: bool) -> Result<Vec<String>, Error> {
        crate::maintain::forget_ids(self, ids, dry_run)
    }

    /// Removes locks left by dead processes (older than the staleness limit, or of a
    /// process of this host that no longer runs); with `force`, every lock.
    pub fn unlock(&self, force: bool) -> Result<UnlockReport, Error> {
        crate::lock::unlock(&self.store, force)
    }

    /// The repository id (hex of the keyring's 16 random bytes): stable across key
    /// rotations, the key under which a device remembers this repository's head.
    pub fn id(&self) -> String {
        hex::encode(self.keyring.repo_id)
    }

    /// The current head (the readable snapshot with the highest sequence number), checked
    /// against the known head like every listing.
    pub fn head(&self) -> Result<Option<Head>, Error> {
        Ok(self.load_manifests()?.last().map(|(id, m)| head_of(id, m)))
    }

    /// Sets the highest head this device saw before: every operation that lists the
    /// snapshots then fails with [`Error::RolledBack`] when the repository's head is lower,
    /// unless `allow_older`.
    pub fn set_known_head(&self, known: Option<Head>, allow_older: bool) {
        if let Ok(mut h) = self.heads.lock() {
            h.known = known;
            h.allow_older = allow_older;
        }
    }

    /// The highest head this handle has seen so far (listed or written), to be remembered
    /// by the device; with `allow_older`, the repository's head even when lower.
    pub fn seen_head(&self) -> Option<Head> {
        self.heads.lock().ok().and_then(|h| h.seen.clone())
    }

    /// Snapshot objects the last listing could not read, with the reason.
    pub fn damaged_snapshots(&self) -> Vec<DamagedSnapshot> {
        self.damaged
            .lock()
            .map(|d| {
                d.iter()
                    .map(|(id, reason)| DamagedSnapshot {
                        id: id.clone(),
                        reason: reason.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes snapshots that no keep rule keeps.
    pub fn forget(&self, policy: &KeepPolicy, dry_run: bool) -> Result<ForgetReport, Error> {
        crate::maintain::forget(self, policy, dry_run)
    }

    /// Deletes data no snapshot uses. Safe against crashes and concurrent backups.
    pub fn prune(&self, progress: Option<&dyn Progress>) -> Result<PruneReport, Error> {
        crate::maintain::prune(self, progress)
    }

    /// Differences between snapshots `a` and `b` (ids, prefixes or "latest").
    pub fn diff(&self, a: &str, b: &str) -> Result<Vec<DiffEntry>, Error> {
        let (ia, ma) = self.find_snapshot(a)?;
        let (ib, mb) = self.find_snapshot(b)?;
        let index = if ma.tree.is_some() || mb.tree.is_some() {
            self.load_index()?.0
        } else {
            Index::default()
        };
        let na = crate::ls::select(self, &index, &ia, &ma, &[])?;
        let nb = crate::ls::select(self, &index, &ib, &mb, &[])?;
        Ok(crate::snapshot::diff(&na, &nb))
    }

    /// The location string this repository was opened with, with credentials (user info
    /// and secret query values) replaced by `***`: safe to print.
    pub fn location(&self) -> &str {
        &self.location
    }

    // ---- shared internals ----

    /// The index when reading `m` needs it (its trees are blobs), else an empty one: a
    /// version 1/2 snapshot lists its nodes itself.
    pub(crate) fn index_for(&self, m: &Manifest) -> Result<Index, Error> {
        Ok(if m.tree.is_some() {
            self.load_index()?.0
        } else {
            Index::default()
        })
    }

    /// Loads every index object. Damaged or unreadable index objects are replaced by the
    /// header of their pack (the index can always be rebuilt from packs, F7); the
    /// problems are returned for check.
    pub(crate) fn load_index(&self) -> Result<(Index, Vec<String>), Error> {
        let mut idx = Index::default();
        let mut problems = Vec::new();
        for (name, _) in self.store.list("index/")? {
            let object = format!("index/{name}");
            let loaded = self
                .store
                .read_opt(&object)?
                .ok_or_else(|| Error::integrity(&object, "vanished while listing"));
            let parsed = loaded.and_then(|b| {
                let p = format::open_object(&self.keyring, format::KIND_INDEX, &b, &object)?;
                let ip = format::decode_index(&p, &object)?;
                if hex::encode(ip.pack_id) != name {
                    return Err(Error::integrity(&object, "names another pack"));
                }
                Ok(ip)
            });
            match parsed {
                Ok(ip) => idx.add_pack(name, ip.pack_len, ip.entries),
                Err(e) => {
                    problems.push(e.to_string());
                    let pack = format!("data/{name}");
                    match self.store.read_opt(&pack)? {
                        Some(b) => match format::pack_header(&self.keyring, &b, &pack) {
                            Ok((_, entries)) => idx.add_pack(name, b.len() as u64, entries),
                            Err(e) => problems.push(e.to_string()),
                        },
                        None => problems.push(format!("{pack}: missing")),
                    }
                }
            }
        }
        idx.seal();
        Ok((idx, problems))
    }

    /// Every readable snapshot manifest, oldest first: by sequence number (version 1
    /// snapshots count as 0), then time, then id, so the last one is the head. Only the
    /// metadata is kept: the node lists of version 1/2 manifests are dropped (memory stays
    /// that of one manifest; `load_manifest` reads one whole). Unreadable
    /// ones are recorded for [`Repository::damaged_snapshots`] and skipped: one damaged
    /// object must not take the repository down. Fails with [`Error::RolledBack`] when the
    /// head is below the known head.
    pub(crate) fn load_manifests(&self) -> Result<Vec<(String, Manifest)>, Error> {
        let mut v = Vec::new();
        let mut damaged = BTreeMap::new();
        let names = self.snapshot_names()?;
        for name in &names {
            match self.load_manifest(name) {
                Ok(mut m) => {
                    m.nodes = Vec::new();
                    v.push((name.clone(), m));
                }
                Err(Error::Integrity { detail, .. }) => {
                    damaged.insert(name.clone(), detail);
                }
                Err(e) => return Err(e),
            }
        }
        v.sort_by(|a, b| order_key(&a.0, &a.1).cmp(&order_key(&b.0, &b.1)));
        if let Ok(mut d) = self.damaged.lock() {
            *d = damaged;
        }
        let head = v.last().map(|(id, m)| head_of(id, m));
        self.observe_head(head, &names)?;
        Ok(v)
    }

    /// Compares a listed head with the known one (the rule table is in
    /// docs/THREAT_MODEL.md "Rollback") and records it as seen.
    pub(crate) fn observe_head(&self, head: Option<Head>, listed: &[String]) -> Result<(), Error> {
        let mut h = self.heads.lock().map_err(|_| Error::Internal {
            detail: "head state poisoned".into(),
        })?;
        let found = head.as_ref().map_or(0, |x| x.seq);
        if let Some(known) = h.known.clone()
            // Still listed means damaged, not dropped: that is reported as damage.
            && !listed.contains(&known.id)
            && found < known.seq
            && !h.allow_older
        {
            return Err(Error::RolledBack {
                seen_seq: known.seq,
                seen_id: known.id,
                found,
            });
        }
        let higher = match (&h.seen, &head) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(s), Some(n)) => n.seq > s.seq,
        };
        if higher {
            h.seen = head;
        }
        Ok(())
    }

    /// Records a snapshot this handle wrote as seen.
    pub(crate) fn wrote_head(&self, head: Head) {
        if let Ok(mut h) = self.heads.lock()
            && h.seen.as_ref().is_none_or(|s| head.seq >= s.seq)
        {
            h.seen = Some(head);
        }
    }

    pub(crate) fn load_manifest(&self, id: &str) -> Result<Manifest, Error> {
        let object = format!("snapshots/{id}");
        let b = self.store.read(&object)?;
        // The name is the BLAKE3 hash of the object: a renamed or swapped snapshot is caught.
        if blake3::hash(&b).to_hex().as_str() != id {
            return Err(Error::integrity(&object, "content does not match its name"));
        }
        let p = format::open_object(&self.keyring, format::KIND_SNAPSHOT, &b, &object)?;
        Manifest::decode(&p, &object)
    }

    /// Resolves "latest" or an id prefix.
    pub(crate) fn find_snapshot(&self, q: &str) -> Result<(String, Manifest), Error> {
        if q == "latest" {
            let (id, _) = self
                .load_manifests()?
                .pop()
                .ok_or_else(|| Error::SnapshotNotFound { query: q.into() })?;
            let m = self.load_manifest(&id)?;
            return Ok((id, m));
        }
        let id = resolve_prefix(&self.snapshot_names()?, q)?;
        let m = self.load_manifest(&id)?;
        Ok((id, m))
    }

    /// The names (ids) of every snapshot object, readable or not.
    pub(crate) fn snapshot_names(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .store
            .list("snapshots/")?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }
}

pub(crate) fn info(id: &str, m: &Manifest) -> SnapshotInfo {
    SnapshotInfo {
        id: id.to_string(),
        time: m.time(),
        paths: m.paths.clone(),
        files: m.files,
        bytes: m.bytes,
        hostname: m.hostname.clone(),
        seq: m.seq,
        skipped: m.skipped,
        incomplete: m.skipped > 0,
    }
}

/// The one snapshot id starting with `q`.
pub(crate) fn resolve_prefix(names: &[String], q: &str) -> Result<String, Error> {
    let hits: Vec<&String> = names
        .iter()
        .filter(|n| !q.is_empty() && n.starts_with(q))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::SnapshotNotFound { query: q.into() }),
        _ => Err(Error::AmbiguousSnapshot { query: q.into() }),
    }
}

/// The sort key of snapshots: the head sorts last.
fn order_key<'a>(id: &'a str, m: &Manifest) -> (u64, i64, &'a str) {
    (m.seq.unwrap_or(0), m.time_ns, id)
}

pub(crate) fn head_of(id: &str, m: &Manifest) -> Head {
    Head {
        seq: m.seq.unwrap_or(0),
        id: id.to_string(),
    }
}

fn write_keyring(store: &Store, key: &BackupKey, keyring: &Keyring) -> Result<String, Error> {
    let bytes = format::seal_keyring(key.as_bytes(), keyring)?;
    let mut rnd = [0u8; 16];
    fill_random(&mut rnd);
    let object = format!("keys/{}", hex::encode(rnd));
    store.write(&object, bytes)?;
    Ok(object)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(id: [u8; 32], offset: u32) -> BlobEntry {
        BlobEntry {
            id,
            offset,
            length: 1,
            raw_len: 1,
            start: format::ALONE,
        }
    }

    /// Lookups go through the bucket of the id's first 12 bits: ids at both ends of the
    /// range, several in one bucket, a duplicate in a later pack, and ids that are not
    /// there (in an empty bucket, between two present ids of one bucket, past the last).
    #[test]
    fn lookups_find_every_id_and_only_those() {
        let id = |a: u8, b: u8, c: u8| {
            let mut x = [c; 32];
            x[0] = a;
            x[1] = b;
            x
        };
        let first = vec![
            entry(id(0xff, 0xff, 9), 0),
            entry(id(0, 0, 1), 1),
            entry(id(0x12, 0x30, 5), 2),
            entry(id(0x12, 0x3f, 1), 3),
        ];
        let second = vec![entry(id(0x12, 0x30, 5), 7), entry(id(0x80, 0, 0), 8)];
        let mut ix = Index::default();
        assert!(
            ix.get(&id(0, 0, 1)).is_none(),
            "an unsealed index finds nothing"
        );
        ix.add_pack("a".into(), 10, first);
        ix.add_pack("b".into(), 10, second);
        ix.seal();
        for (i, (want, pack, offset)) in [
            (id(0xff, 0xff, 9), 0, 0),
            (id(0, 0, 1), 0, 1),
            (id(0x12, 0x30, 5), 0, 2),
            (id(0x12, 0x3f, 1), 0, 3),
            (id(0x80, 0, 0), 1, 8),
        ]
        .into_iter()
        .enumerate()
        {
            let loc = ix.get(&want).unwrap_or_else(|| panic!("id {i} not found"));
            assert_eq!((loc.pack, loc.entry.offset), (pack, offset), "id {i}");
        }
        for absent in [
            id(0x40, 0, 0),
            id(0x12, 0x30, 6),
            id(0x12, 0x31, 0),
            id(0xff, 0xff, 10),
        ] {
            assert!(!ix.contains(&absent));
        }
        assert_eq!(ix.blob_count(), 5);
    }
}
