//! Byte layouts of format version 1 (docs/FORMAT.md). No I/O here.

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Error;
use crate::keys::{self, Keyring, read_u32, read_u64};

/// Magic of keyring, index, snapshot and lock objects.
pub(crate) const MAGIC: &[u8; 4] = b"CFFR";
/// Magic of pack objects.
pub(crate) const PACK_MAGIC: &[u8; 4] = b"CFPK";
/// Format version written by this build.
pub(crate) const VERSION: u8 = 1;
/// AES-GCM tag length.
pub(crate) const TAG: usize = 16;
/// Per-blob storage overhead: nonce and tag.
pub(crate) const BLOB_OVERHEAD: usize = NONCE_LEN + TAG;

/// The largest plaintext a blob holds (FORMAT.md "Bounds"): the chunker's largest chunk.
/// SQLite pages (at most 64 KiB) and stream chunks are below it too.
pub(crate) const MAX_BLOB: u32 = 4 * 1024 * 1024;
const _: () = assert!(crate::chunker::LARGE.max as u64 <= MAX_BLOB as u64);
const _: () = assert!(crate::chunker::SMALL.max as u64 <= MAX_BLOB as u64);

/// The largest decompressed snapshot manifest (FORMAT.md "Bounds"): a few hundred
/// thousand files. Backup refuses to write a larger one.
pub(crate) const MAX_MANIFEST: usize = 128 * 1024 * 1024;

/// Object kinds (FORMAT.md "Sealed objects").
pub(crate) const KIND_KEYRING: u8 = b'K';
pub(crate) const KIND_INDEX: u8 = b'I';
pub(crate) const KIND_SNAPSHOT: u8 = b'S';

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    keys::fill_random(&mut n);
    n
}

/// AES-256-GCM with a fresh random nonce: returns nonce || ciphertext || tag (F3).
pub(crate) fn seal(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    seal_parts(key, aad, &[plaintext])
}

