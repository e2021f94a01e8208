//! [`VaultCore`]: the trusted core's keys and its request handlers.
//!
//! Every handler takes the sealed record the host read (or `None`) and returns a
//! [`StateChange`] the host must make durable **before** it releases the reply
//! (invariant V2 in docs/VAULT-API.md: KE2 lets the client test a password offline, so
//! the guess must be counted durably first). Every handler also checks the record against
//! the rollback floor (invariant V7, `floor.rs`) and refuses a stale one.

use opaque_ke::{
    CredentialRequest, RegistrationRequest, RegistrationUpload, ServerLogin, ServerLoginParameters,
    ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};
use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use zeroize::Zeroizing;

use crate::authority::Authority;
use crate::error::{
    CoreKeysError, DeleteError, HeadError, OwnerProofError, RecoverStartError, RegisterError,
    StatusError,
};
use crate::floor::{self, Floor, FloorUpdate, Floors, Stale};
use crate::login::{Ke3Verified, LoginKind, RecoverStarted, TicketError};
use crate::record::{Record, SealedRecord};
use crate::registration::{self, RegisterStarted, oprf_identifier};
use coffer_vault_proto::WRAPPED_KEY_LEN;
use coffer_vault_proto::owner::{self, OWNER_KEY_LEN};
use coffer_vault_proto::{CredentialId, OwnerOp};
use coffer_vault_proto::{KsfProfile, Suite, context, decode_exact};

const CORE_KEYS_VERSION: u8 = 1;

/// [`VaultCore::change`] argument for every change but a count reset.
pub(crate) const FLOORED: bool = true;

/// The core's secrets: the OPAQUE server setup, the record-sealing key and the vault id.
pub struct CoreKeys {
    vault_id: [u8; 16],
    sealing_key: Zeroizing<[u8; 32]>,
    server_setup: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for CoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreKeys")
            .field("vault_id", &self.vault_id)
            .finish_non_exhaustive()
    }
}

impl CoreKeys {
    /// Fresh keys from `rng` (the OS CSPRNG in production).
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut vault_id = [0u8; 16];
        rng.fill_bytes(&mut vault_id);
        let mut sealing_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(sealing_key.as_mut());
        let setup = ServerSetup::<Suite>::new(rng);
        Self {
            vault_id,
            sealing_key,
            server_setup: Zeroizing::new(setup.serialize().to_vec()),
        }
    }

    /// The vault's public id (the JWT audience and part of the OPAQUE context).
    pub fn vault_id(&self) -> &[u8; 16] {
        &self.vault_id
    }

    /// Serialized form: `0x01 || vault_id(16) || sealing_key(32) || server_setup`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(49 + self.server_setup.len()));
        out.push(CORE_KEYS_VERSION);
        out.extend_from_slice(&self.vault_id);
        out.extend_from_slice(self.sealing_key.as_ref());
        out.extend_from_slice(&self.server_setup);
        out
    }

    /// Parses [`CoreKeys::to_bytes`] output.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CoreKeysError> {
        if b.len() < 49 || b[0] != CORE_KEYS_VERSION {
            return Err(CoreKeysError::Malformed);
        }
        let vault_id = b[1..17].try_into().map_err(|_| CoreKeysError::Malformed)?;
        let mut sealing_key = Zeroizing::new([0u8; 32]);
        sealing_key.copy_from_slice(&b[17..49]);
        ServerSetup::<Suite>::deserialize(&b[49..]).map_err(|_| CoreKeysError::Malformed)?;
        Ok(Self {
            vault_id,
            sealing_key,
            server_setup: Zeroizing::new(b[49..].to_vec()),
        })
    }
}

