//! The server's login state between `recover/start` and `recover/finish`, the sealed
//! *login ticket* that carries it through the client, and the proof token only a
//! verified KE3 can mint.
//!
//! The state travels sealed rather than in host memory so that any replica with the core
//! keys (or the same one after a restart) can finish a login, and so the host never holds
//! OPAQUE's expected KE3 MAC or session key in the clear. Layout: docs/VAULT-API.md,
//! "Login ticket".

use opaque_ke::{CredentialFinalization, ServerLogin, ServerLoginParameters};
use rand_core::{CryptoRng, RngCore};
use ring::aead::NONCE_LEN;
use zeroize::Zeroizing;

use crate::core::{CredentialId, FLOORED, OpenError, Recovered, VaultCore};
use crate::error::RecoverFinishError;
use crate::record::{Record, SealedRecord};
use crate::suite::{Suite, decode_exact};
use crate::wrap::{TAG_LEN, open, seal, seal_release};

/// Proof that a KE3 verified. Only [`RecoverStarted::finish`] can make one.
#[derive(Debug)]
pub struct Ke3Verified(());

/// State after `recover/start`: made only by [`VaultCore::recover_start`], consumed by
/// [`RecoverStarted::finish`]. Bound to the record generation that counted the guess,
/// so a stale finish cannot reset a newer count. Zeroized on drop (opaque-ke's state is).
pub struct RecoverStarted {
    pub(crate) login: ServerLogin<Suite>,
    pub(crate) cred: CredentialId,
    /// Generation of the record that counted this guess; `None` for a dummy login.
    pub(crate) generation: Option<u64>,
    pub(crate) guesses_left: u32,
}

impl std::fmt::Debug for RecoverStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoverStarted")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Version byte of a login ticket.
pub const TICKET_VERSION: u8 = 1;
/// HKDF info deriving the ticket key from the record-sealing key (key separation: a
/// ticket can never be passed off as a record or the reverse).
pub(crate) const TICKET_INFO: &[u8] = b"coffer/v1/vault/login-ticket";
/// Length of the opaque-ke server login state for [`Suite`].
const STATE_LEN: usize = 128;
/// Plaintext: kind, generation, guesses left, expiry, server login state.
const PLAIN_LEN: usize = 1 + 8 + 4 + 8 + STATE_LEN;
/// Length of a sealed login ticket (docs/VAULT-API.md, "Login ticket").
pub const TICKET_LEN: usize = 1 + NONCE_LEN + PLAIN_LEN + TAG_LEN;
const KIND_DUMMY: u8 = 0;
const KIND_REAL: u8 = 1;

/// Why a login ticket was not accepted. The host answers both with `no_login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TicketError {
    /// Not a ticket this core sealed for this credential (garbage, edited, another
    /// account's, or another vault's).
    Invalid,
    /// Sealed by this core but past its expiry.
    Expired,
}

impl RecoverStarted {
    /// The credential this login belongs to; the host must only finish it for the same
    /// account.
    pub fn credential_id(&self) -> &CredentialId {
        &self.cred
    }

