//! [`Coffer`]: one device's setup, and every operation an app offers its users.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use coffer_client::{
    BackupOptions, ErrorCode, Head, InitOptions, KsfProfile, Protection, RecoveryKey,
    RestoreOptions,
};
use zeroize::Zeroizing;

use crate::error::{CofferError, Ffi, Result};
use crate::progress::{Bridge, CancelHandle, ProgressListener};
use crate::types::{
    BackupEstimate, BackupReport, DeviceOptions, DisableReport, Overwrite, RestoreReport,
    RotateReport, SnapshotInfo, Status, VaultAccess, VaultState,
};

/// One device's Coffer setup: made by `create_*` (a new key), `connect_*` (a new device)
/// or `open` (every later start of the app).
#[derive(uniffi::Object)]
pub struct Coffer {
    /// None after `disable`: the setup is gone and every later call says so.
    inner: RwLock<Option<coffer_client::Coffer>>,
}

impl std::fmt::Debug for Coffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coffer")
    }
}

/// The vault's view of an account: call it before asking for a password, to tell the user
/// how many guesses are left (and that the next wrong one may be the last).
#[uniffi::export]
pub fn vault_status(vault: VaultAccess) -> Result<VaultState> {
    let st = coffer_client::Coffer::vault_status(&access(vault)?).ffi()?;
    Ok(VaultState {
        exists: st.exists,
        guesses_left: st.guesses_left,
        max_guesses: st.max_guesses,
        destroyed: st.destroyed,
    })
}

#[uniffi::export]
impl Coffer {
    /// A new random key for a new repository, kept in the vault behind `password` (at
    /// least 6 characters, UTF-8 bytes). Fails with `already_configured` if the config
    /// folder holds a setup, `repository_exists`, or `vault_error` when the account
    /// already has a key (connect instead).
    #[uniffi::constructor]
    pub fn create_with_password(
        options: DeviceOptions,
        vault: VaultAccess,
        password: Vec<u8>,
    ) -> Result<Arc<Self>> {
        let password = Zeroizing::new(password);
        let access = access(vault)?;
        Self::create(options, Protection::Vault { access, password })
    }

    /// A new random key for a new repository, without a vault: show the user
    /// `recovery_key(null)` to write down; it is the only way back on a new device.
    #[uniffi::constructor]
    pub fn create_recovery_key_only(options: DeviceOptions) -> Result<Arc<Self>> {
        Self::create(options, Protection::RecoveryKeyOnly)
    }

    /// A new device: recovers the key from the vault with the password. A wrong password
    /// spends a guess and fails with `wrong_password` (`guesses_left()` says how many
    /// remain); after the last one the key is destroyed (`key_destroyed`). Nothing is
    /// written on the device unless the key opens the repository.
    #[uniffi::constructor]
    pub fn connect_with_password(
        options: DeviceOptions,
        vault: VaultAccess,
        password: Vec<u8>,
    ) -> Result<Arc<Self>> {
        let password = Zeroizing::new(password);
        let access = access(vault)?;
        let profile = ksf_profile(&options)?;
        let c = coffer_client::Coffer::connect_with_password(
            Path::new(&options.config_dir),
            &options.repo,
            access,
            &password,
            profile,
            options.key_store.into(),
        )
        .ffi()?;
        Ok(Self::wrap(c))
    }

    /// A new device from the recovery key the user wrote down (UTF-8 bytes; any case,
    /// spaces and dashes ignored). `vault`, when given, is remembered so that
    /// `change_password` can later protect the key with a password again. Fails with
    /// `invalid_recovery_key` (malformed) or `wrong_recovery_key` (does not open the
    /// repository).
    #[uniffi::constructor]
    pub fn connect_with_recovery_key(
        options: DeviceOptions,
        recovery_key: Vec<u8>,
        vault: Option<VaultAccess>,
    ) -> Result<Arc<Self>> {
        let key = parse_recovery_key(recovery_key)?;
        let access = vault.map(access).transpose()?;
        let profile = ksf_profile(&options)?;
        let c = coffer_client::Coffer::connect_with_recovery_key(
            Path::new(&options.config_dir),
            &options.repo,
            &key,
            access,
            profile,
            options.key_store.into(),
        )
        .ffi()?;
        Ok(Self::wrap(c))
    }

    /// This device's existing setup (every start of the app after the first). `token`:
    /// a fresh vault token (UTF-8 bytes) for the operations that reach the vault; None
    /// for recovery-key-only setups or when only local operations follow.
    #[uniffi::constructor]
    pub fn open(config_dir: String, token: Option<Vec<u8>>) -> Result<Arc<Self>> {
        let token = token.map(utf8_secret).transpose()?;
        let c = coffer_client::Coffer::load(Path::new(&config_dir), token).ffi()?;
        Ok(Self::wrap(c))
    }

