//! One function per command: call the SDK, shape the result for humans and for `--json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use coffer_client::{
    BackupOptions, Coffer, Error, ErrorCode, GroupBy, Head, InitOptions, KeepPolicy, KeyStore,
    KeyStorePreference, KsfProfile, Overwrite, Protection, RecoveryKey, RestoreOptions,
    RestoreSummary, SnapshotInfo, VaultAccess,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::cli::{Command, OverwriteArg, VaultArgs};
use crate::failure::Failure;
use crate::{progress, secrets};

/// What every command needs from the global options.
pub struct Ctx {
    /// Config folder.
    pub dir: PathBuf,
    /// `--json`.
    pub json: bool,
    /// `--key-store` / `COFFER_KEY_STORE`, for init and connect.
    pub key_store: KeyStorePreference,
    /// Token from `--token-file` or `COFFER_VAULT_TOKEN`.
    pub token: Option<Zeroizing<String>>,
    /// The `--token-file` path, remembered at init/connect.
    pub token_file: Option<PathBuf>,
    /// `--allow-older`: accept a repository head older than the one this device saw.
    pub allow_older: bool,
}

/// A command's result: the JSON object and the human text.
pub struct Output {
    /// Printed with `--json`.
    pub json: Value,
    /// Printed otherwise (stdout).
    pub human: String,
    /// Process exit code of a command that did its job with a reservation (3: a backup
    /// saved an incomplete snapshot); 0 otherwise.
    pub exit: u8,
}

fn out(json: Value, human: impl Into<String>) -> Result<Output, Failure> {
    Ok(Output {
        json,
        human: human.into(),
        exit: 0,
    })
}

/// Runs one command.
pub fn run(ctx: &Ctx, cmd: Command) -> Result<Output, Failure> {
    match cmd {
        Command::Init {
            repo,
            vault,
            recovery_key_only,
            password_stdin,
        } => init(ctx, repo, vault, recovery_key_only, password_stdin),
        Command::Connect {
            repo,
            vault,
            password_stdin,
            recovery_key_stdin,
            recovery_key,
        } => connect(
            ctx,
            repo,
            vault,
            password_stdin,
            recovery_key_stdin,
            recovery_key,
        ),
        Command::Backup {
            paths,
            dry_run: true,
            ..
        } => estimate(ctx, &paths),
        Command::Backup { paths, host, .. } => backup(ctx, &paths, host),
        Command::Snapshots => snapshots(ctx),
        Command::Restore {
            snapshot,
            target,
            paths,
            overwrite,
            preserve_setuid,
        } => {
            let coffer = load(ctx)?;
            let (progress, bar) = progress::bar(ctx.json, "restore");
            let opts = RestoreOptions {
                progress,
                overwrite: match overwrite {
                    OverwriteArg::Never => Overwrite::Never,
                    OverwriteArg::IfChanged => Overwrite::IfChanged,
                    OverwriteArg::Always => Overwrite::Always,
                },
                preserve_setuid,
                cancel: Some(cancel_on_ctrl_c(ctx.json)),
            };
            let result = coffer.restore(&snapshot, &target, &paths, &opts);
            bar.finish();
            warn_damaged(ctx, &coffer);
            restore_report(&target, result?)
        }
        Command::Ls { snapshot, path } => ls(ctx, &snapshot, path.as_deref()),
        Command::Check { read_data } => check(ctx, read_data),
        Command::Forget {
            ids,
            group_by,
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            dry_run,
        } => {
            if !ids.is_empty() {
                return forget_ids(ctx, &ids, dry_run);
            }
            let policy = KeepPolicy {
                last: keep_last,
                daily: keep_daily,
                weekly: keep_weekly,
                monthly: keep_monthly,
                group_by: parse_group_by(&group_by)?,
            };
            forget(ctx, &policy, dry_run)
        }
        Command::Prune => prune(ctx),
        Command::Unlock { force } => unlock(ctx, force),
        Command::Diff { a, b } => diff(ctx, &a, &b),
        Command::ChangePassword { password_stdin } => change_password(ctx, password_stdin),
        Command::RecoveryKey { password_stdin } => recovery_key(ctx, password_stdin),
        Command::RotateKey { password_stdin } => rotate_key(ctx, password_stdin),
        Command::Disable {
            delete_backups,
            yes,
        } => disable(ctx, delete_backups, yes),
        Command::Status => status(ctx),
    }
}