    /// Seals this state into a login ticket that expires at `expires` (seconds since the
    /// Unix epoch, from the host's clock) and is bound to this credential. Real and dummy
    /// logins give tickets of the same length. `None` only if sealing fails.
    pub fn seal(
        self,
        core: &VaultCore,
        expires: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<Vec<u8>> {
        let mut plain = Zeroizing::new(Vec::with_capacity(PLAIN_LEN));
        let (kind, generation) = match self.generation {
            Some(g) => (KIND_REAL, g),
            None => (KIND_DUMMY, 0),
        };
        plain.push(kind);
        plain.extend_from_slice(&generation.to_le_bytes());
        plain.extend_from_slice(&self.guesses_left.to_le_bytes());
        plain.extend_from_slice(&expires.to_le_bytes());
        plain.extend_from_slice(&self.login.serialize());
        if plain.len() != PLAIN_LEN {
            return None;
        }
        // Random 96-bit nonces under one key: a collision needs about 2^48 tickets.
        seal(
            core.tickets(),
            (TICKET_VERSION, self.cred.as_bytes()),
            &plain,
            rng,
        )
    }

    /// Opens a ticket [`RecoverStarted::seal`] made for `cred`, if it has not expired at
    /// `now` (seconds since the Unix epoch). A ticket can be presented more than once:
    /// after a verified KE3 the record's generation moves on, so a second finish is
    /// `Superseded`; after a failed one nothing changed, and a KE3 retry tests no password
    /// that the KE2 (already counted) did not let the client test offline anyway.
    pub fn open(
        core: &VaultCore,
        cred: &CredentialId,
        ticket: &[u8],
        now: u64,
    ) -> Result<Self, TicketError> {
        let p = open(
            core.tickets(),
            (TICKET_VERSION, cred.as_bytes()),
            ticket,
            PLAIN_LEN,
        )
        .ok_or(TicketError::Invalid)?;
        let u64_at = |i: usize| {
            p.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let generation = u64_at(1).ok_or(TicketError::Invalid)?;
        let guesses_left = p
            .get(9..13)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or(TicketError::Invalid)?;
        let expires = u64_at(13).ok_or(TicketError::Invalid)?;
        if now >= expires {
            return Err(TicketError::Expired);
        }
        let generation = match p[0] {
            KIND_REAL => Some(generation),
            KIND_DUMMY => None,
            _ => return Err(TicketError::Invalid),
        };
        let login =
            ServerLogin::<Suite>::deserialize(&p[21..]).map_err(|_| TicketError::Invalid)?;
        Ok(Self {
            login,
            cred: *cred,
            generation,
            guesses_left,
        })
    }

    /// Checks KE3 against the current record. On success the guess count resets: the
    /// host must make [`Recovered::commit`] durable (and confirm it) before sending
    /// [`Recovered::release_blob`]. A failed KE3 changes nothing. A record below the
    /// rollback floor is refused before KE3 is even looked at.
    pub fn finish(
        self,
        core: &VaultCore,
        current: Option<&SealedRecord>,
        ke3: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Recovered, RecoverFinishError> {
        let msg = decode_exact(ke3, CredentialFinalization::<Suite>::deserialize, |m| {
            m.serialize()
        })
        .ok_or(RecoverFinishError::Malformed)?;
        let Some(expected_gen) = self.generation else {
            // Dummy login for an unknown account: can never verify.
            return Err(RecoverFinishError::WrongPassword {
                guesses_left: self.guesses_left,
            });
        };
        let opened = core.open_fresh(&self.cred, current).map_err(|e| match e {
            OpenError::Corrupt => RecoverFinishError::CorruptRecord,
            OpenError::Stale(s) => RecoverFinishError::StorageRolledBack(s),
        })?;
        let Some((record, generation)) = opened else {
            return Err(RecoverFinishError::Superseded);
        };
        if generation != expected_gen {
            return Err(RecoverFinishError::Superseded);
        }
        let Record::Live {
            profile,
            password_file,
            wrapped_key,
            ..
        } = &record
        else {
            return Err(RecoverFinishError::Superseded);
        };
        let ctx = core.context();
        let params = ServerLoginParameters {
            context: Some(&ctx),
            ..Default::default()
        };
        let Ok(done) = self.login.finish(msg, params) else {
            return Err(RecoverFinishError::WrongPassword {
                guesses_left: self.guesses_left,
            });
        };
        let proof = Ke3Verified(());
        let release_blob = seal_release(&done.session_key, wrapped_key, rng)
            .ok_or(RecoverFinishError::Internal)?;
        let reset = Record::Live {
            profile: *profile,
            guesses_used: 0,
            password_file: password_file.clone(),
            wrapped_key: wrapped_key.clone(),
        };
        let commit = core
            .change(&self.cred, &reset, generation + 1, !FLOORED, rng)
            .ok_or(RecoverFinishError::Internal)?;
        Ok(Recovered {
            release_blob,
            commit,
            max_guesses: core.max_guesses(),
            proof,
        })
    }
}