/// [`seal`] of the concatenated `parts`, encrypted in place in the output buffer: one
/// copy of the data per blob instead of three (backup moves every byte through here).
fn seal_parts(key: &LessSafeKey, aad: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, Error> {
    let n = random_nonce();
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(NONCE_LEN + len + TAG);
    out.extend_from_slice(&n);
    for p in parts {
        out.extend_from_slice(p);
    }
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(n),
            Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        .map_err(|_| Error::Internal {
            detail: "AES-GCM seal failed".into(),
        })?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens nonce || ciphertext || tag; `None` if it does not authenticate.
pub(crate) fn open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    open_into(key, aad, sealed, Vec::new())
}

/// [`open`] into `buf` (emptied first), whose allocation is reused.
fn open_into(key: &LessSafeKey, aad: &[u8], sealed: &[u8], mut buf: Vec<u8>) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG {
        return None;
    }
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(&sealed[..NONCE_LEN]);
    buf.clear();
    buf.extend_from_slice(&sealed[NONCE_LEN..]);
    let len = key
        .open_in_place(Nonce::assume_unique_for_key(n), Aad::from(aad), &mut buf)
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

/// Sealed object: MAGIC | VERSION | kind | epoch u32 | nonce | ct | tag; AAD = first 10 bytes.
pub(crate) fn seal_object(keyring: &Keyring, kind: u8, payload: &[u8]) -> Result<Vec<u8>, Error> {
    seal_object_epoch(keyring, keyring.current().0, kind, payload)
}

/// [`seal_object`] under a given epoch (prune rewrites old-epoch packs).
pub(crate) fn seal_object_epoch(
    keyring: &Keyring,
    epoch: u32,
    kind: u8,
    payload: &[u8],
) -> Result<Vec<u8>, Error> {
    let e = keyring.epoch(epoch, "new object")?;
    let mut head = Vec::with_capacity(10);
    head.extend_from_slice(MAGIC);
    head.push(VERSION);
    head.push(kind);
    head.extend_from_slice(&epoch.to_le_bytes());
    let body = seal(&e.data, &head, payload)?;
    head.extend_from_slice(&body);
    Ok(head)
}

/// Checks magic, version and kind, then authenticates and decrypts.
pub(crate) fn open_object(
    keyring: &Keyring,
    kind: u8,
    bytes: &[u8],
    object: &str,
) -> Result<Vec<u8>, Error> {
    if bytes.len() < 10 + BLOB_OVERHEAD || &bytes[..4] != MAGIC {
        return Err(Error::integrity(object, "bad magic or truncated"));
    }
    if bytes[4] != VERSION {
        return Err(Error::UnsupportedVersion {
            object: object.into(),
            version: bytes[4],
        });
    }
    if bytes[5] != kind {
        return Err(Error::integrity(object, "wrong object kind"));
    }
    let epoch = read_u32(bytes, 6);
    let e = keyring.epoch(epoch, object)?;
    open(&e.data, &bytes[..10], &bytes[10..])
        .ok_or_else(|| Error::integrity(object, "authentication failed"))
}

/// Keyring object: MAGIC | VERSION | 'K' | check[32] | nonce | ct | tag; AAD = first 6 bytes
/// (the check value is outside the AAD so that its damage is told apart from a wrong key).
pub(crate) fn seal_keyring(k: &[u8; 32], keyring: &Keyring) -> Result<Vec<u8>, Error> {
    let root = keys::derive(k, keys::LABEL_ROOT);
    let check = keys::derive(k, keys::LABEL_CHECK);
    let key = aead_key(&root)?;
    let mut head = Vec::with_capacity(38);
    head.extend_from_slice(MAGIC);
    head.push(VERSION);
    head.push(KIND_KEYRING);
    head.extend_from_slice(&check[..]);
    let body = seal(&key, &head[..6], &keyring.encode())?;
    head.extend_from_slice(&body);
    Ok(head)
}

/// Result of trying a key on a keyring object.
pub(crate) enum KeyringOpen {
    /// Key check and AEAD both good.
    Opened(Keyring),
    /// Neither the key check nor the AEAD matches: another key.
    WrongKey,
}

/// Opens a keyring object. A damaged object is told apart from a wrong key: a wrong key
/// fails both the key check and the AEAD; damage fails at most one of them (F2).
pub(crate) fn open_keyring(k: &[u8; 32], bytes: &[u8], object: &str) -> Result<KeyringOpen, Error> {
    if bytes.len() < 38 + BLOB_OVERHEAD || &bytes[..4] != MAGIC || bytes[5] != KIND_KEYRING {
        return Err(Error::integrity(object, "bad magic or truncated keyring"));
    }
    if bytes[4] != VERSION {
        return Err(Error::UnsupportedVersion {
            object: object.into(),
            version: bytes[4],
        });
    }
    let root = keys::derive(k, keys::LABEL_ROOT);
    let check = keys::derive(k, keys::LABEL_CHECK);
    let check_ok: bool = check[..].ct_eq(&bytes[6..38]).into();
    let key = aead_key(&root)?;
    let plain = open(&key, &bytes[..6], &bytes[38..]).map(Zeroizing::new);
    match (check_ok, plain) {
        (true, Some(p)) => Ok(KeyringOpen::Opened(Keyring::decode(&p, object)?)),
        (false, None) => Ok(KeyringOpen::WrongKey),
        (true, None) => Err(Error::integrity(object, "keyring does not authenticate")),
        (false, Some(_)) => Err(Error::integrity(object, "key check value damaged")),
    }
}

fn aead_key(k: &[u8; 32]) -> Result<LessSafeKey, Error> {
    ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, k)
        .map(LessSafeKey::new)
        .map_err(|_| Error::Internal {
            detail: "AES key setup failed".into(),
        })
}

