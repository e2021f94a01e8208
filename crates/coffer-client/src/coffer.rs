//! The [`Coffer`] facade: one device's setup and every user-level operation.

use std::path::{Path, PathBuf};

use coffer_backup::{
    BackupEstimate, BackupKey, BackupOptions, BackupSummary, CheckReport, DamagedSnapshot,
    DiffEntry, ForgetReport, Head, KeepPolicy, LsEntry, Progress, PruneReport, Repository,
    RestoreOptions, RestoreSummary, SnapshotInfo, UnlockReport,
};
use coffer_vault_client::{VaultClient, VaultError, VaultHead, VaultStatus};
use coffer_vault_proto::KsfProfile;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::Error;
use crate::atomic::remove_durable;
use crate::config::{CONFIG_VERSION, Config, VaultConfig};
use crate::heads::Heads;
use crate::key_store::{KeyStore, KeyStoreKind, KeyStorePreference};
use crate::recovery_key::RecoveryKey;
use crate::vault::{VaultAccess, read_token_file};

/// How the key of a new setup is protected.
#[derive(Debug)]
pub enum Protection {
    /// Registered with the vault behind a password.
    Vault {
        /// The vault and account.
        access: VaultAccess,
        /// The password (the caller got it from a prompt or stdin).
        password: Zeroizing<Vec<u8>>,
    },
    /// No vault: the user writes the recovery key down.
    RecoveryKeyOnly,
}

/// Arguments of [`Coffer::init`].
#[derive(Debug)]
pub struct InitOptions {
    /// Repository location.
    pub repo: String,
    /// Vault or recovery key only.
    pub protection: Protection,
    /// Argon2id profile for the password (the default outside tests).
    pub ksf_profile: KsfProfile,
    /// Where to keep the key on this device.
    pub key_store: KeyStorePreference,
}

/// The result of [`Coffer::rotate_key`].
#[derive(Debug)]
pub struct RotateOutcome {
    /// The new key, as a recovery key (the old recovery key no longer opens the repository).
    pub recovery_key: RecoveryKey,
    /// Whether the vault now holds the new key.
    pub vault_updated: bool,
    /// Whether the repository head the vault keeps was sealed again under the new key
    /// (false: no vault, no head kept, or the vault did not take it; the next backup
    /// then keeps a new one, and until it does a new device cannot connect).
    pub vault_head_kept: bool,
}

/// The result of [`Coffer::disable`].
#[derive(Debug, Clone, Serialize)]
pub struct DisableReport {
    /// A vault record was deleted (false: recovery-key-only, or none was left).
    pub vault_record_deleted: bool,
    /// The repository was deleted.
    pub backups_deleted: bool,
    /// The config directory the configuration was removed from.
    pub config_dir: PathBuf,
    /// The store the key was removed from (`"os-keyring"` or `"file"`).
    pub key_store: KeyStoreKind,
}

/// One device's Coffer setup: configuration, backup key and (optionally) vault token.
pub struct Coffer {
    dir: PathBuf,
    config: Config,
    keys: KeyStore,
    key: BackupKey,
    token: Option<Zeroizing<String>>,
    allow_older: bool,
    /// Damaged snapshots the last repository operation skipped.
    damaged: std::sync::Mutex<Vec<DamagedSnapshot>>,
}

/// The minimum password length, in characters. The vault's 10-guess limit protects a
/// password only if it is not among the first guesses of every attacker's list; WhatsApp
/// asks for at least 6 characters too.
pub const MIN_PASSWORD_CHARS: usize = 6;

