//! Load benchmark (not a timed test): the real release `coffer-vault` with a real redb
//! file, driven over loopback by concurrent recover start+finish, compared in the same run
//! with raw opaque-ke `ServerLogin::start` + `finish` on one core.
//!
//! Run: `cargo bench -p coffer-vault --bench recover_load` (env: BENCH_SECS, BENCH_THREADS,
//! BENCH_ACCOUNTS). Reports recoveries per server CPU-second as a ratio of raw, and
//! p50/p99 latency at ~80% of the measured peak. `BENCH_BASELINE_BIN=PATH` also runs an
//! older `coffer-vault` binary through the same phases in the same run, alternating with
//! this one, so a change is compared side by side on the same (noisy, shared) machine.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coffer_vault_client::{KsfProfile, VaultClient};
use coffer_vault_proto::Suite;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, Identifiers, ServerLogin, ServerLoginParameters,
    ServerRegistration, ServerSetup,
};
use rand_core::OsRng;

const BIN: &str = env!("CARGO_BIN_EXE_coffer-vault");

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Server CPU seconds (utime + stime) of `pid` from /proc/PID/stat.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (1-based) are utime and stime; `after` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

/// Time this thread has spent on a CPU (first field of /proc/thread-self/schedstat, ns):
/// unlike a wall clock, it does not count time the thread waited while others ran.
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(s.split_whitespace().next().unwrap().parse().unwrap())
}

/// Raw opaque-ke server work per second of CPU time on one core (client work not timed).
/// Timed in thread CPU time, so it can also run beside the load generator: then the raw
/// figure pays the same contention (shared caches, a busy sibling hyperthread) as the
/// vault does, which an idle measurement does not.
fn raw_server_rate(secs: f64) -> f64 {
    let setup = ServerSetup::<Suite>::new(&mut OsRng);
    let ksf = KsfProfile::TestCheap.argon2();
    let cred = b"bench";
    let reg = ClientRegistration::<Suite>::start(&mut OsRng, b"pw").unwrap();
    let resp = ServerRegistration::<Suite>::start(&setup, reg.message, cred).unwrap();
    let up = reg
        .state
        .finish(
            &mut OsRng,
            b"pw",
            resp.message,
            ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf)),
        )
        .unwrap();
    let file = ServerRegistration::<Suite>::finish(up.message);
    let ctx = coffer_vault_proto::context(&[0; 16]);
    let mut server_time = Duration::ZERO;
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let c = ClientLogin::<Suite>::start(&mut OsRng, b"pw").unwrap();
        let params = ServerLoginParameters {
            context: Some(&ctx),
            ..Default::default()
        };
        let t = thread_cpu();
        let s = ServerLogin::start(
            &mut OsRng,
            &setup,
            Some(file.clone()),
            c.message,
            cred,
            params.clone(),
        )
        .unwrap();
        server_time += thread_cpu() - t;
        let cf = c
            .state
            .finish(
                &mut OsRng,
                b"pw",
                s.message,
                ClientLoginFinishParameters::new(Some(&ctx), Identifiers::default(), Some(&ksf)),
            )
            .unwrap();
        let t = thread_cpu();
        s.state.finish(cf.message, params).unwrap();
        server_time += thread_cpu() - t;
        n += 1;
    }
    n as f64 / server_time.as_secs_f64()
}

struct Run {
    done: u64,
    wall: f64,
    server_cpu: f64,
    lat: Vec<Duration>,
}

