//! Helpers shared by the end-to-end tests: a real `coffer-vault` on loopback and the real
//! `coffer` binary with its own config folder per simulated device.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The `coffer` binary cargo built for these tests.
pub fn coffer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coffer"))
}

/// The `coffer-vault` binary: `COFFER_VAULT_BIN`, else `target/<profile>/coffer-vault` next
/// to `coffer`, built once per test run with `cargo build -p coffer-vault` (a no-op when
/// it is up to date). It is not a dependency of this crate, so cargo does not build it
/// for us.
pub fn vault_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("COFFER_VAULT_BIN") {
            return PathBuf::from(p);
        }
        let bin = coffer_bin().parent().unwrap().join("coffer-vault");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let status = Command::new(cargo)
            .args(["build", "-p", "coffer-vault", "--bin", "coffer-vault"])
            .current_dir(root)
            .stdout(Stdio::null())
            .status()
            .expect("run cargo build -p coffer-vault");
        assert!(status.success(), "cargo build -p coffer-vault failed");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// A vault server running on loopback with its own data folder; killed on drop.
pub struct Vault {
    pub url: String,
    pub data: PathBuf,
    child: Child,
}

impl Vault {
    pub fn start(dir: &Path) -> Vault {
        Self::start_with(dir, &[])
    }

    /// [`Vault::start`] with extra `serve` arguments.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Vault {
        let data = dir.join("vault-data");
        let out = Command::new(vault_bin())
            .args(["init", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "coffer-vault init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = Command::new(vault_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let url = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("coffer-vault serve printed no 'listening on' line");
            if let Some(i) = line.find("listening on http://") {
                let rest = &line[i + "listening on ".len()..];
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Vault { url, data, child }
    }

    /// Writes a fresh token for `account` into `dir/token-<account>` and returns the path.
    pub fn token_file(&self, dir: &Path, account: &str) -> PathBuf {
        let out = Command::new(vault_bin())
            .args(["token", "--data"])
            .arg(&self.data)
            .args(["--account", account])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "coffer-vault token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = dir.join(format!("token-{account}"));
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One simulated device: its own config folder and environment.
pub struct Device {
    pub config: PathBuf,
    /// Extra environment of every run.
    pub env: Vec<(String, String)>,
}

/// The result of one `coffer` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The single JSON object on stdout.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "coffer failed: stdout {}\nstderr {}",
            self.stdout, self.stderr
        );
        self
    }
    /// The error code of a failed `--json` run.
    pub fn err_code(&self) -> String {
        assert_ne!(self.code, 0, "expected a failure, got {}", self.stdout);
        self.json()["error"]["code"].as_str().unwrap().to_string()
    }
}

impl Device {
    /// A device with no OS keyring: its session bus address names a socket that does
    /// not exist, so `coffer` falls back to the 0600 key file exactly as on a headless
    /// Linux machine, and a developer's own keyring is never touched by the tests.
    pub fn new(root: &Path, name: &str) -> Device {
        let no_bus = format!("unix:path={}", root.join("no-session-bus").display());
        Device {
            config: root.join(name),
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), no_bus)],
        }
    }

    /// The same device with one more environment variable (a later one wins).
    pub fn with_env(mut self, key: &str, value: &str) -> Device {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs `coffer --config-dir DIR ARGS...` with `stdin` piped in.
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(coffer_bin())
            .arg("--config-dir")
            .arg(&self.config)
            .args(args)
            .env("COFFER_KSF_PROFILE", "argon2id-test")
            .env_remove("COFFER_VAULT_TOKEN")
            .env_remove("COFFER_CONFIG_DIR")
            .env_remove("COFFER_KEY_STORE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The command may exit before reading its input (a usage error, say): ignore EPIPE.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// A small "chat app" folder: a database-like file, media, a nested folder.
pub fn sample_folder(root: &Path) -> PathBuf {
    let dir = root.join("chat");
    std::fs::create_dir_all(dir.join("media/2026")).unwrap();
    let db: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    std::fs::write(dir.join("msgstore.db"), &db).unwrap();
    std::fs::write(dir.join("media/2026/photo.jpg"), vec![7u8; 50_000]).unwrap();
    std::fs::write(dir.join("notes.txt"), b"hello from the old phone\n").unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    dir
}

/// Asserts that `b` holds exactly the regular files of `a`, byte for byte.
pub fn assert_same_tree(a: &Path, b: &Path) {
    fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    files(a, a, &mut fa);
    files(b, b, &mut fb);
    fa.sort();
    fb.sort();
    assert_eq!(
        fa,
        fb,
        "file lists differ between {} and {}",
        a.display(),
        b.display()
    );
    for f in &fa {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{} differs",
            f.display()
        );
    }
}
