//! The master key that seals the vault core's key file: a 32-byte key in a file
//! (development) or a non-extractable AES-256 key inside a PKCS#11 token (an HSM).
//!
//! Sealed blob (docs/VAULT-CORE.md, "Master key and sealed key file"):
//! `version(0x01) || kind || iv(12) || AES-256-GCM(ciphertext || tag(16))`, with the GCM
//! additional data `version || kind || aad`, so neither header byte can be swapped.
//!
//! With a token the key never leaves it: `create` generates it inside the token
//! (CKA_EXTRACTABLE false, CKA_SENSITIVE true) and every seal or open is one C_Encrypt or
//! C_Decrypt with CKM_AES_GCM. `open` refuses a key that was ever extractable or ever
//! outside the token (CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE), since a copy of such
//! a key may exist elsewhere.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;
use rand_core::{OsRng, RngCore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use thiserror::Error;
use zeroize::Zeroizing;

/// Version byte of the sealed blob.
const SEALED_VERSION: u8 = 1;
/// Source kind byte: the key came from a file.
const KIND_FILE: u8 = 1;
/// Source kind byte: the key lives in a PKCS#11 token.
const KIND_PKCS11: u8 = 2;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + IV_LEN;
const KEY_LEN: usize = 32;
/// A PIN file longer than this is not a PIN file (and is not read into memory whole).
const MAX_PIN_LEN: u64 = 256;
/// Label of the token's key object unless `--pkcs11-key-label` says otherwise.
pub const DEFAULT_KEY_LABEL: &str = "coffer-vault-master";

/// Where the master key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    /// A 32-byte random key in a file of mode 0600 (development).
    File(PathBuf),
    /// A non-extractable AES-256 key in a PKCS#11 token.
    Pkcs11(Pkcs11Config),
}

/// How to reach the token's key. Holds the PIN file's path, never the PIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The token's PKCS#11 module (SoftHSM2: `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The slot id holding the token.
    pub slot: u64,
    /// A file holding the user PIN (one trailing newline is ignored), mode 0600.
    pub pin_file: PathBuf,
    /// CKA_LABEL of the key object.
    pub label: String,
}

/// Master key flags shared by `coffer-vault init` and `coffer-vault core`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct MasterKeyArgs {
    /// File holding the 32-byte master key that seals the core's key file (development;
    /// made by `init`, mode 0600). Defaults to a file in the core's data directory.
    #[arg(long, value_name = "PATH", conflicts_with = "pkcs11_module")]
    pub master_key_file: Option<PathBuf>,
    /// PKCS#11 module of the HSM holding the master key instead of a file, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so. `init` makes a non-extractable AES-256 key in
    /// the token; the core's keys are then sealed and opened inside the token.
    #[arg(
        long,
        value_name = "PATH",
        requires_all = ["pkcs11_slot", "pkcs11_pin_file"]
    )]
    pub pkcs11_module: Option<PathBuf>,
    /// Slot id of the token (`softhsm2-util --show-slots`, `pkcs11-tool -L`).
    #[arg(long, value_name = "N", requires = "pkcs11_module")]
    pub pkcs11_slot: Option<u64>,
    /// File holding the token's user PIN (mode 0600; one trailing newline is ignored).
    #[arg(long, value_name = "PATH", requires = "pkcs11_module")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// Label of the master key object in the token.
    #[arg(
        long,
        value_name = "LABEL",
        default_value = DEFAULT_KEY_LABEL,
        requires = "pkcs11_module"
    )]
    pub pkcs11_key_label: String,
}

impl MasterKeyArgs {
    /// Whether any flag names a master key (a host with `--core` takes none).
    pub fn given(&self) -> bool {
        self.master_key_file.is_some() || self.pkcs11_module.is_some()
    }

    /// The source these flags name; `default_file` when no flag names one.
    pub fn source(&self, default_file: &Path) -> MasterKeySource {
        match (&self.pkcs11_module, self.pkcs11_slot, &self.pkcs11_pin_file) {
            (Some(module), Some(slot), Some(pin_file)) => MasterKeySource::Pkcs11(Pkcs11Config {
                module: module.clone(),
                slot,
                pin_file: pin_file.clone(),
                label: if self.pkcs11_key_label.is_empty() {
                    DEFAULT_KEY_LABEL.to_owned()
                } else {
                    self.pkcs11_key_label.clone()
                },
            }),
            // clap's `requires` makes a module without slot and PIN file unreachable.
            _ => MasterKeySource::File(
                self.master_key_file
                    .clone()
                    .unwrap_or_else(|| default_file.to_path_buf()),
            ),
        }
    }
}