/// Associated data of a blob: "CFBL" | VERSION | chunk id (F6).
pub(crate) fn blob_aad(id: &[u8; 32]) -> [u8; 37] {
    let mut a = [0u8; 37];
    a[..4].copy_from_slice(b"CFBL");
    a[4] = VERSION;
    a[5..].copy_from_slice(id);
    a
}

/// One blob's place in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobEntry {
    pub(crate) id: [u8; 32],
    /// Offset of the sealed blob in the pack.
    pub(crate) offset: u32,
    /// Sealed length (nonce + ciphertext + tag).
    pub(crate) length: u32,
    /// Plaintext (uncompressed) length.
    pub(crate) raw_len: u32,
}

/// Size of one encoded entry.
pub(crate) const ENTRY_LEN: usize = 44;

/// Pack header / index payload: count u32 | entries (id | offset | length | raw_len).
pub(crate) fn encode_entries(entries: &[BlobEntry], out: &mut Vec<u8>) {
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.id);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_len.to_le_bytes());
    }
}

pub(crate) fn decode_entries(b: &[u8], object: &str) -> Result<Vec<BlobEntry>, Error> {
    if b.len() < 4 {
        return Err(Error::integrity(object, "entry table truncated"));
    }
    // The count is checked against the bytes present before anything is allocated.
    let n = read_u32(b, 0) as usize;
    if n.checked_mul(ENTRY_LEN).and_then(|l| l.checked_add(4)) != Some(b.len()) {
        return Err(Error::integrity(object, "entry table length mismatch"));
    }
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let o = 4 + i * ENTRY_LEN;
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[o..o + 32]);
        let e = BlobEntry {
            id,
            offset: read_u32(b, o + 32),
            length: read_u32(b, o + 36),
            raw_len: read_u32(b, o + 40),
        };
        // A blob is at most MAX_BLOB bytes, and stored at most one flag byte and the
        // AEAD's overhead longer (compression is kept only when it saves, F8).
        if e.raw_len > MAX_BLOB {
            return Err(Error::integrity(
                object,
                format!(
                    "blob {} declares {} bytes, over the format's {} MiB",
                    hex::encode(e.id),
                    e.raw_len,
                    MAX_BLOB >> 20
                ),
            ));
        }
        let sealed_max = e.raw_len as usize + 1 + BLOB_OVERHEAD;
        if (e.length as usize) < 1 + BLOB_OVERHEAD || e.length as usize > sealed_max {
            return Err(Error::integrity(
                object,
                format!("blob {} has an impossible stored length", hex::encode(e.id)),
            ));
        }
        v.push(e);
    }
    Ok(v)
}

/// Index payload: VERSION | pack id[32] | pack length u64 | entries.
pub(crate) fn encode_index(pack_id: &[u8; 32], pack_len: u64, entries: &[BlobEntry]) -> Vec<u8> {
    let mut v = Vec::with_capacity(41 + 4 + entries.len() * ENTRY_LEN);
    v.push(VERSION);
    v.extend_from_slice(pack_id);
    v.extend_from_slice(&pack_len.to_le_bytes());
    encode_entries(entries, &mut v);
    v
}

/// Decoded index payload.
pub(crate) struct IndexPayload {
    pub(crate) pack_id: [u8; 32],
    pub(crate) pack_len: u64,
    pub(crate) entries: Vec<BlobEntry>,
}

pub(crate) fn decode_index(b: &[u8], object: &str) -> Result<IndexPayload, Error> {
    if b.len() < 41 {
        return Err(Error::integrity(object, "index payload truncated"));
    }
    if b[0] != VERSION {
        return Err(Error::UnsupportedVersion {
            object: object.into(),
            version: b[0],
        });
    }
    let mut pack_id = [0u8; 32];
    pack_id.copy_from_slice(&b[1..33]);
    Ok(IndexPayload {
        pack_id,
        pack_len: read_u64(b, 33),
        entries: decode_entries(&b[41..], object)?,
    })
}