/// The trusted core. Cheap to share (`&self` everywhere); holds no per-request state,
/// only the rollback floors (which it raises in [`VaultCore::confirm`]).
pub struct VaultCore {
    vault_id: [u8; 16],
    setup: ServerSetup<Suite>,
    sealing: LessSafeKey,
    /// Seals login tickets (HKDF of the sealing key; login.rs).
    tickets: LessSafeKey,
    /// Seals registration tickets (HKDF of the sealing key; registration.rs).
    registration_tickets: LessSafeKey,
    /// Derives unknown accounts' stable dummy OPRF nonces (HKDF of the sealing key).
    dummy_nonces: ring::hmac::Key,
    max_guesses: u32,
    dummy_profile: KsfProfile,
    floors: Floors,
}

/// One state change the host must make durable, in this order (docs/VAULT-API.md,
/// "Durability order"): `record` in record storage (one committed transaction), then
/// `floor` in the trusted store, then [`VaultCore::confirm`], then the reply.
///
/// Record first: a crash after it leaves a record newer than its floor, which the core
/// accepts (the floor catches up with the next change), and no reply was released. Floor
/// first would let a crash leave a floor above every stored record: a sound account
/// refused as rolled back.
///
/// A change that only gives guesses back (the count reset after a verified KE3) carries
/// no floor: rolling it back can only take guesses from the attacker, never give them
/// any, so it is not worth a trusted-store write (docs/VAULT-API.md, invariant V7).
#[derive(Clone, Debug)]
pub struct StateChange {
    /// The credential whose record changes.
    pub credential_id: CredentialId,
    /// The record to store; `None` removes it (delete).
    pub record: Option<SealedRecord>,
    /// The floor to persist in the trusted store once `record` is committed; `None` for
    /// a count reset, which needs none.
    pub floor: Option<FloorUpdate>,
}

/// What `recover/start` decided.
// Consumed right away by the host; boxing the login state would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RecoverStartOutcome {
    /// Send `ke2` (and `profile`, `guesses_left`), but only after `commit` (if any) is
    /// durable and confirmed. `commit` is `None` for an unknown account's dummy KE2.
    Challenge {
        /// Serialized KE2 (CredentialResponse).
        ke2: Vec<u8>,
        /// The KSF profile the client must use.
        profile: KsfProfile,
        /// Guesses left after this one.
        guesses_left: u32,
        /// State the host keeps until `recover/finish`.
        state: RecoverStarted,
        /// The record with the guess counted, and its floor.
        commit: Option<StateChange>,
    },
    /// Every guess was spent: the record is destroyed. Commit the tombstone (if `Some`),
    /// then answer "key destroyed". No KE2 is released.
    Destroyed {
        /// The tombstone replacing the record, or `None` if it already was one.
        commit: Option<StateChange>,
    },
}

/// A verified recovery: commit `commit`, then send `release_blob`.
#[derive(Debug)]
pub struct Recovered {
    /// The wrapped key encrypted under the OPAQUE session key.
    pub release_blob: Vec<u8>,
    /// The record with the count reset (no floor: see [`StateChange`]); `None` after
    /// the last guess, whose record is already a tombstone and stays one (the client
    /// registers again with the key it now holds).
    pub commit: Option<StateChange>,
    /// The vault's guess limit (the count is now back to all of it).
    pub max_guesses: u32,
    pub(crate) proof: Ke3Verified,
}

impl Recovered {
    /// The proof this recovery came from a verified KE3.
    pub fn proof(&self) -> &Ke3Verified {
        &self.proof
    }
}

/// The client's `register/finish` message, as the core needs it.
#[derive(Clone, Copy, Debug)]
pub struct RegistrationUploadRequest<'a> {
    /// The registration ticket from `register/start`.
    pub ticket: &'a [u8],
    /// OPAQUE RegistrationUpload.
    pub upload: &'a [u8],
    /// `wrap(export_key, K)`.
    pub wrapped_key: &'a [u8],
    /// The Ed25519 owner public key derived from K (owner.rs).
    pub owner_key: &'a [u8],
    /// KSF profile name.
    pub profile: &'a str,
}

