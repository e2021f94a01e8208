//! `coffer-vault`: the Backup Key Vault server. Subcommands `init`, `core`, `serve`, `token`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use coffer_vault::api::{AppState, router};
use coffer_vault::auth::{Auth, RESET_SCOPE, mint_dev_token};
use coffer_vault::coreproc::group::{self, Group, GroupConfig, GroupStore};
use coffer_vault::coreproc::link::{CoreLink, UnixLink};
use coffer_vault::coreproc::service::CoreService;
use coffer_vault::coreproc::store::{EntryStore, RedbEntryStore, STORE_FILE};
use coffer_vault::coreproc::{keys, server};
use coffer_vault::keyfile::{DB_FILE, KEY_FILE, KeyFile};
use coffer_vault::master::MasterKeyArgs;
use coffer_vault::metrics::{Metrics, router as metrics_router};
use coffer_vault::ratelimit::RateLimiter;
use coffer_vault::storage::{RedbStorage, Storage};
use coffer_vault_core::{DEFAULT_MAX_GUESSES, KsfProfile, VaultCore};

/// The core's directory inside a vault's data directory.
const CORE_DIR: &str = "core";

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
    /// Make a new vault: the core's keys and store in DIR/core/ (core.key sealed by the
    /// master key DIR/core/master.key, core.redb), the host's files in DIR (host.key with
    /// the development token key, vault.redb). Refuses over an existing vault. Move
    /// DIR/core wherever the core runs (`coffer-vault core`).
    Init {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        master: MasterKeyArgs,
    },
    /// Run the vault's trusted core alone, serving the core protocol on a Unix socket
    /// (docs/VAULT-CORE.md). It holds every key and guess count; hosts (`serve --core`)
    /// hold neither.
    Core {
        /// The core's directory (DIR/core of `init`, moved wherever the core runs).
        #[arg(long)]
        data: PathBuf,
        /// Where to listen: unix:PATH.
        #[arg(long)]
        listen: String,
        #[command(flatten)]
        settings: CoreSettings,
        #[command(flatten)]
        group: GroupArgs,
    },
    /// Make a replicated vault: N member directories DIR/core-1 .. DIR/core-N sharing one
    /// set of core keys and a group link key, each sealed under the member's own master
    /// key, and the host's files in DIR. Start every member with `coffer-vault core
    /// --member I --group-listen ADDR --peer 1=ADDR ...` and hosts with `serve --core
    /// unix:PATH,... --records-in-core` (docs/VAULT-GROUP.md; scripts/vault-group.sh does
    /// all of it on one machine).
    GroupInit {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// Members: 3 or 5 (a majority of them must be up to answer).
        #[arg(long, default_value_t = 3)]
        members: u32,
    },
    /// Take a member out of a running group (joint consensus): the group then needs a
    /// majority of the members left. Stop that member's process afterwards. Speaks the
    /// members' own link, so it needs a member's directory (and master key).
    GroupRemove {
        /// Any member's directory (for the group's link key).
        #[arg(long)]
        data: PathBuf,
        /// The slot to remove.
        #[arg(long)]
        member: u32,
        /// The members' addresses, I=HOST:PORT, as given to `core --peer`.
        #[arg(long = "peer", value_name = "I=HOST:PORT", required = true)]
        peers: Vec<String>,
        #[command(flatten)]
        master: MasterKeyArgs,
    },
    /// Admit a new member to a running group: writes NEW_DIR with the group's keys, taken
    /// from an existing member's directory (which needs that member's master key), sealed
    /// under a new master key. Then start it with `core --member I ...`: it joins as a new
    /// member, catches up from the leader and replaces slot I's old incarnation.
    GroupAddMember {
        /// An existing member's directory.
        #[arg(long)]
        from: PathBuf,
        /// The new member's directory (must not exist yet).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        master: MasterKeyArgs,
    },
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on; port 0 picks a free port (printed).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Data directory made by `init`.
        #[arg(long)]
        data: PathBuf,
        /// The core process to use (unix:PATH of `coffer-vault core --listen`), or a
        /// group's members, comma-separated (any member answers; the host moves on when
        /// one is unreachable). Without it the host runs the core from DIR/core in this
        /// process.
        #[arg(long, value_name = "unix:PATH[,unix:PATH...]")]
        core: Option<String>,
        /// The core keeps record bodies and repository heads (a group: hosts then hold
        /// no state, and any host serves any account). Needs --core.
        #[arg(long, requires = "core")]
        records_in_core: bool,
        #[command(flatten)]
        settings: CoreSettings,
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

/// A core's place in a replicated group (docs/VAULT-GROUP.md).
#[derive(clap::Args)]
struct GroupArgs {
    /// This member's slot (1..=N) in a group made by `group-init`; without it the core
    /// runs alone.
    #[arg(long, requires = "group_listen")]
    member: Option<u32>,
    /// Where this member listens for the other members (TCP HOST:PORT).
    #[arg(long, requires = "member")]
    group_listen: Option<SocketAddr>,
    /// How to reach member I: I=HOST:PORT. Give one per member, this one's included.
    #[arg(long = "peer", value_name = "I=HOST:PORT", requires = "member")]
    peers: Vec<String>,
    /// Keep no Raft state on disk: nothing to roll back, but if a majority restarts
    /// together the group and every escrowed key are lost.
    #[arg(long, requires = "member")]
    ram_only: bool,
}

