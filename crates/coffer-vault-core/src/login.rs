//! The server's login state between `recover/start` and `recover/finish`, the sealed
//! *login ticket* that carries it through the client, and the proof token only a
//! verified KE3 can mint.
//!
//! The state travels sealed rather than in host memory so that any replica with the core
//! keys (or the same one after a restart) can finish a login, and so the host never holds
//! OPAQUE's expected KE3 MAC or session key in the clear. Layout: docs/VAULT-CORE.md,
//! "Login ticket".

use opaque_ke::{CredentialFinalization, ServerLogin, ServerLoginParameters};
use rand_core::{CryptoRng, RngCore};
use ring::aead::NONCE_LEN;
use zeroize::Zeroizing;

use crate::core::{Recovered, VaultCore};
use crate::entry::Entry;
use crate::error::CoreError;
use coffer_vault_proto::CredentialId;
use coffer_vault_proto::wrap::{TAG_LEN, WRAPPED_KEY_LEN, open, seal, seal_release};
use coffer_vault_proto::{Suite, decode_exact};

/// Proof that a KE3 verified. Only [`RecoverStarted::finish`] can make one.
#[derive(Debug)]
pub struct Ke3Verified(());

/// What kind of login a ticket carries.
pub(crate) enum LoginKind {
    /// An unknown account's dummy: can never verify.
    Dummy,
    /// A counted guess against the live registration of `generation`, the `attempt`th
    /// counted login of it (entry.rs, `reset_below`).
    Counted {
        generation: u64,
        attempt: u64,
        /// `wrap(export_key, K)` from the body, released by a verified KE3.
        wrapped_key: Zeroizing<Vec<u8>>,
    },
    /// The last allowed guess: its commit destroyed the entry of `generation` (and with
    /// it the record key), so the ticket alone carries the wrapped key.
    Last {
        generation: u64,
        wrapped_key: Zeroizing<Vec<u8>>,
    },
}

/// State after `recover/start`, made only by [`VaultCore::recover_start`] and sealed at
/// once into a login ticket; opened again from the ticket by `recover/finish`. Zeroized
/// on drop (opaque-ke's state is, and the wrapped key is).
pub struct RecoverStarted {
    login: ServerLogin<Suite>,
    cred: CredentialId,
    kind: LoginKind,
    guesses_left: u32,
}

impl std::fmt::Debug for RecoverStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoverStarted")
            .field("guesses_left", &self.guesses_left)
            .finish_non_exhaustive()
    }
}

/// Version byte of a login ticket. Version 3 (this one) carries the login's number and
/// the wrapped key for every real login, so `recover/finish` needs no body from the host.
pub const TICKET_VERSION: u8 = 3;
/// HKDF info deriving the ticket key from the core's sealing key (key separation: a
/// ticket can never be passed off as an entry or the reverse).
pub(crate) const TICKET_INFO: &[u8] = b"coffer/v1/vault/login-ticket";
/// Length of the opaque-ke server login state for [`Suite`].
const STATE_LEN: usize = 128;
/// Offset of the server login state in the plaintext.
const STATE_AT: usize = 1 + 8 + 8 + 4 + 8;
/// Plaintext: kind, generation, attempt, guesses left, expiry, server login state,
/// wrapped-key slot (zeros for a dummy, so every ticket has one length).
const PLAIN_LEN: usize = STATE_AT + STATE_LEN + WRAPPED_KEY_LEN;
/// Length of a sealed login ticket (docs/VAULT-CORE.md, "Login ticket").
pub const TICKET_LEN: usize = 1 + NONCE_LEN + PLAIN_LEN + TAG_LEN;
const KIND_DUMMY: u8 = 0;
const KIND_REAL: u8 = 1;
const KIND_LAST: u8 = 2;

/// Why a login ticket was not accepted. The host answers both with `no_login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TicketError {
    /// Not a ticket this core sealed for this credential.
    Invalid,
    /// Sealed by this core but past its expiry.
    Expired,
}

