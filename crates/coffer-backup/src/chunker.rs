//! Content-defined chunking: a FastCDC-style gear hash with normalized chunking (two masks)
//! over a secret gear table (FORMAT.md "Chunking"). Chunking is not a crypto primitive; the
//! table is secret so that boundaries do not reveal content.

use std::io::Read;

/// Chunk size parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub(crate) min: usize,
    pub(crate) avg: usize,
    pub(crate) max: usize,
}

/// For files of 16 MiB and more (media, archives): 1 MiB average.
pub(crate) const LARGE: Params = Params {
    min: 256 * 1024,
    avg: 1024 * 1024,
    max: 4 * 1024 * 1024,
};
/// For smaller files: 128 KiB average, so an edit re-stores little.
pub(crate) const SMALL: Params = Params {
    min: 32 * 1024,
    avg: 128 * 1024,
    max: 512 * 1024,
};

/// Picks parameters by file size.
pub(crate) fn params_for(size: u64) -> Params {
    if size >= 16 * 1024 * 1024 {
        LARGE
    } else {
        SMALL
    }
}

fn mask(bits: u32) -> u64 {
    ((1u64 << bits) - 1) << (64 - bits)
}

/// Length of the next chunk at the start of `data` (`data` holds at least `max` bytes
/// unless the input ends). The definition of the boundaries: [`Chunker`] finds the same
/// ones a block at a time, which the tests check against this.
#[cfg(test)]
pub(crate) fn cut(gear: &[u64; 256], p: Params, data: &[u8]) -> usize {
    let n = data.len().min(p.max);
    if n <= p.min {
        return n;
    }
    let bits = p.avg.trailing_zeros();
    let (mask_s, mask_l) = (mask(bits + 2), mask(bits.saturating_sub(2)));
    let normal = p.avg.min(n);
    let mut h = 0u64;
    let mut i = p.min;
    while i < normal {
        h = (h << 1).wrapping_add(gear[data[i] as usize]);
        if h & mask_s == 0 {
            return i + 1;
        }
        i += 1;
    }
    while i < n {
        h = (h << 1).wrapping_add(gear[data[i] as usize]);
        if h & mask_l == 0 {
            return i + 1;
        }
        i += 1;
    }
    n
}

/// Largest read, and so the chunker's own buffer: what a chunk needs beyond that is
/// copied into the chunk itself, so no byte is moved twice and no 4 MiB look-ahead is
/// held (the look-ahead buffer of `max` + 4 MiB was 8 MiB of a backup's peak memory).
const BLOCK: usize = 1024 * 1024;

/// Splits a reader into content-defined chunks, a block at a time: the gear hash runs
/// over each block as it arrives and carries over to the next, so a boundary is found
/// without holding `max` bytes ahead.
pub(crate) struct Chunker<'a, R: Read + ?Sized> {
    reader: &'a mut R,
    gear: &'a [u64; 256],
    params: Params,
    masks: (u64, u64),
    /// Fixed chunk size instead of CDC (SQLite pages).
    fixed: Option<usize>,
    /// The last block read, and how much of it is consumed.
    block: Vec<u8>,
    at: usize,
    read_size: usize,
    /// Bytes not yet read of the input's expected size (`u64::MAX` when unknown).
    left_hint: u64,
    eof: bool,
    /// The chunk being gathered, and the gear hash over it.
    chunk: Vec<u8>,
    hash: u64,
}

impl<'a, R: Read + ?Sized> Chunker<'a, R> {
    pub(crate) fn new(
        reader: &'a mut R,
        gear: &'a [u64; 256],
        params: Params,
        fixed: Option<usize>,
    ) -> Self {
        Self::with_size_hint(reader, gear, params, fixed, u64::MAX)
    }

