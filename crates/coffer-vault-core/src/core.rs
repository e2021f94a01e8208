//! [`VaultCore`]: the trusted core's keys and its request handlers.
//!
//! Every handler takes the credential's [`Entry`] from the core's own store (or `None`)
//! and returns the entry to store in its place, if any: the core's driver must make that
//! entry durable **before** it releases the reply (invariant V2 in docs/VAULT-API.md:
//! KE2 lets the client test a password offline, so the guess must be counted durably
//! first). The driver is part of the core (its own process, or an HSM's firmware), not
//! the host: the host only ever sees the reply, after the commit.
//!
//! The host's record database holds each registration's body sealed under a key only the
//! entry holds (record.rs); it changes on register, delete and destroy, never on a guess.

use opaque_ke::{
    CredentialRequest, RegistrationRequest, RegistrationUpload, ServerLogin, ServerLoginParameters,
    ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};
use ring::aead::LessSafeKey;
use zeroize::Zeroizing;

use crate::authority::Authority;
use crate::entry::{self, Entry, LiveEntry};
use crate::error::{CoreError, CoreKeysError, OwnerProofError};
use crate::login::{Ke3Verified, LoginKind, RecoverStarted, TicketError};
use crate::record::{Record, SealedRecord};
use crate::registration::{self, RegisterStarted, oprf_identifier};
use coffer_vault_proto::owner::{self, OWNER_KEY_LEN};
use coffer_vault_proto::{
    CredentialId, KsfProfile, OwnerOp, Suite, WRAPPED_KEY_LEN, context, decode_exact,
};

/// Version 2 (this one) added the credential-id key, which version 1 left to the host.
const CORE_KEYS_VERSION: u8 = 2;
const FIXED_LEN: usize = 1 + 16 + 32 + 32;

/// The core's secrets: the OPAQUE server setup (OPRF seed and AKE key pair), the sealing
/// key (tickets, entries, dummy nonces), the credential-id key and the vault id.
pub struct CoreKeys {
    vault_id: [u8; 16],
    sealing_key: Zeroizing<[u8; 32]>,
    credential_id_key: Zeroizing<[u8; 32]>,
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
        let mut credential_id_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(credential_id_key.as_mut());
        let setup = ServerSetup::<Suite>::new(rng);
        Self {
            vault_id,
            sealing_key,
            credential_id_key,
            server_setup: Zeroizing::new(setup.serialize().to_vec()),
        }
    }

    /// The vault's public id (the JWT audience and part of the OPAQUE context).
    pub fn vault_id(&self) -> &[u8; 16] {
        &self.vault_id
    }

    /// Serialized form: `0x02 || vault_id(16) || sealing_key(32) || credential_id_key(32)
    /// || server_setup` (docs/VAULT-CORE.md, "Core keys").
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(FIXED_LEN + self.server_setup.len()));
        out.push(CORE_KEYS_VERSION);
        out.extend_from_slice(&self.vault_id);
        out.extend_from_slice(self.sealing_key.as_ref());
        out.extend_from_slice(self.credential_id_key.as_ref());
        out.extend_from_slice(&self.server_setup);
        out
    }

    /// Parses [`CoreKeys::to_bytes`] output.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CoreKeysError> {
        if b.len() < FIXED_LEN || b[0] != CORE_KEYS_VERSION {
            return Err(CoreKeysError::Malformed);
        }
        let vault_id = b[1..17].try_into().map_err(|_| CoreKeysError::Malformed)?;
        let mut sealing_key = Zeroizing::new([0u8; 32]);
        sealing_key.copy_from_slice(&b[17..49]);
        let mut credential_id_key = Zeroizing::new([0u8; 32]);
        credential_id_key.copy_from_slice(&b[49..81]);
        ServerSetup::<Suite>::deserialize(&b[FIXED_LEN..]).map_err(|_| CoreKeysError::Malformed)?;
        Ok(Self {
            vault_id,
            sealing_key,
            credential_id_key,
            server_setup: Zeroizing::new(b[FIXED_LEN..].to_vec()),
        })
    }
}

