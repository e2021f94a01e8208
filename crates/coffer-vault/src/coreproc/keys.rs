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
/// File name of a group member's link key (docs/VAULT-GROUP.md).
pub const GROUP_KEY_FILE: &str = "group.key";
const GROUP_MAGIC: &[u8; 8] = b"COFFERGK";
const GROUP_AAD: &[u8] = b"coffer/v1/vault/group-link-key";

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
    let keys = CoreKeys::generate(&mut OsRng);
    init_with(dir, master, &keys, None)?;
    Ok(keys)
}

/// Makes `dir` a core holding `keys` (and, for a group member, the group's `link_key`),
/// sealed under a new master key from `master`. A group's members share the core keys
/// (any member serves any credential) but each seals them under its own master key.
pub fn init_with(
    dir: &Path,
    master: &MasterKeySource,
    keys: &CoreKeys,
    link_key: Option<&[u8; 32]>,
) -> Result<(), CoreDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for name in [CORE_KEY_FILE, STORE_FILE, GROUP_KEY_FILE] {
        let p = dir.join(name);
        if p.exists() {
            return Err(CoreDirError::Exists { path: p });
        }
    }
    let mk = MasterKey::create(master)?;
    let sealed = |magic: &[u8; 8], aad: &[u8], plain: &[u8]| -> Result<Vec<u8>, CoreDirError> {
        let mut buf = magic.to_vec();
        buf.push(VERSION);
        buf.extend_from_slice(&mk.seal(aad, plain)?);
        Ok(buf)
    };
    let write = |name: &str, buf: &[u8]| {
        crate::keyfile::write_new_private(dir, name, buf)
            .map_err(|(path, source)| CoreDirError::Io { path, source })
    };
    if let Some(k) = link_key {
        write(GROUP_KEY_FILE, &sealed(GROUP_MAGIC, GROUP_AAD, k)?)?;
    }
    write(CORE_KEY_FILE, &sealed(MAGIC, AAD, &keys.to_bytes())?)
}

fn read_sealed(
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
    aad: &[u8],
    master: &MasterKeySource,
) -> Result<zeroize::Zeroizing<Vec<u8>>, CoreDirError> {
    let path = dir.join(name);
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CoreDirError::Missing { path });
        }
        Err(e) => return Err(io(&path)(e)),
    };
    if buf.len() < 9 || &buf[..8] != magic || buf[8] != VERSION {
        return Err(CoreDirError::Malformed { path });
    }
    let mk = MasterKey::open(master)?;
    Ok(mk.open_sealed(aad, &buf[9..])?)
}

/// Opens a group member's `dir/group.key`.
pub fn load_link_key(
    dir: &Path,
    master: &MasterKeySource,
) -> Result<zeroize::Zeroizing<[u8; 32]>, CoreDirError> {
    let plain = read_sealed(dir, GROUP_KEY_FILE, GROUP_MAGIC, GROUP_AAD, master)?;
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(CoreDirError::Malformed {
            path: dir.join(GROUP_KEY_FILE),
        });
    }
    k.copy_from_slice(&plain);
    Ok(k)
}

/// Opens `dir/core.key` with the master key from `master`.
pub fn load(dir: &Path, master: &MasterKeySource) -> Result<CoreKeys, CoreDirError> {
    let plain = read_sealed(dir, CORE_KEY_FILE, MAGIC, AAD, master)?;
    CoreKeys::from_bytes(&plain).map_err(|_| CoreDirError::Malformed {
        path: dir.join(CORE_KEY_FILE),
    })
}
