//! The vault key file (`DIR/vault.key`, mode 0600): the stand-in for the HSM's key store.
//! Layout (docs/VAULT-API.md, "Key file"): `"COFFERVK" || 0x01 || credential_id_key(32) ||
//! token_key(32) || core_len(u32 LE) || core_keys`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use coffer_vault_core::CoreKeys;
use rand_core::{OsRng, RngCore};
use thiserror::Error;
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"COFFERVK";
const VERSION: u8 = 1;
/// File name of the key file inside the data directory.
pub const KEY_FILE: &str = "vault.key";
/// File name of the redb database inside the data directory.
pub const DB_FILE: &str = "vault.redb";

/// Key file errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// No key file: the vault was never initialised here.
    #[error(
        "no key file at {path}; run `coffer-vault init --data DIR` first (a vault never makes new keys over existing records)"
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `init` over an existing vault.
    #[error("{path} already exists; refusing to make new keys over an existing vault")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Others can read the key file.
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}); run `chmod 600` on it"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Not a key file of this version.
    #[error("key file {path} is malformed or of an unknown version")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// I/O.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The keys of one vault.
pub struct KeyFile {
    /// The core's keys (OPAQUE setup, sealing key, vault id).
    pub core: CoreKeys,
    /// HMAC key for credential ids.
    pub credential_id_key: Zeroizing<[u8; 32]>,
    /// HS256 key for development tokens.
    pub token_key: Zeroizing<[u8; 32]>,
}

impl KeyFile {
    /// The vault id as lowercase hex (the JWT audience).
    pub fn vault_id_hex(&self) -> String {
        hex::encode(self.core.vault_id())
    }

    /// Makes a new vault's keys in `dir`. Refuses if a key file or database exists.
    pub fn init(dir: &Path) -> Result<Self, KeyFileError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyFileError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for name in [KEY_FILE, DB_FILE] {
            let p = dir.join(name);
            if p.exists() {
                return Err(KeyFileError::Exists { path: p });
            }
        }
        let mut credential_id_key = Zeroizing::new([0u8; 32]);
        let mut token_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(credential_id_key.as_mut());
        OsRng.fill_bytes(token_key.as_mut());
        let kf = KeyFile {
            core: CoreKeys::generate(&mut OsRng),
            credential_id_key,
            token_key,
        };
        let buf = kf.to_bytes();
        let path = dir.join(KEY_FILE);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(&buf).map_err(io(&path))?;
        // Without this a power cut could leave an empty key file next to records sealed
        // under keys that are then lost forever.
        f.sync_all().map_err(io(&path))?;
        // Makes the new directory entry itself durable.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(kf)
    }

    /// Loads `dir/vault.key`.
    pub fn load(dir: &Path) -> Result<Self, KeyFileError> {
        let path = dir.join(KEY_FILE);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyFileError::Missing { path });
            }
            Err(source) => return Err(KeyFileError::Io { path, source }),
        };
        let mode = f
            .metadata()
            .map_err(|source| KeyFileError::Io {
                path: path.clone(),
                source,
            })?
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path,
                mode: mode & 0o777,
            });
        }
        let mut buf = Zeroizing::new(Vec::new());
        f.read_to_end(&mut buf).map_err(|source| KeyFileError::Io {
            path: path.clone(),
            source,
        })?;
        Self::from_bytes(&buf).ok_or(KeyFileError::Malformed { path })
    }

    /// The key file's bytes (layout in the module comment).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let core = self.core.to_bytes();
        let mut buf = Zeroizing::new(Vec::with_capacity(77 + core.len()));
        buf.extend_from_slice(MAGIC);
        buf.push(VERSION);
        buf.extend_from_slice(self.credential_id_key.as_ref());
        buf.extend_from_slice(self.token_key.as_ref());
        buf.extend_from_slice(&(core.len() as u32).to_le_bytes());
        buf.extend_from_slice(&core);
        buf
    }

    /// Parses [`KeyFile::to_bytes`] output; `None` for anything else (the caller names the
    /// file in its error).
    pub fn from_bytes(buf: &[u8]) -> Option<Self> {
        if buf.len() < 77 || &buf[..8] != MAGIC || buf[8] != VERSION {
            return None;
        }
        let mut credential_id_key = Zeroizing::new([0u8; 32]);
        credential_id_key.copy_from_slice(&buf[9..41]);
        let mut token_key = Zeroizing::new([0u8; 32]);
        token_key.copy_from_slice(&buf[41..73]);
        let len = u32::from_le_bytes(buf[73..77].try_into().ok()?);
        if usize::try_from(len).ok()? != buf.len() - 77 {
            return None;
        }
        let core = CoreKeys::from_bytes(&buf[77..]).ok()?;
        Some(KeyFile {
            core,
            credential_id_key,
            token_key,
        })
    }
}
