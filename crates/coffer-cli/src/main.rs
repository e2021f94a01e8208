//! `coffer`: end-to-end encrypted backups from the command line, a thin layer over the
//! `coffer-client` SDK. See `coffer --help` for the commands and exit codes.

mod cli;
mod commands;
mod failure;
mod progress;
mod secrets;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zeroize::Zeroizing;

use coffer_client::KeyStorePreference;

use crate::cli::{Cli, KeyStoreArg};
use crate::commands::Ctx;
use crate::failure::Failure;

fn main() -> ExitCode {
    let json_requested = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || !json_requested
            {
                e.exit();
            }
            // clap's text: "error: ...", detail lines, then "Usage: ...": keep the first part.
            let detail = e.to_string();
            let message = detail
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(|l| l.trim().trim_start_matches("error: "))
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            return report(
                true,
                Failure::usage(message, "run coffer --help (or coffer COMMAND --help)"),
            );
        }
    };
    let json = cli.json;
    match setup(&cli).and_then(|ctx| commands::run(&ctx, cli.command)) {
        Ok(out) => {
            if json {
                println!("{}", out.json);
            } else {
                print!("{}", out.human);
            }
            ExitCode::from(out.exit)
        }
        Err(f) => report(json, f),
    }
}

fn report(json: bool, f: Failure) -> ExitCode {
    if json {
        println!("{}", f.to_json());
    } else {
        eprintln!("{}", f.to_human());
    }
    ExitCode::from(f.exit)
}

fn setup(cli: &Cli) -> Result<Ctx, Failure> {
    let dir = match &cli.config_dir {
        Some(d) => d.clone(),
        None => default_config_dir()?,
    };
    let token = match &cli.token_file {
        Some(f) => Some(coffer_client::read_token_file(f)?),
        None => std::env::var("COFFER_VAULT_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| Zeroizing::new(t.trim().to_string())),
    };
    // Remembered in config.json, so it must not depend on the current directory.
    let token_file = cli
        .token_file
        .as_ref()
        .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()));
    let key_store = match cli.key_store {
        KeyStoreArg::Auto => KeyStorePreference::Auto,
        KeyStoreArg::OsKeyring => KeyStorePreference::OsKeyring,
        KeyStoreArg::File => KeyStorePreference::File,
    };
    Ok(Ctx {
        dir,
        json: cli.json,
        key_store,
        token,
        token_file,
        allow_older: cli.allow_older,
    })
}

/// $XDG_CONFIG_HOME/coffer, else ~/.config/coffer.
fn default_config_dir() -> Result<PathBuf, Failure> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("coffer"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("coffer")),
        None => Err(Failure::usage(
            "no config folder: HOME is not set",
            "pass --config-dir DIR or set COFFER_CONFIG_DIR",
        )),
    }
}