/// What `status` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// A live record exists.
    pub exists: bool,
    /// The record was destroyed after too many wrong guesses (a tombstone is stored).
    pub destroyed: bool,
    /// Guesses left, if a live record exists.
    pub guesses_left: Option<u32>,
    /// The vault's guess limit.
    pub max_guesses: u32,
    /// The live record's generation: what an owner proof must sign (owner.rs).
    pub generation: Option<u64>,
}

impl VaultCore {
    /// Builds the core from its keys and the floors read from the trusted store (every
    /// entry the host's trusted store holds; an empty store for a new vault).
    /// `max_guesses` is the vault's guess limit (>= 1).
    pub fn new(
        keys: &CoreKeys,
        max_guesses: u32,
        floors: impl IntoIterator<Item = FloorUpdate>,
    ) -> Result<Self, CoreKeysError> {
        let setup = ServerSetup::<Suite>::deserialize(&keys.server_setup)
            .map_err(|_| CoreKeysError::Malformed)?;
        let unbound = UnboundKey::new(&AES_256_GCM, keys.sealing_key.as_ref())
            .map_err(|_| CoreKeysError::Malformed)?;
        let derive = |info| {
            coffer_vault_proto::wrap::derive(keys.sealing_key.as_ref(), info)
                .ok_or(CoreKeysError::Malformed)
        };
        let tickets = derive(crate::login::TICKET_INFO)?;
        let registration_tickets = derive(registration::REGISTRATION_TICKET_INFO)?;
        let dummy_nonces = coffer_vault_proto::wrap::derive_hmac(
            keys.sealing_key.as_ref(),
            registration::DUMMY_NONCE_INFO,
        )
        .ok_or(CoreKeysError::Malformed)?;
        Ok(Self {
            vault_id: keys.vault_id,
            setup,
            sealing: LessSafeKey::new(unbound),
            tickets,
            registration_tickets,
            dummy_nonces,
            max_guesses: max_guesses.max(1),
            dummy_profile: KsfProfile::default(),
            floors: Floors::new(floors),
        })
    }

    /// Sets the profile announced with dummy KE2s; it should be the profile real accounts
    /// of this vault use, so dummies look the same.
    pub fn with_dummy_profile(mut self, profile: KsfProfile) -> Self {
        self.dummy_profile = profile;
        self
    }

    /// The guess limit.
    pub fn max_guesses(&self) -> u32 {
        self.max_guesses
    }

    /// The vault id.
    pub fn vault_id(&self) -> &[u8; 16] {
        &self.vault_id
    }

    pub(crate) fn tickets(&self) -> &LessSafeKey {
        &self.tickets
    }

    pub(crate) fn registration_tickets(&self) -> &LessSafeKey {
        &self.registration_tickets
    }

    /// The OPRF nonce an unknown account's dummy KE2 uses: a keyed function of the
    /// credential, so repeated logins see one stable (fake) OPRF key, as they would for a
    /// real record, and nobody without the core's key can tell it from a drawn nonce.
    fn dummy_nonce(&self, cred: &CredentialId) -> [u8; 32] {
        let tag = ring::hmac::sign(&self.dummy_nonces, cred.as_bytes());
        let mut n = [0u8; 32];
        n.copy_from_slice(tag.as_ref());
        n
    }

    /// Checks that `authority` may replace or delete `record` (op `op`, new content
    /// `content`). Anything but a live record may be changed with the token alone: a
    /// first registration, one over a destroyed record, the removal of a tombstone.
    fn authorize(
        &self,
        op: OwnerOp,
        cred: &CredentialId,
        record: Option<&(Record, u64)>,
        authority: Authority<'_>,
        content: &[u8; 32],
    ) -> Result<(), OwnerProofError> {
        let Some((Record::Live { owner_key, .. }, generation)) = record else {
            return Ok(());
        };
        match authority {
            Authority::ResetScope => Ok(()),
            Authority::Token => Err(OwnerProofError::Required),
            Authority::OwnerProof {
                generation: signed,
                signature,
            } => {
                if signed != *generation {
                    return Err(OwnerProofError::Stale {
                        generation: *generation,
                    });
                }
                let msg = owner::proof_message(op, &self.vault_id, cred, signed, content);
                if owner::verify(owner_key, &msg, signature) {
                    Ok(())
                } else {
                    Err(OwnerProofError::Invalid)
                }
            }
        }
    }

