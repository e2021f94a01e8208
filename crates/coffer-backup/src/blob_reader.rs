//! Reading verified blobs out of packs, for restore, check and prune: only the byte
//! ranges of the blobs wanted, neighbours coalesced (docs/FORMAT.md, "Restore").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::format;
use crate::keys::{Keyring, read_u32};
use crate::repo::{BlobLoc, Index};
use crate::storage::Store;

/// Bytes of pack ranges a reader of trees keeps: trees are read once per walk, so the
/// cache only has to hold a range while the trees in it are read.
pub(crate) const TREE_CACHE: usize = 4 << 20;
/// Needed blobs closer than this are read in one request: a request costs more than
/// reading a few KiB more (a round trip remotely, a syscall pair locally).
const RANGE_GAP: u32 = 64 << 10;
/// The most one request reads, unless a single blob is larger. 4 MiB restored no faster
/// and, with the ranges held per writer thread, took restore's peak 25 MiB higher.
pub(crate) const RANGE_MAX: u32 = 2 << 20;
/// Opened groups a reader keeps (each at most [`format::MAX_GROUP`], about 64 KiB as
/// backup writes them): a restore reads a group's members one after another, often from
/// several writer threads, and opening the group for each member would decompress it as
/// many times.
const GROUPS_KEPT: usize = 8;

/// A group's data, by its pack and offset.
type OpenedGroup = (u32, u32, Arc<[u8]>);

/// One range read from a pack.
struct Range {
    pack: u32,
    start: u32,
    bytes: Arc<Vec<u8>>,
}

/// Ranges kept up to a byte budget, the least recently used evicted first: after a day
/// of changes a file's chunks alternate between an old pack and a new one, and evicting
/// the oldest read (first in, first out) dropped the range about to be used again.
#[derive(Default)]
struct Ranges {
    /// Least recently used first.
    kept: VecDeque<Range>,
    bytes: usize,
}

impl Ranges {
    /// The kept range holding `[o, e)` of pack `p`, marked as just used.
    fn get(&mut self, p: u32, o: u32, e: u32) -> Option<(Arc<Vec<u8>>, u32)> {
        let i = self.kept.iter().position(|r| {
            r.pack == p && r.start <= o && e as usize <= r.start as usize + r.bytes.len()
        })?;
        let r = self.kept.remove(i)?;
        let hit = (r.bytes.clone(), r.start);
        self.kept.push_back(r);
        Some(hit)
    }

    /// Keeps `r`, evicting the least recently used until within `max` (the newest stays
    /// even alone over `max`: its reader is about to use it).
    fn keep(&mut self, r: Range, max: usize) {
        self.bytes += r.bytes.len();
        self.kept.push_back(r);
        while self.bytes > max && self.kept.len() > 1 {
            if let Some(old) = self.kept.pop_front() {
                self.bytes -= old.bytes.len();
            }
        }
    }

    /// Evicts the least recently used ranges until `need` more bytes fit within `max`,
    /// and returns the buffer of one that no reader holds any more, for the read that
    /// needs the room. Reusing evicted buffers keeps the ranges' memory at the budget: a
    /// fresh buffer per range left glibc's arenas holding a trail of freed 4 MiB blocks.
    fn room(&mut self, need: usize, max: usize) -> Vec<u8> {
        let mut reuse = None;
        while self.bytes + need > max {
            let Some(old) = self.kept.pop_front() else {
                break;
            };
            self.bytes -= old.bytes.len();
            if reuse.is_none() {
                reuse = Arc::try_unwrap(old.bytes).ok();
            }
        }
        reuse.unwrap_or_default()
    }
}

/// The blobs a caller is about to read (restore: those of one batch of files), per
/// pack the sorted (offset, end) of each: a miss reads its blob and the wanted blobs
/// that follow it, and no byte of the pack that nobody wants.
#[derive(Default)]
pub(crate) struct Wanted(HashMap<u32, Vec<(u32, u32)>>);

