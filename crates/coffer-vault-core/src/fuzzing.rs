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

use crate::protocol::{Reply, Request, WireAuthority};
use crate::{
    Authority, CoreError, CoreKeys, CredentialId, Entry, KsfProfile, OwnerProofError,
    REGISTRATION_TICKET_LEN, RecoverStarted, RegistrationUploadRequest, SealedRecord, Status,
    TICKET_LEN, VaultCore,
};
use coffer_vault_proto::owner::{OwnerKey, replace_content};
use coffer_vault_proto::{OwnerOp, client};

/// `CoreKeys::to_bytes` of the fuzzing vault (format version 2; generated once; not secret).
pub const FUZZ_CORE_KEYS: &str = "0286a01da6ea880c376be1898ae5b3f0982cb43fa2a56b73ce7060ae3be8844c68dbbfb1a0bd6d3687ef4eb549e5c22fba2bd2f3fa7d64b9dbbaf3809a0833174caa47724cdc5f8371d2a6500c410e67657eb2845402bd4e22cb722c0a5df6f1d4e4566923f2b03d321644ed3df2722ea6e2f68caaf45896caa05f4b39193a2e9ec698886534f74d68cb57f2e8d8ac5cd0f5ff24e9047147f46380a8b745f1532e9ec16a15a2b4fd17b21578d12ab8f606de81f401990d9fbbc2a99b434b53d571705c20b7221f7fb0005eadad863b094a";
/// The fixture credential's sealed entry in the core's store (live, generation 1, owner
/// key of [`FUZZ_K`]) and the body the host keeps for it: constant, like the keys, because
/// each registration draws its own record key, and a body or entry in the corpora must
/// keep opening in every later process. Made by [`fresh_registration`] (run again only
/// when the entry or body format changes).
pub const FUZZ_ENTRY: &str = "0174b5a97eafa0b9c9327a352ecf5256cd3c1116a8f0a95f4941a287617af56af462e97c213db24febdae342d83466dae0c5af0f1f68cc7a26acdd5bc2a9bddd675e354d533242bdf7d239782b7d093a4fe0c21b1c2796fff70c3119405df23a0628bad38383d84ef0d0ebcae946356673d6339e807b964f380d";
/// See [`FUZZ_ENTRY`].
pub const FUZZ_BODY: &str = "035e429f507ee92fc88992453202781ed285618ae862bae6502b5321fad485649a429b7d11e909b919b9db2b352989a34fb6b027ef6ac60050e07848aa359c8f3d9eb79280886f6416f3d3c0d8b7a11d7dde820db49ea5d359fa577bb093de218cafa0b7956fa0f7066750dd0ceb776890c0e798efbf4b8d0b7fb43927a1da73622b533be65c93881dc1ed6a48c4c8623ffe0fca27f4e93521d0060ab48f3708592da8fbe1c5faaab7b5253c261d66c15814d914667918035b1d16afb8b912f272feeff84e2b49395105d201a8ae605dd029912ffc8e486039924ea8586fde1ea549e3a2137314a30a38147ee38d6e57d97f3920389f7323d8f620245e6394f7b07d290047fb6dcd23ef0b8527e30f55c9cb1b81cb2e64ae9a55449e94451ebe82a895fcdbd5f76c2d297c3345d704426a338524d9acee93b121c8905e";
/// The fixture's credential.
pub const FUZZ_CREDENTIAL: [u8; 32] = [0xc7; 32];
/// The fixture's password and backup key K (its owner key signs the owner proofs).
pub const FUZZ_PASSWORD: &[u8] = b"fuzz-password";
/// See [`FUZZ_PASSWORD`].
pub const FUZZ_K: [u8; 32] = [0x4b; 32];
/// The fixture's clock; its tickets expire at `FUZZ_NOW + 3600`.
pub const FUZZ_NOW: u64 = 1_000_000;
const EXPIRES: u64 = FUZZ_NOW + 3600;
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
        let started = core.register_start(cred, &req, EXPIRES, rng).ok()?;
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

    /// The core protocol's `RegisterFinish` of this registration.
    pub fn wire(&self, cred: &CredentialId, authority: WireAuthority) -> Request {
        Request::RegisterFinish {
            cred: *cred,
            ticket: self.ticket.clone(),
            upload: self.msg.upload.clone(),
            wrapped_key: self.msg.wrapped_key.clone(),
            owner_key: self.msg.owner_key.to_vec(),
            profile: PROFILE.name().into(),
            authority,
        }
    }
}