/// The core's own settings: given to `core`, or to `serve` when it embeds the core.
#[derive(clap::Args)]
struct CoreSettings {
    /// Wrong guesses allowed before a record is destroyed (a core setting: with
    /// `serve --core` give it to `coffer-vault core`).
    #[arg(long)]
    max_guesses: Option<u32>,
    /// KSF profile announced in dummy KE2s for unknown accounts (use your clients' profile).
    #[arg(long)]
    dummy_profile: Option<String>,
    #[command(flatten)]
    master: MasterKeyArgs,
    /// Seconds a login may take between recover/start and recover/finish (the login
    /// ticket's lifetime; the client carries the ticket, so any host, or this one after a
    /// restart, can finish the login).
    #[arg(long)]
    login_ttl: Option<u64>,
}

impl CoreSettings {
    fn given(&self) -> bool {
        self.max_guesses.is_some()
            || self.dummy_profile.is_some()
            || self.login_ttl.is_some()
            || self.master.given()
    }

    fn dummy_profile(&self) -> Result<KsfProfile> {
        let name = self
            .dummy_profile
            .as_deref()
            .unwrap_or("argon2id-rfc9106-2");
        KsfProfile::from_name(name).with_context(|| {
            format!("unknown --dummy-profile {name:?}; known: argon2id-rfc9106-2, argon2id-test")
        })
    }

    /// Starts the core of `dir`: its keys, its store, its driver.
    fn start(&self, dir: &Path) -> Result<Arc<CoreService>> {
        self.start_on(dir, || {
            Ok(Arc::new(RedbEntryStore::open(&dir.join(STORE_FILE))?) as Arc<dyn EntryStore>)
        })
    }

    /// The core of `dir` over the store `store` opens once the keys are (a missing key
    /// file is the error to report, not a store it would otherwise create).
    fn start_on(
        &self,
        dir: &Path,
        store: impl FnOnce() -> Result<Arc<dyn EntryStore>>,
    ) -> Result<Arc<CoreService>> {
        let dummy = self.dummy_profile()?;
        let keys = keys::load(dir, &self.master.source(&dir.join(keys::MASTER_KEY_FILE)))?;
        let core = VaultCore::new(&keys, self.max_guesses.unwrap_or(DEFAULT_MAX_GUESSES))?
            .with_dummy_profile(dummy);
        let store = store()?;
        Ok(Arc::new(CoreService::new(
            core,
            store,
            Duration::from_secs(self.login_ttl.unwrap_or(120)),
        )))
    }
}

/// Nothing is created over any part of an existing vault.
fn refuse_existing_vault(data: &Path) -> Result<()> {
    for p in [data.join(KEY_FILE), data.join(DB_FILE), data.join(CORE_DIR)] {
        if p.exists() {
            bail!(
                "{} already exists; refusing to make a new vault over an existing one",
                p.display()
            );
        }
    }
    Ok(())
}

/// `--peer I=HOST:PORT` flags, by member number.
fn parse_peers(flags: &[String]) -> Result<BTreeMap<u32, String>> {
    let mut peers = BTreeMap::new();
    for p in flags {
        let (i, addr) = p
            .split_once('=')
            .with_context(|| format!("--peer {p:?} is not I=HOST:PORT"))?;
        let i: u32 = i
            .parse()
            .with_context(|| format!("--peer {p:?}: {i:?} is not a member number"))?;
        peers.insert(i, addr.to_string());
    }
    Ok(peers)
}