impl RecoverStarted {
    pub(crate) fn new(
        login: ServerLogin<Suite>,
        cred: CredentialId,
        kind: LoginKind,
        guesses_left: u32,
    ) -> Self {
        Self {
            login,
            cred,
            kind,
            guesses_left,
        }
    }

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
        let none: &[u8] = &[0; WRAPPED_KEY_LEN];
        let (kind, generation, attempt, wrapped) = match &self.kind {
            LoginKind::Dummy => (KIND_DUMMY, 0, 0, none),
            LoginKind::Counted {
                generation,
                attempt,
                wrapped_key,
            } => (KIND_REAL, *generation, *attempt, wrapped_key.as_slice()),
            LoginKind::Last {
                generation,
                wrapped_key,
            } => (KIND_LAST, *generation, 0, wrapped_key.as_slice()),
        };
        plain.push(kind);
        plain.extend_from_slice(&generation.to_le_bytes());
        plain.extend_from_slice(&attempt.to_le_bytes());
        plain.extend_from_slice(&self.guesses_left.to_le_bytes());
        plain.extend_from_slice(&expires.to_le_bytes());
        plain.extend_from_slice(&self.login.serialize());
        plain.extend_from_slice(wrapped);
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
    /// `now` (seconds since the Unix epoch). A ticket can be presented more than once: a
    /// verified KE3 resets the count at most once per ticket (entry.rs, `reset_below`);
    /// after a failed one nothing changed, and a KE3 retry tests no password that the KE2
    /// (already counted) did not let the client test offline anyway.
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
        let attempt = u64_at(9).ok_or(TicketError::Invalid)?;
        let guesses_left = p
            .get(17..21)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or(TicketError::Invalid)?;
        let expires = u64_at(21).ok_or(TicketError::Invalid)?;
        if now >= expires {
            return Err(TicketError::Expired);
        }
        let wrapped = &p[STATE_AT + STATE_LEN..];
        let kind = match p[0] {
            KIND_DUMMY => LoginKind::Dummy,
            KIND_REAL => LoginKind::Counted {
                generation,
                attempt,
                wrapped_key: Zeroizing::new(wrapped.to_vec()),
            },
            KIND_LAST => LoginKind::Last {
                generation,
                wrapped_key: Zeroizing::new(wrapped.to_vec()),
            },
            _ => return Err(TicketError::Invalid),
        };
        let login = ServerLogin::<Suite>::deserialize(&p[STATE_AT..STATE_AT + STATE_LEN])
            .map_err(|_| TicketError::Invalid)?;
        Ok(Self {
            login,
            cred: *cred,
            kind,
            guesses_left,
        })
    }

    /// Checks KE3. A verified one releases the wrapped key (encrypted under the OPAQUE
    /// session key) and, for a counted login whose number is above the entry's
    /// `reset_below`, resets the count: the driver must make [`Recovered::entry`] durable
    /// before it sends the release blob. A failed KE3 changes nothing.
    ///
    /// `entry` is the credential's entry in the core's store now: a counted login is
    /// honoured only while the registration that counted it is still live.
    pub fn finish(
        self,
        core: &VaultCore,
        entry: Option<&Entry>,
        ke3: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Recovered, CoreError> {
        let msg = decode_exact(ke3, CredentialFinalization::<Suite>::deserialize, |m| {
            m.serialize()
        })
        .ok_or(CoreError::Malformed { what: "KE3" })?;
        let (wrapped_key, reset) = match (&self.kind, entry) {
            // A dummy login for an unknown account can never verify.
            (LoginKind::Dummy, _) => {
                return Err(CoreError::WrongPassword {
                    guesses_left: self.guesses_left,
                });
            }
            (
                LoginKind::Counted {
                    generation,
                    attempt,
                    wrapped_key,
                },
                Some(Entry::Live(live)),
            ) if live.generation == *generation => {
                let reset = (*attempt > live.reset_below).then(|| {
                    let mut next = live.clone();
                    next.guesses_used = 0;
                    next.reset_below = live.attempts;
                    Entry::Live(next)
                });
                (wrapped_key, reset)
            }
            // The last guess destroyed the entry; its ticket alone releases, until it
            // expires, and only to a verified KE3, while that destruction is the entry:
            // not over a registration or deletion since.
            (
                LoginKind::Last {
                    generation,
                    wrapped_key,
                },
                Some(Entry::Destroyed { generation: g }),
            ) if g == generation => (wrapped_key, None),
            // Re-registered, deleted or destroyed since this login started.
            (LoginKind::Counted { .. } | LoginKind::Last { .. }, _) => {
                return Err(CoreError::NoLogin);
            }
        };
        let ctx = core.context();
        let params = ServerLoginParameters {
            context: Some(&ctx),
            ..Default::default()
        };
        let Ok(done) = self.login.finish(msg, params) else {
            return Err(CoreError::WrongPassword {
                guesses_left: self.guesses_left,
            });
        };
        let release_blob =
            seal_release(&done.session_key, wrapped_key, rng).ok_or(CoreError::Internal)?;
        Ok(Recovered {
            release_blob,
            entry: reset,
            max_guesses: core.max_guesses(),
            proof: Ke3Verified(()),
        })
    }
}