/// The fixed state every target runs against.
pub struct Fixture {
    /// The core.
    pub core: VaultCore,
    /// [`FUZZ_CREDENTIAL`].
    pub cred: CredentialId,
    /// Its live entry (generation 1), registered with [`FUZZ_PASSWORD`] and [`FUZZ_K`].
    pub entry: Entry,
    /// The body of that registration, as the host stores it.
    pub body: SealedRecord,
    /// A valid registration (used where another field is fuzzed).
    pub upload: Upload,
    /// A valid KE1 (used where the body is fuzzed).
    pub ke1: Vec<u8>,
    /// A login ticket of one counted guess, and the entry that guess committed.
    pub login: (Vec<u8>, Entry),
}

impl Fixture {
    /// Builds the fixture; `None` only if the constant keys no longer parse.
    pub fn new() -> Option<Self> {
        let keys = CoreKeys::from_bytes(&unhex(FUZZ_CORE_KEYS)?).ok()?;
        let core = VaultCore::new(&keys, MAX_GUESSES)
            .ok()?
            .with_dummy_profile(PROFILE);
        let cred = CredentialId::from_bytes(FUZZ_CREDENTIAL);
        let upload = Upload::make(&core, &cred, FUZZ_PASSWORD, &FUZZ_K, &mut OsRng)?;
        let entry = core.open_entry(&cred, &unhex(FUZZ_ENTRY)?)?;
        let body = SealedRecord::from_bytes(unhex(FUZZ_BODY)?);
        let (ke1, _) = client::recover_start(FUZZ_PASSWORD, &mut OsRng).ok()?;
        let (ticket, counted, _) = login(&core, &cred, &entry, &body, FUZZ_PASSWORD)?;
        Some(Self {
            core,
            cred,
            entry,
            body,
            upload,
            ke1,
            login: (ticket, counted),
        })
    }
}

/// A new registration of [`FUZZ_PASSWORD`] and [`FUZZ_K`] on the fixture's core: its
/// sealed entry and body in hex, what [`FUZZ_ENTRY`] and [`FUZZ_BODY`] hold.
pub fn fresh_registration() -> Option<(String, String)> {
    let keys = CoreKeys::from_bytes(&unhex(FUZZ_CORE_KEYS)?).ok()?;
    let core = VaultCore::new(&keys, MAX_GUESSES).ok()?;
    let cred = CredentialId::from_bytes(FUZZ_CREDENTIAL);
    let upload = Upload::make(&core, &cred, FUZZ_PASSWORD, &FUZZ_K, &mut OsRng)?;
    let g = core
        .register_finish(
            &cred,
            None,
            &upload.request(),
            Authority::Token,
            FUZZ_NOW,
            &mut OsRng,
        )
        .ok()?;
    let entry = core.seal_entry(&cred, &g.entry?, &mut OsRng)?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Some((hex(&entry), hex(g.reply.body.as_bytes())))
}

/// One `recover/start` against `entry` and `body` with `password`: the sealed ticket, the
/// entry it committed and the client's KE3 (if the password opened KE2).
fn login(
    core: &VaultCore,
    cred: &CredentialId,
    entry: &Entry,
    body: &SealedRecord,
    password: &[u8],
) -> Option<(Vec<u8>, Entry, Option<Vec<u8>>)> {
    let (ke1, c) = client::recover_start(password, &mut OsRng).ok()?;
    let gated = core
        .recover_start(cred, Some(entry), Some(body), &ke1, EXPIRES, &mut OsRng)
        .ok()?;
    let ch = gated.reply;
    let ke3 = c
        .finish(core.vault_id(), &ch.ke2, ch.profile, &mut OsRng)
        .ok()
        .map(|(ke3, _)| ke3);
    Some((ch.ticket, gated.entry?, ke3))
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
    match fx.core.register_start(&fx.cred, data, EXPIRES, &mut OsRng) {
        Ok(started) => {
            assert_eq!(started.response.len(), 64, "RegistrationResponse length");
            assert_eq!(started.ticket.len(), REGISTRATION_TICKET_LEN);
            true
        }
        Err(_) => false,
    }
}