/// The KSF profile: the default, or `COFFER_KSF_PROFILE` (tests only).
fn ksf_profile() -> Result<KsfProfile, Failure> {
    match std::env::var("COFFER_KSF_PROFILE") {
        Ok(name) if !name.is_empty() => KsfProfile::from_name(&name).ok_or_else(|| {
            Failure::usage(
                format!("unknown COFFER_KSF_PROFILE {name:?}"),
                "unset it (the default profile is argon2id-rfc9106-2); argon2id-test is for tests only",
            )
        }),
        _ => Ok(KsfProfile::default()),
    }
}

fn load(ctx: &Ctx) -> Result<Coffer, Failure> {
    let mut c = Coffer::load(&ctx.dir, ctx.token.clone())?;
    c.set_allow_older(ctx.allow_older);
    Ok(c)
}

fn access(ctx: &Ctx, v: &VaultArgs) -> Result<Option<VaultAccess>, Failure> {
    let Some(url) = &v.vault else {
        return Ok(None);
    };
    let token = ctx.token.clone().ok_or(Error::TokenMissing)?;
    Ok(Some(VaultAccess::for_token(
        url,
        v.account.as_deref(),
        token,
        ctx.token_file.clone(),
    )?))
}

/// `--group-by`: a comma-separated subset of host and paths.
fn parse_group_by(s: &str) -> Result<GroupBy, Failure> {
    let mut g = GroupBy {
        host: false,
        paths: false,
    };
    for f in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match f {
            "host" => g.host = true,
            "paths" => g.paths = true,
            other => {
                return Err(Failure::usage(
                    format!("unknown --group-by field {other:?}"),
                    "use host, paths, host,paths (the default) or \"\" (the whole repository)",
                ));
            }
        }
    }
    Ok(g)
}

/// One warning line per damaged snapshot an operation skipped (stderr, human mode).
fn warn_damaged(ctx: &Ctx, coffer: &Coffer) -> Value {
    let damaged = coffer.damaged_snapshots();
    if !ctx.json {
        for d in &damaged {
            eprintln!(
                "warning: snapshot {} cannot be read and is skipped ({}); coffer forget {} removes it",
                d.id, d.reason, d.id
            );
        }
    }
    json!(damaged)
}

fn init(
    ctx: &Ctx,
    repo: String,
    v: VaultArgs,
    rko: bool,
    password_stdin: bool,
) -> Result<Output, Failure> {
    let ksf_profile = ksf_profile()?;
    let protection = if rko {
        Protection::RecoveryKeyOnly
    } else {
        let access = access(ctx, &v)?.ok_or_else(|| {
            Failure::usage(
                "no vault given",
                "pass --vault URL --account ID, or --recovery-key-only",
            )
        })?;
        let password = secrets::password(password_stdin, true)?;
        Protection::Vault { access, password }
    };
    let coffer = Coffer::init(
        &ctx.dir,
        InitOptions {
            repo: repo.clone(),
            protection,
            ksf_profile,
            key_store: ctx.key_store,
        },
    )?;
    let repo = &coffer.config().repo;
    let mut human = format!(
        "created repository {repo}\n{}",
        where_kept(coffer.key_store())
    );
    let mut j = json!({ "repo": repo, "config_dir": ctx.dir });
    store_json(&mut j, coffer.key_store());
    match &coffer.config().vault {
        Some(vc) => {
            human += &format!(
                "password registered with the vault at {} for account {}\nsee the recovery key (a second way back in) with: coffer recovery-key\n",
                vc.url, vc.account
            );
            j["vault"] = json!({ "url": vc.url, "account": vc.account });
        }
        None => {
            let rk = coffer
                .recovery_key(None)
                .map_err(Failure::from)?
                .display_grouped('-');
            human += &format!(
                "\nyour recovery key:\n\n    {}\n\nWrite it down and keep it safe: it is the ONLY way to restore these backups on another device.\n",
                &*rk
            );
            j["recovery_key"] = json!(&*rk);
        }
    }
    out(j, human)
}

