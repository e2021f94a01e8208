//! Spawns the real `coffer-vault` binary on loopback with a temp data dir.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use coffer_vault_proto::client;
use coffer_vault_proto::wire::b64;
use rand_core::OsRng;

pub const BIN: &str = env!("CARGO_BIN_EXE_coffer-vault");

pub fn init(dir: &Path) {
    let out = Command::new(BIN)
        .args(["init", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn token(dir: &Path, account: &str, ttl: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--data"])
        .arg(dir)
        .args(["--account", account, &format!("--ttl={ttl}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

pub struct Vault {
    pub child: Child,
    /// The core process when the suite runs split (`COFFER_VAULT_SPLIT=1`).
    pub core: Option<Child>,
    pub url: String,
    /// `http://ADDR/metrics` of the metrics listener (`--metrics-listen`).
    pub metrics: String,
    pub dir: PathBuf,
    pub stderr: Receiver<String>,
}

impl Drop for Vault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(core) = &mut self.core {
            let _ = core.kill();
            let _ = core.wait();
        }
    }
}

/// Whether this run exercises the split deployment: `coffer-vault core` as its own
/// process and `serve --core` in front of it (set `COFFER_VAULT_SPLIT=1`; `.ci/run` runs
/// the vault suite both ways).
pub fn split() -> bool {
    std::env::var("COFFER_VAULT_SPLIT").is_ok_and(|v| v == "1")
}

/// The core's settings among `extra` (with their values): in a split run they go to the
/// core process, the rest to the host.
const CORE_FLAGS: [&str; 3] = ["--max-guesses", "--dummy-profile", "--login-ttl"];

/// Starts `coffer-vault core` on `DIR/core` at `DIR/core.sock` and waits until it listens.
pub fn start_core(dir: &Path, core_args: &[&str]) -> (Child, String) {
    let sock = dir.join("core.sock");
    let mut child = Command::new(BIN)
        .args(["core", "--data"])
        .arg(dir.join("core"))
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()))
        .args(core_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("core listening on unix:"), "{first}");
    // Keep draining so the core never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, format!("unix:{}", sock.display()))
}

/// Starts `serve` with a metrics listener on a free port (unless `extra` names one); in
/// a split run, a core process first.
pub fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Vault {
    let mut core_args: Vec<&str> = vec!["--dummy-profile", "argon2id-test"];
    let mut host_args: Vec<&str> = Vec::new();
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        if CORE_FLAGS.contains(a) {
            core_args.push(a);
            core_args.extend(it.next());
        } else {
            host_args.push(a);
        }
    }
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir);
    let core = if split() {
        let (child, addr) = start_core(dir, &core_args);
        cmd.args(["--core", &addr]);
        Some(child)
    } else {
        cmd.args(&core_args);
        None
    };
    cmd.args(&host_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !extra.contains(&"--metrics-listen") {
        cmd.args(["--metrics-listen", "127.0.0.1:0"]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        // The API address comes first, then the metrics address.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(u) = line
                .strip_prefix("listening on ")
                .or_else(|| line.strip_prefix("metrics on "))
            {
                let _ = tx.send(u.trim().to_string());
            }
        }
    });
    let (etx, erx) = channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not print `listening on`");
    let metrics = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not print `metrics on`");
    Vault {
        child,
        core,
        url,
        metrics,
        dir: dir.to_path_buf(),
        stderr: erx,
    }
}

pub fn vault(extra: &[&str]) -> (tempfile::TempDir, Vault) {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    let v = start(tmp.path(), extra, &[]);
    (tmp, v)
}

/// The value of counter `name` at `metrics_url` (a `Vault`'s `metrics`).
pub fn metric(metrics_url: &str, name: &str) -> u64 {
    let body = ureq::get(metrics_url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Stops the vault gracefully (SIGTERM through `kill`: std only has SIGKILL and unsafe
/// libc calls are forbidden) and waits for it, so its files are closed cleanly.
pub fn stop(mut v: Vault) {
    let st = Command::new("kill")
        .args(["-TERM", &v.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while v.child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a line containing `marker` on the vault's stderr.
pub fn wait_for_stderr(v: &Vault, marker: &str) {
    loop {
        let line = v
            .stderr
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no stderr line containing {marker:?}"));
        if line.contains(marker) {
            return;
        }
    }
}

/// A client that returns 4xx/5xx replies instead of turning them into errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// One raw `recover/start` with a fresh KE1: the status and body, or the transport error
/// if no reply came.
pub fn try_recover_start(url: &str, tok: &str) -> Result<(u16, String), ureq::Error> {
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    let mut resp = agent()
        .post(format!("{url}/v1/recover/start"))
        .header("Authorization", format!("Bearer {tok}"))
        .header("Content-Type", "application/json")
        .send(format!(r#"{{"v":1,"ke1":"{}"}}"#, b64(&ke1)).as_bytes())?;
    let status = resp.status().as_u16();
    Ok((status, resp.body_mut().read_to_string()?))
}

/// A harness's choices: SplitMix64, seeded, so a run replays. Crypto uses the OS RNG;
/// the replies then differ between replays, the schedule does not.
pub struct Dice(pub u64);

impl Dice {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }
}
