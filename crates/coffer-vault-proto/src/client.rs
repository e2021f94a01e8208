//! The client half of the vault protocol, sans-IO: OPAQUE registration and login with the
//! record's KSF profile, wrapping K under the export key and opening the release blob.

use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, Identifiers, RegistrationResponse,
};
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::owner::{OWNER_KEY_LEN, OwnerKey};
use crate::suite::{KsfProfile, Suite, context};
use crate::wrap::{open_release, unwrap_key, wrap_key};

/// A client-side protocol step failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The password is wrong (or the account unknown): KE2 did not open.
    #[error("wrong password")]
    WrongPassword,
    /// A server message did not parse, or a blob did not authenticate.
    #[error("malformed or unauthentic {what} from the vault")]
    Protocol {
        /// Which message.
        what: &'static str,
    },
}

/// Client state after `register/start`.
pub struct RegistrationStarted {
    state: ClientRegistration<Suite>,
    password: Zeroizing<Vec<u8>>,
}

/// Messages for `register/finish`.
pub struct RegistrationUploadMsg {
    /// OPAQUE RegistrationUpload.
    pub upload: Vec<u8>,
    /// `wrap(export_key, K)`.
    pub wrapped_key: Vec<u8>,
    /// The owner public key derived from K (owner.rs), stored in the record.
    pub owner_key: [u8; OWNER_KEY_LEN],
}

/// Starts registration; returns the RegistrationRequest to send.
pub fn register_start(
    password: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(Vec<u8>, RegistrationStarted), ClientError> {
    let res = ClientRegistration::<Suite>::start(rng, password)
        .map_err(|_| ClientError::Protocol { what: "password" })?;
    let msg = res.message.serialize().to_vec();
    Ok((
        msg,
        RegistrationStarted {
            state: res.state,
            password: Zeroizing::new(password.to_vec()),
        },
    ))
}

impl RegistrationStarted {
    /// Finishes registration: stretches the password with `profile` and wraps `key`.
    pub fn finish(
        self,
        response: &[u8],
        key: &[u8; 32],
        profile: KsfProfile,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<RegistrationUploadMsg, ClientError> {
        let resp = RegistrationResponse::<Suite>::deserialize(response).map_err(|_| {
            ClientError::Protocol {
                what: "registration response",
            }
        })?;
        let ksf = profile.argon2();
        let params = ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf));
        let res = self
            .state
            .finish(rng, &self.password, resp, params)
            .map_err(|_| ClientError::Protocol {
                what: "registration response",
            })?;
        let wrapped_key = wrap_key(&res.export_key, key, rng)
            .ok_or(ClientError::Protocol { what: "export key" })?;
        let owner_key = OwnerKey::from_backup_key(key)
            .ok_or(ClientError::Protocol { what: "owner key" })?
            .public();
        Ok(RegistrationUploadMsg {
            upload: res.message.serialize().to_vec(),
            wrapped_key,
            owner_key,
        })
    }
}

/// Client state after `recover/start` was sent.
pub struct RecoverStarted {
    state: ClientLogin<Suite>,
    password: Zeroizing<Vec<u8>>,
}

/// Client state after KE3 was made: waits for the release blob.
pub struct AwaitingKey {
    session_key: Zeroizing<Vec<u8>>,
    export_key: Zeroizing<Vec<u8>>,
}

/// Starts a recovery; returns KE1 to send.
pub fn recover_start(
    password: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(Vec<u8>, RecoverStarted), ClientError> {
    let res = ClientLogin::<Suite>::start(rng, password)
        .map_err(|_| ClientError::Protocol { what: "password" })?;
    let msg = res.message.serialize().to_vec();
    Ok((
        msg,
        RecoverStarted {
            state: res.state,
            password: Zeroizing::new(password.to_vec()),
        },
    ))
}

impl RecoverStarted {
    /// Processes KE2 from the vault identified by `vault_id`; returns KE3 to send.
    /// [`ClientError::WrongPassword`] means the guess was spent and no KE3 exists.
    pub fn finish(
        self,
        vault_id: &[u8; 16],
        ke2: &[u8],
        profile: KsfProfile,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Vec<u8>, AwaitingKey), ClientError> {
        let resp = CredentialResponse::<Suite>::deserialize(ke2)
            .map_err(|_| ClientError::Protocol { what: "KE2" })?;
        let ctx = context(vault_id);
        let ksf = profile.argon2();
        let params =
            ClientLoginFinishParameters::new(Some(&ctx), Identifiers::default(), Some(&ksf));
        let res = self
            .state
            .finish(rng, &self.password, resp, params)
            .map_err(|e| match e {
                opaque_ke::errors::ProtocolError::InvalidLoginError => ClientError::WrongPassword,
                _ => ClientError::Protocol { what: "KE2" },
            })?;
        Ok((
            res.message.serialize().to_vec(),
            AwaitingKey {
                session_key: Zeroizing::new(res.session_key.to_vec()),
                export_key: Zeroizing::new(res.export_key.to_vec()),
            },
        ))
    }
}

impl AwaitingKey {
    /// Opens the release blob and unwraps K.
    pub fn open(self, release: &[u8]) -> Result<Zeroizing<[u8; 32]>, ClientError> {
        let wrapped = open_release(&self.session_key, release).ok_or(ClientError::Protocol {
            what: "release blob",
        })?;
        unwrap_key(&self.export_key, &wrapped).ok_or(ClientError::Protocol {
            what: "wrapped key",
        })
    }
}