fn connect(
    ctx: &Ctx,
    repo: String,
    v: VaultArgs,
    password_stdin: bool,
    rk_stdin: bool,
    rk_prompt: bool,
) -> Result<Output, Failure> {
    let ksf_profile = ksf_profile()?;
    let access = access(ctx, &v)?;
    let (coffer, how) = if rk_stdin || rk_prompt {
        let text = if rk_stdin {
            secrets::recovery_key_from_stdin()?
        } else {
            let b = secrets::prompt("Recovery key: ", "recovery key", "--recovery-key-stdin")?;
            Zeroizing::new(String::from_utf8_lossy(&b).into_owned())
        };
        let rk = RecoveryKey::parse(&text).map_err(Error::from)?;
        let c = Coffer::connect_with_recovery_key(
            &ctx.dir,
            &repo,
            &rk,
            access,
            ksf_profile,
            ctx.key_store,
        )?;
        (c, "the recovery key")
    } else {
        let access = access.ok_or_else(|| {
            Failure::usage(
                "no vault and no recovery key given",
                "pass --vault URL --account ID (password), or --recovery-key-stdin",
            )
        })?;
        let st = Coffer::vault_status(&access)?;
        if !st.exists {
            return Err(Error::KeyDestroyed.into());
        }
        if st.guesses_left == Some(1) && !ctx.json {
            eprintln!(
                "warning: this is the LAST allowed guess: a wrong password now destroys the key in the vault for good.\n         If you are not sure, stop (Ctrl-C) and use your recovery key instead (--recovery-key-stdin)."
            );
        }
        let pw = secrets::password(password_stdin, false)?;
        let c = Coffer::connect_with_password(
            &ctx.dir,
            &repo,
            access,
            &pw,
            ksf_profile,
            ctx.key_store,
        )?;
        (c, "the vault")
    };
    let mut j = json!({ "repo": repo, "key_from": if how == "the vault" { "vault" } else { "recovery_key" }, "config_dir": ctx.dir });
    store_json(&mut j, coffer.key_store());
    out(
        j,
        format!(
            "connected to {repo} with the key from {how}\n{}",
            where_kept(coffer.key_store())
        ),
    )
}

/// The "key stored in" line(s) of init and connect, with the reason for a fallback.
fn where_kept(ks: &KeyStore) -> String {
    let mut s = format!("key stored in {}\n", ks.describe());
    if let Some(reason) = ks.fallback_reason() {
        s += &format!("(no OS keyring answered: {reason})\n");
    }
    s
}

/// `key_store` ("os-keyring" | "file"), `key_store_location` and, after a fallback,
/// `key_store_fallback_reason`.
fn store_json(j: &mut Value, ks: &KeyStore) {
    j["key_store"] = json!(ks.kind());
    j["key_store_location"] = json!(ks.describe());
    if let Some(reason) = ks.fallback_reason() {
        j["key_store_fallback_reason"] = json!(reason);
    }
}

/// A flag the first Ctrl-C raises, so the engine stops at a safe point (a backup leaves
/// the repository valid and resumes; a restore keeps its complete files and removes the
/// one it was writing); a second Ctrl-C exits at once.
fn cancel_on_ctrl_c(quiet: bool) -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        if !quiet {
            eprintln!("\nstopping after the current step (Ctrl-C again to quit at once)...");
        }
    });
    cancel
}