    /// Backs up `paths` (folders or files) into a new snapshot. Only what changed since
    /// the last snapshot is read and uploaded. `progress` receives events from worker
    /// threads; `cancel` stops it (error `cancelled`; the next backup resumes without
    /// uploading finished packs again). With a vault and a token, the new head is also
    /// kept in the vault (see `BackupReport.vault_head_kept`).
    pub fn backup(
        &self,
        paths: Vec<String>,
        progress: Option<Box<dyn ProgressListener>>,
        cancel: Option<Arc<CancelHandle>>,
    ) -> Result<BackupReport> {
        self.with(|c| {
            let opts = BackupOptions {
                progress: progress.map(|p| Arc::new(Bridge(p)) as _),
                cancel: cancel.map(|h| h.flag()),
                host: None,
            };
            let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            let s = c.backup(&paths, &opts)?;
            let head = Head {
                seq: s.seq,
                id: s.snapshot_id.clone(),
            };
            // The snapshot is saved whether or not the vault takes its head.
            let kept = c
                .mirror_head(&head)
                .map_err(|e| e.code().as_str().to_string());
            Ok(BackupReport::new(s, kept))
        })
    }

    /// What a backup of `paths` would read and upload now, without reading any file's
    /// content or writing anything: an app can wait for Wi-Fi when `bytes_to_upload` is
    /// large. Refuses the paths `backup` refuses (one that does not exist).
    pub fn estimate_backup(&self, paths: Vec<String>) -> Result<BackupEstimate> {
        self.with(|c| {
            let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            Ok(c.estimate_backup(&paths)?.into())
        })
    }

    /// Restores `snapshot` (`"latest"`, an id or a unique prefix) into `target`; `paths`
    /// selects entries as the snapshot names them (empty: everything). Never writes
    /// outside `target`; every byte written is verified. `cancel` stops it between files
    /// or chunks (error `cancelled`): the files finished stay complete, the one being
    /// written is removed, and the same restore run again finishes the rest.
    pub fn restore(
        &self,
        snapshot: String,
        target: String,
        paths: Vec<String>,
        overwrite: Overwrite,
        progress: Option<Box<dyn ProgressListener>>,
        cancel: Option<Arc<CancelHandle>>,
    ) -> Result<RestoreReport> {
        self.with(|c| {
            let opts = RestoreOptions {
                progress: progress.map(|p| Arc::new(Bridge(p)) as _),
                overwrite: overwrite.into(),
                preserve_setuid: false,
                cancel: cancel.map(|h| h.flag()),
            };
            let include: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            Ok(c.restore(&snapshot, Path::new(&target), &include, &opts)?
                .into())
        })
    }

    /// The readable snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        self.with(|c| Ok(c.snapshots()?.into_iter().map(Into::into).collect()))
    }

    /// Repository, vault (guesses left, stale), key store and the last backup; what
    /// could not be reached is reported inside.
    pub fn status(&self) -> Result<Status> {
        self.with(|c| Ok(c.status().into()))
    }

    /// Protects the key with a new password (the backups are not touched; the old
    /// password stops working). `current_password` is needed only after an interrupted
    /// key rotation (error `previous_key_in_vault`).
    pub fn change_password(
        &self,
        new_password: Vec<u8>,
        current_password: Option<Vec<u8>>,
    ) -> Result<()> {
        let new_password = Zeroizing::new(new_password);
        let current = current_password.map(Zeroizing::new);
        self.with_mut(|c| c.change_password(&new_password, current.as_ref().map(|p| &p[..])))
    }

    /// The recovery key as UTF-8 bytes (16 groups of 4 hex digits joined by `-`): show
    /// it, then wipe it. With a vault, `password` is the current password, checked by
    /// the vault (a wrong one spends a guess).
    pub fn recovery_key(&self, password: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let password = password.map(Zeroizing::new);
        self.with(|c| {
            let k = c.recovery_key(password.as_ref().map(|p| &p[..]))?;
            Ok(display(&k))
        })
    }

    /// A new key for data written from now on (old snapshots still restore). With a
    /// vault, `password` (the current one) is registered again with the new key. Show
    /// the new recovery key: the old one no longer opens the repository.
    pub fn rotate_key(&self, password: Option<Vec<u8>>) -> Result<RotateReport> {
        let password = password.map(Zeroizing::new);
        self.with_mut(|c| {
            let out = c.rotate_key(password.as_ref().map(|p| &p[..]))?;
            Ok(RotateReport {
                recovery_key: display(&out.recovery_key),
                vault_updated: out.vault_updated,
                vault_head_kept: out.vault_head_kept,
            })
        })
    }

    /// Turns backups off: deletes the vault record, with `delete_backups` the
    /// repository, then the key and the configuration. Every later call on this object
    /// fails with `config_missing`. If it fails (vault unreachable) nothing local is
    /// lost: open the setup again with a fresh token and retry.
    pub fn disable(&self, delete_backups: bool) -> Result<DisableReport> {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let c = guard.take().ok_or_else(gone)?;
        let dir = c.dir().to_path_buf();
        match c.disable(delete_backups) {
            Ok(r) => Ok(DisableReport {
                vault_record_deleted: r.vault_record_deleted,
                backups_deleted: r.backups_deleted,
            }),
            Err(e) => {
                // The setup is still there (the vault was unreachable, say): keep it usable
                // for local calls. The SDK consumed the token with the setup, so a retry
                // that reaches the vault needs `Coffer.open(dir, token)` first.
                *guard = coffer_client::Coffer::load(&dir, None).ok();
                Err(Arc::new(e.into()))
            }
        }
    }
}