/// The trusted core. Cheap to share (`&self` everywhere); holds no per-request state.
pub struct VaultCore {
    vault_id: [u8; 16],
    setup: ServerSetup<Suite>,
    /// Seals the entries of the core's store (entry.rs).
    entries: LessSafeKey,
    /// Seals login tickets (HKDF of the sealing key; login.rs).
    tickets: LessSafeKey,
    /// Seals registration tickets (HKDF of the sealing key; registration.rs).
    registration_tickets: LessSafeKey,
    /// Derives unknown accounts' stable dummy OPRF nonces (HKDF of the sealing key).
    dummy_nonces: ring::hmac::Key,
    /// Derives credential ids from account names.
    credential_ids: ring::hmac::Key,
    max_guesses: u32,
    dummy_profile: KsfProfile,
}

/// A reply and the entry the driver must make durable before releasing it.
#[derive(Debug)]
pub struct Gated<T> {
    /// The entry to store for the credential (`None`: nothing changed).
    pub entry: Option<Entry>,
    /// The reply, to release only once `entry` is durable.
    pub reply: T,
}

/// What `recover/start` answers (after its entry is durable).
#[derive(Debug)]
pub struct Challenge {
    /// Serialized KE2 (CredentialResponse).
    pub ke2: Vec<u8>,
    /// The KSF profile the client must use.
    pub profile: KsfProfile,
    /// Guesses left after this one.
    pub guesses_left: u32,
    /// The sealed login ticket the client hands back to `recover/finish`.
    pub ticket: Vec<u8>,
    /// This guess destroyed the record: the host should delete the body it stores.
    pub drop_body: bool,
}

/// A verified recovery.
#[derive(Debug)]
pub struct Recovered {
    /// The wrapped key encrypted under the OPAQUE session key.
    pub release_blob: Vec<u8>,
    /// The entry with the count reset, to make durable before the blob is sent; `None`
    /// when nothing resets (a last guess, or a ticket that already reset once).
    pub entry: Option<Entry>,
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

/// What a registration leaves: the entry for the core's store and the body for the host.
#[derive(Debug)]
pub struct Registered {
    /// The new registration's body, for the host's record database.
    pub body: SealedRecord,
    /// Its generation (what owner proofs sign from now on).
    pub generation: u64,
}

/// What `status` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// A live record exists.
    pub exists: bool,
    /// The record was destroyed after too many wrong guesses.
    pub destroyed: bool,
    /// Guesses left, if a live record exists.
    pub guesses_left: Option<u32>,
    /// The vault's guess limit.
    pub max_guesses: u32,
    /// The live record's generation: what an owner proof must sign (owner.rs).
    pub generation: Option<u64>,
}

