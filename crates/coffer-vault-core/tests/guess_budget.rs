//! The vault's one promise, as a property: over random interleavings of registrations,
//! recoveries (right and wrong passwords, retries, replayed and stale login tickets, KE3s
//! fed to the wrong ticket, the last guess), deletes, crashes around the entry's commit,
//! restarts, and a host that serves old, foreign or no bodies,
//!
//! - (a) no credential gets more released KE2s than `max_guesses` since its last count
//!   reset or registration (every KE2 lets its client test one password offline);
//! - (b) K is released only after a verified KE3 of the right password, and it is the
//!   registration's K;
//! - (c) the KE2 of the last allowed guess comes with an entry that is already destroyed;
//! - (d) a body of another registration (replaced, deleted, destroyed) or of another
//!   credential never yields a counted KE2, and changes no entry;
//! - (e) a verified (ticket, KE3), replayed any number of times, resets the count at most
//!   once, and only if no reset happened since its guess was counted.
//!
//! The state is the core's own store (sealed entries, kept across restarts exactly as a
//! driver keeps them) and the host's bodies; the expected verdicts come from a model of
//! docs/VAULT-CORE.md's rules, not from the core's code.
//!
//! `PROPTEST_CASES` overrides the number of cases (default [`DEFAULT_CASES`]);
//! `PROPTEST_RNG_SEED` replays a run.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use coffer_vault_core::fuzzing::Upload;
use coffer_vault_core::{
    Authority, CoreError, CoreKeys, CredentialId, Entry, KsfProfile, OwnerProofError, SealedRecord,
    VaultCore,
};
use coffer_vault_proto::OwnerOp;
use coffer_vault_proto::client::{self, AwaitingKey};
use coffer_vault_proto::owner::OwnerKey;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_core::RngCore;

const P: KsfProfile = KsfProfile::TestCheap;
/// The fuzz hooks' `Upload::make` seals registration tickets until `FUZZ_NOW + 3600`.
const NOW: u64 = coffer_vault_core::fuzzing::FUZZ_NOW;
const TTL: u64 = 60;
/// Enough for the coverage assertions below to hold, and < 60 s in a debug build.
const DEFAULT_CASES: u32 = 256;
const PASSWORDS: [&[u8]; 3] = [b"pw-a", b"pw-b", b"pw-c"];
const WRONG: &[u8] = b"never-registered";

/// How a caller asks to replace or delete.
#[derive(Clone, Copy, Debug)]
enum Auth {
    Token,
    /// Signed with the live registration's K at its generation.
    Right,
    /// Signed with another key.
    Wrong,
    /// Signed with the right key at the generation before the current one.
    Stale,
    Reset,
}

/// Which body the host hands the core.
#[derive(Clone, Copy, Debug)]
enum Offer {
    /// The one it stores (honest).
    Latest,
    /// Any body this credential ever had (an old copy of the database).
    Older(Index),
    /// A body of another credential.
    Foreign(Index),
    /// None, whatever storage holds.
    Hidden,
}

#[derive(Clone, Copy, Debug)]
enum Ke3 {
    /// The client's own KE3 (only a right password yields one).
    Genuine,
    /// That KE3 with one bit flipped, or random bytes.
    Tampered,
    /// The KE3 of another login.
    Other(Index),
}

#[derive(Clone, Copy, Debug)]
enum TicketUse {
    InTime,
    Expired,
    /// Presented for another credential.
    OtherCredential,
}

/// Where a crash hits `recover/start`.
#[derive(Clone, Copy, Debug)]
enum Crash {
    /// Before the entry was durable: nothing happened.
    BeforeCommit,
    /// After the entry was durable, before the reply left: a spent guess, no KE2.
    AfterCommit,
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        cred: usize,
        pw: usize,
        auth: Auth,
    },
    Start {
        cred: usize,
        right: bool,
        alt: usize,
        offer: Offer,
    },
    CrashedStart {
        cred: usize,
        right: bool,
        crash: Crash,
    },
    Finish {
        login: Index,
        ke3: Ke3,
        ticket: TicketUse,
    },
    Delete {
        cred: usize,
        auth: Auth,
    },
    Restart,
    Status {
        cred: usize,
    },
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::Token),
        Just(Auth::Right),
        Just(Auth::Wrong),
        Just(Auth::Stale),
        Just(Auth::Reset),
    ]
}