impl Wanted {
    /// The wanted set of `ids`. Restore's (Unix only: lib.rs says why).
    #[cfg(unix)]
    pub(crate) fn of<'i>(index: &Index, ids: impl IntoIterator<Item = &'i [u8; 32]>) -> Wanted {
        let mut by_pack: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
        for id in ids {
            if let Some(loc) = index.get(id) {
                let (o, l) = (loc.entry.offset, loc.entry.length);
                by_pack
                    .entry(loc.pack)
                    .or_default()
                    .push((o, o.saturating_add(l)));
            }
        }
        for v in by_pack.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        Wanted(by_pack)
    }
}

/// Reads and verifies blobs. Packs are read in ranges: a miss reads the blob and the
/// needed blobs that follow it in the same pack (gaps under [`RANGE_GAP`], at most
/// [`RANGE_MAX`]), so a restore reads only what it writes, in few requests. The ranges
/// are shared by every thread that reads through one reader.
pub(crate) struct BlobReader<'a> {
    store: &'a Store,
    keyring: &'a Keyring,
    index: &'a Index,
    /// Each pack's key epoch, from its first 9 bytes.
    epochs: Mutex<HashMap<u32, u32>>,
    cache: Mutex<Ranges>,
    /// Bytes of ranges kept (see [`TREE_CACHE`], and restore's writers).
    cache_max: usize,
    /// Opened groups, the most recently used last ([`GROUPS_KEPT`]).
    groups: Mutex<VecDeque<OpenedGroup>>,
}

impl<'a> BlobReader<'a> {
    /// A reader that may be asked for any indexed blob, keeping `cache_max` bytes of
    /// ranges read.
    pub(crate) fn new(
        store: &'a Store,
        keyring: &'a Keyring,
        index: &'a Index,
        cache_max: usize,
    ) -> Self {
        BlobReader {
            store,
            keyring,
            index,
            epochs: Mutex::new(HashMap::new()),
            cache: Mutex::new(Ranges::default()),
            cache_max,
            groups: Mutex::new(VecDeque::new()),
        }
    }

    /// The kept opened group at offset `o` of pack `p`.
    fn group(&self, p: u32, o: u32) -> Option<Arc<[u8]>> {
        let mut g = self.groups.lock().ok()?;
        let i = g.iter().position(|(gp, go, _)| (*gp, *go) == (p, o))?;
        let hit = g.remove(i)?;
        let data = hit.2.clone();
        g.push_back(hit);
        Some(data)
    }

    fn keep_group(&self, p: u32, o: u32, data: Arc<[u8]>) {
        if let Ok(mut g) = self.groups.lock() {
            g.push_back((p, o, data));
            if g.len() > GROUPS_KEPT {
                g.pop_front();
            }
        }
    }

    /// The cached range holding `[o, e)` of pack `p`.
    fn cached(&self, p: u32, o: u32, e: u32) -> Option<(Arc<Vec<u8>>, u32)> {
        self.cache.lock().ok()?.get(p, o, e)
    }

    /// Room in the cache for a range of `need` bytes, and a buffer to read it into.
    fn room(&self, need: usize) -> Vec<u8> {
        self.cache
            .lock()
            .map(|mut c| c.room(need, self.cache_max))
            .unwrap_or_default()
    }

    fn keep(&self, r: Range) {
        if let Ok(mut c) = self.cache.lock() {
            c.keep(r, self.cache_max);
        }
    }

    /// The range of pack `p` to read for the blob at `[o, e)`.
    fn plan(&self, p: u32, o: u32, e: u32, wanted: Option<&Wanted>) -> (u32, u32) {
        let all;
        let spans: &[(u32, u32)] = match wanted {
            Some(w) => w.0.get(&p).map(Vec::as_slice).unwrap_or(&[]),
            None => {
                let mut v: Vec<(u32, u32)> = self
                    .index
                    .pack_entries(p as usize)
                    .iter()
                    .map(|x| (x.offset, x.offset.saturating_add(x.length)))
                    .collect();
                v.sort_unstable();
                all = v;
                &all
            }
        };
        coalesce(spans, o, e)
    }

