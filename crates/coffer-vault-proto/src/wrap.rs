//! Two AES-256-GCM blobs: K wrapped under the OPAQUE export key (made by the client,
//! stored in the record), and that wrapped blob encrypted under the OPAQUE session key
//! (made by the core after a verified KE3), and the sealing both share with the login
//! ticket (login.rs). Layouts: docs/VAULT-API.md, "Binary blobs".

use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Version byte of both blobs.
pub const BLOB_VERSION: u8 = 1;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Version and AAD tail of both blobs: the AAD is the version byte alone.
const BLOB: (u8, &[u8]) = (BLOB_VERSION, &[]);
/// Length of `wrap(export_key, K)`: version, nonce, 32-byte K, tag.
pub const WRAPPED_KEY_LEN: usize = 1 + NONCE_LEN + 32 + TAG_LEN;
/// Length of the release blob: version, nonce, the wrapped key, tag.
pub const RELEASE_BLOB_LEN: usize = 1 + NONCE_LEN + WRAPPED_KEY_LEN + TAG_LEN;

const WRAP_INFO: &[u8] = b"coffer/v1/vault/wrap-key";
const RELEASE_INFO: &[u8] = b"coffer/v1/vault/release-key";

/// 32 bytes of HKDF-SHA-256 (no salt) from `ikm` for `info`: the one derivation behind
/// every key the core and client make from another.
pub fn hkdf32(ikm: &[u8], info: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, ikm)
        .expand(info, okm.as_mut())
        .ok()?;
    Some(okm)
}

/// An AES-256-GCM key derived from `ikm` for `info` with [`hkdf32`].
pub fn derive(ikm: &[u8], info: &[u8]) -> Option<LessSafeKey> {
    let key = UnboundKey::new(&AES_256_GCM, hkdf32(ikm, info)?.as_ref()).ok()?;
    Some(LessSafeKey::new(key))
}

/// An HMAC-SHA-256 key derived like [`derive`]'s AEAD keys (distinct `info`).
pub fn derive_hmac(ikm: &[u8], info: &[u8]) -> Option<ring::hmac::Key> {
    let okm = hkdf32(ikm, info)?;
    Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, okm.as_ref()))
}

/// `version || nonce || AES-256-GCM(plain) || tag`, with AAD = `version || aad_tail`. The
/// shared layout of the wrapped key, the release blob and the login ticket (login.rs).
pub fn seal(
    key: &LessSafeKey,
    (version, aad_tail): (u8, &[u8]),
    plain: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
    out.push(version);
    out.extend_from_slice(&nonce);
    let mut body = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from([&[version][..], aad_tail].concat()),
        &mut body,
    )
    .ok()?;
    out.extend_from_slice(&body);
    Some(out)
}

/// Opens [`seal`]'s output, which must hold exactly `plain_len` bytes of plaintext and
/// carry `version`; `None` otherwise or if it does not authenticate.
pub fn open(
    key: &LessSafeKey,
    (version, aad_tail): (u8, &[u8]),
    blob: &[u8],
    plain_len: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    if blob.len() != 1 + NONCE_LEN + plain_len + TAG_LEN || blob[0] != version {
        return None;
    }
    let nonce: [u8; NONCE_LEN] = blob[1..1 + NONCE_LEN].try_into().ok()?;
    let mut body = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([&[version][..], aad_tail].concat()),
            body.as_mut(),
        )
        .ok()?;
    Some(Zeroizing::new(plain.to_vec()))
}

/// Client: `wrap(export_key, K)`.
pub fn wrap_key(
    export_key: &[u8],
    k: &[u8; 32],
    rng: &mut (impl RngCore + CryptoRng),
) -> Option<Vec<u8>> {
    seal(&derive(export_key, WRAP_INFO)?, BLOB, k, rng)
}

/// Client: opens `wrap(export_key, K)`; `None` if it does not authenticate.
pub fn unwrap_key(export_key: &[u8], blob: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let plain = open(&derive(export_key, WRAP_INFO)?, BLOB, blob, 32)?;
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&plain);
    Some(k)
}

/// Core: encrypts the stored wrapped key under the OPAQUE session key.
pub fn seal_release(
    session_key: &[u8],
    wrapped: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Option<Vec<u8>> {
    seal(&derive(session_key, RELEASE_INFO)?, BLOB, wrapped, rng)
}

/// Client: opens the release blob with its session key.
pub fn open_release(session_key: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    open(
        &derive(session_key, RELEASE_INFO)?,
        BLOB,
        blob,
        WRAPPED_KEY_LEN,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn wrap_round_trip_and_tamper() {
        let k = [7u8; 32];
        let w = wrap_key(&[1u8; 64], &k, &mut OsRng).unwrap();
        assert_eq!(w.len(), WRAPPED_KEY_LEN);
        assert_eq!(*unwrap_key(&[1u8; 64], &w).unwrap(), k);
        assert!(unwrap_key(&[2u8; 64], &w).is_none());
        let r = seal_release(&[3u8; 64], &w, &mut OsRng).unwrap();
        assert_eq!(r.len(), RELEASE_BLOB_LEN);
        assert_eq!(open_release(&[3u8; 64], &r).unwrap().as_slice(), &w[..]);
        let mut bad = r.clone();
        bad[20] ^= 1;
        assert!(open_release(&[3u8; 64], &bad).is_none());
    }
}