/// Master key errors. None carries key material or the PIN.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    /// `init` over an existing master key file.
    #[error(
        "master key file {path} already exists; refusing to replace the key that may seal an existing core (pass another --master-key-file for a new vault)"
    )]
    FileExists {
        /// The existing file.
        path: PathBuf,
    },
    /// No master key file.
    #[error(
        "no master key file at {path}; run `coffer-vault init` first, or pass the --master-key-file or --pkcs11-* flags init was run with"
    )]
    FileMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A secret file (master key or PIN) others can read.
    #[error("{path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The master key file is not 32 bytes.
    #[error("master key file {path} is not a 32-byte key; it is not a Coffer master key file")]
    FileMalformed {
        /// The file.
        path: PathBuf,
    },
    /// The PIN file is empty or too long to be a PIN.
    #[error("PIN file {path} {problem}; it must hold the token's user PIN")]
    PinFileInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// I/O on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The PKCS#11 module cannot be loaded or initialised.
    #[error(
        "cannot load PKCS#11 module {module}: {reason}; check --pkcs11-module (SoftHSM2's is /usr/lib/softhsm/libsofthsm2.so)"
    )]
    ModuleLoad {
        /// The module path.
        module: PathBuf,
        /// The loader's or module's message.
        reason: String,
    },
    /// No token in that slot.
    #[error(
        "no PKCS#11 token in slot {slot}; slots with a token: {available}; check --pkcs11-slot"
    )]
    NoSuchSlot {
        /// The slot asked for.
        slot: u64,
        /// Slots that have a token, with their labels.
        available: String,
    },
    /// The token refused the PIN.
    #[error(
        "the token in slot {slot} refused the PIN in {pin_file}; fix the PIN file (the token locks its PIN after a few wrong tries)"
    )]
    WrongPin {
        /// The slot.
        slot: u64,
        /// The PIN file.
        pin_file: PathBuf,
    },
    /// Too many wrong PINs.
    #[error(
        "the user PIN of the token in slot {slot} is locked after too many wrong tries; unlock it with the token's SO PIN"
    )]
    PinLocked {
        /// The slot.
        slot: u64,
    },
    /// `open` found no key object with the label.
    #[error(
        "no AES master key labelled \"{label}\" in the token in slot {slot}; run coffer-vault init with the same --pkcs11-* flags"
    )]
    KeyNotFound {
        /// The label.
        label: String,
        /// The slot.
        slot: u64,
    },
    /// `create` found a key object with the label already.
    #[error(
        "the token in slot {slot} already holds a key labelled \"{label}\"; refusing to make a second one (start the core with these flags to use it, or pass another --pkcs11-key-label)"
    )]
    KeyExists {
        /// The label.
        label: String,
        /// The slot.
        slot: u64,
    },
    /// Several key objects share the label, so which one sealed the key file is unknown.
    #[error(
        "{count} keys labelled \"{label}\" in the token in slot {slot}; give the master key a label of its own"
    )]
    KeyAmbiguous {
        /// The label.
        label: String,
        /// The slot.
        slot: u64,
        /// How many.
        count: usize,
    },
    /// The key object is, or once was, extractable or not sensitive.
    #[error(
        "the key labelled \"{label}\" in slot {slot} is or was extractable (CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE), so a copy may exist outside the token; refusing it as master key (make one with coffer-vault init)"
    )]
    KeyExtractable {
        /// The label.
        label: String,
        /// The slot.
        slot: u64,
    },
    /// Any other PKCS#11 failure.
    #[error("PKCS#11 {op} failed: {source}")]
    Token {
        /// What was being done.
        op: &'static str,
        /// The token's answer.
        source: CkError,
    },
    /// More than AES-GCM can seal under one IV (64 GiB).
    #[error("the data to seal is larger than AES-GCM allows")]
    TooLarge,
    /// Not a sealed blob.
    #[error("the sealed key file is truncated or not a sealed key file")]
    SealedMalformed,
    /// A sealed blob of another version.
    #[error("the sealed key file has version {version}; this coffer-vault reads version 1")]
    SealedVersion {
        /// The version byte found.
        version: u8,
    },
    /// Sealed by another kind of master key.
    #[error(
        "the key file was sealed by a {sealed} master key, but this master key is a {have} one; pass the master key flags coffer-vault init was run with"
    )]
    WrongSource {
        /// The kind in the blob.
        sealed: &'static str,
        /// The kind of this key.
        have: &'static str,
    },
    /// Authentication failed.
    #[error(
        "the sealed key file does not open under this master key: it was sealed by another master key (check the master key flags) or it was altered"
    )]
    Unauthentic,
}