    /// Bytes `[start, end)` of pack `p`; records the pack's epoch in `epochs`.
    fn read_range(&self, p: u32, start: u32, end: u32) -> Result<Vec<u8>, String> {
        let name = &self.index.packs[p as usize].name;
        let object = format!("data/{name}");
        let short = || format!("pack {name} is shorter than its index says");
        // The epoch sits in bytes 5..9; a range near the start reads it along.
        let from = if start <= RANGE_GAP { 0 } else { start };
        let mut bytes = self
            .store
            .read_range_into(
                &object,
                from as u64,
                end as u64,
                self.room((end - from) as usize),
            )
            .map_err(|e| e.to_string())?;
        if bytes.len() < (end - from) as usize {
            return Err(short());
        }
        let epoch = if from == 0 {
            read_u32(&bytes, 5)
        } else if let Some(e) = self.epochs.lock().ok().and_then(|m| m.get(&p).copied()) {
            e
        } else {
            let head = self
                .store
                .read_range(&object, 0, 9)
                .map_err(|e| e.to_string())?;
            if head.len() < 9 {
                return Err(short());
            }
            read_u32(&head, 5)
        };
        if let Ok(mut m) = self.epochs.lock() {
            m.insert(p, epoch);
        }
        bytes.drain(..(start - from) as usize);
        Ok(bytes)
    }

    /// The verified plaintext of a blob, or why it is unusable; a miss reads the blob's
    /// neighbours in its pack along.
    pub(crate) fn blob(&self, id: &[u8; 32]) -> Result<format::Plain, String> {
        self.blob_of(id, None)
    }

    /// [`BlobReader::blob`] where a miss reads along only the neighbours in `wanted`.
    pub(crate) fn blob_of(
        &self,
        id: &[u8; 32],
        wanted: Option<&Wanted>,
    ) -> Result<format::Plain, String> {
        let loc: BlobLoc = self
            .index
            .get(id)
            .ok_or_else(|| format!("blob {} is not in the index", hex::encode(id)))?;
        let p = loc.pack;
        let pname = &self.index.packs[p as usize].name;
        let o = loc.entry.offset;
        let e = o
            .checked_add(loc.entry.length)
            .ok_or_else(|| format!("pack {pname} is shorter than its index says"))?;
        let unsealed = || {
            format!(
                "blob {} in pack {pname} does not authenticate",
                hex::encode(id)
            )
        };
        let mismatch = || {
            format!(
                "blob {} in pack {pname} does not match its id",
                hex::encode(id)
            )
        };
        if loc.entry.grouped() {
            let g = match self.group(p, o) {
                Some(g) => g,
                None => {
                    let (bytes, start) = self.range_of(p, o, e, wanted)?;
                    let sealed = &bytes[(o - start) as usize..(e - start) as usize];
                    let data =
                        format::open_group(&self.epoch_of(p)?.data, sealed).ok_or_else(unsealed)?;
                    // Kept as a copy of its size: the opened group may sit in the thread's
                    // spare buffer, which a media chunk may have grown to 4 MiB.
                    let g: Arc<[u8]> = Arc::from(&*data);
                    self.keep_group(p, o, g.clone());
                    g
                }
            };
            return format::member(self.epoch_of(p)?, &g, &loc.entry)
                .map(format::Plain::copy_of)
                .ok_or_else(mismatch);
        }
        let (bytes, start) = self.range_of(p, o, e, wanted)?;
        let epoch = self.epoch_of(p)?;
        let sealed = &bytes[(o - start) as usize..(e - start) as usize];
        let data =
            format::open_blob(&epoch.data, id, loc.entry.raw_len, sealed).ok_or_else(unsealed)?;
        // F6: the id is recomputed from the plaintext, so a blob can not be swapped for
        // another valid blob.
        if !format::is_blob(epoch, &loc.entry, &data) {
            return Err(mismatch());
        }
        Ok(data)
    }

    /// A range of pack `p` holding `[o, e)`, from the cache or read (with the wanted
    /// neighbours), and where it starts.
    fn range_of(
        &self,
        p: u32,
        o: u32,
        e: u32,
        wanted: Option<&Wanted>,
    ) -> Result<(Arc<Vec<u8>>, u32), String> {
        if let Some(hit) = self.cached(p, o, e) {
            return Ok(hit);
        }
        let (start, end) = self.plan(p, o, e, wanted);
        let bytes = Arc::new(self.read_range(p, start, end)?);
        self.keep(Range {
            pack: p,
            start,
            bytes: bytes.clone(),
        });
        Ok((bytes, start))
    }