fn offer() -> impl Strategy<Value = Offer> {
    prop_oneof![
        6 => Just(Offer::Latest),
        3 => any::<Index>().prop_map(Offer::Older),
        2 => any::<Index>().prop_map(Offer::Foreign),
        1 => Just(Offer::Hidden),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let cred = 0..3usize;
    prop_oneof![
        2 => (cred.clone(), 0..3usize, auth())
            .prop_map(|(cred, pw, auth)| Op::Register { cred, pw, auth }),
        8 => (cred.clone(), any::<bool>(), 0..4usize, offer())
            .prop_map(|(cred, right, alt, offer)| Op::Start { cred, right, alt, offer }),
        1 => (
            cred.clone(),
            any::<bool>(),
            prop_oneof![Just(Crash::BeforeCommit), Just(Crash::AfterCommit)],
        )
            .prop_map(|(cred, right, crash)| Op::CrashedStart { cred, right, crash }),
        7 => (
            any::<Index>(),
            prop_oneof![
                4 => Just(Ke3::Genuine),
                1 => Just(Ke3::Tampered),
                1 => any::<Index>().prop_map(Ke3::Other),
            ],
            prop_oneof![
                8 => Just(TicketUse::InTime),
                1 => Just(TicketUse::Expired),
                1 => Just(TicketUse::OtherCredential),
            ],
        )
            .prop_map(|(login, ke3, ticket)| Op::Finish { login, ke3, ticket }),
        1 => (cred.clone(), auth()).prop_map(|(cred, auth)| Op::Delete { cred, auth }),
        1 => Just(Op::Restart),
        1 => cred.prop_map(|cred| Op::Status { cred }),
    ]
}

/// One run: RNG seed, the vault's guess limit, how many credentials, the operations.
fn case() -> impl Strategy<Value = (u64, u32, usize, Vec<Op>)> {
    (
        any::<u64>(),
        1..=3u32,
        1..=3usize,
        prop::collection::vec(op(), 1..48),
    )
}

/// What the test saw across all cases, so it can check it exercised every path.
const SEEN_NAMES: [&str; 11] = [
    "verified recovery that reset the count",
    "last guess destroyed the entry",
    "K released from a last-guess ticket",
    "old or foreign body refused",
    "owner proof refused",
    "owner proof accepted",
    "superseded or wrong KE3 refused",
    "restart",
    "replayed or pre-reset verified finish released without a reset",
    "crash after the entry's commit",
    "old body after delete got a dummy",
];
static SEEN: [AtomicUsize; SEEN_NAMES.len()] = [const { AtomicUsize::new(0) }; SEEN_NAMES.len()];
fn saw(what: usize) {
    SEEN[what].fetch_add(1, Ordering::Relaxed);
}

/// An owned [`Authority`].
enum Proof {
    Token,
    Reset,
    Signed(u64, [u8; 64]),
}

impl Proof {
    fn authority(&self) -> Authority<'_> {
        match self {
            Proof::Token => Authority::Token,
            Proof::Reset => Authority::ResetScope,
            Proof::Signed(generation, signature) => Authority::OwnerProof {
                generation: *generation,
                signature,
            },
        }
    }
}

struct Registration {
    cred: usize,
    pw: &'static [u8],
    k: [u8; 32],
    body: SealedRecord,
}

struct Cred {
    id: CredentialId,
    /// The live registration (the model's view), if any.
    live: Option<usize>,
    /// The body the host stores.
    stored: Option<SealedRecord>,
    /// Every registration this credential ever had.
    history: Vec<usize>,
    /// Counted logins of the live registration (the model's own count, crashes included).
    attempts: u64,
    /// The attempt number at the last reset: logins at or below it reset nothing more.
    reset_at: u64,
    /// Guesses counted since the last reset or registration (crashed ones included).
    used: u32,
    /// Real KE2s released since the last reset or registration.
    released: u32,
    /// The generation of the last destroying guess, while the entry stays destroyed.
    destroyed: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Dummy,
    Counted { attempt: u64 },
    Last,
}

