//! The command line, as clap derive types. Flag conflicts are enforced here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, shown in `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    other error (I/O, storage, vault server error, a backup path that does not exist)
  2    usage error (bad flags, no terminal to prompt on, --account not the token's, short password)
  3    wrong password or recovery key (wrong_password, wrong_recovery_key, invalid_recovery_key,
       vault_key_mismatch); for backup: snapshot saved but incomplete (files skipped), as restic
  4    key destroyed in the vault (key_destroyed): use the recovery key
  5    vault unreachable, unauthorized or rate limited
  6    integrity error: damaged or tampered data (integrity_error, restore or check failures),
       or a repository rolled back below what this device saw (rolled_back)
  7    not set up, or repository, snapshot or path not found
  8    incomplete: restore left out entries it names (refused: they would write outside the target)
  130  cancelled (Ctrl-C); the repository stays valid and the next backup resumes; a restore
       keeps the files it finished (the one being written is removed): run it again

Secrets are never taken as arguments: passwords and recovery keys come from a terminal
prompt, or from standard input with --password-stdin / --recovery-key-stdin.
Where the key is kept: the OS keyring (Keychain, Credential Manager, Secret Service)
when one answers, else the 0600 file `key` in the config folder; init, connect and
status say which. --key-store / COFFER_KEY_STORE=file forces the file.
Environment: COFFER_CONFIG_DIR, COFFER_VAULT_TOKEN (the vault bearer token), COFFER_KEY_STORE,
COFFER_KSF_PROFILE=argon2id-test (TESTS ONLY: makes password guessing cheap).";

/// End-to-end encrypted backups whose key is recoverable with a password (through the
/// Backup Key Vault) or a 64-digit recovery key.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration folder (default: $XDG_CONFIG_HOME/coffer or ~/.config/coffer).
    #[arg(long, global = true, env = "COFFER_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Print exactly one JSON object on stdout (errors: {"error": {"code", "message", ...}}).
    #[arg(long, global = true)]
    pub json: bool,
    /// File holding the vault bearer token (its last line); else COFFER_VAULT_TOKEN, else
    /// the token file remembered at init/connect.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where init and connect keep the key: the OS keyring if one answers, else the 0600
    /// file (auto); only the keyring (os-keyring); only the file (file). Later commands
    /// use the store recorded at setup.
    #[arg(long, global = true, env = "COFFER_KEY_STORE", value_enum, default_value_t = KeyStoreArg::Auto, value_name = "STORE")]
    pub key_store: KeyStoreArg,
    /// Proceed although the repository's newest snapshot is older than one this device has
    /// seen (snapshots were dropped or rolled back by the storage), and remember the older
    /// head from now on. Check why first: see docs/THREAT_MODEL.md "Rollback".
    #[arg(long, global = true)]
    pub allow_older: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `--key-store` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyStoreArg {
    /// The OS keyring if one answers, else the 0600 file.
    Auto,
    /// The OS keyring, or fail.
    OsKeyring,
    /// The 0600 file in the config folder.
    File,
}

/// `restore --overwrite` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OverwriteArg {
    /// Replace nothing; refuse if any existing file differs.
    Never,
    /// Replace files that differ from the snapshot.
    IfChanged,
    /// Replace every file.
    Always,
}