/// Refuses a new password shorter than [`MIN_PASSWORD_CHARS`].
pub fn check_new_password(password: &[u8]) -> Result<(), Error> {
    let chars = std::str::from_utf8(password).map_or(password.len(), |s| s.chars().count());
    if chars < MIN_PASSWORD_CHARS {
        return Err(Error::PasswordTooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    Ok(())
}

/// A local path as an absolute path (the configuration must not depend on the directory
/// a later command runs in); URLs and `memory://` stay as given.
fn absolute_location(repo: &str) -> Result<String, Error> {
    if repo.contains("://") {
        return Ok(repo.to_string());
    }
    let abs = std::path::absolute(repo).map_err(|e| Error::io(repo, e))?;
    abs.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::ConfigInvalid {
            path: abs.clone(),
            detail: "the repository path is not UTF-8; use a UTF-8 path".into(),
        })
}

impl std::fmt::Debug for Coffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coffer")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Coffer {
    /// Sets up this device with a new random key and a new repository.
    ///
    /// Order: K is saved in the key store first (so a keyring that fails, with
    /// `--key-store os-keyring`, fails before anything else exists, and a repository is
    /// never created whose key is not kept), then the repository is created (it refuses
    /// an existing one, before the vault is touched), then the configuration, then the
    /// password is registered. If registration fails the device still holds K and the
    /// configuration says the vault is stale; [`Coffer::change_password`] retries it.
    pub fn init(dir: &Path, mut opts: InitOptions) -> Result<Coffer, Error> {
        if let Protection::Vault { password, .. } = &opts.protection {
            check_new_password(password)?;
        }
        opts.repo = absolute_location(&opts.repo)?;
        ensure_not_configured(dir)?;
        if let Protection::Vault { access, .. } = &opts.protection {
            // Registering replaces a record: refuse to overwrite another device's key.
            let st = access.client()?.status()?;
            if st.exists {
                return Err(Error::AccountInUse {
                    account: access.account.clone(),
                });
            }
        }
        let key = BackupKey::generate();
        let keys = KeyStore::create(dir, opts.key_store, &key)?;
        Repository::init(&opts.repo, &key)?;
        let vault = match &opts.protection {
            Protection::Vault { access, .. } => Some(vault_config(access)),
            Protection::RecoveryKeyOnly => None,
        };
        let mut config = Config {
            version: CONFIG_VERSION,
            repo: opts.repo.clone(),
            vault_stale: vault.is_some(),
            vault,
            key_store: keys.kind(),
            keyring_user: keys.keyring_user().map(str::to_string),
            ksf_profile: opts.ksf_profile.name().to_string(),
        };
        config.save(dir)?;
        let token = match &opts.protection {
            Protection::Vault { access, password } => {
                access
                    .client()
                    .and_then(|c| Ok(c.register(password, key.as_bytes(), opts.ksf_profile)?))
                    .map_err(Error::pending)?;
                config.vault_stale = false;
                config.save(dir)?;
                Some(access.token.clone())
            }
            Protection::RecoveryKeyOnly => None,
        };
        Ok(Coffer {
            dir: dir.to_path_buf(),
            config,
            keys,
            key,
            token,
            allow_older: false,
            damaged: Default::default(),
        })
    }

    /// The vault's view of an account: whether it holds a key and how many guesses are left.
    /// Call it before prompting so the last allowed guess can be announced.
    pub fn vault_status(access: &VaultAccess) -> Result<VaultStatus, Error> {
        Ok(access.client()?.status()?)
    }

    /// Sets up a new device from the vault: recovers K with the password (spending a
    /// guess if it is wrong), checks it opens the repository, then saves it.
    pub fn connect_with_password(
        dir: &Path,
        repo: &str,
        access: VaultAccess,
        password: &[u8],
        ksf_profile: KsfProfile,
        key_store: KeyStorePreference,
    ) -> Result<Coffer, Error> {
        ensure_not_configured(dir)?;
        let client = access.client()?;
        let k = client.recover(password)?;
        let key = BackupKey::from_bytes(*k);
        Repository::open(repo, &key).map_err(|e| match e {
            coffer_backup::Error::WrongKey => Error::VaultKeyMismatch,
            other => other.into(),
        })?;
        // The right password on the very last guess still releases K, but that guess
        // already destroyed the record (the vault never keeps a spent record with K in
        // it). Put it back with the password just proven, so the account keeps its
        // password recovery; the token suffices over a destroyed record.
        if client.status()?.destroyed {
            client.register(password, key.as_bytes(), ksf_profile)?;
        }
        let coffer = Self::save_new(dir, repo, key, Some(access), ksf_profile, key_store)?;
        coffer.adopt_vault_head()?;
        Ok(coffer)
    }

    /// Sets up a new device from the recovery key. `access`, when given, is remembered so
    /// that `change_password` can register a password later.
    pub fn connect_with_recovery_key(
        dir: &Path,
        repo: &str,
        recovery_key: &RecoveryKey,
        access: Option<VaultAccess>,
        ksf_profile: KsfProfile,
        key_store: KeyStorePreference,
    ) -> Result<Coffer, Error> {
        ensure_not_configured(dir)?;
        let key = recovery_key.to_backup_key();
        Repository::open(repo, &key).map_err(|e| match e {
            coffer_backup::Error::WrongKey => Error::WrongRecoveryKey,
            other => other.into(),
        })?;
        let coffer = Self::save_new(dir, repo, key, access, ksf_profile, key_store)?;
        if coffer.config.vault.is_some() {
            coffer.adopt_vault_head()?;
        }
        Ok(coffer)
    }

    fn save_new(
        dir: &Path,
        repo: &str,
        key: BackupKey,
        access: Option<VaultAccess>,
        ksf_profile: KsfProfile,
        key_store: KeyStorePreference,
    ) -> Result<Coffer, Error> {
        // Key before configuration: a crash in between leaves no half-configured device
        // (load() needs config.json, which does not exist yet).
        let keys = KeyStore::create(dir, key_store, &key)?;
        let config = Config {
            version: CONFIG_VERSION,
            repo: absolute_location(repo)?,
            vault: access.as_ref().map(vault_config),
            key_store: keys.kind(),
            keyring_user: keys.keyring_user().map(str::to_string),
            ksf_profile: ksf_profile.name().to_string(),
            vault_stale: false,
        };
        config.save(dir)?;
        Ok(Coffer {
            dir: dir.to_path_buf(),
            config,
            keys,
            key,
            token: access.map(|a| a.token),
            allow_older: false,
            damaged: Default::default(),
        })
    }

    /// Loads this device's setup. `token` overrides the configured token file.
    pub fn load(dir: &Path, token: Option<Zeroizing<String>>) -> Result<Coffer, Error> {
        let config = Config::load(dir)?;
        let keys = KeyStore::for_config(dir, &config)?;
        let key = keys.load()?;
        Ok(Coffer {
            dir: dir.to_path_buf(),
            config,
            keys,
            key,
            token,
            allow_older: false,
            damaged: Default::default(),
        })
    }

    /// Lets operations proceed when the repository's head is older than the one this
    /// device saw (after the user checked why); the lower head is then remembered.
    pub fn set_allow_older(&mut self, allow: bool) {
        self.allow_older = allow;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key store holding K.
    pub fn key_store(&self) -> &KeyStore {
        &self.keys
    }

    /// The KSF profile passwords are registered with.
    pub fn ksf_profile(&self) -> KsfProfile {
        KsfProfile::from_name(&self.config.ksf_profile).unwrap_or_default()
    }

    /// Overrides the KSF profile for later registrations (and remembers it).
    pub fn set_ksf_profile(&mut self, profile: KsfProfile) -> Result<(), Error> {
        if self.config.ksf_profile != profile.name() {
            self.config.ksf_profile = profile.name().to_string();
            self.config.save(&self.dir)?;
        }
        Ok(())
    }

    /// A client for the configured vault; [`Error::NoVault`] for recovery-key-only setups.
    pub fn vault(&self) -> Result<VaultClient, Error> {
        self.vault_access()?.client()
    }

    fn vault_access(&self) -> Result<VaultAccess, Error> {
        let v = self.config.vault.as_ref().ok_or(Error::NoVault)?;
        let token = match (&self.token, &v.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => read_token_file(f)?,
            (None, None) => return Err(Error::TokenMissing),
        };
        // A token of another account would make the vault answer for that account (a
        // "destroyed key" where there is none): refuse before calling it.
        crate::vault::check_subject(&token, Some(&v.account))?;
        Ok(VaultAccess {
            url: v.url.clone(),
            account: v.account.clone(),
            token,
            token_file: v.token_file.clone(),
        })
    }

    /// Opens the repository with the device's key, finishing an interrupted rotation. The
    /// handle refuses a head older than the one this device remembers (see
    /// [`Coffer::known_head`]); call [`Coffer::remember_head`] after using it. Crate-only:
    /// the engine's handle is not a second door (every operation is a method here).
    pub(crate) fn repository(&self) -> Result<Repository, Error> {
        let repo = self.open_repository()?;
        let known = Heads::load(&self.dir)?.get(&repo.id()).cloned();
        repo.set_known_head(known, self.allow_older);
        Ok(repo)
    }

    /// The newest head this device has seen in its repository (None: none yet). An app
    /// can mirror it elsewhere (the vault) so that a new device can check it too.
    pub fn known_head(&self) -> Result<Option<Head>, Error> {
        let id = self.open_repository()?.id();
        Ok(Heads::load(&self.dir)?.get(&id).cloned())
    }

    /// Replaces the remembered head (e.g. with one mirrored from the vault on a new device).
    /// Later operations refuse a repository whose head is below it.
    pub fn set_known_head(&self, head: Option<Head>) -> Result<(), Error> {
        let id = self.open_repository()?.id();
        Heads::store(&self.dir, &id, head)
    }

    /// Remembers, durably, the newest head `repo` has seen if it is newer than the one
    /// remembered (with [`Coffer::set_allow_older`], even if it is older).
    pub(crate) fn remember_head(&self, repo: &Repository) -> Result<(), Error> {
        let Some(seen) = repo.seen_head() else {
            return Ok(());
        };
        let id = repo.id();
        let known = Heads::load(&self.dir)?.get(&id).cloned();
        let update = match &known {
            None => true,
            Some(k) => seen.seq > k.seq || (self.allow_older && seen != *k),
        };
        if update {
            Heads::store(&self.dir, &id, Some(seen))?;
        }
        Ok(())
    }

    /// Keeps `head` (the snapshot a backup just wrote: its summary's `seq` and
    /// `snapshot_id`) in the vault beside the password record (VAULT-API.md, "Repository
    /// head"), so that a new device can tell a rolled-back repository before it restores.
    /// `Ok(false)` when there is nothing to do: no vault, no token at hand, or the vault
    /// already keeps this head or a newer one (another device's). Meant after each
    /// backup; a failure loses no backup.
    pub fn mirror_head(&self, head: &Head) -> Result<bool, Error> {
        if self.config.vault.is_none() {
            return Ok(false);
        }
        let client = match self.vault() {
            Ok(c) => c,
            Err(Error::TokenMissing) => return Ok(false),
            Err(e) => return Err(e),
        };
        match client.put_head(self.key.as_bytes(), &VaultHead::new(head.seq, &head.id)) {
            Ok(()) => Ok(true),
            Err(VaultError::HeadNotNewer { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// On a device that just connected: takes the head kept in the vault as the newest
    /// this device has seen, so every later command refuses a repository whose snapshots
    /// stop below it (a storage provider that dropped or rolled back snapshots), unless
    /// `--allow-older`. A head that does not verify under K is refused as a vault error.
    fn adopt_vault_head(&self) -> Result<(), Error> {
        let Some(kept) = self.vault()?.head(self.key.as_bytes())? else {
            return Ok(());
        };
        let repo = self.open_repository()?;
        let local = repo.head()?;
        // The vault keeps only a digest of the id: name the snapshot when it is here.
        let id = match &local {
            Some(h) if kept.names(&h.id) => h.id.clone(),
            _ => format!("(kept in the vault, sequence {})", kept.seq),
        };
        let known = Heads::load(&self.dir)?.get(&repo.id()).cloned();
        if known.is_none_or(|k| kept.seq > k.seq) {
            Heads::store(&self.dir, &repo.id(), Some(Head { seq: kept.seq, id }))?;
        }
        Ok(())
    }

    /// Runs `f` on the repository, then remembers the head it saw.
    fn with_repo<T>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, coffer_backup::Error>,
    ) -> Result<(T, Repository), Error> {
        let repo = self.repository()?;
        let out = f(&repo);
        if let Ok(mut d) = self.damaged.lock() {
            *d = repo.damaged_snapshots();
        }
        let out = out?;
        self.remember_head(&repo)?;
        Ok((out, repo))
    }

    /// The damaged snapshot objects the last operation skipped (each is removed with
    /// [`Coffer::forget_ids`]).
    pub fn damaged_snapshots(&self) -> Vec<DamagedSnapshot> {
        self.damaged.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The readable snapshots, oldest first (see [`Coffer::damaged_snapshots`]).
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, Error> {
        Ok(self.with_repo(|r| r.snapshots())?.0)
    }

    /// The entries of a snapshot (`"latest"` or an id prefix), with only `path` and what is
    /// below it when given; returns the snapshot's full id too.
    pub fn ls(&self, snapshot: &str, path: Option<&Path>) -> Result<(String, Vec<LsEntry>), Error> {
        Ok(self.with_repo(|r| r.ls(snapshot, path))?.0)
    }

    /// What changed from snapshot `a` to snapshot `b` (each `"latest"` or an id prefix).
    pub fn diff(&self, a: &str, b: &str) -> Result<Vec<DiffEntry>, Error> {
        Ok(self.with_repo(|r| r.diff(a, b))?.0)
    }

    /// Checks the repository, including its head against the one this device saw.
    pub fn check(
        &self,
        read_data: bool,
        progress: Option<&dyn Progress>,
    ) -> Result<CheckReport, Error> {
        Ok(self.with_repo(|r| r.check(read_data, progress))?.0)
    }

    /// Applies keep rules (damaged snapshots are left alone).
    pub fn forget(&self, policy: &KeepPolicy, dry_run: bool) -> Result<ForgetReport, Error> {
        Ok(self.with_repo(|r| r.forget(policy, dry_run))?.0)
    }

    /// Removes snapshots by id (damaged ones too). Returns the removed ids and whether the
    /// snapshot this device remembered as the head was among them; the remembered head
    /// then becomes the repository's new head (other devices that saw the old one report
    /// a rollback until run once with allow-older).
    pub fn forget_ids(&self, ids: &[String], dry_run: bool) -> Result<(Vec<String>, bool), Error> {
        let repo = self.open_repository()?;
        let removed = repo.forget_ids(ids, dry_run)?;
        let repo_id = repo.id();
        let known = Heads::load(&self.dir)?.get(&repo_id).cloned();
        let head_removed = known.is_some_and(|k| removed.contains(&k.id));
        if head_removed && !dry_run {
            repo.set_known_head(None, true);
            Heads::store(&self.dir, &repo_id, repo.head()?)?;
        }
        Ok((removed, head_removed))
    }

    /// Deletes unused data.
    pub fn prune(&self, progress: Option<&dyn Progress>) -> Result<PruneReport, Error> {
        Ok(self.with_repo(|r| r.prune(progress))?.0)
    }

    /// Removes stale locks (with `force`, all).
    pub fn unlock(&self, force: bool) -> Result<UnlockReport, Error> {
        Ok(self.open_repository()?.unlock(force)?)
    }

    fn open_repository(&self) -> Result<Repository, Error> {
        match Repository::open(&self.config.repo, &self.key) {
            Ok(r) => Ok(r),
            Err(coffer_backup::Error::WrongKey) => {
                // The key file may be newer than the key loaded at start (an earlier call
                // finished a rotation, or another process did).
                let stored = self.keys.load()?;
                if let Ok(r) = Repository::open(&self.config.repo, &stored) {
                    return Ok(r);
                }
                // A rotation that crashed after the repository switched keys but before
                // the key file was replaced left the new key pending: finish it.
                if let Some(pending) = self.keys.load_pending()?
                    && let Ok(r) = Repository::open(&self.config.repo, &pending)
                {
                    self.keys.promote_pending()?;
                    return Ok(r);
                }
                Err(Error::LocalKeyMismatch)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Backs up `paths` into a new snapshot.
    pub fn backup(&self, paths: &[PathBuf], opts: &BackupOptions) -> Result<BackupSummary, Error> {
        Ok(self.with_repo(|r| r.backup(paths, opts))?.0)
    }

    /// What a backup of `paths` would read and upload now (an upper bound, from the last
    /// snapshot of the same paths), without reading file contents or writing anything: an
    /// app can wait for Wi-Fi when [`BackupEstimate::bytes_to_upload`] is large.
    pub fn estimate_backup(&self, paths: &[PathBuf]) -> Result<BackupEstimate, Error> {
        Ok(self.with_repo(|r| r.estimate_backup(paths))?.0)
    }

    /// Restores a snapshot (`"latest"` or an id prefix) into `target`.
    pub fn restore(
        &self,
        snapshot: &str,
        target: &Path,
        include: &[PathBuf],
        opts: &RestoreOptions,
    ) -> Result<RestoreSummary, Error> {
        Ok(self
            .with_repo(|r| r.restore(snapshot, target, include, opts))?
            .0)
    }

    /// Registers a new password for the device's key. The backups are not touched; the
    /// old password stops working. Also repairs a vault left stale by an interrupted
    /// rotation or a failed registration.
    ///
    /// The vault replaces its record only with proof of the key the record holds. That
    /// is this device's key, except after an interrupted rotation, when the record still
    /// holds the previous key: then `current_password` (the password the vault knows)
    /// recovers that key to sign with; without it the error says to give it.
    pub fn change_password(
        &mut self,
        new_password: &[u8],
        current_password: Option<&[u8]>,
    ) -> Result<(), Error> {
        check_new_password(new_password)?;
        let client = self.vault()?;
        // Only register a key that really opens the repository.
        self.repository()?;
        let key = self.keys.load()?;
        let profile = self.ksf_profile();
        match client.register(new_password, key.as_bytes(), profile) {
            Err(VaultError::OwnerProofInvalid { .. }) if self.config.vault_stale => {
                let Some(current) = current_password else {
                    return Err(Error::PreviousKeyInVault);
                };
                let previous = client.recover(current)?;
                client.register_replacing(
                    new_password,
                    key.as_bytes(),
                    Some(&previous),
                    profile,
                )?;
            }
            other => other?,
        }
        self.key = key;
        if self.config.vault_stale {
            self.config.vault_stale = false;
            self.config.save(&self.dir)?;
        }
        Ok(())
    }

    /// The recovery key. With a vault, `password` must be the current password: it is
    /// checked through the vault (a wrong one spends a guess).
    pub fn recovery_key(&self, password: Option<&[u8]>) -> Result<RecoveryKey, Error> {
        self.verify_password(password)?;
        Ok(RecoveryKey::from_backup_key(&self.current_key()?))
    }

    /// Checks the password through OPAQUE (a successful login proves it); no-op without a vault.
    fn verify_password(&self, password: Option<&[u8]>) -> Result<(), Error> {
        if self.config.vault.is_none() {
            return Ok(());
        }
        let client = self.vault()?;
        let pw = password.ok_or(Error::Vault {
            message: "the current password is needed for this operation".into(),
        })?;
        // The released key is not compared with ours: after an interrupted rotation the
        // vault legitimately holds the previous key; the login itself proves the password.
        let _released = client.recover(pw)?;
        Ok(())
    }

    fn current_key(&self) -> Result<BackupKey, Error> {
        // Re-read: an interrupted rotation may have been finished by repository().
        self.repository()?;
        self.keys.load()
    }

    /// Replaces K with a new random key for data written from now on; every old snapshot
    /// still restores. With a vault, `password` (the current one) is re-registered with
    /// the new key; without, the caller must show the new recovery key.
    pub fn rotate_key(&mut self, password: Option<&[u8]>) -> Result<RotateOutcome, Error> {
        // Order, so that a crash at any point leaves a key that opens the repository:
        // 1. check the password first, so a typo cannot leave the vault stale;
        // 2. save the new key as `key.pending` (durable) while `key` still opens the repo;
        // 3. mark the vault stale in config.json (durable), since it is about to be;
        // 4. rotate the repository: from now on only the new key opens it
        //    (crash here: repository() tries key.pending and promotes it);
        // 5. rename key.pending over key (atomic, directory synced);
        // 6. register the password with the new key, then clear the stale mark
        //    (crash or failure here: the device works, status says the vault is stale,
        //    change-password repairs it);
        // 7. seal the repository head the vault keeps again, under the new key: a new
        //    device verifies it with the key the vault releases, so a head left under
        //    the old key would fail its connect (crash here: the next backup puts one).
        self.verify_password(password)?;
        let mut repo = self.repository()?;
        // The vault's record is replaced only with proof of the key it holds: this one.
        let previous = self.keys.load()?;
        let vault_head = match (password, self.config.vault.is_some()) {
            (Some(_), true) => self.head_to_rekeep(&repo, &previous)?,
            _ => None,
        };
        let new_key = BackupKey::generate();
        self.keys.save_pending(&new_key)?;
        if self.config.vault.is_some() {
            self.config.vault_stale = true;
            self.config.save(&self.dir)?;
        }
        repo.rotate_key(&new_key)?;
        self.keys.promote_pending()?;
        self.key = BackupKey::from_bytes(*new_key.as_bytes());
        let (mut vault_updated, mut vault_head_kept) = (false, false);
        if let (Some(pw), true) = (password, self.config.vault.is_some()) {
            self.vault()
                .and_then(|c| {
                    Ok(c.register_replacing(
                        pw,
                        new_key.as_bytes(),
                        Some(previous.as_bytes()),
                        self.ksf_profile(),
                    )?)
                })
                .map_err(Error::pending)?;
            self.config.vault_stale = false;
            self.config.save(&self.dir)?;
            vault_updated = true;
            // The rotation is done whatever the vault answers: a head it did not take is
            // reported, and the next backup keeps a newer one.
            vault_head_kept = vault_head.is_some_and(|h| {
                self.vault()
                    .and_then(|c| Ok(c.put_head(new_key.as_bytes(), &h)?))
                    .is_ok()
            });
        }
        Ok(RotateOutcome {
            recovery_key: RecoveryKey::from_backup_key(&new_key),
            vault_updated,
            vault_head_kept,
        })
    }

    /// The head to seal again under a rotated key: the one the vault keeps, read under
    /// the key it was sealed with (it may be another device's, newer than this one's
    /// memory), or, when it does not verify (left by an earlier rotation that stopped
    /// before this step), the repository's own head. The vault takes it at the kept
    /// sequence number (VAULT-API.md, "Repository head").
    fn head_to_rekeep(
        &self,
        repo: &Repository,
        previous: &BackupKey,
    ) -> Result<Option<VaultHead>, Error> {
        match self.vault()?.head(previous.as_bytes()) {
            Ok(kept) => Ok(kept),
            Err(VaultError::Protocol { .. }) => {
                Ok(repo.head()?.map(|h| VaultHead::new(h.seq, &h.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Turns backups off on this device: deletes the vault record, with `delete_backups`
    /// the whole repository, then the local key and configuration.
    pub fn disable(self, delete_backups: bool) -> Result<DisableReport, Error> {
        // Remote first: if the vault cannot be reached nothing local is lost yet and the
        // command can simply be run again.
        let mut vault_record_deleted = false;
        if self.config.vault.is_some() {
            match self.vault()?.delete(Some(self.key.as_bytes())) {
                Ok(()) => vault_record_deleted = true,
                Err(VaultError::NoRecord | VaultError::KeyDestroyed) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if delete_backups {
            Repository::destroy(&self.config.repo)?;
        }
        self.keys.delete()?;
        remove_durable(&Config::path(&self.dir))?;
        Ok(DisableReport {
            vault_record_deleted,
            backups_deleted: delete_backups,
            key_store: self.keys.kind(),
            config_dir: self.dir,
        })
    }

    pub(crate) fn vault_access_for_status(&self) -> Option<Result<VaultAccess, Error>> {
        self.config.vault.as_ref()?;
        Some(self.vault_access())
    }
}

fn ensure_not_configured(dir: &Path) -> Result<(), Error> {
    if Config::path(dir).exists() {
        return Err(Error::AlreadyConfigured {
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

fn vault_config(a: &VaultAccess) -> VaultConfig {
    VaultConfig {
        url: a.url.clone(),
        account: a.account.clone(),
        token_file: a.token_file.clone(),
    }
}