/// `register/finish` (no entry yet, token only) of `upload` with the rest valid.
fn finish_registration(fx: &Fixture, upload: &RegistrationUploadRequest<'_>) -> bool {
    match fx.core.register_finish(
        &fx.cred,
        None,
        upload,
        Authority::Token,
        FUZZ_NOW,
        &mut OsRng,
    ) {
        Ok(gated) => {
            assert!(
                matches!(&gated.entry, Some(Entry::Live(l)) if l.generation == 1),
                "a first registration left {:?}",
                gated.entry
            );
            assert_eq!(gated.reply.generation, 1);
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

/// `recover/start` of the live entry and its body with `data` as KE1.
pub fn ke1(fx: &Fixture, data: &[u8]) -> bool {
    match fx.core.recover_start(
        &fx.cred,
        Some(&fx.entry),
        Some(&fx.body),
        data,
        EXPIRES,
        &mut OsRng,
    ) {
        Ok(gated) => {
            assert_eq!(gated.reply.ke2.len(), 320, "KE2 length");
            assert!(
                matches!(&gated.entry, Some(Entry::Live(l)) if l.guesses_used == 1),
                "a counted KE2 without its count: {:?}",
                gated.entry
            );
            true
        }
        Err(_) => false,
    }
}

/// `recover/finish` of the fixture's login with `data` as KE3 (against the entry that
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

/// Fields `ticket, ke3, entry`: `RecoverStarted::open` of the login ticket, then `finish`
/// with that KE3 against that sealed entry of the core's store (empty, or one that does
/// not open: no entry).
pub fn login_ticket(fx: &Fixture, data: &[u8]) -> bool {
    let f = fields(data, 3);
    let Ok(state) = RecoverStarted::open(&fx.core, &fx.cred, f[0], FUZZ_NOW) else {
        return false;
    };
    assert_eq!(f[0].len(), TICKET_LEN, "a ticket of another length opened");
    let entry = fx.core.open_entry(&fx.cred, f[2]);
    // Opening is acceptance enough for the corpus check; finish must just not panic.
    let _ = state.finish(&fx.core, entry.as_ref(), f[1], &mut OsRng);
    true
}

/// `data` as the body the host serves: `recover/start` with the live entry and a valid
/// KE1. Accepted: a counted KE2 (only the registration's own body gives one); a refused
/// body must be refused as rolled back, with nothing counted.
pub fn sealed_record(fx: &Fixture, data: &[u8]) -> bool {
    let body = SealedRecord::from_bytes(data.to_vec());
    match fx.core.recover_start(
        &fx.cred,
        Some(&fx.entry),
        Some(&body),
        &fx.ke1,
        EXPIRES,
        &mut OsRng,
    ) {
        Ok(gated) => {
            assert!(gated.entry.is_some(), "a KE2 without its count");
            true
        }
        Err(e) => {
            assert_eq!(
                e,
                CoreError::StorageRolledBack,
                "a bad body refused as {e:?}"
            );
            false
        }
    }
}

/// `data` as a sealed entry of the core's store for the fixture's credential: whatever
/// opens must seal and open again to the same entry, and `status` of it must not panic.
pub fn core_entry(fx: &Fixture, data: &[u8]) -> bool {
    let Some(entry) = fx.core.open_entry(&fx.cred, data) else {
        return false;
    };
    let again = fx
        .core
        .seal_entry(&fx.cred, &entry, &mut OsRng)
        .and_then(|b| fx.core.open_entry(&fx.cred, &b));
    assert_eq!(again.as_ref(), Some(&entry), "an entry does not round-trip");
    let _ = fx.core.status(Some(&entry));
    true
}

/// Fields `op, generation, signature`: an owner proof (op byte 1: replace with the
/// fixture's upload; otherwise delete) of the live entry at `generation` (u64 LE, zero
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
                Some(&fx.entry),
                &fx.upload.request(),
                authority,
                FUZZ_NOW,
                &mut OsRng,
            )
            .is_ok()
    } else {
        fx.core.delete(&fx.cred, Some(&fx.entry), authority).is_ok()
    }
}

/// `data` as a core protocol request (host to core): whatever decodes must encode to the
/// same bytes (one encoding per request, so nothing the core refuses can be rewritten
/// into something it accepts on the way).
pub fn core_request(data: &[u8]) -> bool {
    let Ok(req) = Request::decode(data) else {
        return false;
    };
    assert_eq!(req.encode(), data, "{req:?} re-encodes differently");
    true
}

/// `data` as a core protocol reply (core to host): as [`core_request`].
pub fn core_reply(data: &[u8]) -> bool {
    let Ok(reply) = Reply::decode(data) else {
        return false;
    };
    assert_eq!(reply.encode(), data, "{reply:?} re-encodes differently");
    true
}

