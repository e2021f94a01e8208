//! Owner proofs: the signature that lets a caller replace or delete a **live** record.
//!
//! A bearer token only says "this caller may act for the account"; it is issued by the
//! app's auth server and may leak or be minted by an insider. Wiping a user's escrowed
//! key must take more than that: proof of K itself. At registration the client stores an
//! Ed25519 *owner key* derived from K (HKDF, label [`OWNER_KEY_INFO`]); replacing or
//! deleting the live record then needs a signature by it over [`proof_message`], which
//! names the operation, this vault, this credential and the record's current generation.
//! The generation moves on with every change (each counted guess too), so a signature
//! can never be replayed against a later state; for a replacement the message also binds
//! the new record's content, so a host that relays the request cannot swap it.
//! Byte layout: docs/VAULT-API.md, "Owner proof".

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use crate::CredentialId;

/// HKDF-SHA-256 info deriving the owner key's Ed25519 seed from K.
pub const OWNER_KEY_INFO: &[u8] = b"coffer/v1/vault/owner-key";
/// Domain label at the start of every signed proof message.
pub const OWNER_PROOF_LABEL: &[u8] = b"coffer/v1/vault/owner-proof";
/// Version byte of the proof message layout.
pub const OWNER_PROOF_VERSION: u8 = 1;
/// Length of an owner public key (Ed25519).
pub const OWNER_KEY_LEN: usize = 32;
/// Length of an owner proof signature (Ed25519).
pub const OWNER_SIG_LEN: usize = 64;

/// What an owner proof authorises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnerOp {
    /// `register/finish` over a live record (password change, key rotation).
    Replace,
    /// `delete` of a live record (backups off).
    Delete,
    /// Storing a new repository head beside a live record (head.rs).
    Head,
}

impl OwnerOp {
    fn byte(self) -> u8 {
        match self {
            OwnerOp::Replace => 1,
            OwnerOp::Delete => 2,
            OwnerOp::Head => 3,
        }
    }
}

/// The exact bytes an owner signs: `label || version || op || vault_id(16) ||
/// credential_id(32) || generation(u64 LE) || content(32)`. `content` is
/// [`replace_content`] for a replacement and 32 zero bytes for a delete.
pub fn proof_message(
    op: OwnerOp,
    vault_id: &[u8; 16],
    cred: &CredentialId,
    generation: u64,
    content: &[u8; 32],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(OWNER_PROOF_LABEL.len() + 2 + 16 + 32 + 8 + 32);
    m.extend_from_slice(OWNER_PROOF_LABEL);
    m.push(OWNER_PROOF_VERSION);
    m.push(op.byte());
    m.extend_from_slice(vault_id);
    m.extend_from_slice(cred.as_bytes());
    m.extend_from_slice(&generation.to_le_bytes());
    m.extend_from_slice(content);
    m
}

/// SHA-256 over the new record's content as sent to `register/finish`, each field
/// length-prefixed (u16 LE): registration ticket, upload, wrapped key, owner key, profile
/// name.
pub fn replace_content(
    ticket: &[u8],
    upload: &[u8],
    wrapped_key: &[u8],
    owner_key: &[u8],
    profile: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    for field in [ticket, upload, wrapped_key, owner_key, profile.as_bytes()] {
        // Every field is far below 64 KiB (the host caps request bodies at 16 KiB);
        // saturating keeps a hostile length from wrapping into another field's.
        h.update(u16::try_from(field.len()).unwrap_or(u16::MAX).to_le_bytes());
        h.update(field);
    }
    h.finalize().into()
}

/// Core side: whether `signature` is `owner_key`'s signature over `message`.
pub fn verify(owner_key: &[u8; OWNER_KEY_LEN], message: &[u8], signature: &[u8]) -> bool {
    signature.len() == OWNER_SIG_LEN
        && UnparsedPublicKey::new(&ED25519, owner_key)
            .verify(message, signature)
            .is_ok()
}

/// Client side: the owner key pair derived from K.
pub struct OwnerKey(Ed25519KeyPair);

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerKey")
            .field("public", &self.public())
            .finish()
    }
}

impl OwnerKey {
    /// Derives the owner key from the backup key K. `None` only if HKDF or ring refuse
    /// a 32-byte seed, which they do not.
    pub fn from_backup_key(k: &[u8; 32]) -> Option<Self> {
        let seed = crate::wrap::hkdf32(k, OWNER_KEY_INFO)?;
        Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
            .ok()
            .map(Self)
    }

    /// The public key stored in the record.
    pub fn public(&self) -> [u8; OWNER_KEY_LEN] {
        let mut p = [0u8; OWNER_KEY_LEN];
        p.copy_from_slice(self.0.public_key().as_ref());
        p
    }

    /// Signs a [`proof_message`].
    pub fn sign(
        &self,
        op: OwnerOp,
        vault_id: &[u8; 16],
        cred: &CredentialId,
        generation: u64,
        content: &[u8; 32],
    ) -> [u8; OWNER_SIG_LEN] {
        let sig = self
            .0
            .sign(&proof_message(op, vault_id, cred, generation, content));
        let mut s = [0u8; OWNER_SIG_LEN];
        s.copy_from_slice(sig.as_ref());
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_proof_verifies_only_for_its_exact_message() {
        let k = OwnerKey::from_backup_key(&[7; 32]).unwrap();
        let cred = CredentialId::from_bytes([1; 32]);
        let vid = [2; 16];
        let content = [3; 32];
        let sig = k.sign(OwnerOp::Delete, &vid, &cred, 5, &content);
        let msg = proof_message(OwnerOp::Delete, &vid, &cred, 5, &content);
        assert!(verify(&k.public(), &msg, &sig));
        for other in [
            proof_message(OwnerOp::Replace, &vid, &cred, 5, &content),
            proof_message(OwnerOp::Delete, &[9; 16], &cred, 5, &content),
            proof_message(
                OwnerOp::Delete,
                &vid,
                &CredentialId::from_bytes([4; 32]),
                5,
                &content,
            ),
            proof_message(OwnerOp::Delete, &vid, &cred, 6, &content),
            proof_message(OwnerOp::Delete, &vid, &cred, 5, &[0; 32]),
        ] {
            assert!(!verify(&k.public(), &other, &sig));
        }
        let other_key = OwnerKey::from_backup_key(&[8; 32]).unwrap();
        assert!(!verify(&other_key.public(), &msg, &sig));
        assert!(!verify(&k.public(), &msg, &sig[..63]));
        // Same K, same key: the owner key is a pure function of K.
        assert_eq!(
            OwnerKey::from_backup_key(&[7; 32]).unwrap().public(),
            k.public()
        );
    }
}
