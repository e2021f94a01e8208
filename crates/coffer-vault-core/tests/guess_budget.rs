//! The vault's one promise, as a property: over random interleavings of registrations,
//! recoveries (right and wrong passwords, retries, replayed and stale login tickets, the
//! last guess), deletes, restarts and a host that offers old or foreign records,
//!
//! - (a) no credential gets more released KE2s than `max_guesses` since its last verified
//!   KE3 or registration (every KE2 lets its client test one password offline);
//! - (b) K is released only after a verified KE3 of the right password;
//! - (c) the KE2 of the last allowed guess comes with a commit that is already a tombstone;
//! - (d) a record older than the trusted floor (or another credential's) never yields a KE2.
//!
//! The host is modelled: honest storage (the latest committed record of each credential,
//! every record ever committed, the trusted store of floors) plus hostile choices of what
//! to hand the core. The expected verdicts come from that model and the rules of
//! docs/VAULT-API.md (invariants V2, V7), not from the core's code.
//!
//! `PROPTEST_CASES` overrides the number of cases (default [`DEFAULT_CASES`]);
//! `PROPTEST_RNG_SEED` replays a run.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use coffer_vault_core::fuzzing::Upload;
use coffer_vault_core::{
    Authority, CoreKeys, CredentialId, DeleteError, FloorUpdate, KsfProfile, OwnerProofError,
    RecoverStartError, RecoverStartOutcome, RecoverStarted, RegisterError, SealedRecord,
    StateChange, StatusError, TicketError, VaultCore,
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
const NOW: u64 = 1_000;
const TTL: u64 = 60;
/// Enough for the coverage assertions below to hold, and < 60 s in a debug build.
const DEFAULT_CASES: u32 = 256;
const PASSWORDS: [&[u8]; 3] = [b"pw-a", b"pw-b", b"pw-c"];
const WRONG: &[u8] = b"never-registered";

/// How a caller asks to replace or delete.
#[derive(Clone, Copy, Debug)]
enum Auth {
    Token,
    /// Signed with the current record's K at its current generation.
    Right,
    /// Signed with another key.
    Wrong,
    /// Signed with the right key at the generation before the current one.
    Stale,
    Reset,
}

/// Which record the host hands the core.
#[derive(Clone, Copy, Debug)]
enum Offer {
    /// The latest committed one (honest).
    Latest,
    /// Any record this credential ever had (a rollback if it is not the latest).
    Older(Index),
    /// A record of another credential.
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
    /// recover/start whose record commits but whose floor write and reply are lost in a
    /// crash; the host restarts.
    CrashedStart {
        cred: usize,
        right: bool,
    },
    Finish {
        login: Index,
        ke3: Ke3,
        offer: Offer,
        ticket: TicketUse,
    },
    Delete {
        cred: usize,
        auth: Auth,
    },
    Restart,
    Status {
        cred: usize,
        offer: Offer,
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
        1 => any::<Index>().prop_map(Offer::Foreign),
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
        1 => (cred.clone(), any::<bool>())
            .prop_map(|(cred, right)| Op::CrashedStart { cred, right }),
        6 => (
            any::<Index>(),
            prop_oneof![
                3 => Just(Ke3::Genuine),
                1 => Just(Ke3::Tampered),
                1 => any::<Index>().prop_map(Ke3::Other),
            ],
            offer(),
            prop_oneof![
                8 => Just(TicketUse::InTime),
                1 => Just(TicketUse::Expired),
                1 => Just(TicketUse::OtherCredential),
            ],
        )
            .prop_map(|(login, ke3, offer, ticket)| Op::Finish { login, ke3, offer, ticket }),
        1 => (cred.clone(), auth()).prop_map(|(cred, auth)| Op::Delete { cred, auth }),
        1 => Just(Op::Restart),
        1 => (cred, offer()).prop_map(|(cred, offer)| Op::Status { cred, offer }),
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
static SEEN: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];
const SEEN_NAMES: [&str; 8] = [
    "verified recovery",
    "last guess destroyed the record",
    "K released from a last-guess ticket",
    "stale record refused",
    "owner proof refused",
    "owner proof accepted",
    "superseded or wrong KE3 refused",
    "restart",
];
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
    pw: &'static [u8],
    k: [u8; 32],
}

struct Cred {
    id: CredentialId,
    /// What honest storage holds.
    latest: Option<SealedRecord>,
    /// Every record ever committed, for the hostile host.
    history: Vec<SealedRecord>,
    /// The last change whose floor reached the trusted store: (generation, the record, or
    /// `None` for a delete).
    floored: Option<(u64, Option<SealedRecord>)>,
    /// Real KE2s released since the last verified KE3 or registration.
    released: u32,
}

struct Login {
    cred: usize,
    ticket: Vec<u8>,
    /// The client's KE3: only if the password opened the KE2.
    ke3: Option<Vec<u8>>,
    waiting: Option<AwaitingKey>,
    /// The record this login's guess committed (`None` for a dummy).
    committed: Option<SealedRecord>,
    /// The registration the KE2 came from.
    registration: Option<usize>,
}

struct World {
    keys: CoreKeys,
    core: VaultCore,
    max: u32,
    creds: Vec<Cred>,
    registrations: Vec<Registration>,
    /// Which registration each committed record (by its bytes) belongs to.
    registration_of: HashMap<Vec<u8>, usize>,
    /// The host's trusted store: the latest floor of each credential.
    trusted: HashMap<CredentialId, FloorUpdate>,
    logins: Vec<Login>,
    rng: StdRng,
}

fn generation(r: &SealedRecord) -> u64 {
    r.generation().unwrap()
}

impl World {
    fn new(seed: u64, max: u32, creds: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let keys = CoreKeys::generate(&mut rng);
        let core = VaultCore::new(&keys, max, [])
            .unwrap()
            .with_dummy_profile(P);
        let creds = (0..creds)
            .map(|i| Cred {
                id: CredentialId::from_bytes([i as u8 + 1; 32]),
                latest: None,
                history: Vec::new(),
                floored: None,
                released: 0,
            })
            .collect();
        Self {
            keys,
            core,
            max,
            creds,
            registrations: Vec::new(),
            registration_of: HashMap::new(),
            trusted: HashMap::new(),
            logins: Vec::new(),
            rng,
        }
    }

    fn restart(&mut self) {
        self.core = VaultCore::new(&self.keys, self.max, self.trusted.values().copied())
            .unwrap()
            .with_dummy_profile(P);
        saw(7);
    }

    /// The model's verdict on a record of `c`'s own: older than the trusted floor.
    fn stale(&self, c: usize, offered: Option<&SealedRecord>) -> bool {
        match (&self.creds[c].floored, offered) {
            (None, _) | (Some((_, None)), None) => false,
            (Some((_, Some(_))), None) => true,
            (Some((g, Some(r))), Some(o)) => generation(o) < *g || (generation(o) == *g && o != r),
            (Some((g, None)), Some(o)) => generation(o) <= *g,
        }
    }

    /// The record the host hands the core for `c`, and whether it is another credential's.
    fn offer(&self, c: usize, offer: Offer) -> (Option<SealedRecord>, bool) {
        let cred = &self.creds[c];
        match offer {
            Offer::Latest => (cred.latest.clone(), false),
            Offer::Hidden => (None, false),
            Offer::Older(i) if !cred.history.is_empty() => {
                (Some(i.get(&cred.history).clone()), false)
            }
            Offer::Foreign(i) => {
                let foreign: Vec<&SealedRecord> = self
                    .creds
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != c)
                    .flat_map(|(_, o)| &o.history)
                    .collect();
                if foreign.is_empty() {
                    (cred.latest.clone(), false)
                } else {
                    (Some((*i.get(&foreign)).clone()), true)
                }
            }
            Offer::Older(_) => (cred.latest.clone(), false),
        }
    }

    /// What an honest host does with a change: the record, then the floor in the trusted
    /// store, then confirm.
    fn commit(&mut self, c: usize, change: StateChange, registration: Option<usize>) {
        let cred = &mut self.creds[c];
        assert_eq!(change.credential_id, cred.id);
        if let Some(r) = &change.record {
            cred.history.push(r.clone());
            if let Some(reg) = registration {
                self.registration_of.insert(r.as_bytes().to_vec(), reg);
            }
        }
        cred.latest = change.record.clone();
        if let Some(f) = change.floor {
            cred.floored = Some((f.floor.generation(), change.record));
            self.trusted.insert(cred.id, f);
            self.core.confirm(&f);
        }
    }

    fn registration_of(&self, r: Option<&SealedRecord>) -> Option<usize> {
        self.registration_of.get(r?.as_bytes()).copied()
    }

    /// What a caller presents for `op` on `c`'s latest record, whose status gave
    /// `generation`; `content` is what a proof binds.
    fn proof(
        &mut self,
        c: usize,
        auth: Auth,
        op: OwnerOp,
        generation: Option<u64>,
        content: &[u8; 32],
    ) -> Proof {
        let owner = self
            .registration_of(self.creds[c].latest.as_ref())
            .map(|r| self.registrations[r].k);
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

    /// Checks an owner-proof verdict on a record whose liveness the honest host knows.
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
                return Err(TestCaseError::fail(format!(
                    "owner proof {auth:?} on a {} record: expected {e:?}, got {got:?}",
                    if live { "live" } else { "non-live" }
                )));
            }
        }
        Ok(())
    }

    fn register(&mut self, c: usize, pw: usize, auth: Auth) -> Result<(), TestCaseError> {
        let id = self.creds[c].id;
        let latest = self.creds[c].latest.clone();
        let status = self.core.status(&id, latest.as_ref()).unwrap();
        let pw = PASSWORDS[pw];
        let mut k = [0u8; 32];
        self.rng.fill_bytes(&mut k);
        // The registration as the client makes it (the fuzz targets' helper).
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
            latest.as_ref(),
            &upload.request(),
            proof.authority(),
            NOW,
            &mut self.rng,
        );
        let refused = match &res {
            Ok(_) => None,
            Err(RegisterError::Owner(e)) => Some(e),
            Err(e) => return Err(TestCaseError::fail(format!("honest registration: {e}"))),
        };
        Self::check_owner(status.exists, auth, refused)?;
        if let Ok(change) = res {
            prop_assert!(change.floor.is_some(), "a registration carries its floor");
            self.registrations.push(Registration { pw, k });
            let reg = self.registrations.len() - 1;
            self.commit(c, change, Some(reg));
            self.creds[c].released = 0;
        }
        Ok(())
    }

    fn delete(&mut self, c: usize, auth: Auth) -> Result<(), TestCaseError> {
        let id = self.creds[c].id;
        let latest = self.creds[c].latest.clone();
        let status = self.core.status(&id, latest.as_ref()).unwrap();
        let proof = self.proof(c, auth, OwnerOp::Delete, status.generation, &[0; 32]);
        let res = self.core.delete(&id, latest.as_ref(), proof.authority());
        if latest.is_none() {
            prop_assert!(matches!(res, Err(DeleteError::NoRecord)), "{res:?}");
            return Ok(());
        }
        let refused = match &res {
            Ok(_) => None,
            Err(DeleteError::Owner(e)) => Some(e),
            Err(e) => return Err(TestCaseError::fail(format!("honest delete: {e}"))),
        };
        Self::check_owner(status.exists, auth, refused)?;
        if let Ok(change) = res {
            prop_assert!(change.record.is_none() && change.floor.is_some());
            self.commit(c, change, None);
        }
        Ok(())
    }

    /// recover/start with the host's `offer`; `crash` loses the floor write and the reply.
    fn start(
        &mut self,
        c: usize,
        right: bool,
        alt: usize,
        offer: Offer,
        crash: bool,
    ) -> Result<(), TestCaseError> {
        let id = self.creds[c].id;
        let (offered, foreign) = self.offer(c, offer);
        let stale = !foreign && self.stale(c, offered.as_ref());
        let registration = if foreign {
            None
        } else {
            self.registration_of(offered.as_ref())
        };
        let right_pw = self
            .registration_of(self.creds[c].latest.as_ref())
            .map(|r| self.registrations[r].pw);
        let pw = match right_pw {
            Some(p) if right => p,
            Some(p) => [PASSWORDS[0], PASSWORDS[1], PASSWORDS[2], WRONG]
                .into_iter()
                .filter(|w| *w != p)
                .nth(alt % 3)
                .unwrap_or(WRONG),
            None => [PASSWORDS[0], PASSWORDS[1], PASSWORDS[2], WRONG][alt % 4],
        };
        let offered_status = match (&offered, foreign || stale) {
            (Some(r), false) => Some(self.core.status(&id, Some(r)).unwrap()),
            _ => None,
        };
        let (ke1, client_state) = client::recover_start(pw, &mut self.rng).unwrap();
        let out = self
            .core
            .recover_start(&id, offered.as_ref(), &ke1, &mut self.rng);

        // (d): another credential's record, or one below the floor, yields nothing.
        if foreign {
            prop_assert!(
                matches!(out, Err(RecoverStartError::CorruptRecord)),
                "a foreign record was accepted: {out:?}"
            );
            return Ok(());
        }
        if stale {
            prop_assert!(
                matches!(out, Err(RecoverStartError::StorageRolledBack(_))),
                "a rolled-back record ({offered:?}, floor {:?}) was accepted: {out:?}",
                self.creds[c].floored.as_ref().map(|f| f.0)
            );
            saw(3);
            return Ok(());
        }
        let out = out.map_err(|e| TestCaseError::fail(format!("fresh record refused: {e}")))?;
        let (ke2, profile, guesses_left, state, change) = match out {
            RecoverStartOutcome::Destroyed { commit } => {
                prop_assert!(commit.is_none(), "a tombstone is destroyed again");
                prop_assert!(
                    offered_status.is_some_and(|s| s.destroyed),
                    "{offered:?} refused as destroyed"
                );
                return Ok(());
            }
            RecoverStartOutcome::Challenge {
                ke2,
                profile,
                guesses_left,
                state,
                commit,
            } => (ke2, profile, guesses_left, state, commit),
        };
        let Some(change) = change else {
            // A dummy: only for no record at all, and it can never verify.
            prop_assert!(offered.is_none(), "a dummy KE2 for {offered:?}");
            prop_assert!(
                client_state
                    .finish(self.core.vault_id(), &ke2, profile, &mut self.rng)
                    .is_err()
            );
            let ticket = state.seal(&self.core, NOW + TTL, &mut self.rng).unwrap();
            self.logins.push(Login {
                cred: c,
                ticket,
                ke3: None,
                waiting: None,
                committed: None,
                registration: None,
            });
            return Ok(());
        };
        prop_assert!(
            offered_status.is_some_and(|s| s.exists),
            "a real KE2 from {offered:?}"
        );
        let new = change.record.clone();
        if crash {
            // The record reached storage; the floor write, the confirm and the reply did
            // not. Nothing was released.
            let cred = &mut self.creds[c];
            if let Some(r) = &new {
                cred.history.push(r.clone());
                if let Some(reg) = registration {
                    self.registration_of.insert(r.as_bytes().to_vec(), reg);
                }
            }
            cred.latest = new;
            self.restart();
            return Ok(());
        }
        prop_assert!(change.floor.is_some(), "a counted guess carries its floor");
        self.commit(c, change, registration);
        let new = new.ok_or_else(|| TestCaseError::fail("a counted guess removed the record"))?;

        // (a): the KE2 is released now.
        let cred = &mut self.creds[c];
        cred.released += 1;
        prop_assert!(
            cred.released <= self.max,
            "credential {c} got {} KE2s since its last verified KE3 or registration, limit {}",
            cred.released,
            self.max
        );
        // (c): the last guess's own commit is the tombstone.
        let status = self.core.status(&id, Some(&new)).unwrap();
        if guesses_left == 0 || cred.released == self.max {
            prop_assert!(
                status.destroyed && !status.exists && guesses_left == 0,
                "the last guess's commit is not a tombstone: {status:?}, {guesses_left} left, {} released",
                cred.released
            );
            saw(1);
        } else {
            prop_assert_eq!(status.guesses_left, Some(guesses_left));
        }

        let client = client_state.finish(self.core.vault_id(), &ke2, profile, &mut self.rng);
        let reg_pw = registration.map(|r| self.registrations[r].pw);
        prop_assert_eq!(
            client.is_ok(),
            reg_pw == Some(pw),
            "the client opened KE2 for the wrong password"
        );
        let (ke3, waiting) = match client {
            Ok((ke3, w)) => (Some(ke3), Some(w)),
            Err(_) => (None, None),
        };
        let ticket = state.seal(&self.core, NOW + TTL, &mut self.rng).unwrap();
        self.logins.push(Login {
            cred: c,
            ticket,
            ke3,
            waiting,
            committed: Some(new),
            registration,
        });
        Ok(())
    }

    fn finish(
        &mut self,
        login: Index,
        ke3: Ke3,
        offer: Offer,
        use_: TicketUse,
    ) -> Result<(), TestCaseError> {
        if self.logins.is_empty() {
            return Ok(());
        }
        let li = login.index(self.logins.len());
        let c = self.logins[li].cred;
        let id = self.creds[c].id;
        let ticket = self.logins[li].ticket.clone();
        match use_ {
            TicketUse::Expired => {
                let r = RecoverStarted::open(&self.core, &id, &ticket, NOW + TTL);
                prop_assert!(matches!(r, Err(TicketError::Expired)), "{r:?}");
                return Ok(());
            }
            TicketUse::OtherCredential => {
                let other = CredentialId::from_bytes([0xee; 32]);
                let r = RecoverStarted::open(&self.core, &other, &ticket, NOW);
                prop_assert!(matches!(r, Err(TicketError::Invalid)), "{r:?}");
                return Ok(());
            }
            TicketUse::InTime => {}
        }
        let state = RecoverStarted::open(&self.core, &id, &ticket, NOW)
            .map_err(|e| TestCaseError::fail(format!("own ticket refused: {e:?}")))?;
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
        let (offered, foreign) = self.offer(c, offer);
        let stale = !foreign && self.stale(c, offered.as_ref());
        let res = state.finish(&self.core, offered.as_ref(), &ke3, &mut self.rng);
        let committed = self.logins[li].committed.clone();
        let registration = self.logins[li].registration;
        let honest = genuine && !foreign && !stale && offered.is_some() && offered == committed;
        let done = match res {
            Ok(done) => done,
            Err(e) => {
                prop_assert!(
                    !honest,
                    "a verified KE3 against its own record was refused: {e}"
                );
                saw(6);
                return Ok(());
            }
        };
        // (b): only the client that opened KE2, i.e. knew the password, gets K.
        prop_assert!(genuine, "K released for a KE3 that is not the client's");
        prop_assert!(
            own.is_some(),
            "K released to a login whose password was wrong"
        );
        prop_assert!(
            !foreign && !stale,
            "K released against a foreign or stale record"
        );
        prop_assert!(
            offered == committed,
            "K released against a record its guess did not commit"
        );
        let reg = registration
            .ok_or_else(|| TestCaseError::fail("K released to a login without registration"))?;
        if let Some(w) = self.logins[li].waiting.take() {
            let k = w.open(&done.release_blob).unwrap();
            prop_assert_eq!(
                *k,
                self.registrations[reg].k,
                "the released K is not the registration's"
            );
        }
        match done.commit {
            Some(change) => {
                prop_assert!(change.floor.is_none(), "a count reset carries no floor");
                self.commit(c, change, Some(reg));
            }
            None => {
                let s = self.core.status(&id, offered.as_ref()).unwrap();
                prop_assert!(s.destroyed, "no reset commit for a live record");
                saw(2);
            }
        }
        self.creds[c].released = 0;
        saw(0);
        Ok(())
    }

    fn status(&mut self, c: usize, offer: Offer) -> Result<(), TestCaseError> {
        let id = self.creds[c].id;
        let (offered, foreign) = self.offer(c, offer);
        let r = self.core.status(&id, offered.as_ref());
        if foreign {
            prop_assert!(matches!(r, Err(StatusError::CorruptRecord)), "{r:?}");
        } else if self.stale(c, offered.as_ref()) {
            prop_assert!(matches!(r, Err(StatusError::StorageRolledBack(_))), "{r:?}");
        } else {
            prop_assert!(r.is_ok(), "{r:?}");
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
            } => self.start(cred % n, right, alt, offer, false),
            Op::CrashedStart { cred, right } => self.start(cred % n, right, 0, Offer::Latest, true),
            Op::Finish {
                login,
                ke3,
                offer,
                ticket,
            } => self.finish(login, ke3, offer, ticket),
            Op::Delete { cred, auth } => self.delete(cred % n, auth),
            Op::Restart => {
                self.restart();
                Ok(())
            }
            Op::Status { cred, offer } => self.status(cred % n, offer),
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
