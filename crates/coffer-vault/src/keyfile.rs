//! The host's key file (`DIR/host.key`, mode 0600). The host holds none of the core's
//! keys: only the vault's public id (the tokens' audience) and the development token key.
//! Layout (docs/VAULT-CORE.md, "Host key file"): `"COFFERHK" || 0x01 || vault_id(16) ||
//! token_key(32)`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};
use thiserror::Error;
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"COFFERHK";
const VERSION: u8 = 1;
/// File name of the key file inside the data directory.
pub const KEY_FILE: &str = "host.key";
/// The single-process key file of vaults before the core had its own process.
pub const LEGACY_KEY_FILE: &str = "vault.key";
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
    /// A vault made before the core had its own process.
    #[error(
        "{path} is the key file of an older coffer-vault (one process, guess counts in vault.redb), which this version cannot serve; make a new vault with `coffer-vault init --data NEW_DIR` and register again"
    )]
    Legacy {
        /// The old key file.
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

/// The host's keys.
pub struct KeyFile {
    /// The vault's public id (the JWT audience; the core holds the same).
    pub vault_id: [u8; 16],
    /// HS256 key for development tokens.
    pub token_key: Zeroizing<[u8; 32]>,
}

impl KeyFile {
    /// The vault id as lowercase hex (the JWT audience).
    pub fn vault_id_hex(&self) -> String {
        hex::encode(self.vault_id)
    }

    /// Makes a new vault's keys in `dir`. Refuses if a key file or database exists.
    pub fn init(dir: &Path, vault_id: [u8; 16]) -> Result<Self, KeyFileError> {
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
        let mut token_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(token_key.as_mut());
        let kf = KeyFile {
            vault_id,
            token_key,
        };
        write_new_private(dir, KEY_FILE, &kf.to_bytes())
            .map_err(|(path, source)| KeyFileError::Io { path, source })?;
        Ok(kf)
    }

    /// Loads `dir/vault.key`.
    pub fn load(dir: &Path) -> Result<Self, KeyFileError> {
        let path = dir.join(KEY_FILE);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.join(LEGACY_KEY_FILE).exists() {
                    return Err(KeyFileError::Legacy {
                        path: dir.join(LEGACY_KEY_FILE),
                    });
                }
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
        let mut buf = Zeroizing::new(Vec::with_capacity(57));
        buf.extend_from_slice(MAGIC);
        buf.push(VERSION);
        buf.extend_from_slice(&self.vault_id);
        buf.extend_from_slice(self.token_key.as_ref());
        buf
    }

    /// Parses [`KeyFile::to_bytes`] output; `None` for anything else (the caller names the
    /// file in its error).
    pub fn from_bytes(buf: &[u8]) -> Option<Self> {
        if buf.len() != 57 || &buf[..8] != MAGIC || buf[8] != VERSION {
            return None;
        }
        let mut token_key = Zeroizing::new([0u8; 32]);
        token_key.copy_from_slice(&buf[25..57]);
        Some(KeyFile {
            vault_id: buf[9..25].try_into().ok()?,
            token_key,
        })
    }
}

/// Writes `bytes` to the new file `dir/name` (never over an existing one), mode 0600, and
/// makes both the file and its directory entry durable: the host's and the core's key
/// files. On failure, the path that failed and why.
pub(crate) fn write_new_private(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), (PathBuf, std::io::Error)> {
    let path = dir.join(name);
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(at(&path))?;
    f.write_all(bytes).map_err(at(&path))?;
    // Without this a power cut could leave an empty key file beside records or entries
    // sealed under keys that are then lost forever.
    f.sync_all().map_err(at(&path))?;
    // Makes the new directory entry itself durable.
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}