struct Login {
    cred: usize,
    ticket: Vec<u8>,
    /// The client's KE3: only if the password opened the KE2.
    ke3: Option<Vec<u8>>,
    waiting: Option<AwaitingKey>,
    registration: Option<usize>,
    kind: Kind,
    /// For a last guess: the generation of the destruction it committed.
    destroyed_at: Option<u64>,
}

struct World {
    keys: CoreKeys,
    core: VaultCore,
    max: u32,
    creds: Vec<Cred>,
    registrations: Vec<Registration>,
    /// The core's own store: each credential's sealed entry, as the driver keeps it.
    store: HashMap<CredentialId, Vec<u8>>,
    logins: Vec<Login>,
    rng: StdRng,
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

impl World {
    fn new(seed: u64, max: u32, creds: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let keys = CoreKeys::generate(&mut rng);
        let core = VaultCore::new(&keys, max).unwrap().with_dummy_profile(P);
        let creds = (0..creds)
            .map(|i| Cred {
                id: CredentialId::from_bytes([i as u8 + 1; 32]),
                live: None,
                stored: None,
                history: Vec::new(),
                attempts: 0,
                reset_at: 0,
                used: 0,
                released: 0,
                destroyed: None,
            })
            .collect();
        Self {
            keys,
            core,
            max,
            creds,
            registrations: Vec::new(),
            store: HashMap::new(),
            logins: Vec::new(),
            rng,
        }
    }

    /// A new core from the same keys; the store is what survives.
    fn restart(&mut self) {
        self.core = VaultCore::new(&self.keys, self.max)
            .unwrap()
            .with_dummy_profile(P);
        saw(7);
    }

    /// `c`'s entry, read from the core's store as the driver reads it.
    fn entry(&self, c: usize) -> Result<Option<Entry>, TestCaseError> {
        let id = &self.creds[c].id;
        match self.store.get(id) {
            None => Ok(None),
            Some(sealed) => self
                .core
                .open_entry(id, sealed)
                .map(Some)
                .ok_or_else(|| fail(format!("credential {c}'s stored entry does not open"))),
        }
    }

    /// The driver's commit: the entry is sealed into the store before any reply leaves.
    fn commit(&mut self, c: usize, entry: &Entry) {
        let id = self.creds[c].id;
        let sealed = self.core.seal_entry(&id, entry, &mut self.rng).unwrap();
        self.store.insert(id, sealed);
    }

    /// The body the host hands the core for `c`, and whether it is another credential's.
    fn offer(&self, c: usize, offer: Offer) -> (Option<SealedRecord>, Option<usize>) {
        let cred = &self.creds[c];
        let body = |r: usize| (Some(self.registrations[r].body.clone()), Some(r));
        match offer {
            Offer::Latest => (cred.stored.clone(), cred.live),
            Offer::Hidden => (None, None),
            Offer::Older(i) if !cred.history.is_empty() => body(*i.get(&cred.history)),
            Offer::Foreign(i) => {
                let foreign: Vec<usize> = (0..self.registrations.len())
                    .filter(|r| self.registrations[*r].cred != c)
                    .collect();
                if foreign.is_empty() {
                    (cred.stored.clone(), cred.live)
                } else {
                    body(*i.get(&foreign))
                }
            }
            Offer::Older(_) => (cred.stored.clone(), cred.live),
        }
    }

