//! `coffer-vault`: the Backup Key Vault server. Subcommands `init`, `serve`, `token`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use coffer_vault::api::{AppState, router};
use coffer_vault::auth::{Auth, RESET_SCOPE, mint_dev_token};
use coffer_vault::committer::Committer;
use coffer_vault::keyfile::{DB_FILE, KEY_FILE, KeyFile};
use coffer_vault::metrics::{Metrics, router as metrics_router};
use coffer_vault::ratelimit::RateLimiter;
use coffer_vault::storage::{RedbStorage, Storage};
use coffer_vault::trusted::{TRUSTED_FILE, TrustedStore};
use coffer_vault_core::{DEFAULT_MAX_GUESSES, KsfProfile, VaultCore};

#[derive(Parser)]
#[command(
    name = "coffer-vault",
    version,
    about = "Coffer Backup Key Vault: OPAQUE password recovery with a hard guess limit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a new vault's key file (DIR/vault.key, mode 0600) and trusted store
    /// (DIR/trusted.redb). Refuses over an existing vault.
    Init {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on; port 0 picks a free port (printed).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Data directory made by `init`.
        #[arg(long)]
        data: PathBuf,
        /// Wrong guesses allowed before a record is destroyed.
        #[arg(long, default_value_t = DEFAULT_MAX_GUESSES)]
        max_guesses: u32,
        /// Per-account limit on recover/start and register/start calls per minute; 0 = off.
        #[arg(long, default_value_t = 30)]
        rate_limit: u32,
        /// Tenant EdDSA public key: NAME=PATH.pem (tokens carry kid = NAME). Repeatable.
        /// With any tenant key, development HS256 tokens (no kid) are refused unless
        /// --dev-tokens is given.
        #[arg(long = "tenant-key", value_name = "NAME=PATH")]
        tenant_keys: Vec<String>,
        /// Accept development HS256 tokens (`coffer-vault token`) even though tenant keys
        /// are configured. Anyone who can read the key file can mint them for any account:
        /// never in production.
        #[arg(long)]
        dev_tokens: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics on a separate listener (plain
        /// HTTP; keep it on a private interface). Off by default; port 0 picks a free port
        /// (printed). The API listener never serves /metrics.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        /// Benchmarks only: also export the group-commit counters, which move on every
        /// real account's recover/start and so tell real accounts from unknown ones.
        #[arg(long, hide = true, requires = "metrics_listen")]
        metrics_commit_counters: bool,
        /// TLS certificate chain (PEM); with --tls-key serves HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// KSF profile announced in dummy KE2s for unknown accounts (use your clients' profile).
        #[arg(long, default_value = "argon2id-rfc9106-2")]
        dummy_profile: String,
        /// Seconds a login may take between recover/start and recover/finish (the login
        /// ticket's lifetime; the client carries the ticket, so any replica with the same
        /// keys, or this one after a restart, can finish the login).
        #[arg(long, default_value_t = 120)]
        login_ttl: u64,
    },
    /// Mint a development (HS256) token; prints it alone on the last line.
    Token {
        /// Data directory made by `init`.
        #[arg(long)]
        data: PathBuf,
        /// Account id (the token's sub).
        #[arg(long)]
        account: String,
        /// Lifetime like 30s, 10m, 1h, 2d (a leading '-' mints an expired token for tests).
        #[arg(long, default_value = "1h", allow_hyphen_values = true)]
        ttl: String,
        /// Audience to put in the token instead of this vault's id (for testing rejection).
        #[arg(long, hide = true)]
        audience: Option<String>,
        /// Add `"scope": "coffer.reset"`: the token may replace or delete a live record
        /// without the owner's proof (an app's "lost password and recovery key" flow).
        #[arg(long)]
        reset_scope: bool,
    },
}

