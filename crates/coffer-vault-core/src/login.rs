//! The server's login state between `recover/start` and `recover/finish`, and the proof
//! token only a verified KE3 can mint.

use opaque_ke::{CredentialFinalization, ServerLogin, ServerLoginParameters};
use rand_core::{CryptoRng, RngCore};

use crate::core::{CredentialId, FLOORED, OpenError, Recovered, VaultCore};
use crate::error::RecoverFinishError;
use crate::record::{Record, SealedRecord};
use crate::suite::{Suite, decode_exact};
use crate::wrap::seal_release;

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

impl RecoverStarted {
    /// The credential this login belongs to; the host must only finish it for the same
    /// account.
    pub fn credential_id(&self) -> &CredentialId {
        &self.cred
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