/// An opened master key. Its `Debug` shows only where the key is.
pub struct MasterKey {
    inner: Inner,
}

enum Inner {
    // Boxed: ring's expanded key schedule is several times the size of the other arm.
    File(Box<LessSafeKey>),
    Pkcs11 {
        // C_Login holds for the application while one of its sessions stays open, so the
        // session lives as long as the key; `Session` is not `Sync`, hence the mutex.
        session: Mutex<Session>,
        key: ObjectHandle,
        slot: u64,
    },
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::File(_) => f.write_str("MasterKey(file)"),
            Inner::Pkcs11 { slot, .. } => write!(f, "MasterKey(pkcs11, slot {slot})"),
        }
    }
}

impl MasterKey {
    /// Makes a new master key (`init`): a new key file, or a new key object in the token.
    /// Refuses to replace an existing one.
    pub fn create(src: &MasterKeySource) -> Result<Self, MasterKeyError> {
        match src {
            MasterKeySource::File(path) => create_file(path),
            MasterKeySource::Pkcs11(cfg) => Pkcs11Login::new(cfg)?.create(),
        }
    }

    /// Finds the existing master key (core start).
    pub fn open(src: &MasterKeySource) -> Result<Self, MasterKeyError> {
        match src {
            MasterKeySource::File(path) => open_file(path),
            MasterKeySource::Pkcs11(cfg) => Pkcs11Login::new(cfg)?.open(),
        }
    }

    /// Seals `plaintext` bound to `aad` (layout in the module comment).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let mut iv = [0u8; IV_LEN];
        OsRng.fill_bytes(&mut iv);
        let header = [SEALED_VERSION, self.kind()];
        let full_aad = [header.as_slice(), aad].concat();
        let (iv, body) = match &self.inner {
            Inner::File(key) => {
                let mut body = plaintext.to_vec();
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(&full_aad),
                    &mut body,
                )
                .map_err(|_| MasterKeyError::TooLarge)?;
                (iv, body)
            }
            Inner::Pkcs11 { session, key, .. } => {
                let session = lock(session);
                let body = {
                    let params = gcm(&mut iv, &full_aad)?;
                    session
                        .encrypt(&Mechanism::AesGcm(params), *key, plaintext)
                        .map_err(token("C_Encrypt"))?
                };
                // A token that makes its own IVs (FIPS mode) writes it back into `iv`.
                (iv, body)
            }
        };
        if body.len() != plaintext.len() + TAG_LEN {
            return Err(MasterKeyError::Token {
                op: "C_Encrypt",
                source: CkError::InvalidValue,
            });
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a blob from [`MasterKey::seal`] with the same `aad`.
    pub fn open_sealed(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(MasterKeyError::SealedMalformed);
        }
        let (header, rest) = sealed.split_at(2);
        let (iv, body) = rest.split_at(IV_LEN);
        if header[0] != SEALED_VERSION {
            return Err(MasterKeyError::SealedVersion { version: header[0] });
        }
        if header[1] != self.kind() {
            return Err(MasterKeyError::WrongSource {
                sealed: kind_name(header[1]),
                have: kind_name(self.kind()),
            });
        }
        let full_aad = [header, aad].concat();
        let mut iv: [u8; IV_LEN] = iv.try_into().map_err(|_| MasterKeyError::SealedMalformed)?;
        match &self.inner {
            Inner::File(key) => {
                let mut buf = Zeroizing::new(body.to_vec());
                let len = key
                    .open_in_place(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&full_aad),
                        &mut buf,
                    )
                    .map_err(|_| MasterKeyError::Unauthentic)?
                    .len();
                buf.truncate(len);
                Ok(buf)
            }
            Inner::Pkcs11 { session, key, .. } => {
                let session = lock(session);
                let params = gcm(&mut iv, &full_aad)?;
                match session.decrypt(&Mechanism::AesGcm(params), *key, body) {
                    Ok(plain) => Ok(Zeroizing::new(plain)),
                    // SoftHSM2 answers a wrong tag with CKR_GENERAL_ERROR, other tokens
                    // with CKR_ENCRYPTED_DATA_INVALID; the blob was checked for shape above.
                    Err(CkError::Pkcs11(
                        RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::GeneralError,
                        _,
                    )) => Err(MasterKeyError::Unauthentic),
                    Err(e) => Err(token("C_Decrypt")(e)),
                }
            }
        }
    }

    fn kind(&self) -> u8 {
        match self.inner {
            Inner::File(_) => KIND_FILE,
            Inner::Pkcs11 { .. } => KIND_PKCS11,
        }
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_FILE => "file",
        KIND_PKCS11 => "PKCS#11",
        _ => "unknown",
    }
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    // A panic elsewhere while holding the lock leaves the session as usable as before.
    session.lock().unwrap_or_else(|p| p.into_inner())
}

