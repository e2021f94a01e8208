//! The master key that seals the core's key file. This minimal version reads it from a
//! file; the PKCS#11 source replaces it (branch wip-pkcs11).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use rand_core::{OsRng, RngCore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use thiserror::Error;
use zeroize::Zeroizing;

/// Where the master key lives.
#[derive(Clone, Debug)]
pub enum MasterKeySource {
    /// A 32-byte key in a file (mode 0600).
    File(PathBuf),
}

/// Master key errors.
#[derive(Debug, Error)]
pub enum MasterKeyError {
    /// I/O on the key file.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a 32-byte key, or is readable by others.
    #[error("master key file {path} is not a 32-byte key readable only by its owner")]
    Bad {
        /// The file.
        path: PathBuf,
    },
    /// The sealed blob does not open under this key.
    #[error(
        "the core's key file does not open under this master key (wrong key, or a damaged file)"
    )]
    Open,
}

/// An opened master key.
pub struct MasterKey {
    key: LessSafeKey,
}

const VERSION: u8 = 1;
const KIND_FILE: u8 = 1;

impl MasterKey {
    /// Makes a new key at `src` (refuses to overwrite).
    pub fn create(src: &MasterKeySource) -> Result<Self, MasterKeyError> {
        let MasterKeySource::File(path) = src;
        let io = |source| MasterKeyError::Io {
            path: path.clone(),
            source,
        };
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(k.as_ref()).map_err(io)?;
        // A key lost to a power cut would leave the core's keys sealed forever.
        f.sync_all().map_err(io)?;
        Self::from_bytes(k.as_ref(), path)
    }

    /// Opens the existing key at `src`.
    pub fn open(src: &MasterKeySource) -> Result<Self, MasterKeyError> {
        let MasterKeySource::File(path) = src;
        let io = |source| MasterKeyError::Io {
            path: path.clone(),
            source,
        };
        let mut f = File::open(path).map_err(io)?;
        if f.metadata().map_err(io)?.mode() & 0o077 != 0 {
            return Err(MasterKeyError::Bad { path: path.clone() });
        }
        let mut k = Zeroizing::new(Vec::new());
        f.read_to_end(&mut k).map_err(io)?;
        Self::from_bytes(&k, path)
    }

    fn from_bytes(k: &[u8], path: &std::path::Path) -> Result<Self, MasterKeyError> {
        let bad = || MasterKeyError::Bad {
            path: path.to_path_buf(),
        };
        if k.len() != 32 {
            return Err(bad());
        }
        let key = UnboundKey::new(&AES_256_GCM, k).map_err(|_| bad())?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// `version || kind || nonce || AES-256-GCM(plaintext) || tag`, AAD = `version ||
    /// kind || aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut full_aad = vec![VERSION, KIND_FILE];
        full_aad.extend_from_slice(aad);
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&full_aad),
                &mut buf,
            )
            .map_err(|_| MasterKeyError::Open)?;
        let mut out = vec![VERSION, KIND_FILE];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens [`MasterKey::seal`]'s output.
    pub fn open_sealed(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        if sealed.len() < 2 + NONCE_LEN + 16 || sealed[0] != VERSION || sealed[1] != KIND_FILE {
            return Err(MasterKeyError::Open);
        }
        let nonce: [u8; NONCE_LEN] = sealed[2..2 + NONCE_LEN]
            .try_into()
            .map_err(|_| MasterKeyError::Open)?;
        let mut full_aad = vec![VERSION, KIND_FILE];
        full_aad.extend_from_slice(aad);
        let mut buf = Zeroizing::new(sealed[2 + NONCE_LEN..].to_vec());
        let n = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&full_aad),
                &mut buf,
            )
            .map_err(|_| MasterKeyError::Open)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}
