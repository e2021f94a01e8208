//! The hostile-host harness: the real `coffer-vault core` process on a Unix socket, spoken
//! to directly in the core protocol (docs/VAULT-CORE.md) by a host that lies. Over many
//! seeded random runs it replays requests and old bodies, races one guess on two
//! connections (a second KE2 for one count), reorders and drops replies, swaps bodies
//! between accounts, feeds KE3s to the wrong ticket, and SIGKILLs the core at random
//! points (restarting it on the same CORE_DIR). What it checks uses only what a host
//! receives, and the client half of the protocol (coffer-vault-proto) to see what opens:
//!
//! - no registration yields more than `max_guesses` counted KE2s (a KE2 whose password the
//!   right client can test) between two verified logins that could have reset its count;
//!   a replayed verified `recover/finish` is not such a login again;
//! - a `Recovered` reply only ever answers the genuine KE3 of that very login, and what it
//!   releases opens to the registration's K;
//! - a body served for another account, after a delete, or under another registration,
//!   never yields a KE2 the right password opens;
//! - nothing the host receives decrypts a body or carries K or the wrapped key.
//!
//! By default it runs for [`DEFAULT_SECONDS`] (as many runs as fit, at least
//! [`MIN_TRIALS`]); `HOSTILE_TRIALS=N` runs exactly N instead, however long they take.
//! `HOSTILE_SEED` fixes the host's choices (the core's randomness and the kill timing still
//! vary). A failure prints the seed, the run and what the run did.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_vault::keyfile::KeyFile;
use coffer_vault_core::protocol::{Reply, Request, WireAuthority};
use coffer_vault_core::{CoreError, KsfProfile};
use coffer_vault_proto::client::{self, AwaitingKey};
use coffer_vault_proto::owner::{OwnerKey, replace_content};
use coffer_vault_proto::{CredentialId, OwnerOp};
use common::Dice;
use rand_core::{OsRng, RngCore};
use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};

/// Wall-clock budget of a default run.
const DEFAULT_SECONDS: u64 = 40;
/// Hostile hosts running at once.
const HOSTS: u64 = 4;
/// Runs a default run does even past its budget (enough to reach every path checked below).
const MIN_TRIALS: u64 = 200;
const MAX_GUESSES: u32 = 3;
const P: KsfProfile = KsfProfile::TestCheap;
const PASSWORDS: [&[u8]; 3] = [b"pw-one", b"pw-two", b"pw-three"];
/// Version byte of record bodies (record.rs): part of their AEAD's associated data.
const RECORD_VERSION: u8 = 3;

// ---- the core process ----

