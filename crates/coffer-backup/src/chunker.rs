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
/// unless the input ends).
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

/// Splits a reader into content-defined chunks, holding at most `max` + 4 MiB bytes.
pub(crate) struct Chunker<'a, R: Read + ?Sized> {
    reader: &'a mut R,
    gear: &'a [u64; 256],
    params: Params,
    /// Fixed chunk size instead of CDC (SQLite pages).
    fixed: Option<usize>,
    buf: Vec<u8>,
    read_size: usize,
    /// The input's expected size (`u64::MAX` when unknown).
    size_hint: u64,
    start: usize,
    eof: bool,
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
        let read_size = size_hint.saturating_add(1).min(4 * 1024 * 1024) as usize;
        Chunker {
            read_size,
            size_hint,
            reader,
            gear,
            params,
            fixed,
            buf: Vec::new(),
            start: 0,
            eof: false,
        }
    }

    fn want(&self) -> usize {
        self.fixed.unwrap_or(self.params.max)
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let want = self.want();
        if self.buf.len() - self.start >= want || self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // Large reads (up to 4 MiB) so small SQLite pages do not cost a syscall each, but
        // never more than the file needs: small files must not pay for a 4 MiB buffer.
        // A refill comes only when less than one chunk is left, and reads `read_size`
        // beyond it, so the bytes moved to the front above stay under one chunk per
        // `read_size` read (with 4 MiB chunks and a 4 MiB target, every chunk moved ~3 MiB).
        let target = want.saturating_add(self.read_size);
        // Exactly what is read: read_to_end would grow the buffer by doubling, to twice
        // the bytes it holds, and leave the smaller copies to the allocator. A file of
        // known size needs no more than that (a tiny file must not cost a 512 KiB
        // allocation, an mmap and munmap per file).
        let known = usize::try_from(self.size_hint.saturating_add(1)).unwrap_or(usize::MAX);
        self.buf
            .reserve_exact(target.min(known).saturating_sub(self.buf.len()));
        while self.buf.len() < target {
            let missing = (target - self.buf.len()) as u64;
            // read_to_end on a Take appends without zero-filling the buffer first.
            match (&mut *self.reader).take(missing).read_to_end(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of input.
    pub(crate) fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.fill()?;
        let rest = &self.buf[self.start..];
        if rest.is_empty() {
            return Ok(None);
        }
        let n = match self.fixed {
            Some(f) => f.min(rest.len()),
            None => cut(self.gear, self.params, rest),
        };
        let c = rest[..n].to_vec();
        self.start += n;
        Ok(Some(c))
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
        assert!(c.buf.capacity() < 4096, "capacity {}", c.buf.capacity());
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