fn backup(ctx: &Ctx, paths: &[PathBuf], host: Option<String>) -> Result<Output, Failure> {
    let coffer = load(ctx)?;
    let (progress, bar) = progress::bar(ctx.json, "backup ");
    let opts = BackupOptions {
        progress,
        cancel: Some(cancel_on_ctrl_c(ctx.json)),
        host,
    };
    let result = coffer.backup(paths, &opts);
    bar.finish();
    let damaged = warn_damaged(ctx, &coffer);
    let s = result?;
    if !ctx.json {
        for (p, why) in &s.skipped {
            eprintln!("warning: skipped {}: {why}", p.display());
        }
    }
    let mut human = format!(
        "snapshot {} saved: {} files ({} unchanged), {} read, {} stored\n",
        short(&s.snapshot_id),
        s.files,
        s.files_unchanged,
        bytes(s.bytes_read),
        bytes(s.bytes_added)
    );
    let mut j = to_json(&s);
    j["damaged_snapshots"] = damaged;
    // The new head goes to the vault too (a new device checks it before restoring); the
    // snapshot is saved either way, so a vault that cannot take it is only a warning.
    let head = Head {
        seq: s.seq,
        id: s.snapshot_id.clone(),
    };
    match coffer.mirror_head(&head) {
        Ok(kept) => j["vault_head_kept"] = json!(kept),
        Err(e) => {
            if !ctx.json {
                eprintln!("warning: the vault did not keep the new repository head: {e}");
            }
            j["vault_head_error"] = json!(e.code());
        }
    }
    let mut o = Output {
        json: j,
        human: String::new(),
        exit: 0,
    };
    if s.incomplete {
        // As restic: the snapshot exists, but a script must not take it for complete.
        human += &format!(
            "INCOMPLETE: {} entries could not be read (listed above); the snapshot is marked incomplete\n",
            s.skipped.len()
        );
        o.exit = 3;
    }
    o.human = human;
    Ok(o)
}

fn estimate(ctx: &Ctx, paths: &[PathBuf]) -> Result<Output, Failure> {
    let e = load(ctx)?.estimate_backup(paths)?;
    let mut human = format!(
        "would back up {} files ({} new or changed): {} to read, at most {} to upload\n",
        e.files,
        e.files_changed,
        bytes(e.bytes_to_read),
        bytes(e.bytes_to_upload)
    );
    if e.unreadable > 0 {
        human += &format!(
            "{} entries cannot be read and would be skipped\n",
            e.unreadable
        );
    }
    out(json!(e), human)
}

fn snapshots(ctx: &Ctx) -> Result<Output, Failure> {
    let coffer = load(ctx)?;
    let result = coffer.snapshots();
    let damaged = warn_damaged(ctx, &coffer);
    let list = result?;
    let mut human = String::new();
    if list.is_empty() {
        human.push_str("no snapshots yet: run coffer backup PATH...\n");
    }
    for s in &list {
        human += &format!(
            "{}  {}  {:>6} files  {:>10}  {}  {}{}\n",
            short(&s.id),
            time(s),
            s.files,
            bytes(s.bytes),
            s.hostname,
            s.paths.join(" "),
            if s.incomplete {
                format!("  (INCOMPLETE: {} skipped)", s.skipped)
            } else {
                String::new()
            }
        );
    }
    out(json!({ "snapshots": list, "damaged": damaged }), human)
}

/// A restore's outcome: damaged data is exit 6; refused entries, and files the target
/// could not take (a full disk), exit 8 (incomplete); each listed by name; the JSON error
/// carries the whole summary.
fn restore_report(target: &Path, s: RestoreSummary) -> Result<Output, Failure> {
    if !s.is_complete() {
        let list = |v: &[(PathBuf, String)]| -> String {
            v.iter()
                .map(|(p, why)| format!("\n  {}: {why}", p.display()))
                .collect()
        };
        let mut message = format!(
            "restore incomplete: {} files restored into {}",
            s.files,
            target.display()
        );
        if !s.failed.is_empty() {
            message += &format!(
                "; {} could not be restored (damaged data):{}",
                s.failed.len(),
                list(&s.failed)
            );
        }
        if !s.unwritten.is_empty() {
            message += &format!(
                "; {} could not be written into the target:{}",
                s.unwritten.len(),
                list(&s.unwritten)
            );
        }
        if !s.refused.is_empty() {
            message += &format!(
                "; {} refused because restoring them could write outside the target or replace a folder:{}",
                s.refused.len(),
                list(&s.refused)
            );
        }
        // Every kind of trouble gets its hint: a restore may meet damaged data and a full
        // disk at once, and each needs its own remedy.
        let mut hints = Vec::new();
        if !s.failed.is_empty() {
            hints.push("run coffer check --read-data; try an older snapshot for the damaged files");
        }
        if !s.unwritten.is_empty() {
            // Sound only if nothing was damaged, nor refused as possibly hostile.
            hints.push(match s.failed.is_empty() && s.refused.is_empty() {
                true => "the backup is sound: free space (or fix permissions) on the target and run the same restore again; files already restored are kept",
                false => "free space (or fix permissions) on the target and run the same restore again for the files not written; files already restored are kept",
            });
        }
        if !s.refused.is_empty() {
            hints.push("the snapshot names paths through symlinks or outside the target: it may come from a compromised device; inspect it with coffer ls");
        }
        let (code, exit) = match s.failed.is_empty() {
            true => (ErrorCode::RestoreIncomplete, 8),
            false => (ErrorCode::IntegrityError, 6),
        };
        let mut f = Failure::other(code, exit, message, Some(hints.join("; ")));
        let summary = to_json(&s);
        for k in ["failed", "unwritten", "refused"] {
            f.extra.push((k, summary[k].clone()));
        }
        f.extra.push(("restored_files", json!(s.files)));
        return Err(f);
    }
    let mut human = format!(
        "restored {} files ({}) into {}\n",
        s.files,
        bytes(s.bytes),
        target.display()
    );
    if s.unchanged > 0 {
        human += &format!("{} files were already there unchanged\n", s.unchanged);
    }
    out(to_json(&s), human)
}

