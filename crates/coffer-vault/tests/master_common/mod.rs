//! Checks of the sealed blob that hold whatever the master key's source
//! (docs/VAULT-CORE.md, "Master key and sealed key file").

use coffer_vault::master::{MasterKey, MasterKeyError};

pub const AAD: &[u8] = b"coffer/v1/core-key-file";
pub const SECRET: &[u8] = b"the core's key file, 32+ bytes of very secret keys";

/// Seals [`SECRET`] and checks the blob's layout: version 1, `kind`, a fresh IV, no
/// plaintext in sight. Returns the blob.
pub fn seal_checked(key: &MasterKey, kind: u8) -> Vec<u8> {
    let sealed = key.seal(AAD, SECRET).unwrap();
    assert_eq!(sealed.len(), 1 + 1 + 12 + SECRET.len() + 16);
    assert_eq!(&sealed[..2], &[1, kind], "version 1, kind {kind}");
    assert!(!sealed.windows(8).any(|w| SECRET.windows(8).any(|s| s == w)));
    let again = key.seal(AAD, SECRET).unwrap();
    assert_ne!(again[2..14], sealed[2..14], "IV reused");
    sealed
}

/// Every alteration of `sealed` (from [`seal_checked`]) and a wrong AAD are refused, and
/// the key still opens the original afterwards.
pub fn assert_alterations_refused(key: &MasterKey, sealed: &[u8]) {
    assert!(matches!(
        key.open_sealed(b"another aad", sealed),
        Err(MasterKeyError::Unauthentic)
    ));
    // A flipped bit in any byte of IV, ciphertext or tag.
    for i in 2..sealed.len() {
        for bit in [0x01, 0x80] {
            let mut bad = sealed.to_vec();
            bad[i] ^= bit;
            assert!(
                matches!(key.open_sealed(AAD, &bad), Err(MasterKeyError::Unauthentic)),
                "byte {i} bit {bit:#x} flipped"
            );
        }
    }
    let mut bad = sealed.to_vec();
    bad[0] = 2;
    assert!(matches!(
        key.open_sealed(AAD, &bad),
        Err(MasterKeyError::SealedVersion { version: 2 })
    ));
    for kind in (0..=3).filter(|k| *k != sealed[1]) {
        bad = sealed.to_vec();
        bad[1] = kind;
        let err = key.open_sealed(AAD, &bad).unwrap_err();
        assert!(matches!(err, MasterKeyError::WrongSource { .. }), "{err:?}");
        assert!(err.to_string().contains("flags"), "{err}");
    }
    for len in [0, 1, 2, 13, 14, 29] {
        assert!(matches!(
            key.open_sealed(AAD, &sealed[..len]),
            Err(MasterKeyError::SealedMalformed)
        ));
    }
    // Long enough to parse, but its tag cut short.
    assert!(matches!(
        key.open_sealed(AAD, &sealed[..sealed.len() - 1]),
        Err(MasterKeyError::Unauthentic)
    ));
    assert_eq!(key.open_sealed(AAD, sealed).unwrap().as_slice(), SECRET);
}