/// Pack header AAD: the pack's first 9 bytes ("CFPK" | VERSION | epoch) then "hdr".
pub(crate) fn pack_header_aad(head: &[u8]) -> Vec<u8> {
    let mut a = head[..9].to_vec();
    a.extend_from_slice(b"hdr");
    a
}

/// Pack: "CFPK" | VERSION | epoch u32 | sealed blobs | sealed header | header length u32.
pub(crate) fn pack_start(epoch: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.extend_from_slice(PACK_MAGIC);
    v.push(VERSION);
    v.extend_from_slice(&epoch.to_le_bytes());
    v
}

/// Appends the sealed header and its length to a pack holding `entries`.
pub(crate) fn pack_finish(
    key: &LessSafeKey,
    pack: &mut Vec<u8>,
    entries: &[BlobEntry],
) -> Result<(), Error> {
    let mut plain = Vec::with_capacity(4 + entries.len() * ENTRY_LEN);
    encode_entries(entries, &mut plain);
    let sealed = seal(key, &pack_header_aad(pack), &plain)?;
    pack.extend_from_slice(&sealed);
    pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    Ok(())
}

/// Reads a pack's header; checks that blobs tile the pack exactly (F7).
pub(crate) fn pack_header(
    keyring: &Keyring,
    pack: &[u8],
    object: &str,
) -> Result<(u32, Vec<BlobEntry>), Error> {
    if pack.len() < 13 + BLOB_OVERHEAD || &pack[..4] != PACK_MAGIC {
        return Err(Error::integrity(object, "bad pack magic or truncated"));
    }
    if pack[4] != VERSION {
        return Err(Error::UnsupportedVersion {
            object: object.into(),
            version: pack[4],
        });
    }
    let epoch = read_u32(pack, 5);
    let e = keyring.epoch(epoch, object)?;
    let hl = read_u32(pack, pack.len() - 4) as usize;
    if hl + 13 > pack.len() {
        return Err(Error::integrity(object, "pack header length out of range"));
    }
    let hstart = pack.len() - 4 - hl;
    let plain = open(
        &e.data,
        &pack_header_aad(pack),
        &pack[hstart..pack.len() - 4],
    )
    .ok_or_else(|| Error::integrity(object, "pack header does not authenticate"))?;
    let entries = decode_entries(&plain, object)?;
    let mut pos = 9usize;
    for en in &entries {
        if en.offset as usize != pos {
            return Err(Error::integrity(object, "pack blobs do not tile the pack"));
        }
        pos += en.length as usize;
    }
    if pos != hstart {
        return Err(Error::integrity(object, "pack blobs do not tile the pack"));
    }
    Ok((epoch, entries))
}

/// Blob plaintext: flag (0 stored, 1 zstd) | data. Compression is kept only if it saves
/// at least 1/16; large blobs are probed on their first 16 KiB first (F8).
pub(crate) fn seal_blob(
    key: &LessSafeKey,
    zc: &mut zstd::bulk::Compressor<'static>,
    id: &[u8; 32],
    data: &[u8],
) -> Result<Vec<u8>, Error> {
    const PROBE: usize = 16 * 1024;
    let saves = |c: &[u8], n: usize| c.len() < n - n / 16;
    let compressed = if data.len() < 128 {
        None
    } else if data.len() <= PROBE {
        zc.compress(data).ok().filter(|c| saves(c, data.len()))
    } else {
        let probe_ok = zc
            .compress(&data[..PROBE])
            .map(|c| saves(&c, PROBE))
            .unwrap_or(false);
        if probe_ok {
            zc.compress(data).ok().filter(|c| saves(c, data.len()))
        } else {
            None
        }
    };
    match compressed {
        Some(c) => seal_parts(key, &blob_aad(id), &[&[1u8], &c]),
        None => seal_parts(key, &blob_aad(id), &[&[0u8], data]),
    }
}

