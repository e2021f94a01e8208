//! The core's directory (`DIR/core/`, or wherever the core runs): its key file
//! `core.key`, sealed by the master key (master.rs), and its store `core.redb`.
//!
//! `core.key` layout (docs/VAULT-CORE.md, "Core key file"): `"COFFERCK" || 0x01 ||
//! master-sealed(CoreKeys)`, the master seal's associated data being
//! `"coffer/v1/vault/core-keys"`.

use std::path::{Path, PathBuf};

use coffer_vault_core::CoreKeys;
use rand_core::OsRng;
use thiserror::Error;

use super::store::STORE_FILE;
use crate::master::{MasterKey, MasterKeyError, MasterKeySource};

/// File name of the core's key file inside its directory.
pub const CORE_KEY_FILE: &str = "core.key";
/// File name of the development master key inside the core's directory.
pub const MASTER_KEY_FILE: &str = "master.key";
const MAGIC: &[u8; 8] = b"COFFERCK";
const VERSION: u8 = 1;
const AAD: &[u8] = b"coffer/v1/vault/core-keys";

/// Core directory errors.
#[derive(Debug, Error)]
pub enum CoreDirError {
    /// Not a core directory.
    #[error(
        "no core key file at {path}; run `coffer-vault init --data DIR` and pass DIR/core (or where you moved it)"
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `init` over an existing core.
    #[error("{path} already exists; refusing to make new core keys over an existing core")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Not a key file of this version.
    #[error("core key file {path} is malformed or of an unknown version")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// The master key.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CoreDirError + '_ {
    move |source| CoreDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes a new core in `dir`: fresh keys sealed under a new master key from `master`.
/// Refuses over any part of an existing core.
pub fn init(dir: &Path, master: &MasterKeySource) -> Result<CoreKeys, CoreDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for name in [CORE_KEY_FILE, STORE_FILE] {
        let p = dir.join(name);
        if p.exists() {
            return Err(CoreDirError::Exists { path: p });
        }
    }
    let mk = MasterKey::create(master)?;
    let keys = CoreKeys::generate(&mut OsRng);
    let mut buf = MAGIC.to_vec();
    buf.push(VERSION);
    buf.extend_from_slice(&mk.seal(AAD, &keys.to_bytes())?);
    crate::keyfile::write_new_private(dir, CORE_KEY_FILE, &buf)
        .map_err(|(path, source)| CoreDirError::Io { path, source })?;
    Ok(keys)
}

/// Opens `dir/core.key` with the master key from `master`.
pub fn load(dir: &Path, master: &MasterKeySource) -> Result<CoreKeys, CoreDirError> {
    let path = dir.join(CORE_KEY_FILE);
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CoreDirError::Missing { path });
        }
        Err(e) => return Err(io(&path)(e)),
    };
    if buf.len() < 9 || &buf[..8] != MAGIC || buf[8] != VERSION {
        return Err(CoreDirError::Malformed { path });
    }
    let mk = MasterKey::open(master)?;
    let plain = mk.open_sealed(AAD, &buf[9..])?;
    CoreKeys::from_bytes(&plain).map_err(|_| CoreDirError::Malformed { path })
}