fn gcm<'a>(iv: &'a mut [u8; IV_LEN], aad: &'a [u8]) -> Result<GcmParams<'a>, MasterKeyError> {
    GcmParams::new(iv, aad, (TAG_LEN as u64 * 8).into()).map_err(token("CKM_AES_GCM parameters"))
}

fn token(op: &'static str) -> impl Fn(CkError) -> MasterKeyError {
    move |source| MasterKeyError::Token { op, source }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MasterKeyError {
    let path = path.to_path_buf();
    move |source| MasterKeyError::Io { path, source }
}

/// Opens a secret file, refusing one that group or others can read.
fn open_secret(path: &Path) -> Result<(File, u64), MasterKeyError> {
    let f = File::open(path).map_err(io(path))?;
    let meta = f.metadata().map_err(io(path))?;
    if meta.mode() & 0o077 != 0 {
        return Err(MasterKeyError::Permissions {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o777,
        });
    }
    Ok((f, meta.len()))
}

fn file_key(bytes: &[u8; KEY_LEN]) -> Box<LessSafeKey> {
    // Invariant: AES_256_GCM takes any 32-byte key, and KEY_LEN is 32.
    Box::new(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key"),
    ))
}

fn create_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(key.as_mut());
    let mut f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(MasterKeyError::FileExists {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io(path)(e)),
    };
    f.write_all(key.as_ref()).map_err(io(path))?;
    // The key file sealed by this key is written next; a power cut must not leave it
    // sealed under a key that never reached the disk.
    f.sync_all().map_err(io(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Makes the new directory entry itself durable.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(MasterKey {
        inner: Inner::File(file_key(&key)),
    })
}

fn open_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
    let (mut f, len) = match open_secret(path) {
        Err(MasterKeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(MasterKeyError::FileMissing {
                path: path.to_path_buf(),
            });
        }
        other => other?,
    };
    let malformed = || MasterKeyError::FileMalformed {
        path: path.to_path_buf(),
    };
    if len != KEY_LEN as u64 {
        return Err(malformed());
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    f.read_exact(key.as_mut()).map_err(io(path))?;
    // The file may have grown since the length check.
    if f.read(&mut [0u8; 1]).map_err(io(path))? != 0 {
        return Err(malformed());
    }
    Ok(MasterKey {
        inner: Inner::File(file_key(&key)),
    })
}

/// Reads the PIN: at most [`MAX_PIN_LEN`] bytes, one trailing newline dropped.
fn read_pin(path: &Path) -> Result<RawAuthPin, MasterKeyError> {
    let (f, len) = open_secret(path)?;
    let invalid = |problem| MasterKeyError::PinFileInvalid {
        path: path.to_path_buf(),
        problem,
    };
    if len > MAX_PIN_LEN {
        return Err(invalid("is longer than 256 bytes"));
    }
    // Sized up front so that no reallocation leaves a copy of the PIN behind unzeroized.
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_PIN_LEN as usize + 1));
    f.take(MAX_PIN_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(io(path))?;
    if buf.len() as u64 > MAX_PIN_LEN {
        return Err(invalid("is longer than 256 bytes"));
    }
    let mut pin: &[u8] = &buf;
    if let Some(p) = pin.strip_suffix(b"\n") {
        pin = p.strip_suffix(b"\r").unwrap_or(p);
    }
    if pin.is_empty() {
        return Err(invalid("is empty"));
    }
    // SecretBox zeroizes the copy on drop.
    Ok(RawAuthPin::new(Box::new(pin.to_vec())))
}

/// The process's PKCS#11 modules. C_Initialize may run once per process, and C_Finalize
/// would end every session of the module, so each module is loaded once and kept.
fn module(path: &Path) -> Result<Pkcs11, MasterKeyError> {
    static MODULES: OnceLock<Mutex<Vec<(PathBuf, Pkcs11)>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, m)) = modules.iter().find(|(p, _)| p == path) {
        return Ok(m.clone());
    }
    let load_err = |e: CkError| MasterKeyError::ModuleLoad {
        module: path.to_path_buf(),
        reason: e.to_string(),
    };
    let m = Pkcs11::new(path).map_err(load_err)?;
    match m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Loaded under another path name by this process already: same library, usable.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(load_err(e)),
    }
    modules.push((path.to_path_buf(), m.clone()));
    Ok(m)
}