/// Drives `threads` workers for `secs`; `rate` (total recoveries/s) paces them if set.
fn drive(
    url: &str,
    tokens: &[String],
    threads: usize,
    secs: u64,
    rate: Option<f64>,
    pids: &[u32],
) -> Run {
    let cpu = || pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (url, stop, done) = (url.to_string(), stop.clone(), done.clone());
            let mine: Vec<String> = tokens.iter().skip(i).step_by(threads).cloned().collect();
            std::thread::spawn(move || {
                let clients: Vec<_> = mine
                    .iter()
                    .map(|t| VaultClient::new(&url, t).unwrap())
                    .collect();
                let mut lat = Vec::new();
                let interval = rate.map(|r| Duration::from_secs_f64(threads as f64 / r));
                let mut next = Instant::now();
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(iv) = interval {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += iv;
                    }
                    let t = Instant::now();
                    let key = clients[k % clients.len()]
                        .recover(b"bench-password")
                        .unwrap();
                    lat.push(t.elapsed());
                    assert_eq!(key[0], 0x42);
                    done.fetch_add(1, Ordering::Relaxed);
                    k += 1;
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    lat.sort();
    Run {
        done: done.load(Ordering::Relaxed),
        wall: t0.elapsed().as_secs_f64(),
        server_cpu: cpu() - cpu0,
        lat,
    }
}

fn pct(lat: &[Duration], p: f64) -> f64 {
    lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3
}

/// One vault binary's figures.
struct Figures {
    label: String,
    peak_rate: f64,
    per_core: f64,
    peak: Run,
    at80_rate: f64,
    at80: Run,
    /// Group-commit batches and the changes in them, over this measurement.
    batches: (u64, u64),
}

/// `(commit batches, changes committed)` from the vault's own counters (zeros from a
/// vault without them: an older baseline binary, or one that had no metrics listener).
fn commit_counters(metrics_url: Option<&str>) -> (u64, u64) {
    let Some(url) = metrics_url else {
        return (0, 0);
    };
    let body = ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let get = |name: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        get("coffer_vault_commit_batches_total"),
        get("coffer_vault_commit_writes_total"),
    )
}

/// A running vault with registered accounts.
struct Served {
    child: std::process::Child,
    /// The core processes: one for a split deployment, the members of a group.
    cores: Vec<Child>,
    _tmp: tempfile::TempDir,
    url: String,
    /// The metrics listener's URL, if this binary has one.
    metrics: Option<String>,
    tokens: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for core in &mut self.cores {
            let _ = core.kill();
            let _ = core.wait();
        }
    }
}

impl Served {
    /// The processes whose CPU time is the vault's: the host, and the core if separate.
    fn pids(&self) -> Vec<u32> {
        let mut p = vec![self.child.id()];
        p.extend(self.cores.iter().map(Child::id));
        p
    }
}

/// A command for `bin`, pinned to `BENCH_SERVER_CPU` when that is set.
fn pinned(bin: &str) -> Command {
    match std::env::var("BENCH_SERVER_CPU") {
        Ok(cpu) if !cpu.is_empty() => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu]).arg(bin);
            c
        }
        _ => Command::new(bin),
    }
}

