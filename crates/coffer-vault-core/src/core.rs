//! [`VaultCore`]: the trusted core's keys and its request handlers.
//!
//! Every handler takes the sealed record the host read (or `None`) and returns what the
//! host must durably commit **before** it releases the reply (invariant V2 in
//! docs/VAULT-API.md: KE2 lets the client test a password offline, so the guess must be
//! counted durably first).

use opaque_ke::{
    CredentialRequest, RegistrationRequest, RegistrationUpload, ServerLogin, ServerLoginParameters,
    ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};
use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use zeroize::Zeroizing;

use crate::error::{CoreKeysError, RecoverStartError, RegisterError, StatusError};
use crate::login::{Ke3Verified, RecoverStarted};
use crate::record::{Record, SealedRecord};
use crate::suite::{KsfProfile, Suite, context};
use crate::wrap::WRAPPED_KEY_LEN;

/// The id a record is stored under: `HMAC-SHA256(vault key, tenant || 0x00 || account)`,
/// computed by the host. Never the raw account id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CredentialId([u8; 32]);

impl CredentialId {
    /// Wraps 32 bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

const CORE_KEYS_VERSION: u8 = 1;

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

/// The trusted core. Cheap to share (`&self` everywhere); holds no per-request state.
pub struct VaultCore {
    vault_id: [u8; 16],
    setup: ServerSetup<Suite>,
    sealing: LessSafeKey,
    max_guesses: u32,
    dummy_profile: KsfProfile,
}

/// What `recover/start` decided.
// Consumed right away by the host; boxing the login state would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RecoverStartOutcome {
    /// Send `ke2` (and `profile`, `guesses_left`), but only after `commit` (if any) is
    /// durable. `commit` is `None` for an unknown account's dummy KE2.
    Challenge {
        /// Serialized KE2 (CredentialResponse).
        ke2: Vec<u8>,
        /// The KSF profile the client must use.
        profile: KsfProfile,
        /// Guesses left after this one.
        guesses_left: u32,
        /// State the host keeps until `recover/finish`.
        state: RecoverStarted,
        /// The record with the guess counted.
        commit: Option<SealedRecord>,
    },
    /// Every guess was spent: the record is destroyed. Commit the tombstone (if `Some`),
    /// then answer "key destroyed". No KE2 is released.
    Destroyed {
        /// The tombstone replacing the record, or `None` if it already was one.
        commit: Option<SealedRecord>,
    },
}

/// A verified recovery: commit `commit`, then send `release_blob`.
#[derive(Debug)]
pub struct Recovered {
    /// The wrapped key encrypted under the OPAQUE session key.
    pub release_blob: Vec<u8>,
    /// The record with the count reset.
    pub commit: SealedRecord,
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
}

