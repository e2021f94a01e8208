//! A small blocking HTTP client (ureq) of the Coffer vault API (docs/VAULT-API.md).
//!
//! ```no_run
//! # fn main() -> Result<(), coffer_vault_client::VaultError> {
//! use coffer_vault_client::{KsfProfile, VaultClient};
//! let vault = VaultClient::new("http://127.0.0.1:8443", "<jwt>")?;
//! vault.register(b"password", &[7u8; 32], KsfProfile::default())?;
//! let k = vault.recover(b"password")?;
//! assert_eq!(*k, [7u8; 32]);
//! vault.delete(Some(&k))?; // a live record goes only with proof of its key
//! # Ok(()) }
//! ```

mod error;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_vault_proto::CredentialId;
use coffer_vault_proto::client::{self, ClientError};
use coffer_vault_proto::head;
pub use coffer_vault_proto::head::VaultHead;
use coffer_vault_proto::owner::{self, OwnerKey, OwnerOp};
use coffer_vault_proto::wire::{self, WIRE_VERSION, b64, unb64};
use rand_core::OsRng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

pub use coffer_vault_proto::ErrorCode;
pub use coffer_vault_proto::KsfProfile;
pub use error::VaultError;

/// What `status` reports for the token's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaultStatus {
    /// A live record exists.
    pub exists: bool,
    /// Guesses left, if a record exists.
    pub guesses_left: Option<u32>,
    /// The vault's guess limit.
    pub max_guesses: u32,
    /// The record was destroyed after too many wrong guesses.
    pub destroyed: bool,
}

/// A client bound to one vault and one account (its token).
pub struct VaultClient {
    base: String,
    auth: String,
    vault_id: [u8; 16],
    agent: ureq::Agent,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The vault id the token was issued for: its `aud` claim (hex). The client binds the
/// OPAQUE context to it, so a KE2 from another vault never verifies.
fn audience(token: &str) -> Option<[u8; 16]> {
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let aud = match &v["aud"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.first()?.as_str()?.to_string(),
        _ => return None,
    };
    let bytes = hex_decode(&aud)?;
    bytes.try_into().ok()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn protocol(e: ClientError) -> VaultError {
    match e {
        ClientError::WrongPassword => VaultError::Protocol {
            message: "KE2 did not open".into(),
        },
        other => VaultError::Protocol {
            message: other.to_string(),
        },
    }
}

fn field(s: &str, name: &str) -> Result<Vec<u8>, VaultError> {
    unb64(s).ok_or_else(|| VaultError::Protocol {
        message: format!("reply field {name} is not base64url"),
    })
}

/// A login between `recover/start` and `recover/finish`: the vault's sealed login
/// ticket, the client's KE3, and what opens the released key.
pub struct PendingRecovery {
    session: String,
    ke3: String,
    waiting: client::AwaitingKey,
}

impl std::fmt::Debug for PendingRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRecovery").finish_non_exhaustive()
    }
}

impl VaultClient {
    /// `base_url` like `"http://127.0.0.1:8443"`; `token` is the bearer JWT whose `aud` is
    /// the vault id.
    pub fn new(base_url: &str, token: &str) -> Result<Self, VaultError> {
        let vault_id = audience(token).ok_or_else(|| VaultError::Unauthorized {
            message: "token is not a JWT whose aud is a vault id; mint one for this vault".into(),
        })?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            auth: format!("Bearer {token}"),
            vault_id,
            agent: ureq::Agent::new_with_config(config),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, e: ureq::Error) -> VaultError {
        VaultError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }

    fn reply<T: DeserializeOwned>(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, VaultError> {
        let mut resp = resp.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.unreachable(e))?;
        if status == 200 {
            return serde_json::from_str(&text).map_err(|e| VaultError::Protocol {
                message: format!("malformed reply: {e}"),
            });
        }
        Err(error::from_reply(status, &text))
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, VaultError> {
        let r = self
            .agent
            .post(self.url(path))
            .header("Authorization", &self.auth)
            .send_json(body);
        self.reply(r)
    }

    /// Enables or replaces the password: OPAQUE registration, stores
    /// `wrap(export_key, key)` and the owner key derived from `key`. A live record of the
    /// account is replaced only if it was made with the same `key` (a password change);
    /// a key rotation uses [`VaultClient::register_replacing`].
    pub fn register(
        &self,
        password: &[u8],
        key: &[u8; 32],
        profile: KsfProfile,
    ) -> Result<(), VaultError> {
        self.register_replacing(password, key, Some(key), profile)
    }

    /// [`VaultClient::register`] where the live record may hold another key: the vault
    /// replaces it only with an owner proof made with *that* record's backup key,
    /// `current_key` (the previous key for a key rotation). `None` suffices only for a
    /// first registration, one over a destroyed record, or a token with the reset scope.
    pub fn register_replacing(
        &self,
        password: &[u8],
        key: &[u8; 32],
        current_key: Option<&[u8; 32]>,
        profile: KsfProfile,
    ) -> Result<(), VaultError> {
        let (request, state) = client::register_start(password, &mut OsRng).map_err(protocol)?;
        let reply: wire::RegisterStartReply = self.post(
            "/v1/register/start",
            &wire::RegisterStartRequest {
                v: WIRE_VERSION,
                request: b64(&request),
            },
        )?;
        let response = field(&reply.response, "response")?;
        let ticket = field(&reply.ticket, "ticket")?;
        let up = state
            .finish(&response, key, profile, &mut OsRng)
            .map_err(protocol)?;
        let content = owner::replace_content(
            &ticket,
            &up.upload,
            &up.wrapped_key,
            &up.owner_key,
            profile.name(),
        );
        self.with_owner_proof(OwnerOp::Replace, current_key, &content, |owner_proof| {
            let _: wire::RegisterFinishReply = self.post(
                "/v1/register/finish",
                &wire::RegisterFinishRequest {
                    v: WIRE_VERSION,
                    upload: b64(&up.upload),
                    wrapped_key: b64(&up.wrapped_key),
                    profile: profile.name().to_string(),
                    ticket: reply.ticket.clone(),
                    owner_key: b64(&up.owner_key),
                    owner_proof,
                },
            )?;
            Ok(())
        })
    }

    /// Runs `send` with an owner proof for the record's current generation (none where
    /// no live record exists, or without `key`). A guess counted between our `status`
    /// and the request moves the generation on; the vault then answers
    /// `owner_proof_stale` and we sign the new one, a few times at most.
    fn with_owner_proof(
        &self,
        op: OwnerOp,
        key: Option<&[u8; 32]>,
        content: &[u8; 32],
        send: impl Fn(Option<wire::OwnerProof>) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let owner = match key {
            Some(k) => Some(
                OwnerKey::from_backup_key(k).ok_or_else(|| VaultError::Protocol {
                    message: "could not derive the owner key".into(),
                })?,
            ),
            None => None,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let proof = match &owner {
                None => None,
                Some(owner) => {
                    let s = match self.status_reply() {
                        Ok(s) => s,
                        // A record older than the vault's trusted state is nobody's live
                        // record (the floor says it was deleted or superseded): the
                        // vault replaces it without a proof, so send none.
                        Err(VaultError::StorageRolledBack { .. }) => {
                            return send(None);
                        }
                        Err(e) => return Err(e),
                    };
                    match s.generation {
                        None => None,
                        Some(generation) => {
                            let cred = field(&s.credential_id, "credential_id")?;
                            let cred: [u8; 32] =
                                cred.try_into().map_err(|_| VaultError::Protocol {
                                    message: "credential_id is not 32 bytes".into(),
                                })?;
                            let cred = CredentialId::from_bytes(cred);
                            let sig = owner.sign(op, &self.vault_id, &cred, generation, content);
                            Some(wire::OwnerProof {
                                generation,
                                signature: b64(&sig),
                            })
                        }
                    }
                }
            };
            match send(proof) {
                Err(VaultError::OwnerProofStale) if attempts < 4 => continue,
                other => return other,
            }
        }
    }

    /// OPAQUE login; returns K. Each call spends one guess until verified.
    pub fn recover(&self, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let pending = self.start_recovery(password)?;
        self.finish_recovery(pending)
    }

    /// First half of [`VaultClient::recover`]: `recover/start` (the vault counts a guess)
    /// and the client's OPAQUE step, which already tells a wrong password
    /// ([`VaultError::WrongPassword`]). The result can be finished by any client of the
    /// same vault and account, on any replica, within the vault's `--login-ttl`.
    pub fn start_recovery(&self, password: &[u8]) -> Result<PendingRecovery, VaultError> {
        let (ke1, state) = client::recover_start(password, &mut OsRng).map_err(protocol)?;
        let start: wire::RecoverStartReply = self.post(
            "/v1/recover/start",
            &wire::RecoverStartRequest {
                v: WIRE_VERSION,
                ke1: b64(&ke1),
            },
        )?;
        let profile =
            KsfProfile::from_name(&start.profile).ok_or_else(|| VaultError::Protocol {
                message: format!("unknown KSF profile {:?}", start.profile),
            })?;
        let ke2 = field(&start.ke2, "ke2")?;
        match state.finish(&self.vault_id, &ke2, profile, &mut OsRng) {
            Ok((ke3, waiting)) => Ok(PendingRecovery {
                session: start.session,
                ke3: b64(&ke3),
                waiting,
            }),
            Err(ClientError::WrongPassword) => Err(VaultError::WrongPassword {
                guesses_left: start.guesses_left,
            }),
            Err(e) => Err(protocol(e)),
        }
    }

    /// Second half of [`VaultClient::recover`]: `recover/finish`, then opens K.
    pub fn finish_recovery(
        &self,
        pending: PendingRecovery,
    ) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let done: wire::RecoverFinishReply = self.post(
            "/v1/recover/finish",
            &wire::RecoverFinishRequest {
                v: WIRE_VERSION,
                session: pending.session,
                ke3: pending.ke3,
            },
        )?;
        let release = field(&done.release, "release")?;
        pending.waiting.open(&release).map_err(protocol)
    }

