//! Byte layouts of format version 1, packs and indexes version 2 (docs/FORMAT.md). No I/O
//! here.

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Error;
use crate::keys::{self, Keyring, read_u32, read_u64};

/// Magic of keyring, index, snapshot and lock objects.
pub(crate) const MAGIC: &[u8; 4] = b"CFFR";
/// Magic of pack objects.
pub(crate) const PACK_MAGIC: &[u8; 4] = b"CFPK";
/// Format version written by this build (keyring and sealed objects).
pub(crate) const VERSION: u8 = 1;
/// Version of the packs and index payloads this build writes: version 2 entries carry a
/// blob's place in its group. Version 1 packs and indexes are still read.
pub(crate) const PACK_VERSION: u8 = 2;
/// AES-GCM tag length.
pub(crate) const TAG: usize = 16;
/// Per-blob storage overhead: nonce and tag.
pub(crate) const BLOB_OVERHEAD: usize = NONCE_LEN + TAG;

/// The largest plaintext a blob holds (FORMAT.md "Bounds"): the chunker's largest chunk.
/// SQLite pages (at most 64 KiB) and stream chunks are below it too.
pub(crate) const MAX_BLOB: u32 = 4 * 1024 * 1024;
const _: () = assert!(crate::chunker::LARGE.max as u64 <= MAX_BLOB as u64);
const _: () = assert!(crate::chunker::SMALL.max as u64 <= MAX_BLOB as u64);

/// The largest data a group blob holds (FORMAT.md "Bounds"). Backup makes groups of about
/// [`crate::pipeline::GROUP_TARGET`] bytes of chunks each under
/// [`crate::pipeline::GROUP_MEMBER_MAX`].
pub(crate) const MAX_GROUP: u32 = 256 * 1024;

/// The `start` of an entry whose chunk is a blob of its own, not a member of a group.
pub(crate) const ALONE: u32 = u32::MAX;

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

/// Associated data of a group blob: "CFGR" | PACK_VERSION. It names no chunk: a group
/// holds several, and each member is checked against its id once opened (F6), which is
/// what keeps a group from being swapped for another.
pub(crate) const GROUP_AAD: &[u8; 5] = b"CFGR\x02";
const _: () = assert!(GROUP_AAD[4] == PACK_VERSION);

/// One blob's place in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobEntry {
    pub(crate) id: [u8; 32],
    /// Offset of the sealed blob in the pack.
    pub(crate) offset: u32,
    /// Sealed length (nonce + ciphertext + tag).
    pub(crate) length: u32,
    /// Plaintext (uncompressed) length of the chunk.
    pub(crate) raw_len: u32,
    /// Where the chunk starts in its group's data, or [`ALONE`] for a blob of its own.
    pub(crate) start: u32,
}

impl BlobEntry {
    /// Whether the chunk is a member of a group blob.
    pub(crate) fn grouped(&self) -> bool {
        self.start != ALONE
    }

    /// Whether `other` is another member of the same group blob (same sealed range).
    pub(crate) fn same_group(&self, other: &BlobEntry) -> bool {
        self.grouped()
            && other.grouped()
            && (self.offset, self.length) == (other.offset, other.length)
    }
}

/// Size of one encoded entry of version 2 packs and indexes (version 1: 44, no start).
pub(crate) const ENTRY_LEN: usize = 48;
const ENTRY_LEN_V1: usize = 44;

/// Pack header / index payload, version 2: count u32 | entries (id | offset | length |
/// raw_len | start).
pub(crate) fn encode_entries(entries: &[BlobEntry], out: &mut Vec<u8>) {
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.id);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_len.to_le_bytes());
        out.extend_from_slice(&e.start.to_le_bytes());
    }
}