    /// Like [`Chunker::new`], reading no more ahead than `size_hint` + 1 bytes needs.
    pub(crate) fn with_size_hint(
        reader: &'a mut R,
        gear: &'a [u64; 256],
        params: Params,
        fixed: Option<usize>,
        size_hint: u64,
    ) -> Self {
        // One byte past the expected end, so a file of known size ends with one read.
        let read_size = size_hint.saturating_add(1).min(BLOCK as u64) as usize;
        let bits = params.avg.trailing_zeros();
        Chunker {
            reader,
            gear,
            params,
            masks: (mask(bits + 2), mask(bits.saturating_sub(2))),
            fixed,
            block: Vec::new(),
            at: 0,
            read_size,
            left_hint: size_hint,
            eof: false,
            chunk: Vec::new(),
            hash: 0,
        }
    }

    /// Reads the next block; false at the end of input.
    fn refill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.block.clear();
        self.at = 0;
        // Sized exactly once: a tiny file must not cost a 1 MiB allocation.
        self.block.reserve_exact(self.read_size);
        let want = self.read_size as u64;
        loop {
            // read_to_end on a Take appends without zero-filling the buffer first, and
            // returns short only at the end of input.
            match (&mut *self.reader).take(want).read_to_end(&mut self.block) {
                Ok(n) => {
                    self.eof = (n as u64) < want;
                    self.left_hint = self.left_hint.saturating_sub(n as u64);
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Bytes at the start of `data` that complete the chunk being gathered, if it ends
    /// within `data`; the same boundary as [`cut`] over the whole input.
    fn boundary(&mut self, data: &[u8]) -> Option<usize> {
        let len = self.chunk.len();
        if let Some(f) = self.fixed {
            let need = f - len;
            return (need <= data.len()).then_some(need);
        }
        let p = self.params;
        let (mask_s, mask_l) = self.masks;
        // No byte before `min` is hashed; the first cut can follow byte `min`.
        let mut i = p.min.saturating_sub(len).min(data.len());
        let mut pos = len + i;
        let mut h = self.hash;
        while i < data.len() && pos < p.avg {
            h = (h << 1).wrapping_add(self.gear[data[i] as usize]);
            i += 1;
            pos += 1;
            if h & mask_s == 0 {
                return Some(i);
            }
        }
        while i < data.len() && pos < p.max {
            h = (h << 1).wrapping_add(self.gear[data[i] as usize]);
            i += 1;
            pos += 1;
            if h & mask_l == 0 {
                return Some(i);
            }
        }
        self.hash = h;
        (pos == p.max).then_some(i)
    }

    /// The next chunk, or `None` at the end of input.
    pub(crate) fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if self.at == self.block.len() && !self.refill()? {
                self.hash = 0;
                let last = std::mem::take(&mut self.chunk);
                return Ok((!last.is_empty()).then_some(last));
            }
            if self.chunk.capacity() == 0 {
                // Room for a chunk of the usual size, or the rest of a smaller file;
                // larger chunks grow.
                let typical = self
                    .fixed
                    .unwrap_or(2 * self.params.avg)
                    .min(self.params.max);
                let rest = (self.block.len() - self.at) as u64 + self.left_hint;
                self.chunk
                    .reserve_exact(rest.min(typical as u64).max(1) as usize);
            }
            // Out of `self` while `boundary` updates the hash (a move, not a copy).
            let block = std::mem::take(&mut self.block);
            let data = &block[self.at..];
            let end = self.boundary(data);
            self.chunk
                .extend_from_slice(&data[..end.unwrap_or(data.len())]);
            self.at += end.unwrap_or(data.len());
            self.block = block;
            if end.is_some() {
                self.hash = 0;
                return Ok(Some(std::mem::take(&mut self.chunk)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table(seed: u8) -> [u64; 256] {
        let mut t = [0u64; 256];
        let mut x = blake3::Hasher::new();
        x.update(&[seed]);
        let mut r = x.finalize_xof();
        let mut b = [0u8; 8];
        for v in t.iter_mut() {
            r.fill(&mut b);
            *v = u64::from_le_bytes(b);
        }
        t
    }

    fn pseudo(n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        blake3::Hasher::new().finalize_xof().fill(&mut v);
        v
    }

    fn chunks(data: &[u8], gear: &[u64; 256], p: Params) -> Vec<usize> {
        let mut r = data;
        let mut c = Chunker::new(&mut r, gear, p, None);
        let mut out = vec![];
        while let Some(x) = c.next_chunk().unwrap() {
            out.push(x.len());
        }
        out
    }

    #[test]
    fn sizes_are_within_bounds_and_average_near_target() {
        let data = pseudo(32 << 20);
        let g = table(1);
        let sizes = chunks(&data, &g, SMALL);
        assert_eq!(sizes.iter().sum::<usize>(), data.len());
        for s in &sizes[..sizes.len() - 1] {
            assert!(*s >= SMALL.min && *s <= SMALL.max);
        }
        let avg = data.len() / sizes.len();
        assert!(avg > SMALL.avg / 2 && avg < SMALL.avg * 2, "avg {avg}");
    }

    #[test]
    fn a_tiny_file_of_known_size_reserves_only_its_size() {
        // A 30-byte file used to reserve a whole largest chunk (512 KiB) plus its read:
        // an mmap and munmap per tiny file.
        let data = pseudo(30);
        let g = table(1);
        let mut r = &data[..];
        let mut c = Chunker::with_size_hint(&mut r, &g, SMALL, None, 30);
        assert_eq!(c.next_chunk().unwrap().unwrap(), data);
        assert!(c.next_chunk().unwrap().is_none());
        assert!(c.block.capacity() < 4096, "capacity {}", c.block.capacity());
        // A file that grew past its hint is still read whole.
        let data = pseudo(100_000);
        let mut r = &data[..];
        let mut c = Chunker::with_size_hint(&mut r, &g, SMALL, None, 30);
        let mut got = Vec::new();
        while let Some(x) = c.next_chunk().unwrap() {
            got.extend_from_slice(&x);
        }
        assert_eq!(got, data);
    }

    /// A reader that hands out at most a few odd-sized bytes at a time.
    struct Dribble<'a>(&'a [u8], usize);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1 = (self.1 * 7 + 3) % 100_003;
            let n = buf.len().min(self.0.len()).min(self.1 + 1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn blocks_find_the_same_boundaries_as_the_whole_input() {
        // The boundaries are the format: a chunker that reads in blocks must cut where
        // `cut` over the whole input does, whatever the reads return, or unchanged data
        // would stop deduplicating against older backups.
        let g = table(3);
        for (p, len) in [
            (SMALL, 5 << 20),
            (LARGE, 20 << 20),
            (SMALL, 40_000),
            (LARGE, 300_000),
        ] {
            let data = pseudo(len);
            let mut want = Vec::new();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = cut(&g, p, rest);
                want.push(n);
                rest = &rest[n..];
            }
            assert_eq!(chunks(&data, &g, p), want, "whole reads");
            for hint in [u64::MAX, len as u64, 10] {
                let mut r = Dribble(&data, 0);
                let mut c = Chunker::with_size_hint(&mut r, &g, p, None, hint);
                let mut got = vec![];
                while let Some(x) = c.next_chunk().unwrap() {
                    got.push(x.len());
                }
                assert_eq!(got, want, "short reads, hint {hint}");
            }
        }
        // Fixed-size pages: whole pages and a short last one.
        let data = pseudo(10 * 4096 + 100);
        let mut r = Dribble(&data, 0);
        let mut c = Chunker::new(&mut r, &g, SMALL, Some(4096));
        let mut got = vec![];
        while let Some(x) = c.next_chunk().unwrap() {
            got.extend_from_slice(&x);
            assert!(x.len() == 4096 || x.len() == 100);
        }
        assert_eq!(got, data);
    }

    #[test]
    fn an_insertion_changes_few_chunks_and_tables_change_boundaries() {
        let data = pseudo(8 << 20);
        let g = table(1);
        let a = chunks(&data, &g, SMALL);
        let mut edited = data.clone();
        edited.splice(3_000_000..3_000_000, [7u8; 100]);
        let b = chunks(&edited, &g, SMALL);
        let sa: std::collections::HashSet<_> = a.iter().collect();
        let differing = b.iter().filter(|x| !sa.contains(x)).count();
        assert!(differing <= 3, "{differing} chunks changed");
        assert_ne!(a, chunks(&data, &table(2), SMALL));
    }
}