impl VaultCore {
    /// Builds the core from its keys. `max_guesses` is the vault's guess limit (>= 1).
    pub fn new(keys: &CoreKeys, max_guesses: u32) -> Result<Self, CoreKeysError> {
        let setup = ServerSetup::<Suite>::deserialize(&keys.server_setup)
            .map_err(|_| CoreKeysError::Malformed)?;
        let unbound = UnboundKey::new(&AES_256_GCM, keys.sealing_key.as_ref())
            .map_err(|_| CoreKeysError::Malformed)?;
        Ok(Self {
            vault_id: keys.vault_id,
            setup,
            sealing: LessSafeKey::new(unbound),
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

    pub(crate) fn sealing_key(&self) -> &LessSafeKey {
        &self.sealing
    }

    pub(crate) fn context(&self) -> Vec<u8> {
        context(&self.vault_id)
    }

    fn open(
        &self,
        cred: &CredentialId,
        rec: Option<&SealedRecord>,
    ) -> Result<Option<(Record, u64)>, ()> {
        match rec {
            None => Ok(None),
            Some(r) => Record::open(&self.sealing, cred, r).map(Some).ok_or(()),
        }
    }

    /// `register/start`: evaluates the OPRF on the client's blinded password. Stateless.
    pub fn register_start(
        &self,
        cred: &CredentialId,
        request: &[u8],
    ) -> Result<Vec<u8>, RegisterError> {
        let msg = RegistrationRequest::<Suite>::deserialize(request).map_err(|_| {
            RegisterError::Malformed {
                what: "registration request",
            }
        })?;
        if msg.serialize().len() != request.len() {
            return Err(RegisterError::Malformed {
                what: "registration request",
            });
        }
        let res = ServerRegistration::<Suite>::start(&self.setup, msg, cred.as_bytes()).map_err(
            |_| RegisterError::Malformed {
                what: "registration request",
            },
        )?;
        Ok(res.message.serialize().to_vec())
    }

    /// `register/finish`: a new record replacing any old one (count reset), one
    /// generation above it. Commit it before acknowledging.
    pub fn register_finish(
        &self,
        cred: &CredentialId,
        current: Option<&SealedRecord>,
        upload: &[u8],
        wrapped_key: &[u8],
        profile: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<SealedRecord, RegisterError> {
        let msg = RegistrationUpload::<Suite>::deserialize(upload).map_err(|_| {
            RegisterError::Malformed {
                what: "registration upload",
            }
        })?;
        if msg.serialize().len() != upload.len() {
            return Err(RegisterError::Malformed {
                what: "registration upload",
            });
        }
        if wrapped_key.len() != WRAPPED_KEY_LEN {
            return Err(RegisterError::Malformed {
                what: "wrapped key",
            });
        }
        let profile = KsfProfile::from_name(profile).ok_or(RegisterError::UnknownProfile)?;
        let generation = match self
            .open(cred, current)
            .map_err(|_| RegisterError::CorruptRecord)?
        {
            Some((_, g)) => g + 1,
            None => 1,
        };
        let record = Record::Live {
            profile,
            guesses_used: 0,
            password_file: ServerRegistration::<Suite>::finish(msg)
                .serialize()
                .to_vec(),
            wrapped_key: wrapped_key.to_vec(),
        };
        record
            .seal(&self.sealing, cred, generation, rng)
            .ok_or(RegisterError::Internal)
    }

    /// `recover/start`: counts the guess (in `commit`) and produces KE2, or destroys the
    /// record if every guess is spent, or a dummy KE2 for an unknown account.
    pub fn recover_start(
        &self,
        cred: &CredentialId,
        current: Option<&SealedRecord>,
        ke1: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<RecoverStartOutcome, RecoverStartError> {
        let msg = CredentialRequest::<Suite>::deserialize(ke1)
            .map_err(|_| RecoverStartError::Malformed)?;
        if msg.serialize().len() != ke1.len() {
            return Err(RecoverStartError::Malformed);
        }
        let ctx = self.context();
        let params = ServerLoginParameters {
            context: Some(&ctx),
            ..Default::default()
        };
        let opened = self
            .open(cred, current)
            .map_err(|_| RecoverStartError::CorruptRecord)?;
        let Some((record, generation)) = opened else {
            // Unknown account: opaque-ke's dummy path gives a KE2 of the same size and shape.
            let res = ServerLogin::start(rng, &self.setup, None, msg, cred.as_bytes(), params)
                .map_err(|_| RecoverStartError::Internal)?;
            let guesses_left = self.max_guesses - 1;
            return Ok(RecoverStartOutcome::Challenge {
                ke2: res.message.serialize().to_vec(),
                profile: self.dummy_profile,
                guesses_left,
                state: RecoverStarted {
                    login: res.state,
                    cred: *cred,
                    generation: None,
                    guesses_left,
                },
                commit: None,
            });
        };
        let Record::Live {
            profile,
            guesses_used,
            password_file,
            wrapped_key,
        } = &record
        else {
            return Ok(RecoverStartOutcome::Destroyed { commit: None });
        };
        if *guesses_used >= self.max_guesses {
            // The last guess was spent (and its KE3, if any, already had its chance):
            // replace the record by a tombstone, so K is gone for good.
            let commit = Record::Destroyed
                .seal(&self.sealing, cred, generation + 1, rng)
                .ok_or(RecoverStartError::Internal)?;
            return Ok(RecoverStartOutcome::Destroyed {
                commit: Some(commit),
            });
        }
        let file = ServerRegistration::<Suite>::deserialize(password_file)
            .map_err(|_| RecoverStartError::CorruptRecord)?;
        let res = ServerLogin::start(rng, &self.setup, Some(file), msg, cred.as_bytes(), params)
            .map_err(|_| RecoverStartError::Internal)?;
        let used = guesses_used + 1;
        let counted = Record::Live {
            profile: *profile,
            guesses_used: used,
            password_file: password_file.clone(),
            wrapped_key: wrapped_key.clone(),
        };
        let new_gen = generation + 1;
        let commit = counted
            .seal(&self.sealing, cred, new_gen, rng)
            .ok_or(RecoverStartError::Internal)?;
        let guesses_left = self.max_guesses.saturating_sub(used);
        Ok(RecoverStartOutcome::Challenge {
            ke2: res.message.serialize().to_vec(),
            profile: *profile,
            guesses_left,
            state: RecoverStarted {
                login: res.state,
                cred: *cred,
                generation: Some(new_gen),
                guesses_left,
            },
            commit: Some(commit),
        })
    }

    /// `status`: whether a record exists and how many guesses it has left.
    pub fn status(
        &self,
        cred: &CredentialId,
        current: Option<&SealedRecord>,
    ) -> Result<Status, StatusError> {
        let opened = self
            .open(cred, current)
            .map_err(|_| StatusError::CorruptRecord)?;
        let mut s = Status {
            exists: false,
            destroyed: false,
            guesses_left: None,
            max_guesses: self.max_guesses,
        };
        match opened {
            None => {}
            Some((Record::Destroyed, _)) => s.destroyed = true,
            Some((Record::Live { guesses_used, .. }, _)) => {
                s.exists = true;
                s.guesses_left = Some(self.max_guesses.saturating_sub(guesses_used));
            }
        }
        Ok(s)
    }
}
