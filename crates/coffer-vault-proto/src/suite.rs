//! The OPAQUE ciphersuite and the named Argon2id profiles.

use opaque_ke::argon2::{Algorithm, Argon2, Params, Version};

/// OPAQUE-3DH with ristretto255 and SHA-512 (RFC 9807 section 7), Argon2id as the KSF.
///
/// The KSF type is fixed, but its parameters are not: the client passes the `Argon2`
/// built from the record's [`KsfProfile`], and the server never runs the KSF at all.
pub struct Suite;

impl opaque_ke::CipherSuite for Suite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = Argon2<'static>;
}

/// Decodes an OPAQUE message that must fill `bytes` exactly. opaque-ke's deserializers
/// accept trailing bytes; the wire format does not, so re-encoding must give back every
/// byte received.
pub fn decode_exact<T, E, S: AsRef<[u8]>>(
    bytes: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
    encode: impl FnOnce(&T) -> S,
) -> Option<T> {
    let msg = decode(bytes).ok()?;
    (encode(&msg).as_ref().len() == bytes.len()).then_some(msg)
}

/// Prefix of the OPAQUE context string; the vault id follows it.
pub const PROTOCOL_CONTEXT_PREFIX: &[u8] = b"coffer/vault/v1";

/// The OPAQUE context: `"coffer/vault/v1" || vault_id`, so a transcript from one vault or
/// protocol version never verifies at another.
pub fn context(vault_id: &[u8; 16]) -> Vec<u8> {
    let mut c = PROTOCOL_CONTEXT_PREFIX.to_vec();
    c.extend_from_slice(vault_id);
    c
}

/// Named, versioned Argon2id parameter profiles, stored in the vault record so that the
/// parameters can be raised later without locking anyone out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum KsfProfile {
    /// `argon2id-rfc9106-2`: RFC 9106's second recommendation, m = 64 MiB, t = 3, p = 4.
    #[default]
    Rfc9106Second,
    /// `argon2id-test`: m = 256 KiB, t = 1, p = 1. Only for tests; far too cheap otherwise.
    TestCheap,
}

impl KsfProfile {
    /// The profile's stable name, as stored and sent on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rfc9106Second => "argon2id-rfc9106-2",
            Self::TestCheap => "argon2id-test",
        }
    }

    /// Parses a profile name; `None` if unknown.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "argon2id-rfc9106-2" => Some(Self::Rfc9106Second),
            "argon2id-test" => Some(Self::TestCheap),
            _ => None,
        }
    }

    /// The one-byte id used inside sealed records (docs/VAULT-API.md, "Sealed record").
    /// The profile's one-byte id in sealed records and the core protocol.
    pub fn id(&self) -> u8 {
        match self {
            Self::Rfc9106Second => 1,
            Self::TestCheap => 2,
        }
    }

    /// The profile with one-byte id `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Rfc9106Second),
            2 => Some(Self::TestCheap),
            _ => None,
        }
    }

    /// The Argon2id instance for this profile (client side only).
    pub fn argon2(&self) -> Argon2<'static> {
        let (m_kib, t, p) = match self {
            Self::Rfc9106Second => (64 * 1024, 3, 4),
            Self::TestCheap => (256, 1, 1),
        };
        // The constants above are within Argon2's bounds; the fallback is never taken but
        // keeps this infallible without an unwrap.
        let params = Params::new(m_kib, t, p, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [KsfProfile::Rfc9106Second, KsfProfile::TestCheap] {
            assert_eq!(KsfProfile::from_name(p.name()), Some(p));
            assert_eq!(KsfProfile::from_id(p.id()), Some(p));
        }
        assert_eq!(KsfProfile::from_name("argon2id"), None);
        assert_eq!(KsfProfile::default(), KsfProfile::Rfc9106Second);
    }
}