/// Starts `bin`'s vault; with `split`, its core as a process of its own (`coffer-vault
/// core`, pinned to the same core as the host) and the host in front of it.
fn serve(bin: &str, accounts: usize, split: bool) -> Served {
    serve_as(
        bin,
        accounts,
        if split {
            Deploy::Split
        } else {
            Deploy::Embedded
        },
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Deploy {
    Embedded,
    Split,
    /// Three members of a Raft group on loopback (docs/VAULT-GROUP.md), host in front.
    Group,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the members of a 3-member group made in `dir` and waits until each is a voter.
fn start_group(bin: &str, dir: &std::path::Path) -> Vec<Child> {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut cores = Vec::new();
    for i in 0..3 {
        let log = dir.join(format!("core-{}.log", i + 1));
        let f = std::fs::File::create(&log).unwrap();
        let mut c = pinned(bin);
        c.args(["core", "--dummy-profile", "argon2id-test", "--data"])
            .arg(dir.join(format!("core-{}", i + 1)))
            .arg("--listen")
            .arg(format!(
                "unix:{}",
                dir.join(format!("core-{}.sock", i + 1)).display()
            ))
            .args(["--member", &(i + 1).to_string()])
            .args(["--group-listen", &format!("127.0.0.1:{}", ports[i])]);
        for (j, p) in ports.iter().enumerate() {
            c.args(["--peer", &format!("{}=127.0.0.1:{p}", j + 1)]);
        }
        cores.push(
            c.env("RUST_LOG", "info,openraft=warn")
                .stdout(f.try_clone().unwrap())
                .stderr(f)
                .spawn()
                .unwrap(),
        );
    }
    let t = std::time::Instant::now();
    'wait: loop {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the group did not form"
        );
        for i in 0..3 {
            let text = std::fs::read_to_string(dir.join(format!("core-{}.log", i + 1)))
                .unwrap_or_default();
            if !(text.contains("joined the group as a voter") || text.contains("founded the group"))
            {
                std::thread::sleep(Duration::from_millis(100));
                continue 'wait;
            }
        }
        break;
    }
    cores
}

fn serve_as(bin: &str, accounts: usize, deploy: Deploy) -> Served {
    let split = deploy == Deploy::Split;
    let tmp = tempfile::tempdir().unwrap();
    let init: &[&str] = if deploy == Deploy::Group {
        &["group-init", "--members", "3", "--data"]
    } else {
        &["init", "--data"]
    };
    assert!(
        Command::new(bin)
            .args(init)
            .arg(tmp.path())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    // With BENCH_SERVER_CPU set (bench/vault-load sets it on machines with 2+ cores), the
    // server runs alone on that core and the load generator on the others, so the server's
    // cost per recovery is not inflated by 16 client threads sharing its core's caches.
    // Vaults since issue 9 serve metrics on their own listener, and export the group-commit
    // counters only when asked (they tell real accounts from unknown ones); older
    // baselines serve /metrics on the API port and know neither flag.
    let help = Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let own_listener = String::from_utf8_lossy(&help.stdout).contains("--metrics-listen");
    let mut cmd = pinned(bin);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--rate-limit",
        "0",
        "--data",
    ])
    .arg(tmp.path());
    let mut cores: Vec<Child> = split
        .then(|| {
            let sock = tmp.path().join("core.sock");
            let mut core = pinned(bin)
                .args(["core", "--dummy-profile", "argon2id-test", "--data"])
                .arg(tmp.path().join("core"))
                .arg("--listen")
                .arg(format!("unix:{}", sock.display()))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(core.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(line.starts_with("core listening on"), "{line}");
            core
        })
        .into_iter()
        .collect();
    match deploy {
        Deploy::Split => {
            let sock = tmp.path().join("core.sock");
            cmd.args(["--core", &format!("unix:{}", sock.display())]);
        }
        Deploy::Group => {
            cores = start_group(bin, tmp.path());
            let socks: Vec<String> = (1..=3)
                .map(|i| {
                    format!(
                        "unix:{}",
                        tmp.path().join(format!("core-{i}.sock")).display()
                    )
                })
                .collect();
            cmd.args(["--core", &socks.join(","), "--records-in-core"]);
        }
        Deploy::Embedded => {
            cmd.args(["--dummy-profile", "argon2id-test"]);
        }
    }
    if own_listener {
        cmd.args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-commit-counters",
        ]);
    }
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let metrics = if own_listener {
        line.clear();
        out.read_line(&mut line).unwrap();
        Some(line.trim().strip_prefix("metrics on ").unwrap().to_string())
    } else {
        Some(format!("{url}/metrics"))
    };
    let tokens: Vec<String> = (0..accounts)
        .map(|i| {
            let out = Command::new(bin)
                .args(["token", "--data"])
                .arg(tmp.path())
                .args(["--account", &format!("bench-{i}"), "--ttl", "1h"])
                .output()
                .unwrap();
            let t = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .last()
                .unwrap()
                .to_string();
            let c = VaultClient::new(&url, &t).unwrap();
            match c.register(b"bench-password", &[0x42; 32], KsfProfile::TestCheap) {
                Ok(()) => {}
                // A baseline from before registration tickets (8bf47f8 and older).
                Err(coffer_vault_client::VaultError::Protocol { .. }) => register_legacy(&url, &t),
                Err(e) => panic!("registering a bench account: {e}"),
            }
            t
        })
        .collect();
    Served {
        child,
        cores,
        _tmp: tmp,
        url,
        metrics,
        tokens,
    }
}