fn parse_ttl(s: &str) -> Result<i64> {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: i64 = s[..split]
        .parse()
        .with_context(|| format!("bad --ttl {s:?}: expected e.g. 30s, 10m, 1h"))?;
    let mult = match &s[split..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        u => bail!("bad --ttl unit {u:?}: use s, m, h or d"),
    };
    Ok(if neg { -n * mult } else { n * mult })
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Init { data } => {
            // Nothing is created over any part of an existing vault (a fresh, empty
            // trusted store beside old records would accept any rolled-back record).
            for name in [KEY_FILE, DB_FILE, TRUSTED_FILE] {
                let p = data.join(name);
                if p.exists() {
                    bail!(
                        "{} already exists; refusing to make a new vault over an existing one",
                        p.display()
                    );
                }
            }
            std::fs::create_dir_all(&data)
                .with_context(|| format!("creating {}", data.display()))?;
            // The trusted store before the key file: a crash between leaves no usable vault
            // (serve wants the key file), never a key file without its trusted store. The
            // key file's directory fsync in `KeyFile::init` also makes this file's entry
            // durable.
            TrustedStore::create(&data.join(TRUSTED_FILE))?;
            let kf = KeyFile::init(&data)?;
            println!(
                "initialised vault {} in {}",
                kf.vault_id_hex(),
                data.display()
            );
            Ok(())
        }
        Cmd::Token {
            data,
            account,
            ttl,
            audience,
            reset_scope,
        } => {
            let kf = KeyFile::load(&data)?;
            let aud = audience.unwrap_or_else(|| kf.vault_id_hex());
            let t = mint_dev_token(
                kf.token_key.as_ref(),
                &aud,
                &account,
                parse_ttl(&ttl)?,
                reset_scope.then_some(RESET_SCOPE),
            )?;
            println!("{t}");
            Ok(())
        }
        Cmd::Serve {
            listen,
            data,
            max_guesses,
            rate_limit,
            tenant_keys,
            dev_tokens,
            metrics_listen,
            metrics_commit_counters,
            tls_cert,
            tls_key,
            dummy_profile,
            login_ttl,
        } => {
            let kf = KeyFile::load(&data)?;
            let dummy = KsfProfile::from_name(&dummy_profile)
                .with_context(|| format!("unknown --dummy-profile {dummy_profile:?}"))?;
            let mut tenants = HashMap::new();
            for t in &tenant_keys {
                let (name, path) = t
                    .split_once('=')
                    .with_context(|| format!("--tenant-key {t:?} is not NAME=PATH"))?;
                if name.is_empty() || name == "dev" {
                    bail!(
                        "--tenant-key {t:?}: the tenant name must be non-empty and not `dev` (the development tokens' tenant, whose accounts it would share)"
                    );
                }
                let pem =
                    std::fs::read(path).with_context(|| format!("reading tenant key {path}"))?;
                let key = jsonwebtoken::DecodingKey::from_ed_pem(&pem)
                    .with_context(|| format!("{path} is not an Ed25519 public key PEM"))?;
                tenants.insert(name.to_string(), key);
            }
            let trusted = Arc::new(TrustedStore::open(&data.join(TRUSTED_FILE))?);
            let floors = trusted.load()?;
            tracing::info!(floors = floors.len(), "loaded rollback floors");
            let core = VaultCore::new(&kf.core, max_guesses, floors)?.with_dummy_profile(dummy);
            let mut auth = Auth::new(
                kf.vault_id_hex(),
                kf.token_key.as_ref(),
                tenants,
                kf.credential_id_key.as_ref(),
            );
            if dev_tokens {
                auth = auth.allow_dev_tokens();
            }
            let storage: Arc<dyn Storage> = Arc::new(RedbStorage::open(&data.join(DB_FILE))?);
            let metrics = Arc::new(Metrics::new(metrics_commit_counters));
            let failpoint = std::env::var("COFFER_VAULT_FAILPOINT").ok();
            let committer =
                Committer::start(storage.clone(), trusted, metrics.clone(), failpoint.clone());
            let metrics_for_listener = metrics.clone();
            let state = AppState::new(
                core,
                auth,
                storage,
                committer,
                Duration::from_secs(login_ttl),
                RateLimiter::new(rate_limit),
                metrics,
                failpoint,
            );
            let app = router(Arc::new(state));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(
                app,
                listen,
                tls_cert.zip(tls_key),
                metrics_listen.map(|a| (a, metrics_router(metrics_for_listener))),
            ))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn bind(addr: SocketAddr, what: &str) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr).with_context(|| format!("binding {what} {addr}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

async fn serve(
    app: axum::Router,
    listen: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    metrics: Option<(SocketAddr, axum::Router)>,
) -> Result<()> {
    let std_listener = bind(listen, "--listen")?;
    let addr = std_listener.local_addr()?;
    // Both listeners are bound before either address is printed, so whoever waits for the
    // printed lines can connect to both at once. The metrics listener is plain HTTP even
    // beside TLS: Prometheus scrapes it on a private interface.
    let metrics = match metrics {
        Some((a, router)) => {
            let l = tokio::net::TcpListener::from_std(bind(a, "--metrics-listen")?)?;
            let url = format!("http://{}/metrics", l.local_addr()?);
            Some((l, router, url))
        }
        None => None,
    };
    let print_metrics = move || {
        if let Some((l, router, url)) = metrics {
            println!("metrics on {url}");
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, router).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }
    };
    match tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            println!("listening on http://{addr}");
            print_metrics();
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS cert {} / key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                h.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            println!("listening on https://{addr}");
            print_metrics();
            axum_server::from_tcp_rustls(std_listener, config)?
                .handle(handle)
                .serve(app.into_make_service())
                .await?;
        }
    }
    Ok(())
}