impl VaultCore {
    /// Builds the core from its keys. `max_guesses` is the vault's guess limit (>= 1).
    pub fn new(keys: &CoreKeys, max_guesses: u32) -> Result<Self, CoreKeysError> {
        let setup = ServerSetup::<Suite>::deserialize(&keys.server_setup)
            .map_err(|_| CoreKeysError::Malformed)?;
        let derive = |info| {
            coffer_vault_proto::wrap::derive(keys.sealing_key.as_ref(), info)
                .ok_or(CoreKeysError::Malformed)
        };
        let hmac = |ikm: &[u8], info| {
            coffer_vault_proto::wrap::derive_hmac(ikm, info).ok_or(CoreKeysError::Malformed)
        };
        Ok(Self {
            vault_id: keys.vault_id,
            setup,
            entries: derive(entry::ENTRY_INFO)?,
            tickets: derive(crate::login::TICKET_INFO)?,
            registration_tickets: derive(registration::REGISTRATION_TICKET_INFO)?,
            dummy_nonces: hmac(keys.sealing_key.as_ref(), registration::DUMMY_NONCE_INFO)?,
            credential_ids: ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                keys.credential_id_key.as_ref(),
            ),
            max_guesses: max_guesses.max(1),
            dummy_profile: KsfProfile::default(),
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

    pub(crate) fn context(&self) -> Vec<u8> {
        context(&self.vault_id)
    }

    /// The credential id of `account` (the host passes `tenant || 0x00 || account`):
    /// HMAC-SHA-256 under a key only the core holds, so a copy of the host's database
    /// does not tell whose records it holds.
    pub fn credential_id(&self, account: &[u8]) -> CredentialId {
        let tag = ring::hmac::sign(&self.credential_ids, account);
        let mut id = [0u8; 32];
        id.copy_from_slice(tag.as_ref());
        CredentialId::from_bytes(id)
    }

    /// Seals `entry` for the core's store.
    pub fn seal_entry(
        &self,
        cred: &CredentialId,
        entry: &Entry,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<Vec<u8>> {
        entry.seal(&self.entries, cred, rng)
    }

    /// Opens an entry from the core's store; `None` if it is not `cred`'s entry sealed by
    /// this core (a damaged store, or one moved between credentials).
    pub fn open_entry(&self, cred: &CredentialId, sealed: &[u8]) -> Option<Entry> {
        Entry::open(&self.entries, cred, sealed)
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

    /// Checks that `authority` may replace or delete the registration in `entry` (op
    /// `op`, new content `content`). Anything but a live entry may be changed with the
    /// token alone: a first registration, one over a destroyed or deleted record. The
    /// core decides from its own entry, never from what the host's database holds, so a
    /// host that hides or rolls back a body cannot turn a live record into a free one.
    fn authorize(
        &self,
        op: OwnerOp,
        cred: &CredentialId,
        entry: Option<&Entry>,
        authority: Authority<'_>,
        content: &[u8; 32],
    ) -> Result<(), OwnerProofError> {
        let Some(Entry::Live(live)) = entry else {
            return Ok(());
        };
        match authority {
            Authority::ResetScope => Ok(()),
            Authority::Token => Err(OwnerProofError::Required),
            Authority::OwnerProof {
                generation: signed,
                signature,
            } => {
                if signed != live.generation {
                    return Err(OwnerProofError::Stale {
                        generation: live.generation,
                    });
                }
                let msg = owner::proof_message(op, &self.vault_id, cred, signed, content);
                if owner::verify(&live.owner_key, &msg, signature) {
                    Ok(())
                } else {
                    Err(OwnerProofError::Invalid)
                }
            }
        }
    }

    /// `register/start`: draws this registration's OPRF nonce, evaluates the OPRF on the
    /// client's blinded password under `credential_id || nonce` (registration.rs says why
    /// never under the live record's key), and seals the nonce into a registration ticket
    /// valid until `expires` (seconds since the Unix epoch, the core's clock). Changes no
    /// state.
    pub fn register_start(
        &self,
        cred: &CredentialId,
        request: &[u8],
        expires: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<RegisterStarted, CoreError> {
        let malformed = CoreError::Malformed {
            what: "registration request",
        };
        let msg = decode_exact(request, RegistrationRequest::<Suite>::deserialize, |m| {
            m.serialize()
        })
        .ok_or(malformed.clone())?;
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let res =
            ServerRegistration::<Suite>::start(&self.setup, msg, &oprf_identifier(cred, &nonce))
                .map_err(|_| malformed)?;
        let ticket = registration::seal_ticket(self, cred, &nonce, expires, rng)
            .ok_or(CoreError::Internal)?;
        Ok(RegisterStarted {
            response: res.message.serialize().to_vec(),
            ticket,
        })
    }

    /// `register/finish`: a new registration replacing any old one, one generation above
    /// the entry, under a fresh record key (the old body opens no more). A live entry is
    /// replaced only with `authority` proving ownership; anything else with the token
    /// alone. The entry is the new state; the body goes to the host once it is durable.
    pub fn register_finish(
        &self,
        cred: &CredentialId,
        entry: Option<&Entry>,
        upload: &RegistrationUploadRequest<'_>,
        authority: Authority<'_>,
        now: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Gated<Registered>, CoreError> {
        let msg = decode_exact(
            upload.upload,
            RegistrationUpload::<Suite>::deserialize,
            |m| m.serialize(),
        )
        .ok_or(CoreError::Malformed {
            what: "registration upload",
        })?;
        if upload.wrapped_key.len() != WRAPPED_KEY_LEN {
            return Err(CoreError::Malformed {
                what: "wrapped key",
            });
        }
        let owner_key: [u8; OWNER_KEY_LEN] = upload
            .owner_key
            .try_into()
            .map_err(|_| CoreError::Malformed { what: "owner key" })?;
        let profile = KsfProfile::from_name(upload.profile).ok_or(CoreError::UnknownProfile)?;
        let oprf_nonce = registration::open_ticket(self, cred, upload.ticket, now)
            .map_err(|_: TicketError| CoreError::BadRegistrationTicket)?;
        let content = owner::replace_content(
            upload.ticket,
            upload.upload,
            upload.wrapped_key,
            upload.owner_key,
            upload.profile,
        );
        self.authorize(OwnerOp::Replace, cred, entry, authority, &content)?;
        let generation = entry.map_or(0, Entry::generation) + 1;
        let mut record_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(record_key.as_mut());
        let record = Record {
            profile,
            oprf_nonce,
            password_file: ServerRegistration::<Suite>::finish(msg)
                .serialize()
                .to_vec(),
            wrapped_key: upload.wrapped_key.to_vec(),
        };
        let body = record
            .seal(&record_key, cred, generation, rng)
            .ok_or(CoreError::Internal)?;
        Ok(Gated {
            entry: Some(Entry::Live(LiveEntry {
                generation,
                guesses_used: 0,
                attempts: 0,
                reset_below: 0,
                record_key,
                owner_key,
            })),
            reply: Registered { body, generation },
        })
    }

    /// `recover/start`: counts the guess in the entry and answers KE2, or a dummy KE2 for
    /// an unknown account. The guess that spends the last allowance destroys the entry
    /// (and its record key) in that same commit, and its login ticket alone carries what a
    /// verified KE3 still needs. `body` is what the host's database holds; one that does
    /// not open under the entry's key and generation is refused with
    /// [`CoreError::StorageRolledBack`]: no KE2, nothing counted.
    pub fn recover_start(
        &self,
        cred: &CredentialId,
        entry: Option<&Entry>,
        body: Option<&SealedRecord>,
        ke1: &[u8],
        expires: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Gated<Challenge>, CoreError> {
        let msg = decode_exact(ke1, CredentialRequest::<Suite>::deserialize, |m| {
            m.serialize()
        })
        .ok_or(CoreError::Malformed { what: "KE1" })?;
        let ctx = self.context();
        let params = ServerLoginParameters {
            context: Some(&ctx),
            ..Default::default()
        };
        let live = match entry {
            Some(Entry::Live(live)) => live,
            Some(Entry::Destroyed { .. }) => {
                return Err(CoreError::KeyDestroyed {
                    drop_body: body.is_some(),
                });
            }
            None | Some(Entry::Deleted { .. }) => {
                // Unknown account: opaque-ke's dummy path gives a KE2 of the same size
                // and shape, under a stable per-credential fake OPRF key.
                let id = oprf_identifier(cred, &self.dummy_nonce(cred));
                let res = ServerLogin::start(rng, &self.setup, None, msg, &id, params)
                    .map_err(|_| CoreError::Internal)?;
                let guesses_left = self.max_guesses - 1;
                let ticket = RecoverStarted::new(res.state, *cred, LoginKind::Dummy, guesses_left)
                    .seal(self, expires, rng)
                    .ok_or(CoreError::Internal)?;
                return Ok(Gated {
                    entry: None,
                    reply: Challenge {
                        ke2: res.message.serialize().to_vec(),
                        profile: self.dummy_profile,
                        guesses_left,
                        ticket,
                        drop_body: false,
                    },
                });
            }
        };
        if live.guesses_used >= self.max_guesses {
            // Only an entry counted under a higher limit (the operator lowered
            // --max-guesses) gets here: it has no guess left under this one.
            return Err(CoreError::KeyDestroyed { drop_body: true });
        }
        let record = body
            .and_then(|b| Record::open(&live.record_key, cred, live.generation, b))
            .ok_or(CoreError::StorageRolledBack)?;
        let file = ServerRegistration::<Suite>::deserialize(&record.password_file)
            .map_err(|_| CoreError::StorageRolledBack)?;
        let id = oprf_identifier(cred, &record.oprf_nonce);
        let res = ServerLogin::start(rng, &self.setup, Some(file), msg, &id, params)
            .map_err(|_| CoreError::Internal)?;
        let used = live.guesses_used + 1;
        let guesses_left = self.max_guesses.saturating_sub(used);
        let wrapped_key = Zeroizing::new(record.wrapped_key.clone());
        let (next, kind) = if guesses_left == 0 {
            // The last guess: the record key goes now, in this commit, so no crash,
            // retry or lost reply can leave a spent count beside a usable key. Only this
            // login's ticket still holds the wrapped key (sealed, until it expires) for
            // a KE3 that proves the password.
            let generation = live.generation + 1;
            (
                Entry::Destroyed { generation },
                LoginKind::Last {
                    generation,
                    wrapped_key,
                },
            )
        } else {
            let mut next = live.clone();
            next.guesses_used = used;
            next.attempts += 1;
            let kind = LoginKind::Counted {
                generation: live.generation,
                attempt: next.attempts,
                wrapped_key,
            };
            (Entry::Live(next), kind)
        };
        let ticket = RecoverStarted::new(res.state, *cred, kind, guesses_left)
            .seal(self, expires, rng)
            .ok_or(CoreError::Internal)?;
        Ok(Gated {
            reply: Challenge {
                ke2: res.message.serialize().to_vec(),
                profile: record.profile,
                guesses_left,
                ticket,
                drop_body: guesses_left == 0,
            },
            entry: Some(next),
        })
    }

    /// `recover/finish`: opens the login ticket (sealed by this core for `cred`, not
    /// expired at `now`) and checks KE3 (login.rs).
    pub fn recover_finish(
        &self,
        cred: &CredentialId,
        entry: Option<&Entry>,
        ticket: &[u8],
        ke3: &[u8],
        now: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Recovered, CoreError> {
        let started =
            RecoverStarted::open(self, cred, ticket, now).map_err(|_| CoreError::NoLogin)?;
        started.finish(self, entry, ke3, rng)
    }

    /// `status`: whether a live record exists and how many guesses it has left, from the
    /// core's own entry (the host's database cannot make it say more).
    pub fn status(&self, entry: Option<&Entry>) -> Status {
        let mut s = Status {
            exists: false,
            destroyed: false,
            guesses_left: None,
            max_guesses: self.max_guesses,
            generation: None,
        };
        match entry {
            None | Some(Entry::Deleted { .. }) => {}
            Some(Entry::Destroyed { .. }) => s.destroyed = true,
            Some(Entry::Live(live)) => {
                s.exists = true;
                s.guesses_left = Some(self.max_guesses.saturating_sub(live.guesses_used));
                s.generation = Some(live.generation);
            }
        }
        s
    }

    /// `delete`: erases the record (live or destroyed) and its key, leaving a `Deleted`
    /// entry one generation up so no old owner proof or ticket applies again. A live
    /// record needs `authority` proving ownership; a destroyed one goes with the token
    /// alone. [`CoreError::NoRecord`] if there is nothing to delete.
    pub fn delete(
        &self,
        cred: &CredentialId,
        entry: Option<&Entry>,
        authority: Authority<'_>,
    ) -> Result<Entry, CoreError> {
        let generation = match entry {
            None | Some(Entry::Deleted { .. }) => return Err(CoreError::NoRecord),
            Some(e) => e.generation(),
        };
        self.authorize(OwnerOp::Delete, cred, entry, authority, &[0; 32])?;
        Ok(Entry::Deleted {
            generation: generation + 1,
        })
    }

    /// Whether `authority` may store the repository head `blob` beside `cred`'s record
    /// (proto's head.rs): only the owner of a live record may, by an owner proof over the
    /// blob. The reset scope does not stretch to heads: it exists to start over, and a
    /// head moves nothing but the client's own rollback check forward. Changes no state.
    pub fn authorize_head(
        &self,
        cred: &CredentialId,
        entry: Option<&Entry>,
        authority: Authority<'_>,
        blob: &[u8],
    ) -> Result<(), CoreError> {
        if !matches!(entry, Some(Entry::Live(_))) {
            return Err(CoreError::NoRecord);
        }
        let authority = match authority {
            Authority::ResetScope => Authority::Token,
            a => a,
        };
        let content = coffer_vault_proto::head::head_content(blob);
        Ok(self.authorize(OwnerOp::Head, cred, entry, authority, &content)?)
    }
}