fn write_frame(s: &mut UnixStream, msg: &[u8]) -> std::io::Result<()> {
    let mut out = (msg.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(msg);
    s.write_all(&out)
}

fn read_frame(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// A connection to the core at `sock`, waiting out a restart another host caused.
fn connect(sock: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = UnixStream::connect(sock) {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            return s;
        }
        assert!(Instant::now() < deadline, "the core is gone");
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct CoreProcess {
    core_dir: PathBuf,
    sock: PathBuf,
    child: Option<Child>,
    restarts: u64,
}

impl CoreProcess {
    fn start(core_dir: &Path, sock: &Path) -> Self {
        let mut p = Self {
            core_dir: core_dir.to_path_buf(),
            sock: sock.to_path_buf(),
            child: None,
            restarts: 0,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_coffer-vault"))
            .arg("core")
            .arg("--data")
            .arg(&self.core_dir)
            .arg("--listen")
            .arg(format!("unix:{}", self.sock.display()))
            .args(["--max-guesses", &MAX_GUESSES.to_string()])
            .args(["--dummy-profile", P.name(), "--login-ttl", "3600"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready once a Status answers (the socket of a killed core may still exist).
        let deadline = Instant::now() + Duration::from_secs(20);
        let probe = Request::Status {
            cred: CredentialId::from_bytes([0; 32]),
        }
        .encode();
        loop {
            if let Ok(mut s) = UnixStream::connect(&self.sock)
                && write_frame(&mut s, &probe).is_ok()
                && read_frame(&mut s).is_some()
            {
                return;
            }
            assert!(Instant::now() < deadline, "the core did not come up");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL (no chance to flush anything), then the same CORE_DIR again.
    fn kill_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        self.restarts += 1;
        self.spawn();
    }
}

impl Drop for CoreProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---- the model: what the host has seen ----

struct Registration {
    account: usize,
    pw: &'static [u8],
    k: [u8; 32],
    wrapped_key: Vec<u8>,
    body: Vec<u8>,
    generation: u64,
    /// A delete of it was acknowledged (or resolved after a lost reply).
    deleted: bool,
    /// Counted KE2s received since the last verified login that could have reset.
    ke2s: u32,
}

struct Login {
    account: usize,
    registration: usize,
    ticket: Vec<u8>,
    ke3: Option<Vec<u8>>,
    waiting: Option<AwaitingKey>,
    /// The Challenge said this was the last guess (its ticket never resets).
    last: bool,
    /// A `Recovered` answered it already: a replay resets nothing.
    recovered: bool,
}

struct Account {
    cred: CredentialId,
    /// Its registrations, newest last.
    regs: Vec<usize>,
}

/// A request in flight and what the host needs to judge its reply.
enum Sent {
    RegisterFinish {
        account: usize,
        pw: &'static [u8],
        k: [u8; 32],
        wrapped_key: Vec<u8>,
        /// The owner proof should hold (the signer's K is the live registration's).
        entitled: bool,
    },
    RecoverStart {
        account: usize,
        /// The registration whose body went with it, if any.
        body_of: Option<usize>,
        /// The client that made KE1 (`None` for a replay: its state is spent).
        client: Option<Box<client::RecoverStarted>>,
        pw: &'static [u8],
    },
    RecoverFinish {
        login: usize,
        genuine: bool,
    },
    Delete {
        account: usize,
    },
    Status,
}

#[derive(Default, Debug, Clone, Copy)]
struct Seen {
    counted_ke2: u64,
    dummy_ke2: u64,
    refused_bodies: u64,
    recovered: u64,
    replayed_recovered: u64,
    wrong_ke3_refused: u64,
    races: u64,
    batches: u64,
    dropped_replies: u64,
    kills: u64,
    destroyed: u64,
    replays: u64,
}

impl Seen {
    fn add(&mut self, o: &Seen) {
        let Seen {
            counted_ke2,
            dummy_ke2,
            refused_bodies,
            recovered,
            replayed_recovered,
            wrong_ke3_refused,
            races,
            batches,
            dropped_replies,
            kills,
            destroyed,
            replays,
        } = *o;
        self.counted_ke2 += counted_ke2;
        self.dummy_ke2 += dummy_ke2;
        self.refused_bodies += refused_bodies;
        self.recovered += recovered;
        self.replayed_recovered += replayed_recovered;
        self.wrong_ke3_refused += wrong_ke3_refused;
        self.races += races;
        self.batches += batches;
        self.dropped_replies += dropped_replies;
        self.kills += kills;
        self.destroyed += destroyed;
        self.replays += replays;
    }
}

struct Host {
    /// The one core every host thread speaks to (and kills).
    core: Arc<Mutex<CoreProcess>>,
    sock: PathBuf,
    vault_id: [u8; 16],
    dice: Dice,
    accounts: Vec<Account>,
    regs: Vec<Registration>,
    logins: Vec<Login>,
    /// Request bytes sent so far, for replays.
    sent_bytes: Vec<Vec<u8>>,
    seen: Seen,
    replies: u64,
    /// What this run did, printed when it fails.
    trace: Vec<String>,
}

fn describe(sent: &Sent) -> String {
    match sent {
        Sent::RegisterFinish {
            account, entitled, ..
        } => format!("register a{account} entitled={entitled}"),
        Sent::RecoverStart {
            account,
            body_of,
            client,
            ..
        } => format!(
            "guess a{account} body={body_of:?}{}",
            if client.is_some() { "" } else { " (replay)" }
        ),
        Sent::RecoverFinish { login, genuine } => format!("finish login {login} genuine={genuine}"),
        Sent::Delete { account } => format!("delete a{account}"),
        Sent::Status => "other".into(),
    }
}

fn brief(reply: Option<&Reply>) -> String {
    match reply {
        None => "(no reply)".into(),
        Some(Reply::Challenge {
            guesses_left,
            drop_body,
            ..
        }) => format!("challenge left={guesses_left} drop={drop_body}"),
        Some(Reply::Registered { generation, .. }) => format!("registered g{generation}"),
        Some(Reply::Recovered { .. }) => "recovered".into(),
        Some(Reply::Error(e)) => format!("error {:?}", e.code()),
        Some(other) => format!("{:?}", std::mem::discriminant(other)),
    }
}

fn aes(key: &[u8]) -> Option<LessSafeKey> {
    Some(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

impl Host {
    fn check(&self, ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
        if ok { Ok(()) } else { Err(what()) }
    }

    /// One request, its reply inspected; `None` if the core hung up.
    fn call(&mut self, req: &Request) -> Result<Option<Reply>, String> {
        let bytes = req.encode();
        let mut s = connect(&self.sock);
        if write_frame(&mut s, &bytes).is_err() {
            return Ok(None);
        }
        self.sent_bytes.push(bytes);
        let Some(raw) = read_frame(&mut s) else {
            return Ok(None);
        };
        self.inspect(&raw)?;
        Reply::decode(&raw)
            .map(Some)
            .map_err(|e| format!("reply: {e}"))
    }

    /// Every reply passes through here: nothing in it may open a body or carry a secret
    /// the host must never see.
    fn inspect(&mut self, raw: &[u8]) -> Result<(), String> {
        self.replies += 1;
        for r in &self.regs {
            self.check(!contains(raw, &r.k), || "a reply carries K".into())?;
            self.check(!contains(raw, &r.wrapped_key), || {
                "a reply carries the wrapped key".into()
            })?;
        }
        // Every 32-byte window as the record key of every body of this run: sampled, as
        // each try is an AES key schedule.
        if self.replies.is_multiple_of(8) {
            for r in &self.regs {
                let cred = self.accounts[r.account].cred;
                let mut aad = cred.as_bytes().to_vec();
                aad.extend_from_slice(&r.generation.to_le_bytes());
                let plain = r.body.len().saturating_sub(1 + 12 + 16);
                for w in raw.windows(32) {
                    let opened = aes(w).and_then(|k| {
                        coffer_vault_proto::wrap::open(&k, (RECORD_VERSION, &aad), &r.body, plain)
                    });
                    self.check(opened.is_none(), || "a reply decrypts a body".into())?;
                }
            }
        }
        Ok(())
    }

    /// `call` again until the core answers (another host may be restarting it).
    fn ask(&mut self, req: &Request) -> Result<Reply, String> {
        loop {
            if let Some(r) = self.call(req)? {
                return Ok(r);
            }
        }
    }

    fn resolve(&mut self, name: String) -> Result<CredentialId, String> {
        match self.ask(&Request::Resolve {
            account: name.into_bytes(),
        })? {
            Reply::Resolved { cred } => Ok(cred),
            other => Err(format!("resolve answered {other:?}")),
        }
    }

    fn status(&mut self, account: usize) -> Result<coffer_vault_core::Status, String> {
        let cred = self.accounts[account].cred;
        match self.ask(&Request::Status { cred })? {
            Reply::Status(s) => Ok(s),
            other => Err(format!("status answered {other:?}")),
        }
    }

    // ---- building requests ----

    fn register(&mut self, account: usize) -> Result<Option<(Request, Sent)>, String> {
        let cred = self.accounts[account].cred;
        let status = self.status(account)?;
        let pw = PASSWORDS[self.dice.below(PASSWORDS.len())];
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        let (req, st) = client::register_start(pw, &mut OsRng).unwrap();
        let Some(Reply::RegisterStarted { response, ticket }) =
            self.call(&Request::RegisterStart { cred, request: req })?
        else {
            return Ok(None);
        };
        let up = st.finish(&response, &k, P, &mut OsRng).unwrap();
        let live_k = self.accounts[account]
            .regs
            .last()
            .map(|&r| &self.regs[r])
            .filter(|r| !r.deleted && Some(r.generation) == status.generation)
            .map(|r| r.k);
        let (authority, entitled) = match (status.generation, self.dice.below(4)) {
            (None, _) => (WireAuthority::Token, true),
            (Some(_), 0) => (WireAuthority::ResetScope, true),
            (Some(_), 1) => (WireAuthority::Token, false),
            (Some(g), _) => {
                let signer = live_k.unwrap_or([9; 32]);
                let content = replace_content(
                    &ticket,
                    &up.upload,
                    &up.wrapped_key,
                    &up.owner_key,
                    P.name(),
                );
                let sig = OwnerKey::from_backup_key(&signer).unwrap().sign(
                    OwnerOp::Replace,
                    &self.vault_id,
                    &cred,
                    g,
                    &content,
                );
                (
                    WireAuthority::OwnerProof {
                        generation: g,
                        signature: sig.to_vec(),
                    },
                    live_k.is_some(),
                )
            }
        };
        let wrapped_key = up.wrapped_key.clone();
        Ok(Some((
            Request::RegisterFinish {
                cred,
                ticket,
                upload: up.upload,
                wrapped_key: up.wrapped_key,
                owner_key: up.owner_key.to_vec(),
                profile: P.name().into(),
                authority,
            },
            Sent::RegisterFinish {
                account,
                pw,
                k,
                wrapped_key,
                entitled,
            },
        )))
    }

    fn guess(&mut self, account: usize) -> (Request, Sent) {
        let cred = self.accounts[account].cred;
        // Which body: the newest, an older one, another account's, or none.
        let own = &self.accounts[account].regs;
        let body_of = match self.dice.below(10) {
            0..=5 => own.last().copied(),
            6 | 7 if !own.is_empty() => Some(own[self.dice.below(own.len())]),
            8 if !self.regs.is_empty() => Some(self.dice.below(self.regs.len())),
            _ => None,
        };
        // The right password of that body's registration half the time.
        let pw = match body_of.or(own.last().copied()) {
            Some(r) if self.dice.chance(2) => self.regs[r].pw,
            _ => PASSWORDS[self.dice.below(PASSWORDS.len())],
        };
        let (ke1, c) = client::recover_start(pw, &mut OsRng).unwrap();
        (
            Request::RecoverStart {
                cred,
                body: body_of.map(|r| self.regs[r].body.clone()),
                ke1,
            },
            Sent::RecoverStart {
                account,
                body_of,
                client: Some(Box::new(c)),
                pw,
            },
        )
    }

    fn finish(&mut self) -> Option<(Request, Sent)> {
        if self.logins.is_empty() {
            return None;
        }
        let li = self.dice.below(self.logins.len());
        let l = &self.logins[li];
        let cred = self.accounts[l.account].cred;
        let own = l.ke3.clone();
        // The login's own KE3, another login's (the wrong ticket), or a tampered one.
        let ke3 = match (self.dice.below(6), own) {
            (0..=2, Some(k)) => k,
            (3, Some(mut k)) => {
                let i = self.dice.below(k.len());
                k[i] ^= 1;
                k
            }
            _ => {
                let others: Vec<&Vec<u8>> = self
                    .logins
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != li)
                    .filter_map(|(_, o)| o.ke3.as_ref())
                    .collect();
                if others.is_empty() {
                    vec![7; 64]
                } else {
                    others[self.dice.below(others.len())].clone()
                }
            }
        };
        let genuine = self.logins[li].ke3.as_ref() == Some(&ke3);
        Some((
            Request::RecoverFinish {
                cred,
                ticket: self.logins[li].ticket.clone(),
                ke3,
            },
            Sent::RecoverFinish { login: li, genuine },
        ))
    }

    fn delete(&mut self, account: usize) -> Result<(Request, Sent), String> {
        let cred = self.accounts[account].cred;
        let g = self.status(account)?.generation;
        let authority = match (g, self.accounts[account].regs.last()) {
            (Some(g), Some(&r)) => {
                let sig = OwnerKey::from_backup_key(&self.regs[r].k).unwrap().sign(
                    OwnerOp::Delete,
                    &self.vault_id,
                    &cred,
                    g,
                    &[0; 32],
                );
                WireAuthority::OwnerProof {
                    generation: g,
                    signature: sig.to_vec(),
                }
            }
            _ => WireAuthority::Token,
        };
        Ok((
            Request::Delete { cred, authority },
            Sent::Delete { account },
        ))
    }

    // ---- judging replies ----

    /// A verified login that may have reset `reg`'s count (its reply came, or may have
    /// been lost after the core's commit): the count starts over, never below the core's.
    fn reset(&mut self, reg: usize) {
        self.regs[reg].ke2s = 0;
    }

    /// A reply (or none: dropped, or the core died) to `sent`.
    fn settle(&mut self, sent: Sent, reply: Option<Reply>) -> Result<(), String> {
        self.trace
            .push(format!("{} -> {}", describe(&sent), brief(reply.as_ref())));
        match sent {
            Sent::RegisterFinish {
                account,
                pw,
                k,
                wrapped_key,
                entitled,
            } => match reply {
                Some(Reply::Registered {
                    body, generation, ..
                }) => {
                    self.check(entitled, || {
                        "a registration without the owner's proof".into()
                    })?;
                    self.regs.push(Registration {
                        account,
                        pw,
                        k,
                        wrapped_key,
                        body,
                        generation,
                        deleted: false,
                        ke2s: 0,
                    });
                    let r = self.regs.len() - 1;
                    self.accounts[account].regs.push(r);
                }
                Some(Reply::Error(CoreError::Owner(e))) => {
                    self.check(!entitled, || {
                        format!("the owner's own registration refused: {e}")
                    })?;
                }
                None => {}
                Some(other) => return Err(format!("register/finish answered {other:?}")),
            },
            Sent::RecoverStart {
                account,
                body_of,
                client,
                pw,
            } => self.settle_guess(account, body_of, client, pw, reply)?,
            Sent::RecoverFinish { login, genuine } => {
                let l = &self.logins[login];
                let could_reset = genuine && !l.last && !l.recovered;
                match reply {
                    Some(Reply::Recovered { release_blob, .. }) => {
                        self.check(genuine, || {
                            "K released for a KE3 that is not this login's".into()
                        })?;
                        let reg = l.registration;
                        if let Some(w) = self.logins[login].waiting.take() {
                            let k = w
                                .open(&release_blob)
                                .map_err(|e| format!("release blob does not open: {e}"))?;
                            self.check(*k == self.regs[reg].k, || "released the wrong K".into())?;
                            self.seen.recovered += 1;
                        } else {
                            self.seen.replayed_recovered += 1;
                        }
                        if could_reset {
                            self.reset(reg);
                        }
                        self.logins[login].recovered = true;
                    }
                    Some(Reply::Error(_)) => {
                        if !genuine {
                            self.seen.wrong_ke3_refused += 1;
                        }
                    }
                    // Lost: the core may have reset the count before it died.
                    None => {
                        if could_reset {
                            let reg = l.registration;
                            self.reset(reg);
                        }
                    }
                    Some(other) => return Err(format!("recover/finish answered {other:?}")),
                }
            }
            Sent::Delete { account } => match reply {
                Some(Reply::Deleted | Reply::Error(CoreError::NoRecord)) => {
                    for &r in &self.accounts[account].regs {
                        self.regs[r].deleted = true;
                    }
                }
                // Lost: whether it happened decides how later KE2s count, so ask again
                // until the core answers (the same delete once more, or nothing to delete).
                None => {
                    let (req, sent) = self.delete(account)?;
                    let reply = self.call(&req)?;
                    return self.settle(sent, reply);
                }
                Some(Reply::Error(CoreError::Owner(_))) => {}
                Some(other) => return Err(format!("delete answered {other:?}")),
            },
            Sent::Status => {}
        }
        Ok(())
    }

    fn settle_guess(
        &mut self,
        account: usize,
        body_of: Option<usize>,
        client: Option<Box<client::RecoverStarted>>,
        pw: &'static [u8],
        reply: Option<Reply>,
    ) -> Result<(), String> {
        let Some(reply) = reply else {
            return Ok(());
        };
        let (ke2, profile, ticket, guesses_left) = match reply {
            Reply::Challenge {
                ke2,
                profile,
                ticket,
                guesses_left,
                ..
            } => (ke2, profile, ticket, guesses_left),
            Reply::Error(CoreError::StorageRolledBack | CoreError::KeyDestroyed { .. }) => {
                self.seen.refused_bodies += 1;
                return Ok(());
            }
            other => return Err(format!("recover/start answered {other:?}")),
        };
        // A replayed KE1 has no client left to judge its KE2 (and tests no new password:
        // the same blinded element, the same OPRF key); it is counted all the same.
        let opened = client.map(|c| c.finish(&self.vault_id, &ke2, profile, &mut OsRng));
        // Counted only against the account's own registration's body, while not deleted:
        // anything else must be a dummy that no password opens.
        let counted = body_of.filter(|&r| self.regs[r].account == account && !self.regs[r].deleted);
        let Some(reg) = counted else {
            self.check(!matches!(opened, Some(Ok(_))), || {
                format!("a KE2 for a foreign, deleted or missing body opened (body of {body_of:?})")
            })?;
            self.seen.dummy_ke2 += 1;
            return Ok(());
        };
        let r = &mut self.regs[reg];
        r.ke2s += 1;
        self.seen.counted_ke2 += 1;
        let ke2s = r.ke2s;
        self.check(ke2s <= MAX_GUESSES, || {
            format!(
                "registration {reg} gave {ke2s} testable KE2s without a reset (limit {MAX_GUESSES})"
            )
        })?;
        if let Some(o) = &opened {
            self.check(o.is_ok() == (pw == self.regs[reg].pw), || {
                "the KE2's verdict on the password is wrong".into()
            })?;
        }
        if guesses_left == 0 {
            self.seen.destroyed += 1;
        }
        let (ke3, waiting) = match opened {
            Some(Ok((k, w))) => (Some(k), Some(w)),
            _ => (None, None),
        };
        self.logins.push(Login {
            account,
            registration: reg,
            ticket,
            ke3,
            waiting,
            last: guesses_left == 0,
            recovered: false,
        });
        Ok(())
    }

    // ---- the hostile schedule ----

    /// One request on its own connection; sometimes the core is SIGKILLed while it runs.
    fn single(&mut self, req: Request, sent: Sent) -> Result<(), String> {
        self.exchange(vec![(req, sent)], 25, None)
    }

    /// Several requests at once on their own connections; replies read in a random order,
    /// some never read (dropped), and sometimes the core dies in the middle.
    fn batch(&mut self, items: Vec<(Request, Sent)>) -> Result<(), String> {
        self.seen.batches += 1;
        self.trace.push(format!("batch of {}", items.len()));
        self.exchange(items, 8, Some(4))
    }

    /// Sends every request, SIGKILLs the core after a random delay one time in
    /// `kill_one_in` (restarting it), then reads the replies in a random order, leaving one
    /// in `drop_one_in` unread.
    fn exchange(
        &mut self,
        items: Vec<(Request, Sent)>,
        kill_one_in: u64,
        drop_one_in: Option<u64>,
    ) -> Result<(), String> {
        let mut inflight = Vec::new();
        for (req, sent) in items {
            let bytes = req.encode();
            let mut s = connect(&self.sock);
            // A core another host just killed: the request is lost like its reply.
            let s = write_frame(&mut s, &bytes).is_ok().then_some(s);
            self.sent_bytes.push(bytes);
            inflight.push((s, sent));
        }
        if self.dice.chance(kill_one_in) {
            std::thread::sleep(Duration::from_micros(self.dice.below(4000) as u64));
            self.core
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .kill_and_restart();
            self.seen.kills += 1;
            self.trace.push("kill".into());
        }
        while !inflight.is_empty() {
            let (s, sent) = inflight.swap_remove(self.dice.below(inflight.len()));
            let dropped = drop_one_in.is_some_and(|n| self.dice.chance(n));
            let reply = match s {
                Some(mut s) => read_frame(&mut s),
                None => None,
            };
            let reply = match reply {
                Some(raw) => {
                    self.inspect(&raw)?;
                    Some(Reply::decode(&raw).map_err(|e| format!("reply: {e}"))?)
                }
                None => None,
            };
            // A dropped reply never reaches the client: the host judges it as lost. It
            // still reads it first (the host holds it; and a request the core is still
            // running would change the record under the host's next step). A KE2 it
            // holds is counted all the same.
            let reply = match reply {
                Some(r) if dropped && !matches!(r, Reply::Challenge { .. }) => {
                    self.seen.dropped_replies += 1;
                    self.trace.push("(reply dropped:)".into());
                    None
                }
                r => r,
            };
            self.settle(sent, reply)?;
        }
        Ok(())
    }

    /// What the host knows about a request it replays byte for byte: a guess is judged
    /// like any other (without a client), a finish by the login its ticket belongs to.
    fn judge_replay(&self, req: &Request) -> Sent {
        match req {
            Request::RecoverStart { cred, body, .. } => {
                let account = self.accounts.iter().position(|a| a.cred == *cred);
                let body_of = body
                    .as_ref()
                    .and_then(|b| self.regs.iter().position(|r| &r.body == b));
                match account {
                    Some(account) => Sent::RecoverStart {
                        account,
                        body_of,
                        client: None,
                        pw: b"",
                    },
                    None => Sent::Status,
                }
            }
            Request::RecoverFinish { ticket, ke3, .. } => {
                match self.logins.iter().position(|l| &l.ticket == ticket) {
                    Some(login) => Sent::RecoverFinish {
                        login,
                        genuine: self.logins[login].ke3.as_ref() == Some(ke3),
                    },
                    None => Sent::Status,
                }
            }
            _ => Sent::Status,
        }
    }

    /// Replays an earlier request byte for byte, judging the reply as its own.
    fn replay(&mut self) -> Result<(), String> {
        if self.sent_bytes.is_empty() {
            return Ok(());
        }
        self.seen.replays += 1;
        let bytes = self.sent_bytes[self.dice.below(self.sent_bytes.len())].clone();
        let req = Request::decode(&bytes).map_err(|e| format!("own request: {e}"))?;
        let sent = self.judge_replay(&req);
        match (&req, sent) {
            // A replayed registration lands only where the core lets it (no live record,
            // or the reset scope): the host then holds a body it will not serve, and the
            // account's earlier bodies must open nothing more.
            (Request::RegisterFinish { .. }, _) => {
                if let Some(Reply::Registered { .. }) = self.call(&req)? {
                    self.forget_bodies(&req);
                }
                Ok(())
            }
            // A replayed delete (its owner proof still current) deletes; judged like a
            // delete of the host's own, a lost reply resolved by asking again.
            (Request::Delete { .. }, _) => {
                let reply = self.call(&req)?;
                match self.judge_account(&req) {
                    Some(account) => self.settle(Sent::Delete { account }, reply),
                    None => Ok(()),
                }
            }
            (_, sent) => self.single(req, sent),
        }
    }

    /// After `req` replaced or deleted the account's record: its known bodies are dead.
    fn forget_bodies(&mut self, req: &Request) {
        if let Some(a) = self.judge_account(req) {
            for &r in &self.accounts[a].regs {
                self.regs[r].deleted = true;
            }
        }
    }

    fn judge_account(&self, req: &Request) -> Option<usize> {
        let cred = req.credential()?;
        self.accounts.iter().position(|a| a.cred == *cred)
    }

    /// One guess sent twice at once on two connections, the same bytes: a second KE2
    /// for what the host hopes is one count. Both replies are judged, and counted.
    fn race(&mut self, account: usize) -> Result<(), String> {
        self.seen.races += 1;
        let (req, sent) = self.guess(account);
        let twin = self.judge_replay(&req);
        self.batch(vec![(req.clone(), sent), (req, twin)])
    }

    fn step(&mut self) -> Result<(), String> {
        let n = self.accounts.len();
        let a = self.dice.below(n);
        match self.dice.below(20) {
            0..=2 => {
                if let Some((req, sent)) = self.register(a)? {
                    self.single(req, sent)?;
                }
            }
            3..=8 => {
                let (req, sent) = self.guess(a);
                self.single(req, sent)?;
            }
            9..=12 => {
                if let Some((req, sent)) = self.finish() {
                    self.single(req, sent)?;
                }
            }
            13 => {
                let (req, sent) = self.delete(a)?;
                self.single(req, sent)?;
            }
            14 | 15 => self.race(a)?,
            // Guesses at once, or finishes at once, never both: the order in which the
            // core ran a batch is unknown, and a reset between guesses would leave the
            // host unable to tell which window each KE2 counts in.
            16 | 17 => {
                let guesses = self.dice.chance(2);
                let mut items = Vec::new();
                for _ in 0..2 + self.dice.below(3) {
                    let a = self.dice.below(n);
                    if guesses {
                        items.push(self.guess(a));
                    } else if let Some(x) = self.finish() {
                        items.push(x);
                    }
                }
                self.batch(items)?;
            }
            18 => self.replay()?,
            _ => {
                self.status(a)?;
            }
        }
        Ok(())
    }

    /// A fresh run: new accounts (the core's store keeps the old ones; they are not
    /// touched again), each registered first.
    fn run(&mut self, run: u64, steps: usize) -> Result<(), String> {
        self.regs.clear();
        self.logins.clear();
        self.trace.clear();
        self.sent_bytes.clear();
        self.accounts.clear();
        for i in 0..2 {
            let cred = self.resolve(format!("acme\0run-{run}-{i}"))?;
            self.accounts.push(Account {
                cred,
                regs: Vec::new(),
            });
        }
        for a in 0..self.accounts.len() {
            while self.accounts[a].regs.is_empty() {
                if let Some((req, sent)) = self.register(a)? {
                    let reply = self.call(&req)?;
                    self.settle(sent, reply)?;
                }
            }
        }
        for _ in 0..steps {
            self.step()?;
        }
        Ok(())
    }
}

#[test]
fn a_hostile_host_gets_no_extra_guess_and_no_key() {
    let fixed: Option<u64> = std::env::var("HOSTILE_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok());
    let seed: u64 = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| OsRng.next_u64());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vault");
    let init = Command::new(env!("CARGO_BIN_EXE_coffer-vault"))
        .args(["init", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let vault_id = KeyFile::load(&data).unwrap().vault_id;
    let sock = dir.path().join("core.sock");
    let core = Arc::new(Mutex::new(CoreProcess::start(&data.join("core"), &sock)));
    let started = Instant::now();
    let budget = Duration::from_secs(DEFAULT_SECONDS);
    // Several hosts at once, each with its own accounts: their requests interleave in the
    // core, and each one's SIGKILL hits the others' requests in flight.
    let hosts: Vec<_> = (0..HOSTS)
        .map(|h| {
            let mut host = Host {
                core: core.clone(),
                sock: sock.clone(),
                vault_id,
                dice: Dice(seed.wrapping_add(h)),
                accounts: Vec::new(),
                regs: Vec::new(),
                logins: Vec::new(),
                sent_bytes: Vec::new(),
                seen: Seen::default(),
                replies: 0,
                trace: Vec::new(),
            };
            std::thread::spawn(move || {
                let mut run = 0;
                while match fixed {
                    Some(n) => run < n.div_ceil(HOSTS),
                    None => run < MIN_TRIALS / HOSTS || started.elapsed() < budget,
                } {
                    let steps = 10 + host.dice.below(20);
                    if let Err(e) = host.run(h * 1_000_000 + run, steps) {
                        panic!(
                            "HOSTILE_SEED={seed}, host {h}, run {run}: {e}\n{}",
                            host.trace.join("\n")
                        );
                    }
                    run += 1;
                }
                (run, host.seen)
            })
        })
        .collect();
    let mut run = 0;
    let mut seen = Seen::default();
    for h in hosts {
        let (n, s) = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        run += n;
        seen.add(&s);
    }
    eprintln!(
        "{run} runs by {HOSTS} hosts in {:.1} s (seed {seed}), {} restarts: {seen:?}",
        started.elapsed().as_secs_f64(),
        core.lock().unwrap().restarts,
    );
    let s = &seen;
    if run >= MIN_TRIALS {
        for (name, n) in [
            ("counted KE2", s.counted_ke2),
            ("dummy KE2 for a foreign or deleted body", s.dummy_ke2),
            ("refused body", s.refused_bodies),
            ("verified recovery", s.recovered),
            ("replayed recovery", s.replayed_recovered),
            ("KE3 of the wrong ticket refused", s.wrong_ke3_refused),
            ("race", s.races),
            ("dropped reply", s.dropped_replies),
            ("kill", s.kills),
            ("last guess", s.destroyed),
            ("raw replay", s.replays),
        ] {
            assert!(n > 0, "no run reached: {name}");
        }
    }
}