    /// The key epoch of pack `p`, known once a range of it was read.
    fn epoch_of(&self, p: u32) -> Result<&crate::keys::Epoch, String> {
        let pname = &self.index.packs[p as usize].name;
        let epoch_no = self
            .epochs
            .lock()
            .ok()
            .and_then(|m| m.get(&p).copied())
            .ok_or_else(|| format!("pack {pname}: epoch unknown"))?;
        self.keyring
            .epoch(epoch_no, pname)
            .map_err(|e| e.to_string())
    }
}

/// The range to read for the blob at `[o, e)`, given the sorted spans wanted from its
/// pack: the blob, then each following wanted span that starts within [`RANGE_GAP`] of
/// the range's end, while the range stays within [`RANGE_MAX`].
fn coalesce(spans: &[(u32, u32)], o: u32, e: u32) -> (u32, u32) {
    let mut end = e;
    let from = spans.partition_point(|s| s.0 <= o);
    for &(so, se) in &spans[from..] {
        if so > end.saturating_add(RANGE_GAP) || se.saturating_sub(o) > RANGE_MAX {
            break;
        }
        end = end.max(se);
    }
    (o, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_range_is_evicted() {
        let range = |pack| Range {
            pack,
            start: 0,
            bytes: Arc::new(vec![0u8; 100]),
        };
        let mut c = Ranges::default();
        c.keep(range(1), 200);
        c.keep(range(2), 200);
        // A file's chunks alternate between packs 1 and 2; pack 1 was read first but
        // used last, so reading pack 3 must evict pack 2.
        assert!(c.get(1, 10, 20).is_some());
        c.keep(range(3), 200);
        assert!(c.get(1, 10, 20).is_some());
        assert!(c.get(2, 10, 20).is_none());
        assert!(c.get(3, 0, 100).is_some());
        assert!(c.get(3, 0, 101).is_none());
        assert_eq!(c.bytes, 200);
        // Room for a read evicts first, and hands back the buffer of a range nobody
        // holds; a range a reader still holds is freed when the reader drops it.
        let (held, _) = c.get(1, 10, 20).expect("pack 1 is kept");
        let buf = c.room(100, 200); // evicts 3 (least recently used), unused
        assert_eq!(buf.capacity(), 100);
        assert_eq!(c.bytes, 100);
        assert!(c.get(3, 0, 100).is_none());
        let buf = c.room(200, 200); // evicts 1, held
        assert_eq!(buf.capacity(), 0);
        assert_eq!(c.bytes, 0);
        drop(held);
    }

    #[test]
    fn ranges_cover_the_blob_and_wanted_neighbours_only() {
        // Wanted blobs at 100, 200 (near), 300_000 (past the gap), and a run of 1 MiB
        // blobs that outgrows RANGE_MAX.
        let spans = [(100, 150), (200, 260), (300_000, 300_010)];
        assert_eq!(coalesce(&spans, 100, 150), (100, 260));
        assert_eq!(coalesce(&spans, 200, 260), (200, 260));
        assert_eq!(coalesce(&spans, 300_000, 300_010), (300_000, 300_010));
        // A blob nobody listed (prune's reader lists all): itself only.
        assert_eq!(coalesce(&[], 5, 9), (5, 9));
        let mib = 1 << 20;
        let big: Vec<(u32, u32)> = (0..8).map(|i| (i * mib, (i + 1) * mib)).collect();
        assert_eq!(coalesce(&big, 0, mib), (0, RANGE_MAX));
        assert_eq!(coalesce(&big, 6 * mib, 7 * mib), (6 * mib, 8 * mib));
        // One blob larger than RANGE_MAX is still read whole.
        assert_eq!(coalesce(&[(0, 5 * mib)], 0, 5 * mib), (0, 5 * mib));
    }
}