/// Decodes an entry table of pack or index `version` (1 or 2), checking each entry's
/// bounds; the layout across entries (groups, tiling) is [`pack_header`]'s to check.
pub(crate) fn decode_entries(b: &[u8], version: u8, object: &str) -> Result<Vec<BlobEntry>, Error> {
    if b.len() < 4 {
        return Err(Error::integrity(object, "entry table truncated"));
    }
    let len = if version == 1 {
        ENTRY_LEN_V1
    } else {
        ENTRY_LEN
    };
    // The count is checked against the bytes present before anything is allocated.
    let n = read_u32(b, 0) as usize;
    if n.checked_mul(len).and_then(|l| l.checked_add(4)) != Some(b.len()) {
        return Err(Error::integrity(object, "entry table length mismatch"));
    }
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let o = 4 + i * len;
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[o..o + 32]);
        let e = BlobEntry {
            id,
            offset: read_u32(b, o + 32),
            length: read_u32(b, o + 36),
            raw_len: read_u32(b, o + 40),
            start: if version == 1 {
                ALONE
            } else {
                read_u32(b, o + 44)
            },
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
        // A member lies within its group's data, whose sealed form is bounded the same way.
        let data_max = if e.grouped() {
            if u64::from(e.start) + u64::from(e.raw_len) > u64::from(MAX_GROUP) {
                return Err(Error::integrity(
                    object,
                    format!("blob {} lies outside its group", hex::encode(e.id)),
                ));
            }
            MAX_GROUP
        } else {
            e.raw_len
        };
        let sealed_max = data_max as usize + 1 + BLOB_OVERHEAD;
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

/// Index payload: PACK_VERSION | pack id[32] | pack length u64 | entries.
pub(crate) fn encode_index(pack_id: &[u8; 32], pack_len: u64, entries: &[BlobEntry]) -> Vec<u8> {
    let mut v = Vec::with_capacity(41 + 4 + entries.len() * ENTRY_LEN);
    v.push(PACK_VERSION);
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
    if b[0] == 0 || b[0] > PACK_VERSION {
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
        entries: decode_entries(&b[41..], b[0], object)?,
    })
}

/// Pack header AAD: the pack's first 9 bytes ("CFPK" | VERSION | epoch) then "hdr".
pub(crate) fn pack_header_aad(head: &[u8]) -> Vec<u8> {
    let mut a = head[..9].to_vec();
    a.extend_from_slice(b"hdr");
    a
}

