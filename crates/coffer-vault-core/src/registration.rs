//! The per-registration OPRF nonce and the sealed *registration ticket* that carries it
//! from `register/start` to `register/finish`.
//!
//! Why a nonce at all: `register/start` evaluates the OPRF on a blinded element the
//! caller chose, and counts nothing. Were its OPRF key the live record's (as it is when
//! opaque-ke's credential identifier is the credential id alone), any token holder could
//! splice its output into one counted KE2 and test passwords offline without limit. So
//! every `register/start` draws a fresh 32-byte nonce and evaluates under the identifier
//! `credential_id || nonce`: a key no live record uses, and never will unless that very
//! registration finishes. The nonce travels sealed, so the caller cannot pick it (and so
//! cannot pick the live record's), and is kept in the record for `recover/start`.
//! Layout: docs/VAULT-API.md, "Registration ticket".

use rand_core::{CryptoRng, RngCore};
use ring::aead::NONCE_LEN;

use crate::core::VaultCore;
use crate::login::TicketError;
use coffer_vault_proto::CredentialId;
use coffer_vault_proto::wrap::{TAG_LEN, open, seal};

/// Version byte of a registration ticket.
pub const REGISTRATION_TICKET_VERSION: u8 = 1;
/// HKDF info deriving the registration-ticket key from the sealing key.
pub(crate) const REGISTRATION_TICKET_INFO: &[u8] = b"coffer/v1/vault/registration-ticket";
/// HKDF info deriving the key of unknown accounts' stable dummy nonces.
pub(crate) const DUMMY_NONCE_INFO: &[u8] = b"coffer/v1/vault/dummy-oprf-nonce";
/// Plaintext: OPRF nonce, expiry.
const PLAIN_LEN: usize = 32 + 8;
/// Length of a sealed registration ticket.
pub const REGISTRATION_TICKET_LEN: usize = 1 + NONCE_LEN + PLAIN_LEN + TAG_LEN;

/// opaque-ke's credential identifier for a record: `credential_id || oprf_nonce`. The
/// OPRF key is derived from it (RFC 9807 section 3.2.1, `DeriveKeyPair(seed, id)`).
pub(crate) fn oprf_identifier(cred: &CredentialId, nonce: &[u8; 32]) -> [u8; 64] {
    let mut id = [0u8; 64];
    id[..32].copy_from_slice(cred.as_bytes());
    id[32..].copy_from_slice(nonce);
    id
}

/// What `register/start` returns: the OPAQUE RegistrationResponse and the ticket the
/// client must hand back to `register/finish`.
#[derive(Debug)]
pub struct RegisterStarted {
    /// Serialized RegistrationResponse.
    pub response: Vec<u8>,
    /// The sealed registration ticket.
    pub ticket: Vec<u8>,
}

/// Seals `nonce` for `cred`, valid until `expires` (seconds since the Unix epoch).
pub(crate) fn seal_ticket(
    core: &VaultCore,
    cred: &CredentialId,
    nonce: &[u8; 32],
    expires: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Option<Vec<u8>> {
    let mut plain = [0u8; PLAIN_LEN];
    plain[..32].copy_from_slice(nonce);
    plain[32..].copy_from_slice(&expires.to_le_bytes());
    seal(
        core.registration_tickets(),
        (REGISTRATION_TICKET_VERSION, cred.as_bytes()),
        &plain,
        rng,
    )
}

/// Opens a ticket [`seal_ticket`] made for `cred`; the nonce if it has not expired at `now`.
pub(crate) fn open_ticket(
    core: &VaultCore,
    cred: &CredentialId,
    ticket: &[u8],
    now: u64,
) -> Result<[u8; 32], TicketError> {
    let p = open(
        core.registration_tickets(),
        (REGISTRATION_TICKET_VERSION, cred.as_bytes()),
        ticket,
        PLAIN_LEN,
    )
    .ok_or(TicketError::Invalid)?;
    let nonce: [u8; 32] = p[..32].try_into().map_err(|_| TicketError::Invalid)?;
    let expires = p[32..]
        .try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| TicketError::Invalid)?;
    if now >= expires {
        return Err(TicketError::Expired);
    }
    Ok(nonce)
}