/// A logged-in read-write session on the configured slot.
struct Pkcs11Login<'a> {
    cfg: &'a Pkcs11Config,
    session: Session,
}

impl<'a> Pkcs11Login<'a> {
    fn new(cfg: &'a Pkcs11Config) -> Result<Self, MasterKeyError> {
        let pin = read_pin(&cfg.pin_file)?;
        let ctx = module(&cfg.module)?;
        let no_slot = || MasterKeyError::NoSuchSlot {
            slot: cfg.slot,
            available: available_slots(&ctx),
        };
        let slot = Slot::try_from(cfg.slot).map_err(|_| no_slot())?;
        let session = match ctx.open_rw_session(slot) {
            Ok(s) => s,
            Err(CkError::Pkcs11(RvError::SlotIdInvalid | RvError::TokenNotPresent, _)) => {
                return Err(no_slot());
            }
            Err(e) => return Err(token("C_OpenSession")(e)),
        };
        match session.login_with_raw(UserType::User, &pin) {
            // PKCS#11 logins belong to the application, not the session: another open
            // MasterKey of this process on the same token has logged in already.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                return Err(MasterKeyError::WrongPin {
                    slot: cfg.slot,
                    pin_file: cfg.pin_file.clone(),
                });
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(MasterKeyError::PinLocked { slot: cfg.slot });
            }
            Err(e) => return Err(token("C_Login")(e)),
        }
        Ok(Pkcs11Login { cfg, session })
    }

    fn find(&self) -> Result<Vec<ObjectHandle>, MasterKeyError> {
        self.session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(self.cfg.label.as_bytes().to_vec()),
            ])
            .map_err(token("C_FindObjects"))
    }

    fn create(self) -> Result<MasterKey, MasterKeyError> {
        if !self.find()?.is_empty() {
            return Err(MasterKeyError::KeyExists {
                label: self.cfg.label.clone(),
                slot: self.cfg.slot,
            });
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen((KEY_LEN as u64).into()),
            Attribute::Label(self.cfg.label.as_bytes().to_vec()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
        ];
        let key = self
            .session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(token("C_GenerateKey"))?;
        Ok(self.into_key(key))
    }

    fn open(self) -> Result<MasterKey, MasterKeyError> {
        let found = self.find()?;
        let key = match found.as_slice() {
            [key] => *key,
            [] => {
                return Err(MasterKeyError::KeyNotFound {
                    label: self.cfg.label.clone(),
                    slot: self.cfg.slot,
                });
            }
            many => {
                return Err(MasterKeyError::KeyAmbiguous {
                    label: self.cfg.label.clone(),
                    slot: self.cfg.slot,
                    count: many.len(),
                });
            }
        };
        let want = [
            AttributeType::KeyType,
            AttributeType::Sensitive,
            AttributeType::AlwaysSensitive,
            AttributeType::Extractable,
            AttributeType::NeverExtractable,
        ];
        let attrs = self
            .session
            .get_attributes(key, &want)
            .map_err(token("C_GetAttributeValue"))?;
        let has = |a: &Attribute| attrs.contains(a);
        let sound = has(&Attribute::KeyType(KeyType::AES))
            && has(&Attribute::Sensitive(true))
            && has(&Attribute::AlwaysSensitive(true))
            && has(&Attribute::Extractable(false))
            && has(&Attribute::NeverExtractable(true));
        if !sound {
            return Err(MasterKeyError::KeyExtractable {
                label: self.cfg.label.clone(),
                slot: self.cfg.slot,
            });
        }
        Ok(self.into_key(key))
    }

    fn into_key(self, key: ObjectHandle) -> MasterKey {
        MasterKey {
            inner: Inner::Pkcs11 {
                session: Mutex::new(self.session),
                key,
                slot: self.cfg.slot,
            },
        }
    }
}

/// "1 (coffer), 2 (other)" for the no-such-slot error; token labels are not secret.
fn available_slots(ctx: &Pkcs11) -> String {
    let slots = ctx.get_slots_with_token().unwrap_or_default();
    let named: Vec<String> = slots
        .iter()
        .map(|s| match ctx.get_token_info(*s) {
            Ok(info) => format!("{} ({})", s.id(), info.label().trim_end()),
            Err(_) => s.id().to_string(),
        })
        .collect();
    if named.is_empty() {
        "none".to_owned()
    } else {
        named.join(", ")
    }
}