    /// What a caller presents for `op` on `c`, whose status gave `generation`; `content`
    /// is what a proof binds.
    fn proof(
        &mut self,
        c: usize,
        auth: Auth,
        op: OwnerOp,
        generation: Option<u64>,
        content: &[u8; 32],
    ) -> Proof {
        let owner = self.creds[c].live.map(|r| self.registrations[r].k);
        let mut other = [0u8; 32];
        self.rng.fill_bytes(&mut other);
        let (key, g) = match auth {
            Auth::Token => return Proof::Token,
            Auth::Reset => return Proof::Reset,
            Auth::Right => (owner.unwrap_or(other), generation.unwrap_or(0)),
            Auth::Wrong => (other, generation.unwrap_or(0)),
            Auth::Stale => (
                owner.unwrap_or(other),
                generation.unwrap_or(1).saturating_sub(1),
            ),
        };
        let sig = OwnerKey::from_backup_key(&key).unwrap().sign(
            op,
            self.core.vault_id(),
            &self.creds[c].id,
            g,
            content,
        );
        Proof::Signed(g, sig)
    }

    /// Checks an owner-proof verdict on a record whose liveness the model knows.
    fn check_owner(
        live: bool,
        auth: Auth,
        refused: Option<&OwnerProofError>,
    ) -> Result<(), TestCaseError> {
        let expect = match (live, auth) {
            (false, _) | (true, Auth::Right | Auth::Reset) => None,
            (true, Auth::Token) => Some(OwnerProofError::Required),
            (true, Auth::Wrong) => Some(OwnerProofError::Invalid),
            (true, Auth::Stale) => Some(OwnerProofError::Stale { generation: 0 }),
        };
        match (expect, refused) {
            (None, None) => {
                if live {
                    saw(5);
                }
            }
            (Some(OwnerProofError::Stale { .. }), Some(OwnerProofError::Stale { .. })) => saw(4),
            (Some(e), Some(got)) if e == *got => saw(4),
            (e, got) => {
                return Err(fail(format!(
                    "owner proof {auth:?} on a {} record: expected {e:?}, got {got:?}",
                    if live { "live" } else { "non-live" }
                )));
            }
        }
        Ok(())
    }

    fn register(&mut self, c: usize, pw: usize, auth: Auth) -> Result<(), TestCaseError> {
        let id = self.creds[c].id;
        let entry = self.entry(c)?;
        let status = self.core.status(entry.as_ref());
        prop_assert_eq!(status.exists, self.creds[c].live.is_some());
        let pw = PASSWORDS[pw];
        let mut k = [0u8; 32];
        self.rng.fill_bytes(&mut k);
        let upload = Upload::make(&self.core, &id, pw, &k, &mut self.rng).unwrap();
        let proof = self.proof(
            c,
            auth,
            OwnerOp::Replace,
            status.generation,
            &upload.content(),
        );
        let res = self.core.register_finish(
            &id,
            entry.as_ref(),
            &upload.request(),
            proof.authority(),
            NOW,
            &mut self.rng,
        );
        let refused = match &res {
            Ok(_) => None,
            Err(CoreError::Owner(e)) => Some(e),
            Err(e) => return Err(fail(format!("honest registration: {e}"))),
        };
        Self::check_owner(status.exists, auth, refused)?;
        if let Ok(gated) = res {
            let new = gated
                .entry
                .ok_or_else(|| fail("a registration without its entry".into()))?;
            let was = entry.as_ref().map_or(0, Entry::generation);
            prop_assert!(
                matches!(&new, Entry::Live(l) if l.generation == was + 1 && l.guesses_used == 0),
                "registration over generation {was} left {new:?}"
            );
            self.commit(c, &new);
            self.registrations.push(Registration {
                cred: c,
                pw,
                k,
                body: gated.reply.body.clone(),
            });
            let reg = self.registrations.len() - 1;
            let cred = &mut self.creds[c];
            cred.live = Some(reg);
            cred.stored = Some(gated.reply.body);
            cred.history.push(reg);
            cred.attempts = 0;
            cred.reset_at = 0;
            cred.used = 0;
            cred.released = 0;
            cred.destroyed = None;
        }
        Ok(())
    }