fn ls(ctx: &Ctx, snapshot: &str, path: Option<&Path>) -> Result<Output, Failure> {
    let (id, entries) = load(ctx)?.ls(snapshot, path)?;
    let mut human = String::new();
    for e in &entries {
        let secs = e.mtime_ns.div_euclid(1_000_000_000);
        human += &format!(
            "{:<7} {:04o} {:>12}  {}  {}",
            e.kind,
            e.mode,
            e.size,
            utc(secs),
            e.path.display()
        );
        if let Some(t) = &e.target {
            human += &format!(" -> {}", t.display());
        }
        human.push('\n');
    }
    out(
        json!({ "snapshot": id, "entries": to_json(&entries) }),
        human,
    )
}

/// A report as JSON. Reports serialize paths lossily, so this cannot fail; should it
/// ever, the output says so instead of the process panicking.
fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_else(|e| json!({ "unprintable": e.to_string() }))
}

fn check(ctx: &Ctx, read_data: bool) -> Result<Output, Failure> {
    let coffer = load(ctx)?;
    let (progress, bar) = progress::bar(ctx.json, "check  ");
    let result = coffer.check(read_data, progress.as_deref());
    bar.finish();
    let r = result?;
    if !r.is_ok() {
        let mut f = Failure::other(
            ErrorCode::IntegrityError,
            6,
            format!(
                "check found {} problems:\n  {}",
                r.errors.len(),
                r.errors.join("\n  ")
            ),
            Some(
                "coffer forget ID removes a damaged snapshot; restore what you can from the others, and see docs/THREAT_MODEL.md if snapshots vanished"
                    .into(),
            ),
        );
        f.extra.push(("report", json!(r)));
        return Err(f);
    }
    let mut human = format!(
        "no errors: {} snapshots, {} packs, {} blobs{}\n",
        r.snapshots,
        r.packs,
        r.blobs,
        if read_data {
            format!(", {} verified", bytes(r.bytes_verified))
        } else {
            String::new()
        }
    );
    for w in &r.warnings {
        human += &format!("note: {w}\n");
    }
    out(json!(r), human)
}

fn forget(ctx: &Ctx, policy: &KeepPolicy, dry_run: bool) -> Result<Output, Failure> {
    if policy.last.is_none()
        && policy.daily.is_none()
        && policy.weekly.is_none()
        && policy.monthly.is_none()
    {
        return Err(Failure::usage(
            "no keep rule given",
            "pass --keep-last N (or --keep-daily/--keep-weekly/--keep-monthly)",
        ));
    }
    let coffer = load(ctx)?;
    let result = coffer.forget(policy, dry_run);
    let damaged = warn_damaged(ctx, &coffer);
    let r = result?;
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut human = format!(
        "kept {} snapshots, {verb} {}\n",
        r.kept.len(),
        r.removed.len()
    );
    for s in &r.removed {
        human += &format!("  {verb} {}  {}\n", short(&s.id), time(s));
    }
    if !dry_run && !r.removed.is_empty() {
        human += "run coffer prune to free the space\n";
    }
    let mut j = json!(r);
    j["damaged_snapshots"] = damaged;
    out(j, human)
}