    pub(crate) fn context(&self) -> Vec<u8> {
        context(&self.vault_id)
    }

    /// The host confirms that `update`'s change is durable in both stores: the in-memory
    /// floor rises to it (never falls).
    ///
    /// Why only now and not when the change is emitted: the in-memory floor must never
    /// run ahead of what storage holds, or a failed commit (disk full, I/O error) would
    /// leave the stored record below it and the next request would refuse a sound account
    /// as rolled back. The host's per-credential lock spans read, core call, commit and
    /// confirm, so no other request of that credential sees the gap. The stand-in's host
    /// shares the core's process and is trusted to follow this order; an HSM port, whose
    /// host is not trusted, must instead write its NV floor itself and only then hand out
    /// the reply (docs/VAULT-API.md, "Rollback").
    pub fn confirm(&self, update: &FloorUpdate) {
        self.floors.raise(*update);
    }

    /// The current in-memory floor of `cred`, if any.
    pub fn floor(&self, cred: &CredentialId) -> Option<Floor> {
        self.floors.get(cred)
    }

    /// Opens `rec` (authenticity) and checks it against the floor (freshness).
    pub(crate) fn open_fresh(
        &self,
        cred: &CredentialId,
        rec: Option<&SealedRecord>,
    ) -> Result<Option<(Record, u64)>, OpenError> {
        let opened = match rec {
            None => None,
            Some(r) => Some(Record::open(&self.sealing, cred, r).ok_or(OpenError::Corrupt)?),
        };
        let stored = rec.zip(opened.as_ref().map(|(_, g)| *g));
        floor::check(self.floors.get(cred), stored).map_err(OpenError::Stale)?;
        Ok(opened)
    }

    /// Opens `rec` without refusing a stale one, for the changes that replace a record
    /// outright (register, delete) and so may heal it; returns the record with its
    /// generation if it is fresh (`None` for a stale one: the floor says it was deleted
    /// or superseded, so it is nobody's live record any more), and the generation the
    /// replacing change must carry: above both the record and the floor.
    fn next_generation(
        &self,
        cred: &CredentialId,
        rec: Option<&SealedRecord>,
    ) -> Result<(Option<(Record, u64)>, u64), ()> {
        let opened = match rec {
            None => None,
            Some(r) => Some(Record::open(&self.sealing, cred, r).ok_or(())?),
        };
        let record_gen = opened.as_ref().map_or(0, |(_, g)| *g);
        let floor = self.floors.get(cred);
        let floor_gen = floor.map_or(0, |f| f.generation());
        let fresh = floor::check(floor, rec.zip(opened.as_ref().map(|(_, g)| *g))).is_ok();
        Ok((
            opened.filter(|_| fresh),
            record_gen.max(floor_gen).saturating_add(1),
        ))
    }