    fn delete(&mut self, c: usize, auth: Auth) -> Result<(), TestCaseError> {
        let id = self.creds[c].id;
        let entry = self.entry(c)?;
        let status = self.core.status(entry.as_ref());
        let proof = self.proof(c, auth, OwnerOp::Delete, status.generation, &[0; 32]);
        let res = self.core.delete(&id, entry.as_ref(), proof.authority());
        if matches!(entry, None | Some(Entry::Deleted { .. })) {
            prop_assert_eq!(res, Err(CoreError::NoRecord));
            return Ok(());
        }
        let refused = match &res {
            Ok(_) => None,
            Err(CoreError::Owner(e)) => Some(e),
            Err(e) => return Err(fail(format!("honest delete: {e}"))),
        };
        Self::check_owner(status.exists, auth, refused)?;
        if let Ok(new) = res {
            prop_assert!(
                matches!(new, Entry::Deleted { .. }),
                "delete left {:?}",
                new
            );
            self.commit(c, &new);
            let cred = &mut self.creds[c];
            cred.live = None;
            cred.stored = None;
            cred.destroyed = None;
        }
        Ok(())
    }

    /// recover/start with the host's `offer`; `crash` loses the reply (and, before the
    /// commit, the entry).
    fn start(
        &mut self,
        c: usize,
        right: bool,
        alt: usize,
        offer: Offer,
        crash: Option<Crash>,
    ) -> Result<(), TestCaseError> {
        let id = self.creds[c].id;
        let (offered, offered_reg) = self.offer(c, offer);
        let live = self.creds[c].live;
        let right_pw = live.map(|r| self.registrations[r].pw);
        let pw = match right_pw {
            Some(p) if right => p,
            Some(p) => [PASSWORDS[0], PASSWORDS[1], PASSWORDS[2], WRONG]
                .into_iter()
                .filter(|w| *w != p)
                .nth(alt % 3)
                .unwrap_or(WRONG),
            None => [PASSWORDS[0], PASSWORDS[1], PASSWORDS[2], WRONG][alt % 4],
        };
        let entry = self.entry(c)?;
        let (ke1, client_state) = client::recover_start(pw, &mut self.rng).unwrap();
        let out = self.core.recover_start(
            &id,
            entry.as_ref(),
            offered.as_ref(),
            &ke1,
            NOW + TTL,
            &mut self.rng,
        );
        // What the rules say, from the model alone.
        let own_body = offered.is_some() && offered_reg.is_some() && offered_reg == live;
        match (&entry, live) {
            (Some(Entry::Destroyed { .. }), _) => {
                prop_assert_eq!(
                    out.err(),
                    Some(CoreError::KeyDestroyed {
                        drop_body: offered.is_some()
                    })
                );
                return Ok(());
            }
            (Some(Entry::Live(_)), Some(_)) if !own_body => {
                // (d): another registration's or credential's body, or none.
                prop_assert_eq!(out.err(), Some(CoreError::StorageRolledBack));
                saw(3);
                return Ok(());
            }
            (None | Some(Entry::Deleted { .. }), _) => {
                // Unknown account: a dummy, counting nothing, whatever body came along.
                let g = out.map_err(|e| fail(format!("dummy refused: {e}")))?;
                prop_assert!(g.entry.is_none(), "a dummy changed the entry");
                prop_assert!(
                    client_state
                        .finish(
                            self.core.vault_id(),
                            &g.reply.ke2,
                            g.reply.profile,
                            &mut self.rng
                        )
                        .is_err(),
                    "a dummy KE2 opened"
                );
                if offered.is_some() {
                    saw(10);
                }
                self.logins.push(Login {
                    cred: c,
                    ticket: g.reply.ticket,
                    ke3: None,
                    waiting: None,
                    registration: None,
                    kind: Kind::Dummy,
                    destroyed_at: None,
                });
                return Ok(());
            }
            (Some(Entry::Live(_)), None) => {
                return Err(fail(format!("credential {c}: a live entry the model lost")));
            }
            (Some(Entry::Live(_)), Some(_)) => {}
        }
        let gated = out.map_err(|e| fail(format!("own body refused: {e}")))?;
        let new = gated
            .entry
            .ok_or_else(|| fail("a counted KE2 without its entry".into()))?;
        let reg = live.unwrap_or_default();
        if matches!(crash, Some(Crash::BeforeCommit)) {
            // The entry never reached the store; the reply died with the process.
            self.restart();
            return Ok(());
        }
        self.commit(c, &new);
        let cred = &mut self.creds[c];
        cred.attempts += 1;
        cred.used += 1;
        let attempt = cred.attempts;
        let last = matches!(new, Entry::Destroyed { .. });
        if last {
            cred.destroyed = Some(new.generation());
            cred.live = None;
        }
        if gated.reply.drop_body {
            cred.stored = None;
        }
        if crash.is_some() {
            saw(9);
            self.restart();
            return Ok(());
        }
        // (a): the KE2 is released now.
        cred.released += 1;
        prop_assert!(
            cred.released <= self.max,
            "credential {c} got {} KE2s since its last reset or registration, limit {}",
            cred.released,
            self.max
        );
        // (c): the last guess's own commit destroys the entry (and its record key).
        let ch = gated.reply;
        if cred.used == self.max || ch.guesses_left == 0 {
            prop_assert!(
                last && ch.guesses_left == 0 && ch.drop_body,
                "the last guess left {new:?}, {} left, {} counted",
                ch.guesses_left,
                cred.used
            );
            saw(1);
        } else {
            prop_assert!(!last && !ch.drop_body, "{new:?} before the last guess");
            prop_assert_eq!(
                self.core.status(Some(&new)).guesses_left,
                Some(ch.guesses_left)
            );
        }
        let client = client_state.finish(self.core.vault_id(), &ch.ke2, ch.profile, &mut self.rng);
        prop_assert_eq!(
            client.is_ok(),
            self.registrations[reg].pw == pw,
            "the client's KE2 verdict disagrees with the password"
        );
        let (ke3, waiting) = match client {
            Ok((ke3, w)) => (Some(ke3), Some(w)),
            Err(_) => (None, None),
        };
        self.logins.push(Login {
            cred: c,
            ticket: ch.ticket,
            ke3,
            waiting,
            registration: Some(reg),
            kind: if last {
                Kind::Last
            } else {
                Kind::Counted { attempt }
            },
            destroyed_at: last.then(|| new.generation()),
        });
        Ok(())
    }