    /// Destroys the account's record (turn backups off). A live record needs an owner
    /// proof made with its backup key `key` (see [`VaultClient::register`]).
    pub fn delete(&self, key: Option<&[u8; 32]>) -> Result<(), VaultError> {
        self.with_owner_proof(OwnerOp::Delete, key, &[0; 32], |owner_proof| {
            let _: wire::DeleteReply = self.post(
                "/v1/delete",
                &wire::DeleteRequest {
                    v: WIRE_VERSION,
                    owner_proof,
                },
            )?;
            Ok(())
        })
    }

    /// The repository head this account keeps in the vault, if any and if its MAC
    /// verifies under `key` (a head made with another key reads as a protocol error).
    pub fn head(&self, key: &[u8; 32]) -> Result<Option<VaultHead>, VaultError> {
        let r = self
            .agent
            .get(self.url("/v1/head"))
            .header("Authorization", &self.auth)
            .call();
        let reply: wire::HeadReply = self.reply(r)?;
        let Some(blob) = reply.head else {
            return Ok(None);
        };
        let blob = field(&blob, "head")?;
        head::open_head(key, &blob)
            .map(Some)
            .ok_or_else(|| VaultError::Protocol {
                message:
                    "the repository head kept in the vault does not verify under this backup key"
                        .into(),
            })
    }

    /// Keeps `head` in the vault beside the account's live record (signed with the
    /// record's key `key`). A head below the kept one is `head_not_newer`; one at the kept
    /// sequence number replaces it (how a key rotation re-seals it under the new key).
    pub fn put_head(&self, key: &[u8; 32], h: &VaultHead) -> Result<(), VaultError> {
        let blob = head::seal_head(key, h).ok_or_else(|| VaultError::Protocol {
            message: "could not seal the repository head".into(),
        })?;
        let content = head::head_content(&blob);
        self.with_owner_proof(OwnerOp::Head, Some(key), &content, |proof| {
            let owner_proof = proof.ok_or(VaultError::NoRecord)?;
            let _: wire::PutHeadReply = self.post(
                "/v1/head",
                &wire::PutHeadRequest {
                    v: WIRE_VERSION,
                    head: b64(&blob),
                    owner_proof,
                },
            )?;
            Ok(())
        })
    }

    fn status_reply(&self) -> Result<wire::StatusReply, VaultError> {
        let r = self
            .agent
            .get(self.url("/v1/status"))
            .header("Authorization", &self.auth)
            .call();
        self.reply(r)
    }

    /// Whether a record exists and how many guesses it has left.
    pub fn status(&self) -> Result<VaultStatus, VaultError> {
        let s = self.status_reply()?;
        Ok(VaultStatus {
            exists: s.exists,
            guesses_left: s.guesses_left,
            max_guesses: s.max_guesses,
            destroyed: s.destroyed,
        })
    }
}
