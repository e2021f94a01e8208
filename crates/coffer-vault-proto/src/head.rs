//! The repository head a client keeps in the vault: the newest snapshot it wrote, so a
//! new device can tell that the storage provider dropped or rolled back snapshots before
//! it restores (docs/THREAT_MODEL.md, "Rollback").
//!
//! The vault only stores the blob; the client MACs it under a key derived from K, so
//! neither the vault nor the storage provider can forge a head. The vault enforces two
//! things it can check without K: a new head needs the record's owner proof (owner.rs,
//! operation [`crate::OwnerOp::Head`]), and its sequence number must not fall, so nobody can
//! put an older head back (the same number is taken: a key rotation seals the kept head
//! again under the new key). Layout: docs/VAULT-API.md, "Repository head".

use ring::hmac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Version byte of a head blob.
pub const HEAD_VERSION: u8 = 1;
/// Length of a head blob: version, sequence number, snapshot digest, MAC.
pub const HEAD_LEN: usize = 1 + 8 + 32 + 32;
/// HKDF info of the head MAC key (from K).
pub const HEAD_KEY_INFO: &[u8] = b"coffer/v1/vault/repository-head";

/// A repository head as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaultHead {
    /// The head snapshot's per-repository sequence number.
    pub seq: u64,
    /// SHA-256 of the head snapshot's id (as the repository names it).
    pub snapshot_digest: [u8; 32],
}

impl VaultHead {
    /// The head of snapshot `id` at `seq`.
    pub fn new(seq: u64, snapshot_id: &str) -> Self {
        Self {
            seq,
            snapshot_digest: Sha256::digest(snapshot_id.as_bytes()).into(),
        }
    }

    /// Whether this is the head of snapshot `id`.
    pub fn names(&self, snapshot_id: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(snapshot_id.as_bytes()).into();
        bool::from(d.ct_eq(&self.snapshot_digest))
    }
}

fn key(k: &[u8; 32]) -> Option<hmac::Key> {
    let okm = crate::wrap::hkdf32(k, HEAD_KEY_INFO)?;
    Some(hmac::Key::new(hmac::HMAC_SHA256, okm.as_ref()))
}

/// Client: the blob for `head`, MAC'd under K.
pub fn seal_head(k: &[u8; 32], head: &VaultHead) -> Option<Vec<u8>> {
    let mut b = Vec::with_capacity(HEAD_LEN);
    b.push(HEAD_VERSION);
    b.extend_from_slice(&head.seq.to_le_bytes());
    b.extend_from_slice(&head.snapshot_digest);
    let tag = hmac::sign(&key(k)?, &b);
    b.extend_from_slice(tag.as_ref());
    Some(b)
}

/// Client: the head in `blob` if its MAC verifies under K.
pub fn open_head(k: &[u8; 32], blob: &[u8]) -> Option<VaultHead> {
    let seq = head_seq(blob)?;
    hmac::verify(&key(k)?, &blob[..HEAD_LEN - 32], &blob[HEAD_LEN - 32..]).ok()?;
    Some(VaultHead {
        seq,
        snapshot_digest: blob[9..41].try_into().ok()?,
    })
}

/// Vault: the sequence number of a well-formed blob (unauthenticated: the vault cannot
/// check the MAC, it only keeps the sequence from falling).
pub fn head_seq(blob: &[u8]) -> Option<u64> {
    if blob.len() != HEAD_LEN || blob[0] != HEAD_VERSION {
        return None;
    }
    Some(u64::from_le_bytes(blob[1..9].try_into().ok()?))
}

/// The owner-proof content of a head write: SHA-256 of the blob.
pub fn head_content(blob: &[u8]) -> [u8; 32] {
    Sha256::digest(blob).into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_head_opens_only_under_its_key_and_unedited() {
        let h = VaultHead::new(7, "abc");
        let blob = seal_head(&[1; 32], &h).unwrap();
        assert_eq!(blob.len(), HEAD_LEN);
        assert_eq!(open_head(&[1; 32], &blob), Some(h));
        assert!(h.names("abc") && !h.names("abd"));
        assert_eq!(open_head(&[2; 32], &blob), None);
        for i in [0, 1, 20, HEAD_LEN - 1] {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert_eq!(open_head(&[1; 32], &bad), None, "byte {i}");
        }
        assert_eq!(head_seq(&blob), Some(7));
        assert_eq!(head_seq(&blob[..40]), None);
    }
}