fn unix_path(addr: &str, flag: &str) -> Result<PathBuf> {
    addr.strip_prefix("unix:")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .with_context(|| format!("{flag} {addr:?}: expected unix:PATH"))
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
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs that go to files stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().cmd {
        Cmd::Init { data, master } => {
            refuse_existing_vault(&data)?;
            std::fs::create_dir_all(&data)
                .with_context(|| format!("creating {}", data.display()))?;
            // The core before the host's key file: a crash between leaves no servable
            // vault (serve wants host.key), never a host without its core.
            let core_dir = data.join(CORE_DIR);
            let core_keys = keys::init(
                &core_dir,
                &master.source(&core_dir.join(keys::MASTER_KEY_FILE)),
            )?;
            RedbEntryStore::open(&core_dir.join(STORE_FILE))?;
            let kf = KeyFile::init(&data, *core_keys.vault_id())?;
            RedbStorage::open(&data.join(DB_FILE))?;
            println!(
                "initialised vault {} in {} (core in {})",
                kf.vault_id_hex(),
                data.display(),
                core_dir.display()
            );
            Ok(())
        }
        Cmd::Core {
            data,
            listen,
            settings,
            group,
        } => {
            let path = unix_path(&listen, "--listen")?;
            let (Some(member), Some(group_listen)) = (group.member, group.group_listen) else {
                let service = settings.start(&data)?;
                server::serve_unix(&path, service)
                    .with_context(|| format!("serving the core on {}", path.display()))?;
                return Ok(());
            };
            let peers = parse_peers(&group.peers)?;
            // Settings first: a typo must not cost a start of the group machinery.
            settings.dummy_profile()?;
            let master = settings.master.source(&data.join(keys::MASTER_KEY_FILE));
            let link_key = keys::load_link_key(&data, &master)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let g = Group::start(
                GroupConfig {
                    dir: data.clone(),
                    member,
                    listen: group_listen,
                    peers,
                    ram_only: group.ram_only,
                    link_key,
                },
                &rt,
            )?;
            let service = settings.start_on(&data, || Ok(Arc::new(GroupStore(g))))?;
            server::serve_unix(&path, service)
                .with_context(|| format!("serving the core on {}", path.display()))?;
            Ok(())
        }
        Cmd::GroupInit { data, members } => {
            if !(members == 3 || members == 5) {
                bail!(
                    "--members {members}: a group has 3 or 5 members (a majority must be up; 1 is `init`, even counts add no safety)"
                );
            }
            refuse_existing_vault(&data)?;
            let core_keys = coffer_vault_core::CoreKeys::generate(&mut rand_core::OsRng);
            let mut link_key = zeroize::Zeroizing::new([0u8; 32]);
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut link_key[..]);
            for i in 1..=members {
                let dir = data.join(format!("core-{i}"));
                if dir.exists() {
                    bail!(
                        "{} already exists; refusing to make a group over it",
                        dir.display()
                    );
                }
                let master = MasterKeyArgs::default().source(&dir.join(keys::MASTER_KEY_FILE));
                keys::init_with(&dir, &master, &core_keys, Some(&link_key))?;
                if i == 1 {
                    std::fs::write(
                        dir.join(group::BOOTSTRAP_FILE),
                        b"found the group on first start\n",
                    )
                    .with_context(|| format!("writing {}", dir.display()))?;
                }
            }
            let kf = KeyFile::init(&data, *core_keys.vault_id())?;
            RedbStorage::open(&data.join(DB_FILE))?;
            println!(
                "initialised replicated vault {} in {} ({members} members: {}/core-1 .. core-{members})",
                kf.vault_id_hex(),
                data.display(),
                data.display()
            );
            Ok(())
        }
        Cmd::GroupRemove {
            data,
            member,
            peers,
            master,
        } => {
            let link_key =
                keys::load_link_key(&data, &master.source(&data.join(keys::MASTER_KEY_FILE)))?;
            let addrs: Vec<String> = parse_peers(&peers)?.into_values().collect();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(group::remove_member(&addrs, &link_key, member))?;
            println!("member {member} removed from the group; stop its process now");
            Ok(())
        }
        Cmd::GroupAddMember { from, out, master } => {
            if out.exists() {
                bail!("{} already exists; give a new directory", out.display());
            }
            // The existing member's own master key file, if it uses one.
            let src = MasterKeyArgs::default().source(&from.join(keys::MASTER_KEY_FILE));
            let core_keys = keys::load(&from, &src)?;
            let link_key = keys::load_link_key(&from, &src)?;
            keys::init_with(
                &out,
                &master.source(&out.join(keys::MASTER_KEY_FILE)),
                &core_keys,
                Some(&link_key),
            )?;
            println!(
                "wrote new member {}; start it with `coffer-vault core --data {} --member I ...`",
                out.display(),
                out.display()
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
            core,
            records_in_core,
            settings,
            rate_limit,
            tenant_keys,
            dev_tokens,
            metrics_listen,
            metrics_commit_counters,
            tls_cert,
            tls_key,
        } => {
            let kf = KeyFile::load(&data)?;
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
            let link = match core {
                Some(addr) => {
                    if settings.given() {
                        bail!(
                            "--max-guesses, --dummy-profile, --login-ttl and the master key flags are the core's settings: give them to `coffer-vault core`, not to a host with --core"
                        );
                    }
                    let paths = addr
                        .split(',')
                        .map(|a| unix_path(a, "--core"))
                        .collect::<Result<Vec<_>>>()?;
                    CoreLink::Unix(Arc::new(UnixLink::group(paths)))
                }
                None => CoreLink::Embedded(settings.start(&data.join(CORE_DIR))?),
            };
            let mut auth = Auth::new(kf.vault_id_hex(), kf.token_key.as_ref(), tenants);
            if dev_tokens {
                auth = auth.allow_dev_tokens();
            }
            let storage: Arc<dyn Storage> = Arc::new(RedbStorage::open(&data.join(DB_FILE))?);
            let metrics = Arc::new(Metrics::new(metrics_commit_counters));
            let failpoint = std::env::var("COFFER_VAULT_FAILPOINT").ok();
            let metrics_for_listener = metrics.clone();
            let mut state = AppState::new(
                link,
                auth,
                storage,
                RateLimiter::new(rate_limit),
                metrics,
                failpoint,
            );
            if records_in_core {
                state = state.with_records_in_core();
            }
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
