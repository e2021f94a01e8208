//! The replicated vault under faults (docs/VAULT-GROUP.md): three real `coffer-vault
//! core` processes in one Raft group, every member-to-member connection through a relay
//! this test controls, and a real host (`serve --records-in-core`) in front. Clients run
//! real OPAQUE recoveries over HTTP, right and wrong passwords, while each trial does one
//! of: SIGKILL a member (the leader half the time, sometimes mid-commit) and restart it,
//! sometimes on an old copy of its directory; cut a member off (both directions) and heal;
//! delay a link; let a hostile relay duplicate and reorder link bytes and replay a
//! recorded session.
//!
//! Checked from the recorded history of the whole run:
//! - no registration ever hands out more testable KE2s than `--max-guesses` (the attacked
//!   accounts never see their right password, so every KE2 counts);
//! - the group's own count never runs below the KE2s handed out (no count lost);
//! - every acknowledged registration still recovers with its password at the end;
//! - every request is answered or refused (none hangs) while a majority is up.
//!
//! By default it runs for [`DEFAULT_SECONDS`] (at least [`MIN_TRIALS`] trials);
//! `GROUP_TRIALS=N` runs exactly N; `GROUP_SEED` fixes the schedule.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_vault_client::{KsfProfile, VaultClient, VaultError};
use common::{BIN, Dice};
use rand_core::{OsRng, RngCore};

const DEFAULT_SECONDS: u64 = 75;
const MIN_TRIALS: u64 = 12;
/// High enough that the right-password logins, whose guess a fault can count without the
/// reset that follows, never use up a good account; the attacked accounts use up theirs.
const MAX_GUESSES: u32 = 8;
const N: usize = 3;
/// The longest any request may take while a majority is up (the core's commit timeout is
/// 5 s; a request may wait for a leader once more through the host).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

const PASS: u8 = 0;
const DROP: u8 = 1;
const MANGLE: u8 = 2;