    fn finish(&mut self, login: Index, ke3: Ke3, use_: TicketUse) -> Result<(), TestCaseError> {
        if self.logins.is_empty() {
            return Ok(());
        }
        let li = login.index(self.logins.len());
        let c = self.logins[li].cred;
        let id = self.creds[c].id;
        let ticket = self.logins[li].ticket.clone();
        let own = self.logins[li].ke3.clone();
        let mut random = vec![0u8; 64];
        self.rng.fill_bytes(&mut random);
        let ke3 = match (ke3, &own) {
            (Ke3::Genuine, Some(k)) => k.clone(),
            (Ke3::Tampered, Some(k)) => {
                let mut k = k.clone();
                let i = (self.rng.next_u32() as usize) % k.len();
                k[i] ^= 1 << (self.rng.next_u32() % 8);
                k
            }
            (Ke3::Other(i), _) => {
                let others: Vec<&Vec<u8>> = self
                    .logins
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != li)
                    .filter_map(|(_, l)| l.ke3.as_ref())
                    .collect();
                if others.is_empty() {
                    random
                } else {
                    (*i.get(&others)).clone()
                }
            }
            _ => random,
        };
        let genuine = own.as_ref() == Some(&ke3);
        let (as_cred, now) = match use_ {
            TicketUse::InTime => (id, NOW),
            TicketUse::Expired => (id, NOW + TTL),
            TicketUse::OtherCredential => (CredentialId::from_bytes([0xee; 32]), NOW),
        };
        let entry = self.entry(c)?;
        let res =
            self.core
                .recover_finish(&as_cred, entry.as_ref(), &ticket, &ke3, now, &mut self.rng);
        let l = &self.logins[li];
        let cred = &self.creds[c];
        // Whether the login's registration is still the one it counted against.
        let current = match l.kind {
            Kind::Dummy => false,
            Kind::Counted { .. } => l.registration.is_some() && l.registration == cred.live,
            Kind::Last => l.destroyed_at.is_some() && l.destroyed_at == cred.destroyed,
        };
        let honest = genuine && current && matches!(use_, TicketUse::InTime);
        let done = match res {
            Ok(done) => done,
            Err(e) => {
                prop_assert!(
                    !honest,
                    "a verified KE3 of a current login was refused: {e}"
                );
                if !matches!(use_, TicketUse::InTime) {
                    prop_assert_eq!(e, CoreError::NoLogin);
                }
                saw(6);
                return Ok(());
            }
        };
        // (b): only the client that opened KE2, i.e. knew the password, gets K.
        prop_assert!(genuine, "K released for a KE3 that is not the client's");
        prop_assert!(honest, "K released to a superseded, expired or moved login");
        let reg = l
            .registration
            .ok_or_else(|| fail("K released to a login without registration".into()))?;
        // (e): a reset only for a counted login newer than the last reset.
        let expect_reset = match l.kind {
            Kind::Counted { attempt } => attempt > cred.reset_at,
            _ => false,
        };
        prop_assert_eq!(
            done.entry.is_some(),
            expect_reset,
            "reset verdict for {:?} (last reset at attempt {})",
            l.kind,
            cred.reset_at
        );
        if let Some(w) = self.logins[li].waiting.take() {
            let k = w.open(&done.release_blob).unwrap();
            prop_assert_eq!(
                *k,
                self.registrations[reg].k,
                "the released K is not the registration's"
            );
        }
        if let Some(e) = done.entry {
            prop_assert!(
                matches!(&e, Entry::Live(l) if l.guesses_used == 0),
                "a reset left {e:?}"
            );
            self.commit(c, &e);
            let cred = &mut self.creds[c];
            cred.reset_at = cred.attempts;
            cred.used = 0;
            cred.released = 0;
            saw(0);
        } else if self.logins[li].kind == Kind::Last {
            saw(2);
        } else {
            saw(8);
        }
        Ok(())
    }

