//! The key hierarchy (FORMAT.md "Keys"): K -> HKDF-SHA-256 -> root key and key check;
//! the root key wraps the keyring of epochs.

use hkdf::Hkdf;
use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;

/// The 32-byte backup key K. Zeroized on drop; `Debug` prints no key material.
pub struct BackupKey(Zeroizing<[u8; 32]>);

impl BackupKey {
    /// A new random key from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        fill_random(&mut b[..]);
        BackupKey(b)
    }
    /// Wraps existing key bytes (e.g. a parsed recovery key).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        BackupKey(Zeroizing::new(b))
    }
    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(..)")
    }
}

/// Fills `out` from the OS CSPRNG. The OS generator failing leaves no safe way to go on.
pub(crate) fn fill_random(out: &mut [u8]) {
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(out)
        .expect("the operating system's random generator failed");
}

/// HKDF-SHA-256(ikm = K, salt = none, info = label) -> 32 bytes. K is uniformly random,
/// so no salt is needed (RFC 5869 section 3.1).
pub(crate) fn derive(k: &[u8; 32], label: &str) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(None, k);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's 255*32 limit: expand cannot fail here.
    let _ = hk.expand(label.as_bytes(), &mut out[..]);
    out
}

/// HKDF label of the key that wraps the keyring.
pub(crate) const LABEL_ROOT: &str = "coffer/v1/root";
/// HKDF label of the key check value stored in clear in the keyring object.
pub(crate) const LABEL_CHECK: &str = "coffer/v1/key-check";

/// Keys of one epoch.
pub(crate) struct Epoch {
    /// AES-256-GCM key for blobs, pack headers, indexes and snapshots of this epoch.
    pub(crate) data: LessSafeKey,
    /// BLAKE3 key for chunk ids.
    pub(crate) id_key: Zeroizing<[u8; 32]>,
    /// Gear table of the content-defined chunker, derived from `id_key`.
    pub(crate) gear: Box<[u64; 256]>,
    raw_data: Zeroizing<[u8; 32]>,
}

impl Epoch {
    pub(crate) fn from_keys(data: [u8; 32], id_key: [u8; 32]) -> Result<Self, Error> {
        let raw_data = Zeroizing::new(data);
        let id_key = Zeroizing::new(id_key);
        let unbound =
            UnboundKey::new(&AES_256_GCM, &raw_data[..]).map_err(|_| Error::Internal {
                detail: "AES-256-GCM key setup failed".into(),
            })?;
        Ok(Epoch {
            data: LessSafeKey::new(unbound),
            gear: gear_table(&id_key),
            id_key,
            raw_data,
        })
    }
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut d = Zeroizing::new([0u8; 32]);
        let mut i = Zeroizing::new([0u8; 32]);
        fill_random(&mut d[..]);
        fill_random(&mut i[..]);
        Self::from_keys(*d, *i)
    }
    /// Keyed BLAKE3 chunk id (F4).
    pub(crate) fn chunk_id(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id_key, data).as_bytes()
    }
}

/// 256 gear values from BLAKE3's XOF keyed with the chunk-id key (F5).
fn gear_table(id_key: &[u8; 32]) -> Box<[u64; 256]> {
    let mut h = blake3::Hasher::new_keyed(id_key);
    h.update(b"coffer/v1/gear");
    let mut bytes = [0u8; 2048];
    h.finalize_xof().fill(&mut bytes);
    let mut t = Box::new([0u64; 256]);
    for (i, v) in t.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        *v = u64::from_le_bytes(b);
    }
    t
}

/// The decrypted keyring: repository id and the epochs, oldest first.
pub(crate) struct Keyring {
    pub(crate) repo_id: [u8; 16],
    pub(crate) epochs: Vec<Epoch>,
}

impl Keyring {
    /// Plaintext encoding (FORMAT.md "Keyring payload").
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(21 + 64 * self.epochs.len()));
        v.push(1u8);
        v.extend_from_slice(&self.repo_id);
        v.extend_from_slice(&(self.epochs.len() as u32).to_le_bytes());
        for e in &self.epochs {
            v.extend_from_slice(&e.raw_data[..]);
            v.extend_from_slice(&e.id_key[..]);
        }
        v
    }
    pub(crate) fn decode(b: &[u8], object: &str) -> Result<Self, Error> {
        let bad = |d: &str| Error::integrity(object, d);
        if b.len() < 21 {
            return Err(bad("keyring payload too short"));
        }
        if b[0] != 1 {
            return Err(Error::UnsupportedVersion {
                object: object.into(),
                version: b[0],
            });
        }
        let mut repo_id = [0u8; 16];
        repo_id.copy_from_slice(&b[1..17]);
        let n = read_u32(b, 17) as usize;
        if n == 0 || b.len() != 21 + 64 * n {
            return Err(bad("keyring epoch count does not match its length"));
        }
        let mut epochs = Vec::with_capacity(n);
        for i in 0..n {
            let o = 21 + 64 * i;
            let mut d = Zeroizing::new([0u8; 32]);
            let mut k = Zeroizing::new([0u8; 32]);
            d.copy_from_slice(&b[o..o + 32]);
            k.copy_from_slice(&b[o + 32..o + 64]);
            epochs.push(Epoch::from_keys(*d, *k)?);
        }
        Ok(Keyring { repo_id, epochs })
    }
    pub(crate) fn current(&self) -> (u32, &Epoch) {
        let i = self.epochs.len() - 1;
        (i as u32, &self.epochs[i])
    }
    pub(crate) fn epoch(&self, e: u32, object: &str) -> Result<&Epoch, Error> {
        self.epochs
            .get(e as usize)
            .ok_or_else(|| Error::integrity(object, format!("unknown key epoch {e}")))
    }
}

/// Little-endian u32 at `o`; the caller checked the length.
pub(crate) fn read_u32(b: &[u8], o: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(x)
}

/// Little-endian u64 at `o`; the caller checked the length.
pub(crate) fn read_u64(b: &[u8], o: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(x)
}