/// Pack: "CFPK" | PACK_VERSION | epoch u32 | sealed blobs | sealed header | header
/// length u32.
pub(crate) fn pack_start(epoch: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.extend_from_slice(PACK_MAGIC);
    v.push(PACK_VERSION);
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

/// Reads a pack's header; checks that blobs tile the pack exactly and each group's
/// members its data (F7).
pub(crate) fn pack_header(
    keyring: &Keyring,
    pack: &[u8],
    object: &str,
) -> Result<(u32, Vec<BlobEntry>), Error> {
    if pack.len() < 13 + BLOB_OVERHEAD || &pack[..4] != PACK_MAGIC {
        return Err(Error::integrity(object, "bad pack magic or truncated"));
    }
    let version = pack[4];
    if version == 0 || version > PACK_VERSION {
        return Err(Error::UnsupportedVersion {
            object: object.into(),
            version,
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
    let entries = decode_entries(&plain, version, object)?;
    let mut pos = 9usize;
    let mut prev: Option<&BlobEntry> = None;
    for en in &entries {
        match prev {
            // The next member of a group: it starts where the one before it ends.
            Some(p) if en.same_group(p) => {
                if u64::from(en.start) != u64::from(p.start) + u64::from(p.raw_len) {
                    return Err(Error::integrity(
                        object,
                        "group members do not tile their group",
                    ));
                }
            }
            _ => {
                if en.offset as usize != pos || (en.grouped() && en.start != 0) {
                    return Err(Error::integrity(object, "pack blobs do not tile the pack"));
                }
                pos += en.length as usize;
            }
        }
        prev = Some(en);
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
    seal_data(key, zc, &blob_aad(id), data, true)
}

/// A group blob: the data of its members back to back, sealed as one blob (F10). Its
/// members are small files and database pages, mostly compressible: no probe, which
/// would compress a group's first 16 KiB twice.
pub(crate) fn seal_group(
    key: &LessSafeKey,
    zc: &mut zstd::bulk::Compressor<'static>,
    data: &[u8],
) -> Result<Vec<u8>, Error> {
    seal_data(key, zc, GROUP_AAD, data, false)
}

fn seal_data(
    key: &LessSafeKey,
    zc: &mut zstd::bulk::Compressor<'static>,
    aad: &[u8],
    data: &[u8],
    probe: bool,
) -> Result<Vec<u8>, Error> {
    const PROBE: usize = 16 * 1024;
    let saves = |c: &[u8], n: usize| c.len() < n - n / 16;
    let compressed = if data.len() < 128 {
        None
    } else if data.len() <= PROBE || !probe {
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
        Some(c) => seal_parts(key, aad, &[&[1u8], &c]),
        None => seal_parts(key, aad, &[&[0u8], data]),
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

impl Plain {
    /// A copy of `data` (a member of a group) in the thread's spare buffer.
    pub(crate) fn copy_of(data: &[u8]) -> Plain {
        let mut buf = spare();
        buf.clear();
        buf.extend_from_slice(data);
        Plain { buf, start: 0 }
    }
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
    // The declared length bounds the decompression (FORMAT.md "Bounds"): a frame that
    // expands further fails instead of allocating.
    if raw_len > MAX_BLOB {
        return None;
    }
    open_sealed(key, &blob_aad(id), raw_len as usize, false, sealed)
}

/// Opens a group blob and returns its data (its members back to back), unverified:
/// [`member`] checks each member against its id.
pub(crate) fn open_group(key: &LessSafeKey, sealed: &[u8]) -> Option<Plain> {
    open_sealed(key, GROUP_AAD, MAX_GROUP as usize, true, sealed)
}

/// Opens sealed `flag | data` under `aad`, decompressing at most `cap` bytes. `sized`:
/// room for the frame's declared content size instead of `cap` (a group's cap is far
/// above its usual size; a frame without a size, or over `cap`, is refused).
fn open_sealed(
    key: &LessSafeKey,
    aad: &[u8],
    cap: usize,
    sized: bool,
    sealed: &[u8],
) -> Option<Plain> {
    thread_local! {
        // One decompression context per thread: creating one per 4 KiB page costs more
        // than decompressing the page.
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let plain = open_into(key, aad, sealed, spare())?;
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
            let room = if sized {
                let n = zstd::zstd_safe::get_frame_content_size(&plain[1..])
                    .ok()
                    .flatten();
                match n
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n <= cap)
                {
                    Some(n) => n,
                    None => {
                        give_back(plain);
                        return None;
                    }
                }
            } else {
                cap
            };
            // Into a fresh buffer (the spare holds the frame); the frame's buffer is
            // the spare afterwards.
            let mut buf = spare();
            buf.clear();
            buf.reserve(room);
            let out = c.as_mut()?.decompress_to_buffer(&plain[1..], &mut buf);
            give_back(plain);
            // The spare may hold more than `room`: a frame that expands past it is
            // refused here as it was by a buffer of exactly that size.
            if out.ok()? > room {
                return None;
            }
            Some(Plain { buf, start: 0 })
        }),
        _ => None,
    }
}

/// Whether `data`, opened from the blob of its own that `e` names, is that blob: its
/// declared length, and its id recomputed from the bytes (F6).
pub(crate) fn is_blob(ep: &keys::Epoch, e: &BlobEntry, data: &[u8]) -> bool {
    data.len() == e.raw_len as usize && ep.chunk_id(data) == e.id
}

/// The bytes of member `e` in its opened group's `data`, if they are there and hash to
/// its id (F6).
pub(crate) fn member<'d>(ep: &keys::Epoch, data: &'d [u8], e: &BlobEntry) -> Option<&'d [u8]> {
    let start = e.start as usize;
    let d = data.get(start..start.checked_add(e.raw_len as usize)?)?;
    (e.grouped() && ep.chunk_id(d) == e.id).then_some(d)
}

/// Runs of entries that share one sealed blob: a group's members, or a blob of its own.
pub(crate) fn blob_runs(entries: &[BlobEntry]) -> impl Iterator<Item = &[BlobEntry]> {
    entries.chunk_by(|a, b| b.same_group(a))
}

/// The sealed bytes of `run` (one of [`blob_runs`]) in `pack`, if they lie within it.
pub(crate) fn run_bytes<'p>(pack: &'p [u8], run: &[BlobEntry]) -> Option<&'p [u8]> {
    let e = run.first()?;
    let start = e.offset as usize;
    pack.get(start..start.checked_add(e.length as usize)?)
}

