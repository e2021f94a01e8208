//! Entry points of the vault core's fuzz targets (`crates/coffer-vault/fuzz`,
//! docs/FUZZING.md), kept in the library so the targets stay thin shells and
//! `crates/coffer-vault/tests/fuzz_corpus.rs` replays every corpus file through exactly
//! the code libFuzzer ran, on stable Rust. Not part of the core's API.
//!
//! Each target runs untrusted bytes through the core's public entry points against one
//! [`Fixture`]: a core built from the constant [`FUZZ_CORE_KEYS`] with a registered
//! credential. The keys are constant so that the seeds [`seeds`] writes (real messages,
//! tickets, records and owner proofs) stay valid in every later process. Whatever the
//! bytes, an entry point must neither panic nor hang; each returns whether the core
//! accepted the input (the replay test checks a corpus still reaches acceptance).

use rand_core::{CryptoRng, OsRng, RngCore};

use crate::{
    Authority, CoreKeys, CredentialId, KsfProfile, REGISTRATION_TICKET_LEN, RecoverStartOutcome,
    RecoverStarted, RegistrationUploadRequest, SealedRecord, TICKET_LEN, VaultCore,
};
use coffer_vault_proto::owner::{OwnerKey, replace_content};
use coffer_vault_proto::{OwnerOp, client};

/// `CoreKeys::to_bytes` of the fuzzing vault (generated once; not secret).
pub const FUZZ_CORE_KEYS: &str = "018bbad9625470e2ef03ca9e9ef28c90ddaeb48be7246bd2cfc40a9db273970a2c8c5899c85c835aadec55f3d0bc8be490df96280834e34ce0943983d10b8efee3e342780aa8d79e381efaad59c2fa95328a4eb3aefe05a13a23be6976521c4b0b5d90f7601a341f5fb9b582087514d78acf4c006e055d7098770518f82780c57d6f9886a50ba094ad5c9c1a37dba88b06da90cfa0b4cf070d376a97846976ca8cdd86ecff7d1462c672ee56270f7e557a";
/// The fixture's credential.
pub const FUZZ_CREDENTIAL: [u8; 32] = [0xc7; 32];
/// The fixture's password and backup key K (its owner key signs the owner proofs).
pub const FUZZ_PASSWORD: &[u8] = b"fuzz-password";
/// See [`FUZZ_PASSWORD`].
pub const FUZZ_K: [u8; 32] = [0x4b; 32];
/// The fixture's clock; its tickets expire at `FUZZ_NOW + 3600`.
pub const FUZZ_NOW: u64 = 1_000_000;
const PROFILE: KsfProfile = KsfProfile::TestCheap;
const MAX_GUESSES: u32 = 3;

/// A registration as the client made it.
pub struct Upload {
    /// The registration ticket.
    pub ticket: Vec<u8>,
    /// The client's `register/finish` message.
    pub msg: client::RegistrationUploadMsg,
}

impl Upload {
    /// Runs `register/start` for `password` and K = `key` on `core`, as a client would
    /// (ticket valid until `FUZZ_NOW + 3600`). `None` if any step fails (it does not,
    /// for a fixture core).
    pub fn make(
        core: &VaultCore,
        cred: &CredentialId,
        password: &[u8],
        key: &[u8; 32],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<Self> {
        let (req, st) = client::register_start(password, rng).ok()?;
        let started = core.register_start(cred, &req, FUZZ_NOW + 3600, rng).ok()?;
        let msg = st.finish(&started.response, key, PROFILE, rng).ok()?;
        Some(Self {
            ticket: started.ticket,
            msg,
        })
    }

    /// The request `register/finish` takes.
    pub fn request(&self) -> RegistrationUploadRequest<'_> {
        RegistrationUploadRequest {
            ticket: &self.ticket,
            upload: &self.msg.upload,
            wrapped_key: &self.msg.wrapped_key,
            owner_key: &self.msg.owner_key,
            profile: PROFILE.name(),
        }
    }