/// A blob's plaintext data: a stored blob keeps its flag byte in front instead of moving
/// every byte down by one. Its buffer goes back to the thread's spare when dropped.
pub(crate) struct Plain {
    buf: Vec<u8>,
    start: usize,
}

thread_local! {
    /// A spare blob buffer per thread, for the next blob opened on it. A restore opens
    /// every chunk (up to 4 MiB each) and frees it after writing: with glibc's malloc,
    /// which stops returning blocks of that size to the system once it has seen one
    /// freed, each writer thread's arena kept a trail of them, and restore's peak RSS grew
    /// by a third. Reusing one keeps that memory at what is live. One, not two: a
    /// compressed blob's output takes a fresh buffer, but the large blobs of a restore
    /// are mostly media, stored as they are, and a second spare of up to 4 MiB per thread
    /// took a 2 GiB restore past 64 MiB.
    /// An empty `Vec` (no allocation) when there is none.
    static SPARE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn spare() -> Vec<u8> {
    SPARE
        .try_with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)).ok())
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn give_back(buf: Vec<u8>) {
    let _ = SPARE.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        if s.capacity() < buf.capacity() {
            *s = buf;
        }
    });
}

impl Drop for Plain {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.buf));
    }
}

impl std::ops::Deref for Plain {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Opens a blob and returns its plaintext data (decompressed), unverified against the id.
pub(crate) fn open_blob(
    key: &LessSafeKey,
    id: &[u8; 32],
    raw_len: u32,
    sealed: &[u8],
) -> Option<Plain> {
    thread_local! {
        // One decompression context per thread: creating one per 4 KiB page costs more
        // than decompressing the page.
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    // The declared length bounds the decompression (FORMAT.md "Bounds"): a frame that
    // expands further fails instead of allocating.
    if raw_len > MAX_BLOB {
        return None;
    }
    let plain = open_into(key, &blob_aad(id), sealed, spare())?;
    match plain.first()? {
        0 => Some(Plain {
            buf: plain,
            start: 1,
        }),
        1 => DCTX.with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            if c.is_none() {
                *c = zstd::bulk::Decompressor::new().ok();
            }
            // Into a fresh buffer (the spare holds the frame); the frame's buffer is
            // the spare afterwards.
            let mut buf = spare();
            buf.clear();
            buf.reserve(raw_len as usize);
            let out = c.as_mut()?.decompress_to_buffer(&plain[1..], &mut buf);
            give_back(plain);
            // The spare may hold more than `raw_len`: a frame that expands past the
            // declared length is refused here as it was by a buffer of exactly that size.
            if out.ok()? > raw_len as usize {
                return None;
            }
            Some(Plain { buf, start: 0 })
        }),
        _ => None,
    }
}

/// Whether `sealed` opens under `ep` and holds the blob `e` names: its declared length,
/// and its id recomputed from the plaintext (F6), so a blob cannot be swapped for
/// another valid one.
pub(crate) fn blob_is_sound(ep: &keys::Epoch, e: &BlobEntry, sealed: &[u8]) -> bool {
    open_blob(&ep.data, &e.id, e.raw_len, sealed)
        .is_some_and(|d| d.len() == e.raw_len as usize && ep.chunk_id(&d) == e.id)
}

/// Decompresses a zstd frame, refusing output over `cap` bytes; memory stays within
/// about `cap` whatever the frame claims. The error is the reason, for a message.
pub(crate) fn decompress_bounded(b: &[u8], cap: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let d =
        zstd::stream::read::Decoder::with_buffer(b).map_err(|e| format!("decompression: {e}"))?;
    let mut out = Vec::new();
    d.take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("decompression: {e}"))?;
    if out.len() > cap {
        return Err(format!(
            "decompresses to more than {} MiB, the format's cap",
            cap >> 20
        ));
    }
    Ok(out)
}