fn forget_ids(ctx: &Ctx, ids: &[String], dry_run: bool) -> Result<Output, Failure> {
    let (removed, head_removed) = load(ctx)?.forget_ids(ids, dry_run)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut human = String::new();
    for id in &removed {
        human += &format!("{verb} snapshot {id}\n");
    }
    if head_removed && !dry_run {
        human += "that was the newest snapshot: other devices that saw it will report a rollback until run once with --allow-older\n";
    }
    if !dry_run {
        human += "run coffer prune to free the space\n";
    }
    out(
        json!({ "removed": removed, "dry_run": dry_run, "head_removed": head_removed }),
        human,
    )
}

fn unlock(ctx: &Ctx, force: bool) -> Result<Output, Failure> {
    if force && !ctx.json {
        eprintln!(
            "warning: --force removes the locks of running backups and prunes too; a prune that then runs beside a backup can delete data that backup needs"
        );
    }
    let r = load(ctx)?.unlock(force)?;
    let mut human = format!("removed {} locks\n", r.removed.len());
    if !r.live.is_empty() {
        human += &format!(
            "{} locks belong to running processes and were kept (--force removes them)\n",
            r.live.len()
        );
    }
    out(json!(r), human)
}

fn prune(ctx: &Ctx) -> Result<Output, Failure> {
    let coffer = load(ctx)?;
    let (progress, bar) = progress::bar(ctx.json, "prune  ");
    let result = coffer.prune(progress.as_deref());
    bar.finish();
    let r = result?;
    let human = format!(
        "{} packs deleted, {} rewritten, {} blobs removed, {} freed, {} partial files removed from tmp/\n",
        r.packs_deleted,
        r.packs_rewritten,
        r.blobs_removed,
        bytes(r.bytes_freed),
        r.tmp_removed
    );
    out(json!(r), human)
}

fn diff(ctx: &Ctx, a: &str, b: &str) -> Result<Output, Failure> {
    let entries = load(ctx)?.diff(a, b)?;
    let mut human = String::new();
    for e in &entries {
        let mark = match serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .as_deref()
        {
            Some("added") => "+",
            Some("removed") => "-",
            Some("modified") => "M",
            _ => "m",
        };
        human += &format!("{mark} {}\n", e.path.display());
    }
    if entries.is_empty() {
        human.push_str("no differences\n");
    }
    out(json!({ "changes": to_json(&entries) }), human)
}

fn change_password(ctx: &Ctx, password_stdin: bool) -> Result<Output, Failure> {
    let mut coffer = load(ctx)?;
    if coffer.config().vault.is_none() {
        return Err(Error::NoVault.into());
    }
    let pw = secrets::password(password_stdin, true)?;
    match coffer.change_password(&pw, None) {
        // After an interrupted key rotation the vault still holds the previous key and
        // replaces that record only with proof of it, which the current password
        // recovers. With --password-stdin it is the line after the new password.
        Err(Error::PreviousKeyInVault) => {
            eprintln!("the vault still holds the key from before an interrupted rotation;");
            let current = secrets::password(password_stdin, false)?;
            coffer.change_password(&pw, Some(&current))?;
        }
        other => other?,
    }
    out(
        json!({ "password_changed": true }),
        "new password registered with the vault; the old one no longer works (backups untouched)\n",
    )
}

fn recovery_key(ctx: &Ctx, password_stdin: bool) -> Result<Output, Failure> {
    let coffer = load(ctx)?;
    let pw = match coffer.config().vault {
        Some(_) => Some(secrets::password(password_stdin, false)?),
        None => None,
    };
    let rk = coffer
        .recovery_key(pw.as_ref().map(|p| p.as_slice()))?
        .display_grouped('-');
    out(
        json!({ "recovery_key": &*rk }),
        format!(
            "your recovery key:\n\n    {}\n\nanyone with it can read your backups: keep it offline\n",
            &*rk
        ),
    )
}