    /// What an owner proof of this replacement binds (owner.rs).
    pub fn content(&self) -> [u8; 32] {
        replace_content(
            &self.ticket,
            &self.msg.upload,
            &self.msg.wrapped_key,
            &self.msg.owner_key,
            PROFILE.name(),
        )
    }
}

/// The fixed state every target runs against.
pub struct Fixture {
    /// The core (no floors: every authentic record is fresh).
    pub core: VaultCore,
    /// [`FUZZ_CREDENTIAL`].
    pub cred: CredentialId,
    /// Its live record (generation 1), registered with [`FUZZ_PASSWORD`] and [`FUZZ_K`].
    pub record: SealedRecord,
    /// A valid registration (used where another field is fuzzed).
    pub upload: Upload,
    /// A valid KE1 (used where the record is fuzzed).
    pub ke1: Vec<u8>,
    /// A login ticket of one counted guess, and the record that guess committed.
    pub login: (Vec<u8>, SealedRecord),
}

impl Fixture {
    /// Builds the fixture; `None` only if the constant keys no longer parse.
    pub fn new() -> Option<Self> {
        let keys = CoreKeys::from_bytes(&unhex(FUZZ_CORE_KEYS)?).ok()?;
        let core = VaultCore::new(&keys, MAX_GUESSES, [])
            .ok()?
            .with_dummy_profile(PROFILE);
        let cred = CredentialId::from_bytes(FUZZ_CREDENTIAL);
        let upload = Upload::make(&core, &cred, FUZZ_PASSWORD, &FUZZ_K, &mut OsRng)?;
        let record = core
            .register_finish(
                &cred,
                None,
                &upload.request(),
                Authority::Token,
                FUZZ_NOW,
                &mut OsRng,
            )
            .ok()?
            .record?;
        let (ke1, _) = client::recover_start(FUZZ_PASSWORD, &mut OsRng).ok()?;
        let (ticket, counted, _) = login(&core, &cred, &record, FUZZ_PASSWORD)?;
        Some(Self {
            core,
            cred,
            record,
            upload,
            ke1,
            login: (ticket, counted),
        })
    }
}