    /// Seals `record` at `generation` as a state change of `cred`, with the floor it
    /// sets if `floored`. Only a count reset is not: the floor stays at the counted
    /// record of `generation - 1`, which the reset is newer than, so the reset is
    /// accepted; a host that serves the counted record instead (a rollback, or a crash
    /// before the reset was durable) only takes guesses away; and the next counted guess
    /// raises the floor above the reset, which makes it stale from then on.
    pub(crate) fn change(
        &self,
        cred: &CredentialId,
        record: &Record,
        generation: u64,
        floored: bool,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<StateChange> {
        let sealed = record.seal(&self.sealing, cred, generation, rng)?;
        let floor = floored.then(|| FloorUpdate {
            credential_id: *cred,
            floor: Floor::for_record(&sealed, generation),
        });
        Some(StateChange {
            credential_id: *cred,
            record: Some(sealed),
            floor,
        })
    }

    /// `register/start`: draws this registration's OPRF nonce, evaluates the OPRF on the
    /// client's blinded password under `credential_id || nonce` (registration.rs says why
    /// never under the live record's key), and seals the nonce into a registration ticket
    /// valid until `expires` (seconds since the Unix epoch). Changes no state.
    pub fn register_start(
        &self,
        cred: &CredentialId,
        request: &[u8],
        expires: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<RegisterStarted, RegisterError> {
        let msg = decode_exact(request, RegistrationRequest::<Suite>::deserialize, |m| {
            m.serialize()
        })
        .ok_or(RegisterError::Malformed {
            what: "registration request",
        })?;
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let res =
            ServerRegistration::<Suite>::start(&self.setup, msg, &oprf_identifier(cred, &nonce))
                .map_err(|_| RegisterError::Malformed {
                    what: "registration request",
                })?;
        let ticket = registration::seal_ticket(self, cred, &nonce, expires, rng)
            .ok_or(RegisterError::Internal)?;
        Ok(RegisterStarted {
            response: res.message.serialize().to_vec(),
            ticket,
        })
    }

    /// `register/finish`: a new record replacing any old one (count reset), one
    /// generation above both it and the floor. Commit it before acknowledging.
    ///
    /// A live record is replaced only with `authority` proving ownership (owner.rs);
    /// anything else (no record, a tombstone) with the token alone. A stale record (below
    /// the floor) does not stop a registration: it replaces the record outright, as
    /// registration always may, so an account owner can recover from a rolled-back
    /// record with the recovery key and a new password.
    pub fn register_finish(
        &self,
        cred: &CredentialId,
        current: Option<&SealedRecord>,
        upload: &RegistrationUploadRequest<'_>,
        authority: Authority<'_>,
        now: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<StateChange, RegisterError> {
        let msg = decode_exact(
            upload.upload,
            RegistrationUpload::<Suite>::deserialize,
            |m| m.serialize(),
        )
        .ok_or(RegisterError::Malformed {
            what: "registration upload",
        })?;
        if upload.wrapped_key.len() != WRAPPED_KEY_LEN {
            return Err(RegisterError::Malformed {
                what: "wrapped key",
            });
        }
        let owner_key: [u8; OWNER_KEY_LEN] = upload
            .owner_key
            .try_into()
            .map_err(|_| RegisterError::Malformed { what: "owner key" })?;
        let profile = KsfProfile::from_name(upload.profile).ok_or(RegisterError::UnknownProfile)?;
        let oprf_nonce =
            registration::open_ticket(self, cred, upload.ticket, now).map_err(|e| match e {
                TicketError::Expired => RegisterError::TicketExpired,
                _ => RegisterError::BadTicket,
            })?;
        let (opened, generation) = self
            .next_generation(cred, current)
            .map_err(|_| RegisterError::CorruptRecord)?;
        let content = owner::replace_content(
            upload.ticket,
            upload.upload,
            upload.wrapped_key,
            upload.owner_key,
            upload.profile,
        );
        self.authorize(OwnerOp::Replace, cred, opened.as_ref(), authority, &content)
            .map_err(RegisterError::Owner)?;
        let record = Record::Live {
            profile,
            guesses_used: 0,
            oprf_nonce,
            owner_key,
            password_file: ServerRegistration::<Suite>::finish(msg)
                .serialize()
                .to_vec(),
            wrapped_key: upload.wrapped_key.to_vec(),
        };
        self.change(cred, &record, generation, FLOORED, rng)
            .ok_or(RegisterError::Internal)
    }

    /// `recover/start`: counts the guess (in `commit`) and produces KE2, or a dummy KE2
    /// for an unknown account. The guess that spends the last allowance destroys the
    /// record in that same commit (a tombstone), and its login ticket alone carries what
    /// a verified KE3 still needs. A record below the floor, or missing where the floor
    /// says one exists, is refused with [`RecoverStartError::StorageRolledBack`]: no KE2,
    /// nothing counted.
    pub fn recover_start(
        &self,
        cred: &CredentialId,
        current: Option<&SealedRecord>,
        ke1: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<RecoverStartOutcome, RecoverStartError> {
        let msg = decode_exact(ke1, CredentialRequest::<Suite>::deserialize, |m| {
            m.serialize()
        })
        .ok_or(RecoverStartError::Malformed)?;
        let ctx = self.context();
        let params = ServerLoginParameters {
            context: Some(&ctx),
            ..Default::default()
        };
        let opened = self.open_fresh(cred, current).map_err(|e| match e {
            OpenError::Corrupt => RecoverStartError::CorruptRecord,
            OpenError::Stale(s) => RecoverStartError::StorageRolledBack(s),
        })?;
        let Some((record, generation)) = opened else {
            // Unknown account: opaque-ke's dummy path gives a KE2 of the same size and
            // shape, under a stable per-credential fake OPRF key.
            let id = oprf_identifier(cred, &self.dummy_nonce(cred));
            let res = ServerLogin::start(rng, &self.setup, None, msg, &id, params)
                .map_err(|_| RecoverStartError::Internal)?;
            let guesses_left = self.max_guesses - 1;
            return Ok(RecoverStartOutcome::Challenge {
                ke2: res.message.serialize().to_vec(),
                profile: self.dummy_profile,
                guesses_left,
                state: RecoverStarted::new(res.state, *cred, LoginKind::Dummy, guesses_left),
                commit: None,
            });
        };
        let Record::Live {
            profile,
            guesses_used,
            oprf_nonce,
            password_file,
            wrapped_key,
            ..
        } = &record
        else {
            return Ok(RecoverStartOutcome::Destroyed { commit: None });
        };
        if *guesses_used >= self.max_guesses {
            // Only a record counted under a higher limit (the operator lowered
            // --max-guesses) gets here: it has no guess left under this one.
            let commit = self
                .change(cred, &Record::Destroyed, generation + 1, FLOORED, rng)
                .ok_or(RecoverStartError::Internal)?;
            return Ok(RecoverStartOutcome::Destroyed {
                commit: Some(commit),
            });
        }
        let file = ServerRegistration::<Suite>::deserialize(password_file)
            .map_err(|_| RecoverStartError::CorruptRecord)?;
        let id = oprf_identifier(cred, oprf_nonce);
        let res = ServerLogin::start(rng, &self.setup, Some(file), msg, &id, params)
            .map_err(|_| RecoverStartError::Internal)?;
        let used = guesses_used + 1;
        let new_gen = generation + 1;
        let guesses_left = self.max_guesses.saturating_sub(used);
        let (next, kind) = if guesses_left == 0 {
            // The last guess: K leaves the record now, in this commit, so no crash,
            // retry or lost reply can leave a record with a spent count but a key in it.
            // Only this login's ticket still holds the wrapped key (sealed, until it
            // expires) for a KE3 that proves the password.
            (
                Record::Destroyed,
                LoginKind::Last {
                    generation: new_gen,
                    wrapped_key: zeroize::Zeroizing::new(wrapped_key.clone()),
                },
            )
        } else {
            (
                record
                    .with_guesses_used(used)
                    .ok_or(RecoverStartError::Internal)?,
                LoginKind::Counted {
                    generation: new_gen,
                },
            )
        };
        let commit = self
            .change(cred, &next, new_gen, FLOORED, rng)
            .ok_or(RecoverStartError::Internal)?;
        Ok(RecoverStartOutcome::Challenge {
            ke2: res.message.serialize().to_vec(),
            profile: *profile,
            guesses_left,
            state: RecoverStarted::new(res.state, *cred, kind, guesses_left),
            commit: Some(commit),
        })
    }

    /// `status`: whether a record exists and how many guesses it has left. A stale
    /// record is refused ([`StatusError::StorageRolledBack`]) rather than reported with
    /// its old count.
    pub fn status(
        &self,
        cred: &CredentialId,
        current: Option<&SealedRecord>,
    ) -> Result<Status, StatusError> {
        let opened = self.open_fresh(cred, current).map_err(|e| match e {
            OpenError::Corrupt => StatusError::CorruptRecord,
            OpenError::Stale(s) => StatusError::StorageRolledBack(s),
        })?;
        let mut s = Status {
            exists: false,
            destroyed: false,
            guesses_left: None,
            max_guesses: self.max_guesses,
            generation: None,
        };
        match opened {
            None => {}
            Some((Record::Destroyed, _)) => s.destroyed = true,
            Some((Record::Live { guesses_used, .. }, generation)) => {
                s.exists = true;
                s.guesses_left = Some(self.max_guesses.saturating_sub(guesses_used));
                s.generation = Some(generation);
            }
        }
        Ok(s)
    }

    /// `delete`: removes the record (live or tombstone) and leaves a `Deleted` floor, so
    /// an old copy of the record restored later is refused. A live record needs
    /// `authority` proving ownership (owner.rs); a tombstone goes with the token alone.
    /// Like registration it replaces a stale record outright. [`DeleteError::NoRecord`]
    /// if there is nothing to delete.
    pub fn delete(
        &self,
        cred: &CredentialId,
        current: Option<&SealedRecord>,
        authority: Authority<'_>,
    ) -> Result<StateChange, DeleteError> {
        let (opened, generation) = self
            .next_generation(cred, current)
            .map_err(|_| DeleteError::CorruptRecord)?;
        let floor_says_record = matches!(self.floors.get(cred), Some(Floor::Record { .. }));
        if current.is_none() && !floor_says_record {
            return Err(DeleteError::NoRecord);
        }
        self.authorize(OwnerOp::Delete, cred, opened.as_ref(), authority, &[0; 32])
            .map_err(DeleteError::Owner)?;
        Ok(StateChange {
            credential_id: *cred,
            record: None,
            floor: Some(FloorUpdate {
                credential_id: *cred,
                floor: Floor::Deleted { generation },
            }),
        })
    }
}

impl VaultCore {
    /// Whether `authority` may store the repository head `blob` beside `cred`'s record
    /// (head.rs): only the owner of a fresh live record may, by an owner proof over the
    /// blob. The reset scope does not stretch to heads: it exists to start over, and a
    /// head moves nothing but the client's own rollback check forward. Changes no state.
    pub fn authorize_head(
        &self,
        cred: &CredentialId,
        current: Option<&SealedRecord>,
        authority: Authority<'_>,
        blob: &[u8],
    ) -> Result<(), HeadError> {
        let opened = self.open_fresh(cred, current).map_err(|e| match e {
            OpenError::Corrupt => HeadError::CorruptRecord,
            OpenError::Stale(s) => HeadError::StorageRolledBack(s),
        })?;
        if !matches!(opened, Some((Record::Live { .. }, _))) {
            return Err(HeadError::NoRecord);
        }
        let authority = match authority {
            Authority::ResetScope => Authority::Token,
            a => a,
        };
        let content = coffer_vault_proto::head::head_content(blob);
        self.authorize(OwnerOp::Head, cred, opened.as_ref(), authority, &content)
            .map_err(HeadError::Owner)
    }
}

/// Why a stored record could not be used.
pub(crate) enum OpenError {
    /// It does not authenticate for this credential.
    Corrupt,
    /// It is older than the trusted floor.
    Stale(Stale),
}