impl Coffer {
    fn create(options: DeviceOptions, protection: Protection) -> Result<Arc<Self>> {
        let ksf_profile = ksf_profile(&options)?;
        let c = coffer_client::Coffer::init(
            Path::new(&options.config_dir),
            InitOptions {
                repo: options.repo,
                protection,
                ksf_profile,
                key_store: options.key_store.into(),
            },
        )
        .ffi()?;
        Ok(Self::wrap(c))
    }

    fn wrap(c: coffer_client::Coffer) -> Arc<Self> {
        Arc::new(Coffer {
            inner: RwLock::new(Some(c)),
        })
    }

    /// Runs `f` on the setup. Several run at once (a status while a backup runs); a
    /// lock poisoned by a panic still holds a setup whose state lives on disk, so it is
    /// used as is.
    fn with<T>(
        &self,
        f: impl FnOnce(&coffer_client::Coffer) -> std::result::Result<T, coffer_client::Error>,
    ) -> Result<T> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        f(guard.as_ref().ok_or_else(gone)?).ffi()
    }

    /// Runs `f` alone (key and password changes).
    fn with_mut<T>(
        &self,
        f: impl FnOnce(&mut coffer_client::Coffer) -> std::result::Result<T, coffer_client::Error>,
    ) -> Result<T> {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        f(guard.as_mut().ok_or_else(gone)?).ffi()
    }
}

fn gone() -> Arc<CofferError> {
    CofferError::new(
        ErrorCode::ConfigMissing,
        "this setup was disabled; create or connect a new one",
    )
}

fn access(v: VaultAccess) -> Result<coffer_client::VaultAccess> {
    let token = utf8_secret(v.token)?;
    coffer_client::VaultAccess::for_token(&v.url, v.account.as_deref(), token, None).ffi()
}

/// Takes ownership of secret bytes as text without copying them (so the only copy is
/// the one wiped on drop).
fn utf8_secret(bytes: Vec<u8>) -> Result<Zeroizing<String>> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(CofferError::new(
                ErrorCode::Usage,
                "the token is not UTF-8 text",
            ))
        }
    }
}

fn parse_recovery_key(bytes: Vec<u8>) -> Result<RecoveryKey> {
    let text = Zeroizing::new(bytes);
    // Not UTF-8 cannot be hex digits: report it as the parser reports a bad character,
    // without echoing the input.
    let text = std::str::from_utf8(&text).map_err(|_| {
        CofferError::new(
            ErrorCode::InvalidRecoveryKey,
            "the recovery key contains a byte that is not text; only 0-9, a-f, spaces and dashes are allowed",
        )
    })?;
    RecoveryKey::parse(text)
        .map_err(coffer_client::Error::from)
        .ffi()
}

fn display(k: &RecoveryKey) -> Vec<u8> {
    // `into_bytes` moves the buffer, so the `Zeroizing` copy is the only other one.
    let mut shown = k.display_grouped('-');
    std::mem::take(&mut *shown).into_bytes()
}

fn ksf_profile(o: &DeviceOptions) -> Result<KsfProfile> {
    match &o.ksf_profile {
        None => Ok(KsfProfile::default()),
        Some(name) => KsfProfile::from_name(name).ok_or_else(|| {
            CofferError::new(
                ErrorCode::Usage,
                format!("unknown KSF profile {name:?}; leave it unset for the default"),
            )
        }),
    }
}