    fn status(&mut self, c: usize) -> Result<(), TestCaseError> {
        let entry = self.entry(c)?;
        let s = self.core.status(entry.as_ref());
        let cred = &self.creds[c];
        prop_assert_eq!(s.exists, cred.live.is_some());
        prop_assert_eq!(s.destroyed, cred.destroyed.is_some());
        if cred.live.is_some() {
            prop_assert_eq!(s.guesses_left, Some(self.max - cred.used.min(self.max)));
        }
        Ok(())
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let n = self.creds.len();
        match *op {
            Op::Register { cred, pw, auth } => self.register(cred % n, pw, auth),
            Op::Start {
                cred,
                right,
                alt,
                offer,
            } => self.start(cred % n, right, alt, offer, None),
            Op::CrashedStart { cred, right, crash } => {
                self.start(cred % n, right, 0, Offer::Latest, Some(crash))
            }
            Op::Finish { login, ke3, ticket } => self.finish(login, ke3, ticket),
            Op::Delete { cred, auth } => self.delete(cred % n, auth),
            Op::Restart => {
                self.restart();
                Ok(())
            }
            Op::Status { cred } => self.status(cred % n),
        }
    }
}

#[test]
fn no_credential_gets_more_ke2s_than_its_guess_budget() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |(seed, max, creds, ops)| {
        let mut w = World::new(seed, max, creds);
        for c in 0..creds {
            w.register(c, c % PASSWORDS.len(), Auth::Token)?;
        }
        for op in &ops {
            w.run(op)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen: Vec<String> = SEEN_NAMES
        .iter()
        .zip(&SEEN)
        .map(|(name, n)| format!("{name}: {}", n.load(Ordering::Relaxed)))
        .collect();
    eprintln!("{cases} cases; {}", seen.join(", "));
    if cases >= DEFAULT_CASES {
        for (n, name) in SEEN_NAMES.iter().enumerate() {
            let count = SEEN[n].load(Ordering::Relaxed);
            assert!(
                count > 0,
                "no case reached \"{name}\": the generator no longer exercises it"
            );
        }
    }
}