/// One `recover/start` on `record` with `password`: the sealed ticket, the committed
/// record and the client's KE3 (if the password opened KE2).
fn login(
    core: &VaultCore,
    cred: &CredentialId,
    record: &SealedRecord,
    password: &[u8],
) -> Option<(Vec<u8>, SealedRecord, Option<Vec<u8>>)> {
    let (ke1, c) = client::recover_start(password, &mut OsRng).ok()?;
    let RecoverStartOutcome::Challenge {
        ke2,
        profile,
        state,
        commit: Some(change),
        ..
    } = core
        .recover_start(cred, Some(record), &ke1, &mut OsRng)
        .ok()?
    else {
        return None;
    };
    let ke3 = c
        .finish(core.vault_id(), &ke2, profile, &mut OsRng)
        .ok()
        .map(|(ke3, _)| ke3);
    let ticket = state.seal(core, FUZZ_NOW + 3600, &mut OsRng)?;
    Some((ticket, change.record?, ke3))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Splits a structured input into `n` fields: each but the last is a u16 LE length and
/// that many bytes (cut short at the end of the input); the last is the rest.
pub fn fields(mut data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    for _ in 1..n {
        let len = data
            .get(..2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize);
        data = data.get(2..).unwrap_or_default();
        let (field, rest) = data.split_at(len.min(data.len()));
        out.push(field);
        data = rest;
    }
    out.push(data);
    out
}

/// The inverse of [`fields`], for seeds.
pub fn join(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i + 1 < fields.len() {
            out.extend_from_slice(&(f.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    out
}

/// `register/start` with `data` as the RegistrationRequest.
pub fn registration_request(fx: &Fixture, data: &[u8]) -> bool {
    match fx
        .core
        .register_start(&fx.cred, data, FUZZ_NOW + 3600, &mut OsRng)
    {
        Ok(started) => {
            assert_eq!(started.response.len(), 64, "RegistrationResponse length");
            assert_eq!(started.ticket.len(), REGISTRATION_TICKET_LEN);
            true
        }
        Err(_) => false,
    }
}

/// `register/finish` (no record yet, token only) of `upload` with the rest valid.
fn finish_registration(fx: &Fixture, upload: &RegistrationUploadRequest<'_>) -> bool {
    match fx.core.register_finish(
        &fx.cred,
        None,
        upload,
        Authority::Token,
        FUZZ_NOW,
        &mut OsRng,
    ) {
        Ok(change) => {
            assert!(change.record.is_some() && change.floor.is_some());
            true
        }
        Err(_) => false,
    }
}

/// `register/finish` with `data` as the OPAQUE RegistrationUpload, every other field valid.
pub fn registration_upload(fx: &Fixture, data: &[u8]) -> bool {
    finish_registration(
        fx,
        &RegistrationUploadRequest {
            upload: data,
            ..fx.upload.request()
        },
    )
}

/// `register/finish` with `data` as the registration ticket, every other field valid.
pub fn registration_ticket(fx: &Fixture, data: &[u8]) -> bool {
    finish_registration(
        fx,
        &RegistrationUploadRequest {
            ticket: data,
            ..fx.upload.request()
        },
    )
}

/// `recover/start` of the live record with `data` as KE1.
pub fn ke1(fx: &Fixture, data: &[u8]) -> bool {
    match fx
        .core
        .recover_start(&fx.cred, Some(&fx.record), data, &mut OsRng)
    {
        Ok(RecoverStartOutcome::Challenge {
            ke2,
            commit: Some(_),
            ..
        }) => {
            assert_eq!(ke2.len(), 320, "KE2 length");
            true
        }
        Ok(other) => panic!("a live record gave {other:?}"),
        Err(_) => false,
    }
}

/// `recover/finish` of the fixture's login with `data` as KE3 (against the record that
/// login committed). Never verifies unless libFuzzer forges a MAC.
pub fn ke3(fx: &Fixture, data: &[u8]) -> bool {
    let (ticket, counted) = &fx.login;
    let Ok(state) = RecoverStarted::open(&fx.core, &fx.cred, ticket, FUZZ_NOW) else {
        panic!("the fixture's own ticket does not open");
    };
    state
        .finish(&fx.core, Some(counted), data, &mut OsRng)
        .is_ok()
}

/// Fields `ticket, ke3, record`: `RecoverStarted::open` of the login ticket, then
/// `finish` with that KE3 against that sealed record (empty: no record).
pub fn login_ticket(fx: &Fixture, data: &[u8]) -> bool {
    let f = fields(data, 3);
    let Ok(state) = RecoverStarted::open(&fx.core, &fx.cred, f[0], FUZZ_NOW) else {
        return false;
    };
    assert_eq!(f[0].len(), TICKET_LEN, "a ticket of another length opened");
    let record = (!f[2].is_empty()).then(|| SealedRecord::from_bytes(f[2].to_vec()));
    // Opening is acceptance enough for the corpus check; finish must just not panic.
    let _ = state.finish(&fx.core, record.as_ref(), f[1], &mut OsRng);
    true
}

/// `data` as the stored sealed record: `status`, then `recover_start` with a valid KE1.
pub fn sealed_record(fx: &Fixture, data: &[u8]) -> bool {
    let rec = SealedRecord::from_bytes(data.to_vec());
    let status = fx.core.status(&fx.cred, Some(&rec));
    let start = fx
        .core
        .recover_start(&fx.cred, Some(&rec), &fx.ke1, &mut OsRng);
    assert_eq!(
        status.is_ok(),
        start.is_ok(),
        "status and recover/start disagree on a record"
    );
    status.is_ok()
}

/// Fields `op, generation, signature`: an owner proof (op byte 1: replace with the
/// fixture's upload; otherwise delete) of the live record at `generation` (u64 LE, zero
/// padded), and whether the core accepted it.
pub fn owner_proof(fx: &Fixture, data: &[u8]) -> bool {
    let f = fields(data, 3);
    let mut g = [0u8; 8];
    let n = f[1].len().min(8);
    g[..n].copy_from_slice(&f[1][..n]);
    let authority = Authority::OwnerProof {
        generation: u64::from_le_bytes(g),
        signature: f[2],
    };
    if f[0] == [1] {
        fx.core
            .register_finish(
                &fx.cred,
                Some(&fx.record),
                &fx.upload.request(),
                authority,
                FUZZ_NOW,
                &mut OsRng,
            )
            .is_ok()
    } else {
        fx.core
            .delete(&fx.cred, Some(&fx.record), authority)
            .is_ok()
    }
}

/// Seed inputs for `target`: real messages, tickets, records and proofs of the fixture's
/// vault, plus a few near misses. Empty for an unknown target.
pub fn seeds(fx: &Fixture, target: &str) -> Vec<Vec<u8>> {
    let other = CredentialId::from_bytes([0x0d; 32]);
    let flip = |mut v: Vec<u8>, at: usize| {
        if let Some(b) = v.get_mut(at) {
            *b ^= 1;
        }
        v
    };
    match target {
        "registration_request" => {
            let reqs: Vec<Vec<u8>> = [b"a".as_slice(), FUZZ_PASSWORD, &[0; 200]]
                .iter()
                .filter_map(|pw| client::register_start(pw, &mut OsRng).ok())
                .map(|(r, _)| r)
                .collect();
            let mut s = reqs.clone();
            s.extend(reqs.iter().map(|r| r[..31].to_vec()));
            s.extend(reqs.iter().map(|r| [r.as_slice(), &[0]].concat()));
            s.extend([vec![0; 32], vec![0xff; 32], Vec::new()]);
            s
        }
        "registration_upload" => {
            let ups: Vec<Vec<u8>> = [b"b".as_slice(), FUZZ_PASSWORD]
                .iter()
                .filter_map(|pw| Upload::make(&fx.core, &fx.cred, pw, &[9; 32], &mut OsRng))
                .map(|u| u.msg.upload)
                .collect();
            let mut s = ups.clone();
            s.extend(ups.iter().map(|u| flip(u.clone(), 0)));
            s.extend(ups.iter().map(|u| flip(u.clone(), 40)));
            s.extend(ups.iter().map(|u| u[..191].to_vec()));
            s.extend([vec![0; 192], Vec::new()]);
            s
        }
        "registration_ticket" => {
            let mut s = vec![fx.upload.ticket.clone()];
            if let Some(u) = Upload::make(&fx.core, &other, b"c", &[9; 32], &mut OsRng) {
                s.push(u.ticket);
            }
            s.push(flip(fx.upload.ticket.clone(), 0));
            s.push(flip(fx.upload.ticket.clone(), 20));
            s.push(fx.upload.ticket[..REGISTRATION_TICKET_LEN - 1].to_vec());
            s.push(vec![1; REGISTRATION_TICKET_LEN]);
            s
        }
        "ke1" => {
            let mut s = vec![fx.ke1.clone()];
            if let Ok((k, _)) = client::recover_start(b"wrong", &mut OsRng) {
                s.push(k.clone());
                s.push(k[..95].to_vec());
                s.push(flip(k, 0));
            }
            s.extend([vec![0; 96], vec![0xff; 96], Vec::new()]);
            s
        }
        "ke3" => {
            let mut s = Vec::new();
            if let Some((_, _, Some(k))) = login(&fx.core, &fx.cred, &fx.record, FUZZ_PASSWORD) {
                s.push(k.clone());
                s.push(flip(k.clone(), 63));
                s.push(k[..63].to_vec());
            }
            s.extend([vec![0; 64], Vec::new()]);
            s
        }
        "login_ticket" => {
            let mut s = Vec::new();
            for pw in [FUZZ_PASSWORD, b"wrong"] {
                let Some((t, rec, k)) = login(&fx.core, &fx.cred, &fx.record, pw) else {
                    continue;
                };
                let k = k.unwrap_or_else(|| vec![7; 64]);
                s.push(join(&[&t, &k, rec.as_bytes()]));
                s.push(join(&[&t, &k, fx.record.as_bytes()]));
                s.push(join(&[&t, &k, &[]]));
                s.push(join(&[&flip(t.clone(), 30), &k, rec.as_bytes()]));
                // The last guess: a ticket that carries the wrapped key, and its tombstone.
                let mut rec = rec;
                while let Some((t2, next, k2)) = login(&fx.core, &fx.cred, &rec, pw) {
                    rec = next;
                    if fx
                        .core
                        .status(&fx.cred, Some(&rec))
                        .is_ok_and(|s| s.destroyed)
                    {
                        let k2 = k2.unwrap_or_else(|| vec![7; 64]);
                        s.push(join(&[&t2, &k2, rec.as_bytes()]));
                        break;
                    }
                }
            }
            // An unknown account's dummy ticket.
            if let Ok((ke1, _)) = client::recover_start(b"x", &mut OsRng)
                && let Ok(RecoverStartOutcome::Challenge { state, .. }) =
                    fx.core.recover_start(&other, None, &ke1, &mut OsRng)
                // Sealed for `other`: opens only there, so it seeds the refusal path.
                && let Some(t) = state.seal(&fx.core, FUZZ_NOW + 3600, &mut OsRng)
            {
                s.push(join(&[&t, &[0; 64], &[]]));
            }
            s.push(join(&[&fx.login.0, &[0; 64], fx.login.1.as_bytes()]));
            s
        }
        "sealed_record" => {
            let mut s = vec![
                fx.record.as_bytes().to_vec(),
                fx.login.1.as_bytes().to_vec(),
            ];
            let mut rec = fx.record.clone();
            while let Some((_, next, _)) = login(&fx.core, &fx.cred, &rec, b"wrong") {
                rec = next;
            }
            s.push(rec.as_bytes().to_vec()); // the tombstone
            s.push(flip(fx.record.as_bytes().to_vec(), 1)); // generation
            s.push(flip(fx.record.as_bytes().to_vec(), 0)); // version
            s.push(flip(fx.record.as_bytes().to_vec(), 30)); // ciphertext
            s.push(fx.record.as_bytes()[..21].to_vec());
            s.push(Vec::new());
            s
        }
        "owner_proof" => {
            let Some(key) = OwnerKey::from_backup_key(&FUZZ_K) else {
                return Vec::new();
            };
            let vid = *fx.core.vault_id();
            let delete = key.sign(OwnerOp::Delete, &vid, &fx.cred, 1, &[0; 32]);
            let replace = key.sign(OwnerOp::Replace, &vid, &fx.cred, 1, &fx.upload.content());
            let g1 = 1u64.to_le_bytes();
            vec![
                join(&[&[2], &g1, &delete]),
                join(&[&[1], &g1, &replace]),
                join(&[&[2], &2u64.to_le_bytes(), &delete]),
                join(&[&[1], &g1, &delete]),
                join(&[&[2], &g1, &delete[..63]]),
                join(&[&[2], &g1, &flip(delete.to_vec(), 0)]),
                join(&[&[2], &[], &[]]),
            ]
        }
        _ => Vec::new(),
    }
}

/// Every target of this module, by name.
pub const TARGETS: [&str; 8] = [
    "registration_request",
    "registration_upload",
    "registration_ticket",
    "ke1",
    "ke3",
    "login_ticket",
    "sealed_record",
    "owner_proof",
];

/// Runs `target`'s entry point on `data`; `None` for an unknown target.
pub fn run(fx: &Fixture, target: &str, data: &[u8]) -> Option<bool> {
    Some(match target {
        "registration_request" => registration_request(fx, data),
        "registration_upload" => registration_upload(fx, data),
        "registration_ticket" => registration_ticket(fx, data),
        "ke1" => ke1(fx, data),
        "ke3" => ke3(fx, data),
        "login_ticket" => login_ticket(fx, data),
        "sealed_record" => sealed_record(fx, data),
        "owner_proof" => owner_proof(fx, data),
        _ => return None,
    })
}