fn rotate_key(ctx: &Ctx, password_stdin: bool) -> Result<Output, Failure> {
    let mut coffer = load(ctx)?;
    let pw = match coffer.config().vault {
        Some(_) => Some(secrets::password(password_stdin, false)?),
        None => None,
    };
    let outcome = coffer.rotate_key(pw.as_ref().map(|p| p.as_slice()))?;
    let rk = outcome.recovery_key.display_grouped('-');
    let mut j = json!({
        "rotated": true,
        "vault_updated": outcome.vault_updated,
        "vault_head_kept": outcome.vault_head_kept,
    });
    store_json(&mut j, coffer.key_store());
    if outcome.vault_updated && !outcome.vault_head_kept && !ctx.json {
        eprintln!(
            "warning: the vault did not keep the repository head under the new key; a new device can connect after the next backup"
        );
    }
    let mut human = if outcome.vault_updated {
        "new backup key in use; the vault holds it behind your password.\nyour OLD recovery key no longer works: see the new one with coffer recovery-key\n".to_string()
    } else {
        j["recovery_key"] = json!(&*rk);
        format!(
            "new backup key in use. your NEW recovery key:\n\n    {}\n\nwrite it down; the old one no longer opens these backups\n",
            &*rk
        )
    };
    human += &format!("new key stored in {}\n", coffer.key_store().describe());
    out(j, human)
}

fn disable(ctx: &Ctx, delete_backups: bool, yes: bool) -> Result<Output, Failure> {
    let coffer = load(ctx)?;
    if !yes {
        let what = if delete_backups {
            format!(
                "This deletes the vault record, ALL BACKUPS in {}, and this device's key.",
                coffer.config().repo
            )
        } else {
            "This deletes the vault record (the password will no longer recover the key) and this device's key; the backups stay, readable only with the recovery key.".to_string()
        };
        eprintln!("{what}");
        if !secrets::confirm("Continue?")? {
            return Err(Failure::other(
                ErrorCode::Aborted,
                1,
                "not confirmed; nothing was changed",
                None,
            ));
        }
    }
    let store = coffer.key_store().describe();
    let r = coffer.disable(delete_backups)?;
    let human = format!(
        "backups turned off: vault record {}, backups {}, key removed from {store}, configuration removed from {}\n",
        if r.vault_record_deleted {
            "deleted"
        } else {
            "absent"
        },
        if r.backups_deleted { "deleted" } else { "kept" },
        r.config_dir.display()
    );
    out(json!(r), human)
}

fn status(ctx: &Ctx) -> Result<Output, Failure> {
    let s = load(ctx)?.status();
    let mut human = format!(
        "config:      {}\nrepository:  {}\nkey store:   {}\n",
        s.config_dir.display(),
        s.repo,
        s.key_store_location
    );
    match &s.vault {
        None => human += "vault:       none (recovery-key-only)\n",
        Some(v) => {
            human += &format!("vault:       {} (account {})\n", v.url, v.account);
            match (&v.error, v.exists) {
                (Some((_, msg)), _) => {
                    human += &format!("             could not be asked: {msg}\n")
                }
                (None, Some(false)) => {
                    human += "             holds NO key for this account (destroyed or never registered): run coffer change-password\n"
                }
                (None, _) => {
                    human += &format!(
                        "             key held; {} of {} wrong guesses left\n",
                        v.guesses_left.map_or("?".into(), |g| g.to_string()),
                        v.max_guesses.map_or("?".into(), |g| g.to_string())
                    )
                }
            }
            if v.stale {
                human += "             STALE: the vault holds an older key; run coffer change-password\n";
            }
        }
    }
    match (&s.repository_error, &s.last_backup) {
        (Some((_, msg)), _) => {
            human += &format!("backups:     cannot read the repository: {msg}\n")
        }
        (None, None) => human += "backups:     none yet\n",
        (None, Some(last)) => {
            human += &format!(
                "backups:     {}; last {} ({})\n",
                match s.snapshots.unwrap_or(0) {
                    1 => "1 snapshot".to_string(),
                    n => format!("{n} snapshots"),
                },
                time(last),
                short(&last.id)
            )
        }
    }
    out(json!(s), human)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// UTC "YYYY-MM-DD HH:MM:SS" of a snapshot.
fn time(s: &SnapshotInfo) -> String {
    let secs = s
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    utc(secs)
}

/// UTC "YYYY-MM-DD HH:MM:SS" of seconds since the epoch.
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = coffer_client::civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