/// One of every request, with real messages of the fixture's vault where a field has one.
pub fn every_request(fx: &Fixture) -> Vec<Request> {
    let cred = fx.cred;
    let proof = WireAuthority::OwnerProof {
        generation: 1,
        signature: vec![0x5a; 64],
    };
    let reg = client::register_start(FUZZ_PASSWORD, &mut OsRng).map_or(vec![0; 32], |r| r.0);
    let ke3 = login(&fx.core, &cred, &fx.entry, &fx.body, FUZZ_PASSWORD)
        .and_then(|l| l.2)
        .unwrap_or_else(|| vec![0; 64]);
    vec![
        Request::Resolve {
            account: b"acme\0alice".to_vec(),
        },
        Request::RegisterStart { cred, request: reg },
        fx.upload.wire(&cred, WireAuthority::Token),
        fx.upload.wire(&cred, proof.clone()),
        fx.upload.wire(&cred, WireAuthority::ResetScope),
        Request::RecoverStart {
            cred,
            body: Some(fx.body.as_bytes().to_vec()),
            ke1: fx.ke1.clone(),
        },
        Request::RecoverStart {
            cred,
            body: None,
            ke1: fx.ke1.clone(),
        },
        Request::RecoverFinish {
            cred,
            ticket: fx.login.0.clone(),
            ke3,
        },
        Request::Status { cred },
        Request::Delete {
            cred,
            authority: proof.clone(),
        },
        Request::Delete {
            cred,
            authority: WireAuthority::Token,
        },
        Request::AuthorizeHead {
            cred,
            authority: proof,
            blob: vec![0x11; 73],
        },
        Request::GetHead { cred },
    ]
}

/// One of every reply, and every error the core answers with.
pub fn every_reply(fx: &Fixture) -> Vec<Reply> {
    let mut v = vec![Reply::Resolved { cred: fx.cred }];
    if let Ok(s) = fx
        .core
        .register_start(&fx.cred, &[0xe2; 32], EXPIRES, &mut OsRng)
    {
        v.push(Reply::RegisterStarted {
            response: s.response,
            ticket: s.ticket,
        });
    }
    v.push(Reply::Registered {
        body: fx.body.as_bytes().to_vec(),
        generation: 1,
        max_guesses: MAX_GUESSES,
    });
    if let Ok(g) = fx.core.recover_start(
        &fx.cred,
        Some(&fx.entry),
        Some(&fx.body),
        &fx.ke1,
        EXPIRES,
        &mut OsRng,
    ) {
        let c = g.reply;
        for drop_body in [false, true] {
            v.push(Reply::Challenge {
                ke2: c.ke2.clone(),
                profile: c.profile,
                guesses_left: c.guesses_left,
                ticket: c.ticket.clone(),
                drop_body,
            });
        }
    }
    v.push(Reply::Recovered {
        release_blob: vec![0x33; 90],
        max_guesses: MAX_GUESSES,
    });
    v.push(Reply::Status(fx.core.status(Some(&fx.entry))));
    v.push(Reply::Status(fx.core.status(None)));
    v.push(Reply::Status(Status {
        exists: false,
        destroyed: true,
        guesses_left: None,
        max_guesses: MAX_GUESSES,
        generation: None,
    }));
    v.extend([
        Reply::Deleted,
        Reply::HeadAuthorized,
        Reply::Head(None),
        Reply::Head(Some(vec![0x11; 73])),
        Reply::Error(CoreError::HeadNotNewer { kept: 3 }),
    ]);
    v.extend(
        [
            CoreError::Malformed { what: "message" },
            CoreError::Malformed {
                what: "wrapped key",
            },
            CoreError::Malformed { what: "owner key" },
            CoreError::UnknownProfile,
            CoreError::BadRegistrationTicket,
            CoreError::NoLogin,
            CoreError::WrongPassword { guesses_left: 2 },
            CoreError::KeyDestroyed { drop_body: true },
            CoreError::KeyDestroyed { drop_body: false },
            CoreError::NoRecord,
            CoreError::Owner(OwnerProofError::Required),
            CoreError::Owner(OwnerProofError::Stale { generation: 4 }),
            CoreError::Owner(OwnerProofError::Invalid),
            CoreError::StorageRolledBack,
            CoreError::StoreUnavailable,
            CoreError::Internal,
        ]
        .into_iter()
        .map(Reply::Error),
    );
    v
}