/// A relay in front of one member, for one dialing member: pass, drop (a cut link), delay,
/// or mangle (duplicate and swap chunks). It records what the dialer sent on its latest
/// connection, to replay.
struct Relay {
    port: u16,
    target: u16,
    mode: Arc<AtomicU8>,
    delay_ms: Arc<AtomicU64>,
    recorded: Arc<Mutex<Vec<u8>>>,
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    mode: Arc<AtomicU8>,
    delay: Arc<AtomicU64>,
    record: Option<Arc<Mutex<Vec<u8>>>>,
) {
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut held: Option<Vec<u8>> = None;
    let mut n_chunks = 0u64;
    loop {
        if mode.load(Ordering::Relaxed) == DROP {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if let Some(h) = held.take()
                    && to.write_all(&h).is_err()
                {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        n_chunks += 1;
        let chunk = buf[..n].to_vec();
        if let Some(r) = &record {
            let mut r = r.lock().unwrap();
            if r.len() < 256 * 1024 {
                r.extend_from_slice(&chunk);
            }
        }
        let d = delay.load(Ordering::Relaxed);
        if d > 0 {
            std::thread::sleep(Duration::from_millis(d));
        }
        let ok = if mode.load(Ordering::Relaxed) == MANGLE && n_chunks % 7 == 3 {
            // Duplicate this chunk, or hold it back behind the next one.
            if n_chunks.is_multiple_of(2) {
                to.write_all(&chunk).and_then(|()| to.write_all(&chunk))
            } else {
                held = Some(chunk);
                Ok(())
            }
        } else {
            let r = to.write_all(&chunk);
            match held.take() {
                Some(h) => r.and_then(|()| to.write_all(&h)),
                None => r,
            }
        };
        if ok.is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Relay {
    fn start(target: u16) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let r = Relay {
            port,
            target,
            mode: Arc::new(AtomicU8::new(PASS)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            recorded: Arc::new(Mutex::new(Vec::new())),
        };
        let (mode, delay, rec) = (r.mode.clone(), r.delay_ms.clone(), r.recorded.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                if mode.load(Ordering::Relaxed) == DROP {
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                rec.lock().unwrap().clear();
                let (c2, up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                let (m1, d1, r1) = (mode.clone(), delay.clone(), rec.clone());
                std::thread::spawn(move || pump(c, up, m1, d1, Some(r1)));
                let (m2, d2) = (mode.clone(), delay.clone());
                std::thread::spawn(move || pump(up2, c2, m2, d2, None));
            }
        });
        r
    }

    /// Replays the dialer's recorded bytes to the member on a new connection: it must
    /// get nothing back but the member's own fresh handshake (34 bytes), then be cut off.
    fn replay_recorded(&self) -> Option<usize> {
        let rec = self.recorded.lock().unwrap().clone();
        if rec.len() < 34 {
            return None;
        }
        let mut s = TcpStream::connect(("127.0.0.1", self.target)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&rec);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        Some(got.len())
    }
}

/// The group: member directories, ports, relays, processes, host.
struct Group {
    dir: PathBuf,
    ports: Vec<u16>,
    /// `relays[i][j]`: member i's way to member j.
    relays: Vec<Vec<Option<Relay>>>,
    cores: Vec<Option<Child>>,
    host: Option<Child>,
    url: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Group {
    fn new(dir: &Path) -> Group {
        let out = Command::new(BIN)
            .args(["group-init", "--members", "3", "--data"])
            .arg(dir.join("vault"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ports: Vec<u16> = (0..N).map(|_| free_port()).collect();
        let relays = (0..N)
            .map(|i| {
                (0..N)
                    .map(|j| (i != j).then(|| Relay::start(ports[j])))
                    .collect()
            })
            .collect();
        let mut g = Group {
            dir: dir.to_path_buf(),
            ports,
            relays,
            cores: (0..N).map(|_| None).collect(),
            host: None,
            url: String::new(),
        };
        for i in 0..N {
            g.start_core(i);
        }
        let cores: Vec<String> = (0..N)
            .map(|i| format!("unix:{}", g.sock(i).display()))
            .collect();
        let log = std::fs::File::create(dir.join("host.log")).unwrap();
        let mut host = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--rate-limit",
                "0",
                "--data",
            ])
            .arg(dir.join("vault"))
            .args(["--core", &cores.join(","), "--records-in-core"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = std::io::BufReader::new(host.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        g.url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        g.host = Some(host);
        for i in 0..N {
            g.wait_voter(i, 1);
        }
        g
    }

    fn member_dir(&self, i: usize) -> PathBuf {
        self.dir.join("vault").join(format!("core-{}", i + 1))
    }

    fn sock(&self, i: usize) -> PathBuf {
        self.dir.join(format!("core-{}.sock", i + 1))
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("core-{}.log", i + 1))
    }

    fn start_core(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["core", "--data"])
            .arg(self.member_dir(i))
            .arg("--listen")
            .arg(format!("unix:{}", self.sock(i).display()))
            .args(["--member", &(i + 1).to_string()])
            .args(["--group-listen", &format!("127.0.0.1:{}", self.ports[i])])
            .args(["--max-guesses", &MAX_GUESSES.to_string()])
            .args(["--dummy-profile", "argon2id-test"]);
        for j in 0..N {
            let port = match &self.relays[i][j] {
                Some(r) => r.port,
                None => self.ports[i],
            };
            cmd.args(["--peer", &format!("{}=127.0.0.1:{port}", j + 1)]);
        }
        let child = cmd
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.cores[i] = Some(child);
    }

    /// Counts of "joined"/"founded"/"resuming" lines in member i's log.
    fn voter_lines(&self, i: usize) -> usize {
        std::fs::read_to_string(self.log(i))
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("joined the group as a voter")
                    || l.contains("founded the group")
                    || l.contains("resuming from this member's disk")
            })
            .count()
    }

    fn wait_voter(&self, i: usize, at_least: usize) {
        let t = Instant::now();
        while self.voter_lines(i) < at_least {
            if t.elapsed() > Duration::from_secs(90) {
                let logs: Vec<String> = (0..N)
                    .map(|j| format!("--- member {}:\n{}", j + 1, tail(&self.log(j))))
                    .collect();
                panic!(
                    "member {} did not become a voter in 90 s\n{}",
                    i + 1,
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The member that the most recent "leader changed" line of any live member names.
    fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in 0..N {
            let Ok(text) = std::fs::read_to_string(self.log(i)) else {
                continue;
            };
            for l in text.lines().filter(|l| l.contains("leader changed")) {
                let term = field(l, "term=");
                let slot = field(l, "leader_slot=");
                if let (Some(t), Some(s)) = (term, slot)
                    && s >= 1
                    && best.is_none_or(|(bt, _)| t >= bt)
                {
                    best = Some((t, s as usize - 1));
                }
            }
        }
        best.map(|(_, s)| s)
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.cores[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self, i: usize) {
        let before = self.voter_lines(i);
        self.start_core(i);
        self.wait_voter(i, before + 1);
    }

    fn set_links(&self, i: usize, mode: u8) {
        for j in 0..N {
            if let Some(r) = &self.relays[i][j] {
                r.mode.store(mode, Ordering::Relaxed);
            }
            if let Some(r) = &self.relays[j][i] {
                r.mode.store(mode, Ordering::Relaxed);
            }
        }
    }

    fn heal(&self) {
        for row in &self.relays {
            for r in row.iter().flatten() {
                r.mode.store(PASS, Ordering::Relaxed);
                r.delay_ms.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for i in 0..N {
            self.kill(i);
        }
        if let Some(mut h) = self.host.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(key)? + key.len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn tail(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// What the clients saw, per account.
#[derive(Default)]
struct History {
    /// Attacked accounts: KE2s handed out (every one testable: the password is never right).
    ke2s: BTreeMap<String, u32>,
    /// Registrations acknowledged: account -> (password, K).
    registered: BTreeMap<String, (Vec<u8>, [u8; 32])>,
    /// Slowest answer while a majority was up.
    slowest: Duration,
    answered: u64,
    refused: u64,
}

struct Clients {
    url: String,
    dir: PathBuf,
    history: Mutex<History>,
    tokens: Mutex<BTreeMap<String, String>>,
}

impl Clients {
    fn client(&self, account: &str) -> VaultClient {
        let tok = {
            let mut t = self.tokens.lock().unwrap();
            t.entry(account.to_string())
                .or_insert_with(|| common::token(&self.dir.join("vault"), account, "2h"))
                .clone()
        };
        VaultClient::new(&self.url, &tok).unwrap()
    }

    fn timed<T>(&self, f: impl FnOnce() -> Result<T, VaultError>) -> Result<T, VaultError> {
        let t = Instant::now();
        let r = f();
        let mut h = self.history.lock().unwrap();
        h.slowest = h.slowest.max(t.elapsed());
        match &r {
            Ok(_) | Err(VaultError::WrongPassword { .. } | VaultError::KeyDestroyed) => {
                h.answered += 1;
            }
            Err(_) => h.refused += 1,
        }
        r
    }

    fn register(&self, account: &str, password: &[u8]) -> bool {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        let c = self.client(account);
        let ok = self
            .timed(|| c.register(password, &k, KsfProfile::TestCheap))
            .is_ok();
        if ok {
            self.history
                .lock()
                .unwrap()
                .registered
                .insert(account.to_string(), (password.to_vec(), k));
        }
        ok
    }

    /// One wrong guess at an attacked account.
    fn attack(&self, account: &str) {
        let c = self.client(account);
        // `start_recovery` fails as WrongPassword exactly when a real KE2 arrived (the
        // client tested the password with it offline).
        if let Err(VaultError::WrongPassword { .. }) =
            self.timed(|| c.start_recovery(b"not the password").map(|_| ()))
        {
            *self
                .history
                .lock()
                .unwrap()
                .ke2s
                .entry(account.to_string())
                .or_default() += 1;
        }
    }

    /// One right login; its K must be the registered one.
    fn login(&self, account: &str) {
        let Some((pw, k)) = self
            .history
            .lock()
            .unwrap()
            .registered
            .get(account)
            .cloned()
        else {
            return;
        };
        let c = self.client(account);
        if let Ok(got) = self.timed(|| c.recover(&pw)) {
            assert_eq!(*got, k, "{account}: a login released another key");
        }
    }
}

#[test]
fn the_group_loses_no_count_and_no_registration_under_minority_faults() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Group::new(dir.path());
    let seed = std::env::var("GROUP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| OsRng.next_u64());
    let trials: Option<u64> = std::env::var("GROUP_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok());
    eprintln!("group harness: seed {seed}");
    let mut dice = Dice(seed);
    let clients = Arc::new(Clients {
        url: g.url.clone(),
        dir: dir.path().to_path_buf(),
        history: Mutex::new(History::default()),
        tokens: Mutex::new(BTreeMap::new()),
    });
    // Accounts logged into with their password throughout, and accounts under attack.
    let good: Vec<String> = (0..4).map(|i| format!("good-{i}")).collect();
    for a in &good {
        assert!(
            clients.register(a, format!("pw-{a}").as_bytes()),
            "registering {a}"
        );
    }
    let mut attacked: Vec<String> = Vec::new();
    let mut ever_attacked: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut next_attacked = 0u64;
    let mut copies: BTreeMap<usize, PathBuf> = BTreeMap::new();
    let started = Instant::now();
    let mut kinds = [0u64; 6];
    let mut trial = 0u64;
    loop {
        let done = match trials {
            Some(n) => trial >= n,
            None => trial >= MIN_TRIALS && started.elapsed() > Duration::from_secs(DEFAULT_SECONDS),
        };
        if done {
            break;
        }
        // Keep three accounts under attack; a destroyed one is replaced.
        while attacked.len() < 3 {
            let a = format!("attacked-{next_attacked}");
            next_attacked += 1;
            if clients.register(&a, b"the real password") {
                ever_attacked.insert(a.clone());
                attacked.push(a);
            }
        }
        let kind = dice.below(6);
        kinds[kind] += 1;
        let victim = match dice.below(2) {
            0 => g.leader().unwrap_or(dice.below(N)),
            _ => dice.below(N),
        };
        // Load: a few threads of logins and attacks for the whole trial.
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Vec::new();
        for t in 0..3u64 {
            let (c, stop) = (clients.clone(), stop.clone());
            let accounts = if t == 0 {
                good.clone()
            } else {
                attacked.clone()
            };
            load.push(std::thread::spawn(move || {
                let mut k = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let a = &accounts[k % accounts.len()];
                    if t == 0 {
                        c.login(a)
                    } else {
                        c.attack(a)
                    }
                    k += 1;
                }
            }));
        }
        match kind {
            // SIGKILL (the leader half the time), maybe mid-commit: the load is running.
            0 | 1 => {
                std::thread::sleep(Duration::from_millis(dice.below(400) as u64));
                g.kill(victim);
                std::thread::sleep(Duration::from_millis(300 + dice.below(700) as u64));
                // Its directory as it was some trials ago.
                if kind == 1
                    && let Some(old) = copies.get(&victim)
                {
                    copy_dir(old, &g.member_dir(victim));
                }
                g.restart(victim);
            }
            // Cut a member off both ways, then heal.
            2 => {
                g.set_links(victim, DROP);
                std::thread::sleep(Duration::from_millis(500 + dice.below(1500) as u64));
                g.heal();
            }
            // A slow link.
            3 => {
                let j = (victim + 1 + dice.below(N - 1)) % N;
                if let Some(r) = &g.relays[victim][j] {
                    r.delay_ms
                        .store(20 + dice.below(200) as u64, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(500 + dice.below(1000) as u64));
                g.heal();
            }
            // A hostile relay: duplicated and reordered bytes, and a replayed session.
            _ => {
                g.set_links(victim, MANGLE);
                std::thread::sleep(Duration::from_millis(300 + dice.below(700) as u64));
                for row in &g.relays {
                    for r in row.iter().flatten() {
                        if let Some(n) = r.replay_recorded() {
                            assert!(
                                n <= 34,
                                "a replayed member session got {n} bytes back: more than a fresh handshake"
                            );
                        }
                    }
                }
                g.heal();
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.join().unwrap();
        }
        // Now and then keep a copy of a member's directory, to put back later.
        if dice.below(3) == 0 {
            let i = dice.below(N);
            let to = dir.path().join(format!("copy-{i}"));
            copy_dir(&g.member_dir(i), &to);
            copies.insert(i, to);
        }
        attacked.retain(|a| {
            clients
                .history
                .lock()
                .unwrap()
                .ke2s
                .get(a)
                .copied()
                .unwrap_or(0)
                < MAX_GUESSES
        });
        check_budget(&clients);
        trial += 1;
    }
    g.heal();
    // Everything up and healed: every acknowledged registration recovers, and the
    // group's counts are at least the KE2s handed out.
    let h = clients.history.lock().unwrap();
    let registered = h.registered.clone();
    let ke2s = h.ke2s.clone();
    drop(h);
    for (a, (pw, k)) in &registered {
        let c = clients.client(a);
        let st = retry(|| c.status()).unwrap();
        if ever_attacked.contains(a) {
            let n = ke2s.get(a).copied().unwrap_or(0);
            let used = MAX_GUESSES - st.guesses_left.unwrap_or(0);
            assert!(
                st.destroyed || used >= n,
                "{a}: {n} KE2s handed out but the group counts {used} guesses"
            );
            continue;
        }
        let got = retry(|| c.recover(pw))
            .unwrap_or_else(|e| panic!("{a}: acknowledged registration lost: {e}"));
        assert_eq!(*got, *k, "{a}");
    }
    let h = clients.history.lock().unwrap();
    eprintln!(
        "group harness: {trial} trials (kill {}, kill+old copy {}, cut {}, delay {}, hostile relay {}) in {:?}; {} answered, {} refused, slowest {:?}; {} accounts attacked",
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3],
        kinds[4] + kinds[5],
        started.elapsed(),
        h.answered,
        h.refused,
        h.slowest,
        ke2s.len()
    );
    assert!(
        h.slowest < ANSWER_WITHIN,
        "a request took {:?}: neither answered nor refused in time",
        h.slowest
    );
    assert!(
        h.answered > trial,
        "the group answered almost nothing: {} answers",
        h.answered
    );
}

fn check_budget(c: &Clients) {
    for (a, &n) in &c.history.lock().unwrap().ke2s {
        assert!(
            n <= MAX_GUESSES,
            "{a}: {n} testable KE2s handed out, over the limit of {MAX_GUESSES}"
        );
    }
}

fn retry<T>(mut f: impl FnMut() -> Result<T, VaultError>) -> Result<T, VaultError> {
    let mut last = None;
    for _ in 0..40 {
        match f() {
            Ok(v) => return Ok(v),
            Err(
                e @ (VaultError::WrongPassword { .. }
                | VaultError::KeyDestroyed
                | VaultError::NoRecord),
            ) => {
                return Err(e);
            }
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(last.unwrap())
}

/// Every member restarted in turn, each after the previous one rejoined: the vault
/// answers throughout, and nothing registered before is lost.
#[test]
fn rolling_restarts_keep_the_vault_available_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Group::new(dir.path());
    let clients = Arc::new(Clients {
        url: g.url.clone(),
        dir: dir.path().to_path_buf(),
        history: Mutex::new(History::default()),
        tokens: Mutex::new(BTreeMap::new()),
    });
    for i in 0..6 {
        assert!(clients.register(&format!("user-{i}"), b"pw"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let fails = Arc::new(AtomicU64::new(0));
    let oks = Arc::new(AtomicU64::new(0));
    let load = {
        let (c, stop, fails, oks) = (clients.clone(), stop.clone(), fails.clone(), oks.clone());
        std::thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let a = format!("user-{}", k % 6);
                let cl = c.client(&a);
                match cl.recover(b"pw") {
                    Ok(_) => oks.fetch_add(1, Ordering::Relaxed),
                    Err(_) => fails.fetch_add(1, Ordering::Relaxed),
                };
                k += 1;
            }
        })
    };
    for round in 0..2 {
        for i in 0..N {
            let before = oks.load(Ordering::Relaxed);
            g.kill(i);
            std::thread::sleep(Duration::from_millis(500));
            g.restart(i);
            // Logins went on while member i was away or catching up.
            let t = Instant::now();
            while oks.load(Ordering::Relaxed) == before {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "round {round}: no login succeeded around member {}'s restart",
                    i + 1
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    for i in 0..6 {
        let c = clients.client(&format!("user-{i}"));
        retry(|| c.recover(b"pw")).unwrap();
    }
    eprintln!(
        "rolling restarts: {} logins, {} refused while members restarted",
        oks.load(Ordering::Relaxed),
        fails.load(Ordering::Relaxed)
    );
}

/// `group-remove` takes a member out by joint consensus: the two left form the whole
/// group (losing the removed one's process costs nothing), and then need each other.
#[test]
fn a_removed_member_leaves_a_group_of_two_that_needs_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Group::new(dir.path());
    let clients = Clients {
        url: g.url.clone(),
        dir: dir.path().to_path_buf(),
        history: Mutex::new(History::default()),
        tokens: Mutex::new(BTreeMap::new()),
    };
    assert!(clients.register("alice", b"pw"));
    // The leader does not remove itself: remove a follower.
    let leader = g.leader().unwrap();
    let gone = (leader + 1) % N;
    let kept = (0..N).find(|&i| i != leader && i != gone).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["group-remove", "--data"])
        .arg(g.member_dir(leader))
        .args(["--member", &(gone + 1).to_string()]);
    for (j, p) in g.ports.iter().enumerate() {
        cmd.args(["--peer", &format!("{}=127.0.0.1:{p}", j + 1)]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    g.kill(gone);
    let c = clients.client("alice");
    retry(|| c.recover(b"pw")).unwrap();
    // Two voters: without the other one, nothing is committed, so nothing is released.
    g.kill(kept);
    match c.recover(b"pw") {
        Err(VaultError::Server { status: 503, .. }) => {}
        other => panic!(
            "one of two voters answered a login: {:?}",
            other.map(|_| ())
        ),
    }
}
