//! Small driver of the backup engine for the benchmark script and the crash tests, usable
//! before the `coffer` CLI exists. The key is 64 hex digits in `COFFER_KEY`.
//!
//! ```text
//! coffer-backup-bench init REPO
//! coffer-backup-bench backup REPO PATH...
//! coffer-backup-bench restore REPO SNAPSHOT TARGET
//! coffer-backup-bench check REPO [--read-data]
//! ```

use anyhow::{Context, bail};
use coffer_backup::{BackupKey, BackupOptions, Repository, RestoreOptions};

fn key() -> anyhow::Result<BackupKey> {
    let hexkey = std::env::var("COFFER_KEY").context("set COFFER_KEY to 64 hex digits")?;
    let mut b = [0u8; 32];
    hex::decode_to_slice(hexkey.trim(), &mut b).context("COFFER_KEY must be 64 hex digits")?;
    Ok(BackupKey::from_bytes(b))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let k = key()?;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["init", repo] => {
            Repository::init(repo, &k)?;
        }
        ["backup", repo, paths @ ..] => {
            let r = Repository::open(repo, &k)?;
            let paths: Vec<_> = paths.iter().map(std::path::PathBuf::from).collect();
            let s = r.backup(&paths, &BackupOptions::default())?;
            println!("{}", serde_json::to_string(&s)?);
        }
        ["restore", repo, snap, target] => {
            let r = Repository::open(repo, &k)?;
            let s = r.restore(snap, target.as_ref(), &[], &RestoreOptions::default())?;
            println!("{}", serde_json::to_string(&s)?);
            if !s.failed.is_empty() {
                bail!("{} files failed", s.failed.len());
            }
        }
        ["check", repo, rest @ ..] => {
            let r = Repository::open(repo, &k)?;
            let rep = r.check(rest.contains(&"--read-data"), None)?;
            println!("{}", serde_json::to_string(&rep)?);
            if !rep.is_ok() {
                bail!("check found errors");
            }
        }
        _ => bail!("usage: coffer-backup-bench init|backup|restore|check REPO ..."),
    }
    Ok(())
}