/// Where the key goes: a vault (with a password) or nowhere but the user's paper.
#[derive(Debug, Args)]
pub struct VaultArgs {
    /// Vault base URL, e.g. http://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    pub vault: Option<String>,
    /// Account id at the vault. Optional: the account is the access token's subject, and
    /// a different --account is refused.
    #[arg(long, value_name = "ID", requires = "vault")]
    pub account: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new backup key and a new repository on this device.
    #[command(group(clap::ArgGroup::new("protection").required(true).args(["vault", "recovery_key_only"])))]
    Init {
        /// Repository location: a folder, memory://NAME, or an OpenDAL URL.
        #[arg(long, value_name = "LOCATION")]
        repo: String,
        #[command(flatten)]
        vault: VaultArgs,
        /// No vault: print the 64-digit recovery key to write down.
        #[arg(long, conflicts_with_all = ["vault", "account", "password_stdin"])]
        recovery_key_only: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set up this device for an existing repository (a new phone, a new laptop).
    Connect {
        /// Repository location.
        #[arg(long, value_name = "LOCATION")]
        repo: String,
        #[command(flatten)]
        vault: VaultArgs,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "recovery_key_stdin")]
        password_stdin: bool,
        /// Use the recovery key, read from standard input, instead of the vault.
        #[arg(long)]
        recovery_key_stdin: bool,
        /// Use the recovery key, asked for on the terminal, instead of the vault.
        #[arg(long, conflicts_with_all = ["recovery_key_stdin", "password_stdin"])]
        recovery_key: bool,
    },
    /// Back up files and folders into a new snapshot. A path that does not exist is an
    /// error (nothing is saved); files that cannot be read are skipped and the snapshot is
    /// marked incomplete (exit code 3).
    Backup {
        /// Files or folders.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Host name to record in the snapshot (forget groups by it); default: this host's.
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// Back up nothing: show how many files are new or changed and how many bytes the
        /// backup would read and, at most, upload (from the last snapshot of the same
        /// paths; no file is read). To wait for Wi-Fi before a large upload.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the snapshots, oldest first.
    Snapshots,
    /// Restore a snapshot into a folder. Nothing is written outside it, whatever the
    /// snapshot holds: entries that would be (a name through a symlink, `..`) are refused,
    /// named, and the exit code is 8.
    Restore {
        /// Snapshot id prefix or "latest".
        #[arg(default_value = "latest", value_name = "SNAPSHOT")]
        snapshot: String,
        /// Folder to restore into.
        #[arg(long, value_name = "DIR")]
        target: PathBuf,
        /// Restore only these paths and what is below them: as coffer ls shows them
        /// (chat/db) or as the backed-up location (/home/me/chat/db). A path that matches
        /// nothing is an error.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Files already in the target: never (default) refuses the whole restore if any
        /// differs from the snapshot and lists them; if-changed replaces those that differ;
        /// always replaces everything. Unchanged files (same size and mtime) are kept.
        #[arg(long, value_enum, default_value_t = OverwriteArg::Never, value_name = "WHEN")]
        overwrite: OverwriteArg,
        /// Keep setuid and setgid bits (dropped by default: a snapshot may come from a
        /// compromised device).
        #[arg(long)]
        preserve_setuid: bool,
    },
    /// List the entries of a snapshot: type, mode, size, modification time, path.
    Ls {
        /// Snapshot id prefix or "latest".
        #[arg(value_name = "SNAPSHOT")]
        snapshot: String,
        /// Only this path and what is below it (chat/db or /home/me/chat/db).
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
    /// Verify the repository's structure (and with --read-data every byte).
    Check {
        /// Read and authenticate all pack data.
        #[arg(long)]
        read_data: bool,
    },
    /// Remove the snapshots given by id, or those the keep rules do not keep (run prune
    /// afterwards to free space). Rules apply per host and path set unless --group-by says
    /// otherwise; the newest snapshot of the repository is always kept.
    Forget {
        /// Snapshot ids (or unique prefixes) to remove, readable or damaged.
        #[arg(value_name = "ID", conflicts_with_all = ["keep_last", "keep_daily", "keep_weekly", "keep_monthly", "group_by"])]
        ids: Vec<String>,
        /// Group snapshots by these fields before applying the rules: host, paths, both
        /// (host,paths, the default) or none ("").
        #[arg(long, value_name = "FIELDS", default_value = "host,paths")]
        group_by: String,
        /// Keep the newest N snapshots.
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Keep one snapshot for each of the last N days.
        #[arg(long, value_name = "N")]
        keep_daily: Option<u32>,
        /// Keep one snapshot for each of the last N weeks.
        #[arg(long, value_name = "N")]
        keep_weekly: Option<u32>,
        /// Keep one snapshot for each of the last N months.
        #[arg(long, value_name = "N")]
        keep_monthly: Option<u32>,
        /// Show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete data no snapshot uses (unused packs first, so it frees space on a full disk),
    /// and partial files that killed backups left in tmp/.
    Prune,
    /// Remove locks left by backups or prunes that died (a lock counts as stale 30 minutes
    /// after its last refresh, or at once when its process on this host is gone).
    Unlock {
        /// Remove every lock, also those of running processes (only when you are sure no
        /// coffer process uses the repository: a prune racing a backup can lose its data).
        #[arg(long)]
        force: bool,
    },
    /// Show what changed between two snapshots.
    Diff {
        /// First snapshot (id prefix or latest).
        a: String,
        /// Second snapshot.
        b: String,
    },
    /// Register a new password with the vault (the backups are not touched).
    ChangePassword {
        /// Read the NEW password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show the 64-digit recovery key (with a vault, after the password is entered again).
    RecoveryKey {
        /// Read the CURRENT password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a new backup key for data written from now on; old snapshots still restore.
    RotateKey {
        /// Read the CURRENT password (re-registered with the new key) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Turn backups off: delete the vault record and this device's key and configuration.
    Disable {
        /// Also delete the whole repository.
        #[arg(long)]
        delete_backups: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Show the repository, the vault, the guesses left and the last backup.
    Status,
}
