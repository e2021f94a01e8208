//! Reading verified blobs out of packs, for restore, check and prune.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::format;
use crate::keys::{Keyring, read_u32};
use crate::repo::{BlobLoc, Index};
use crate::storage::Store;

/// Packs kept in memory while restoring (8 MiB each).
const PACK_CACHE: usize = 6;

/// Reads and verifies blobs, caching recently used packs.
pub(crate) struct BlobReader<'a> {
    store: &'a Store,
    keyring: &'a Keyring,
    index: &'a Index,
    cache: Mutex<VecDeque<(u32, Arc<Vec<u8>>)>>,
}

impl<'a> BlobReader<'a> {
    pub(crate) fn new(store: &'a Store, keyring: &'a Keyring, index: &'a Index) -> Self {
        BlobReader {
            store,
            keyring,
            index,
            cache: Mutex::new(VecDeque::new()),
        }
    }

    fn pack(&self, p: u32) -> Result<Arc<Vec<u8>>, String> {
        if let Ok(c) = self.cache.lock()
            && let Some((_, b)) = c.iter().find(|(i, _)| *i == p)
        {
            return Ok(b.clone());
        }
        let name = &self.index.packs[p as usize].name;
        let bytes = self
            .store
            .read(&format!("data/{name}"))
            .map_err(|e| e.to_string())?;
        let b = Arc::new(bytes);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= PACK_CACHE {
                c.pop_front();
            }
            c.push_back((p, b.clone()));
        }
        Ok(b)
    }

    /// The verified plaintext of a blob, or why it is unusable.
    pub(crate) fn blob(&self, id: &[u8; 32]) -> Result<Vec<u8>, String> {
        let loc: BlobLoc = *self
            .index
            .blobs
            .get(id)
            .ok_or_else(|| format!("blob {} is not in the index", hex::encode(id)))?;
        let pack = self.pack(loc.pack)?;
        let pname = &self.index.packs[loc.pack as usize].name;
        let (o, l) = (loc.entry.offset as usize, loc.entry.length as usize);
        if pack.len() < 9 || o + l > pack.len() {
            return Err(format!("pack {pname} is shorter than its index says"));
        }
        let epoch = self
            .keyring
            .epoch(read_u32(&pack, 5), pname)
            .map_err(|e| e.to_string())?;
        let data = format::open_blob(&epoch.data, id, loc.entry.raw_len, &pack[o..o + l])
            .ok_or_else(|| {
                format!(
                    "blob {} in pack {pname} does not authenticate",
                    hex::encode(id)
                )
            })?;
        // F6: the id is recomputed from the plaintext, so a blob can not be swapped for
        // another valid blob.
        if data.len() != loc.entry.raw_len as usize || epoch.chunk_id(&data) != *id {
            return Err(format!(
                "blob {} in pack {pname} does not match its id",
                hex::encode(id)
            ));
        }
        Ok(data)
    }
}