/// Registration as vaults before registration tickets and owner keys spoke it (no
/// `ticket` in the start reply, no `ticket`/`owner_key` at finish), so that an older
/// baseline binary can be measured beside this one. The recovery flow is unchanged.
fn register_legacy(url: &str, token: &str) {
    use coffer_vault_proto::wire::{b64, unb64};
    let post = |path: &str, body: serde_json::Value| -> serde_json::Value {
        let text = ureq::post(format!("{url}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(body)
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let (req, st) =
        coffer_vault_proto::client::register_start(b"bench-password", &mut OsRng).unwrap();
    let reply = post(
        "/v1/register/start",
        serde_json::json!({"v": 1, "request": b64(&req)}),
    );
    let response = unb64(reply["response"].as_str().unwrap()).unwrap();
    let up = st
        .finish(&response, &[0x42; 32], KsfProfile::TestCheap, &mut OsRng)
        .unwrap();
    post(
        "/v1/register/finish",
        serde_json::json!({"v": 1, "upload": b64(&up.upload), "wrapped_key": b64(&up.wrapped_key),
            "profile": KsfProfile::TestCheap.name()}),
    );
}

fn measure(label: &str, s: &Served, threads: usize, secs: u64) -> Figures {
    let pid = &s.pids();
    let _warm = drive(&s.url, &s.tokens, threads, 1, None, pid);
    let c0 = commit_counters(s.metrics.as_deref());
    let peak = drive(&s.url, &s.tokens, threads, secs, None, pid);
    let c1 = commit_counters(s.metrics.as_deref());
    let peak_rate = peak.done as f64 / peak.wall;
    let per_core = peak.done as f64 / peak.server_cpu;
    let at80 = drive(&s.url, &s.tokens, threads, secs, Some(peak_rate * 0.8), pid);
    Figures {
        label: label.to_string(),
        peak_rate,
        per_core,
        at80_rate: at80.done as f64 / at80.wall,
        peak,
        at80,
        batches: (c1.0 - c0.0, c1.1 - c0.1),
    }
}

fn report(f: &Figures, raw: f64, raw_loaded: f64) {
    println!("[{}]", f.label);
    println!(
        "  end to end at peak: {:.0} recoveries/s wall, server CPU {:.2} s for {} recoveries = {:.0} recoveries per server core-second (server core {:.0}% busy)",
        f.peak_rate,
        f.peak.server_cpu,
        f.peak.done,
        f.per_core,
        100.0 * f.peak.server_cpu / f.peak.wall
    );
    println!(
        "  ratio per core (end to end / raw): {:.2} against raw on an idle machine, {:.2} against raw under the same load",
        f.per_core / raw,
        f.per_core / raw_loaded
    );
    println!(
        "  group commit at peak: {} record batches for {} changes ({:.1} per batch)",
        f.batches.0,
        f.batches.1,
        f.batches.1 as f64 / f.batches.0.max(1) as f64
    );
    println!(
        "  peak latency p50 {:.2} ms, p99 {:.2} ms",
        pct(&f.peak.lat, 0.5),
        pct(&f.peak.lat, 0.99)
    );
    println!(
        "  at 80% of peak ({:.0}/s offered, {:.0}/s achieved): p50 {:.2} ms, p99 {:.2} ms (client-side, includes the client's OPAQUE work)",
        f.peak_rate * 0.8,
        f.at80_rate,
        pct(&f.at80.lat, 0.5),
        pct(&f.at80.lat, 0.99)
    );
}

fn main() {
    let secs = env_or("BENCH_SECS", 8);
    let threads = env_or("BENCH_THREADS", 16) as usize;
    let accounts = env_or("BENCH_ACCOUNTS", 64) as usize;
    let baseline = std::env::var("BENCH_BASELINE_BIN").ok();

    if std::env::var("BENCH_GROUP").is_ok_and(|v| v == "1") {
        return group_main(secs, threads, accounts);
    }
    let current = serve(BIN, accounts, false);
    let split = serve(BIN, accounts, true);
    let base = baseline.as_deref().map(|b| serve(b, accounts, false));
    // Alternate: baseline, current, raw, current, baseline, so drift in the machine's
    // load hits both binaries alike.
    let mut figs = Vec::new();
    if let Some(b) = &base {
        figs.push(measure(
            "baseline (BENCH_BASELINE_BIN), round 1",
            b,
            threads,
            secs,
        ));
    }
    figs.push(measure(
        "this build, embedded core, round 1",
        &current,
        threads,
        secs,
    ));
    figs.push(measure(
        "this build, core process + host, round 1",
        &split,
        threads,
        secs,
    ));
    let raw = raw_server_rate(3.0);
    // The same raw measurement while the load generator drives the vault at peak.
    let raw_loaded = {
        let h = std::thread::spawn(move || {
            // On the vault's own core when it is pinned, so raw and vault share one core's
            // caches and sibling, as the vault's own threads do.
            if let Ok(cpu) = std::env::var("BENCH_SERVER_CPU")
                && !cpu.is_empty()
            {
                let me = std::fs::read_link("/proc/thread-self").unwrap();
                let tid = me.file_name().unwrap().to_string_lossy().into_owned();
                let pinned = Command::new("taskset")
                    .args(["-p", "-c", &cpu, &tid])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                assert!(pinned.success());
            }
            raw_server_rate(secs as f64)
        });
        let _load = drive(
            &current.url,
            &current.tokens,
            threads,
            secs,
            None,
            &current.pids(),
        );
        h.join().unwrap()
    };
    figs.push(measure(
        "this build, core process + host, round 2",
        &split,
        threads,
        secs,
    ));
    figs.push(measure(
        "this build, embedded core, round 2",
        &current,
        threads,
        secs,
    ));
    if let Some(b) = &base {
        figs.push(measure(
            "baseline (BENCH_BASELINE_BIN), round 2",
            b,
            threads,
            secs,
        ));
    }
    drop(base);
    drop(split);
    drop(current);

    println!(
        "recover_load: {accounts} accounts, {threads} client threads, {secs} s per phase, cheap KSF; this build counts each guess with one fsync in the core's store (group-committed), the baseline with its own commit order; server CPU = host + core processes"
    );
    println!("raw opaque-ke ServerLogin start+finish, 1 core, idle machine: {raw:.0} /s");
    println!(
        "raw opaque-ke ServerLogin start+finish, 1 core, beside the load generator at peak: {raw_loaded:.0} per CPU-second"
    );
    for f in &figs {
        report(f, raw, raw_loaded);
    }
}

/// `bench/vault-group`: a 3-member group beside the single core process, alternating.
fn group_main(secs: u64, threads: usize, accounts: usize) {
    let single = serve(BIN, accounts, true);
    let group = serve_as(BIN, accounts, Deploy::Group);
    let mut figs = Vec::new();
    figs.push(measure(
        "single core process + host, round 1",
        &single,
        threads,
        secs,
    ));
    figs.push(measure(
        "3-member group + host, round 1",
        &group,
        threads,
        secs,
    ));
    let raw = raw_server_rate(3.0);
    figs.push(measure(
        "3-member group + host, round 2",
        &group,
        threads,
        secs,
    ));
    figs.push(measure(
        "single core process + host, round 2",
        &single,
        threads,
        secs,
    ));
    drop(group);
    drop(single);
    println!(
        "recover_load (group): {accounts} accounts, {threads} client threads, {secs} s per phase, cheap KSF; every process of a deployment pinned to the same server core; server CPU = host + every core process"
    );
    println!("raw opaque-ke ServerLogin start+finish, 1 core, idle machine: {raw:.0} /s");
    for f in &figs {
        report(f, raw, raw);
    }
}