/// Each entry of `run` (one of [`blob_runs`]) with its verified data in `sealed` (the
/// run's sealed bytes), or `None` for a member or blob that is damaged: it does not
/// open, or its declared length or its id recomputed from the data (F6) does not match,
/// so a blob cannot be swapped for another valid one. A group is opened once for all its
/// members.
pub(crate) fn open_run(
    ep: &keys::Epoch,
    run: &[BlobEntry],
    sealed: &[u8],
    mut f: impl FnMut(&BlobEntry, Option<&[u8]>),
) {
    match run.first() {
        Some(e) if e.grouped() => {
            // The members tile the group from its start (F7); bytes after the last one
            // are never written by backup, and are damage here, not data to carry along.
            let end = run
                .last()
                .map_or(0, |l| u64::from(l.start) + u64::from(l.raw_len));
            let data = open_group(&ep.data, sealed).filter(|d| d.len() as u64 == end);
            for m in run {
                f(m, data.as_deref().and_then(|d| member(ep, d, m)));
            }
        }
        _ => {
            for e in run {
                let d = open_blob(&ep.data, &e.id, e.raw_len, sealed)
                    .filter(|d| !e.grouped() && is_blob(ep, e, d));
                f(e, d.as_deref());
            }
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::Epoch;

    fn keyring() -> Keyring {
        Keyring {
            repo_id: [3u8; 16],
            epochs: vec![Epoch::from_keys([1u8; 32], [2u8; 32]).unwrap()],
        }
    }

    /// A pack of one group (three members) and one blob of its own, as backup writes it.
    fn group_pack(kr: &Keyring) -> (Vec<u8>, Vec<BlobEntry>, Vec<Vec<u8>>) {
        let ep = kr.current().1;
        let mut zc = zstd::bulk::Compressor::new(1).unwrap();
        let chunks: Vec<Vec<u8>> = vec![
            b"a page of a chat database ".repeat(150),
            b"a small json file {\"k\": 1}".to_vec(),
            vec![0u8; 5000],
            b"a blob of its own".repeat(20),
        ];
        let mut pack = pack_start(0);
        let mut entries = Vec::new();
        let data: Vec<u8> = chunks[..3].concat();
        let sealed = seal_group(&ep.data, &mut zc, &data).unwrap();
        let mut start = 0;
        for c in &chunks[..3] {
            entries.push(BlobEntry {
                id: ep.chunk_id(c),
                offset: pack.len() as u32,
                length: sealed.len() as u32,
                raw_len: c.len() as u32,
                start,
            });
            start += c.len() as u32;
        }
        pack.extend_from_slice(&sealed);
        let id = ep.chunk_id(&chunks[3]);
        let sealed = seal_blob(&ep.data, &mut zc, &id, &chunks[3]).unwrap();
        entries.push(BlobEntry {
            id,
            offset: pack.len() as u32,
            length: sealed.len() as u32,
            raw_len: chunks[3].len() as u32,
            start: ALONE,
        });
        pack.extend_from_slice(&sealed);
        pack_finish(&ep.data, &mut pack, &entries).unwrap();
        (pack, entries, chunks)
    }

    /// Every entry of a pack with its verified data (`None`: damaged).
    fn opened(kr: &Keyring, pack: &[u8], entries: &[BlobEntry]) -> Vec<Option<Vec<u8>>> {
        let ep = kr.current().1;
        let mut out = Vec::new();
        for run in blob_runs(entries) {
            let sealed = run_bytes(pack, run).unwrap();
            open_run(ep, run, sealed, |_, d| out.push(d.map(<[u8]>::to_vec)));
        }
        out
    }

    #[test]
    fn a_group_opens_once_and_each_member_is_checked_against_its_id() {
        let kr = keyring();
        let (pack, entries, chunks) = group_pack(&kr);
        let (_, read) = pack_header(&kr, &pack, "p").unwrap();
        assert_eq!(read, entries);
        assert_eq!(
            blob_runs(&read).map(<[BlobEntry]>::len).collect::<Vec<_>>(),
            [3, 1]
        );
        let want: Vec<_> = chunks.iter().cloned().map(Some).collect();
        assert_eq!(opened(&kr, &pack, &read), want);
        // Entries are sealed in the header, but a reader must not trust a member's place
        // alone: a member whose id does not match its bytes is refused, its neighbours
        // are not.
        let mut swapped = read.clone();
        swapped[1].id = swapped[0].id;
        assert_eq!(
            opened(&kr, &pack, &swapped),
            [want[0].clone(), None, want[2].clone(), want[3].clone()]
        );
        // A group of its own is never a blob of its own, nor the other way round: the
        // associated data differs.
        let mut alone = read.clone();
        alone[0].start = ALONE;
        assert_eq!(opened(&kr, &pack, &alone[..1]), [None]);
        // A flipped byte in the group fails all its members.
        let mut bad = pack.clone();
        bad[40] ^= 1;
        assert_eq!(
            opened(&kr, &bad, &read),
            [None, None, None, want[3].clone()]
        );
        // Bytes after the last member are never written: a group holding them is damaged
        // (prune would carry them along otherwise).
        let ep = kr.current().1;
        let mut zc = zstd::bulk::Compressor::new(1).unwrap();
        let mut longer = chunks[..3].concat();
        longer.extend_from_slice(b"hidden");
        let sealed = seal_group(&ep.data, &mut zc, &longer).unwrap();
        let run: Vec<BlobEntry> = read[..3]
            .iter()
            .map(|m| BlobEntry {
                length: sealed.len() as u32,
                ..*m
            })
            .collect();
        let mut got = Vec::new();
        open_run(ep, &run, &sealed, |_, d| got.push(d.is_some()));
        assert_eq!(got, [false, false, false]);
    }

    #[test]
    fn group_members_must_tile_their_group_and_groups_the_pack() {
        let kr = keyring();
        let ep = &kr.current().1.data;
        let (pack, entries, _) = group_pack(&kr);
        let blobs_end = entries[3].offset + entries[3].length;
        let with = |f: &dyn Fn(&mut Vec<BlobEntry>)| {
            let mut e = entries.clone();
            f(&mut e);
            let mut p = pack[..blobs_end as usize].to_vec();
            pack_finish(ep, &mut p, &e).unwrap();
            pack_header(&kr, &p, "p")
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(with(&|_| {}), Ok(()));
        let gap = with(&|e| e[1].start += 1).unwrap_err();
        assert!(
            gap.contains("group members do not tile their group"),
            "{gap}"
        );
        let first = with(&|e| {
            for m in &mut e[..3] {
                m.start += 1;
            }
        })
        .unwrap_err();
        assert!(first.contains("do not tile the pack"), "{first}");
        // A member past the format's group bound is refused before anything is opened.
        let far = with(&|e| e[2].start = MAX_GROUP).unwrap_err();
        assert!(far.contains("lies outside its group"), "{far}");
    }

    #[test]
    fn version_1_packs_and_indexes_are_read_with_every_blob_alone() {
        let kr = keyring();
        let ep = kr.current().1;
        let mut zc = zstd::bulk::Compressor::new(1).unwrap();
        let data = b"written by the first release".repeat(10);
        let id = ep.chunk_id(&data);
        let mut pack = pack_start(0);
        pack[4] = 1;
        let sealed = seal_blob(&ep.data, &mut zc, &id, &data).unwrap();
        let entry = BlobEntry {
            id,
            offset: 9,
            length: sealed.len() as u32,
            raw_len: data.len() as u32,
            start: ALONE,
        };
        pack.extend_from_slice(&sealed);
        // Version 1 entries: no start field.
        let mut table = 1u32.to_le_bytes().to_vec();
        let mut v2 = Vec::new();
        encode_entries(&[entry], &mut v2);
        table.extend_from_slice(&v2[4..4 + 44]);
        let h = seal(&ep.data, &pack_header_aad(&pack), &table).unwrap();
        pack.extend_from_slice(&h);
        pack.extend_from_slice(&(h.len() as u32).to_le_bytes());
        let (_, read) = pack_header(&kr, &pack, "p").unwrap();
        assert_eq!(read, [entry]);
        assert_eq!(opened(&kr, &pack, &read), [Some(data)]);
        let mut index = vec![1u8];
        index.extend_from_slice(&[5u8; 32]);
        index.extend_from_slice(&(pack.len() as u64).to_le_bytes());
        index.extend_from_slice(&table);
        assert_eq!(decode_index(&index, "i").unwrap().entries, [entry]);
        index[0] = PACK_VERSION + 1;
        assert!(matches!(
            decode_index(&index, "i"),
            Err(Error::UnsupportedVersion { .. })
        ));
    }
}