/// Seed inputs for `target`: real messages, tickets, bodies, entries and proofs of the
/// fixture's vault, plus a few near misses. Empty for an unknown target.
pub fn seeds(fx: &Fixture, target: &str) -> Vec<Vec<u8>> {
    let other = CredentialId::from_bytes([0x0d; 32]);
    let flip = |mut v: Vec<u8>, at: usize| {
        if let Some(b) = v.get_mut(at) {
            *b ^= 1;
        }
        v
    };
    let seal = |e: &Entry| {
        fx.core
            .seal_entry(&fx.cred, e, &mut OsRng)
            .unwrap_or_default()
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
            if let Some((_, _, Some(k))) =
                login(&fx.core, &fx.cred, &fx.entry, &fx.body, FUZZ_PASSWORD)
            {
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
                let Some((t, entry, k)) = login(&fx.core, &fx.cred, &fx.entry, &fx.body, pw) else {
                    continue;
                };
                let k = k.unwrap_or_else(|| vec![7; 64]);
                s.push(join(&[&t, &k, &seal(&entry)]));
                s.push(join(&[&t, &k, &seal(&fx.entry)]));
                s.push(join(&[&t, &k, &[]]));
                s.push(join(&[&flip(t.clone(), 30), &k, &seal(&entry)]));
                // The last guess: a ticket that carries the wrapped key, beside the
                // destroyed entry its guess committed.
                let mut entry = entry;
                while let Some((t2, next, k2)) = login(&fx.core, &fx.cred, &entry, &fx.body, pw) {
                    if matches!(next, Entry::Destroyed { .. }) {
                        let k2 = k2.unwrap_or_else(|| vec![7; 64]);
                        s.push(join(&[&t2, &k2, &seal(&next)]));
                        break;
                    }
                    entry = next;
                }
            }
            // An unknown account's dummy ticket, sealed for `other`: it opens only
            // there, so it seeds the refusal path.
            if let Ok((ke1, _)) = client::recover_start(b"x", &mut OsRng)
                && let Ok(g) = fx
                    .core
                    .recover_start(&other, None, None, &ke1, EXPIRES, &mut OsRng)
            {
                s.push(join(&[&g.reply.ticket, &[0; 64], &[]]));
            }
            s.push(join(&[&fx.login.0, &[0; 64], &seal(&fx.login.1)]));
            s
        }
        "sealed_record" => {
            let mut s = vec![fx.body.as_bytes().to_vec()];
            // Another registration's body of the same credential, and another
            // credential's: neither opens under the entry's key.
            for c in [fx.cred, other] {
                if let Some(u) = Upload::make(&fx.core, &c, b"y", &[8; 32], &mut OsRng)
                    && let Ok(g) = fx.core.register_finish(
                        &c,
                        None,
                        &u.request(),
                        Authority::Token,
                        FUZZ_NOW,
                        &mut OsRng,
                    )
                {
                    s.push(g.reply.body.as_bytes().to_vec());
                }
            }
            let b = fx.body.as_bytes().to_vec();
            s.push(flip(b.clone(), 0)); // nonce
            s.push(flip(b.clone(), 30)); // ciphertext
            s.push(flip(b.clone(), b.len() - 1)); // tag
            s.push(b[..40].to_vec());
            s.push(Vec::new());
            s
        }
        "core_entry" => {
            let mut s = vec![seal(&fx.entry), seal(&fx.login.1)];
            s.push(seal(&Entry::Destroyed { generation: 2 }));
            s.push(seal(&Entry::Deleted { generation: 3 }));
            if let Some(e) = fx.core.seal_entry(&other, &fx.entry, &mut OsRng) {
                s.push(e);
            }
            let e = seal(&fx.entry);
            s.push(flip(e.clone(), 0));
            s.push(flip(e.clone(), 20));
            s.push(e[..e.len() - 1].to_vec());
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
        "core_request" => {
            let mut s: Vec<Vec<u8>> = every_request(fx).iter().map(Request::encode).collect();
            let first = s[0].clone();
            s.push(flip(first.clone(), 0)); // version
            s.push([first.as_slice(), &[0]].concat()); // trailing byte
            s.push(vec![1, 0x7f]); // unknown op
            s
        }
        "core_reply" => {
            let mut s: Vec<Vec<u8>> = every_reply(fx).iter().map(Reply::encode).collect();
            let first = s[0].clone();
            s.push(flip(first.clone(), 0));
            s.push(first[..first.len() - 1].to_vec());
            s.push(vec![
                1, 0xff, 4, 0, b'n', b'o', b'p', b'e', 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            s
        }
        _ => Vec::new(),
    }
}

/// Every target of this module, by name.
pub const TARGETS: [&str; 11] = [
    "registration_request",
    "registration_upload",
    "registration_ticket",
    "ke1",
    "ke3",
    "login_ticket",
    "sealed_record",
    "core_entry",
    "owner_proof",
    "core_request",
    "core_reply",
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
        "core_entry" => core_entry(fx, data),
        "owner_proof" => owner_proof(fx, data),
        "core_request" => core_request(data),
        "core_reply" => core_reply(data),
        _ => return None,
    })
}
