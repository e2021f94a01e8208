//! JSON wire types of the vault API (`/v1/...`), shared by host and client.
//! Every message has `v` = [`WIRE_VERSION`]; binary fields are base64url without padding.
//! Reference: docs/VAULT-API.md.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The wire version every message carries in its `v` field.
pub const WIRE_VERSION: u8 = 1;

/// base64url (no padding) encoding of binary fields.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a base64url (no padding) field; `None` if it is not valid base64url.
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// `POST /v1/register/start` body.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RegisterStartRequest {
    /// Wire version.
    pub v: u8,
    /// OPAQUE RegistrationRequest.
    pub request: String,
}

/// `POST /v1/register/start` reply.
#[derive(Serialize, Deserialize, Debug)]
pub struct RegisterStartReply {
    /// Wire version.
    pub v: u8,
    /// OPAQUE RegistrationResponse.
    pub response: String,
    /// The core-sealed registration ticket (this registration's OPRF nonce), echoed in
    /// `register/finish` (docs/VAULT-API.md, "Registration ticket").
    pub ticket: String,
}

/// Proof of K for replacing or deleting a live record (docs/VAULT-API.md, "Owner proof").
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct OwnerProof {
    /// The record generation signed (from `status`).
    pub generation: u64,
    /// Ed25519 signature by the record's owner key.
    pub signature: String,
}

/// `POST /v1/register/finish` body.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinishRequest {
    /// Wire version.
    pub v: u8,
    /// OPAQUE RegistrationUpload.
    pub upload: String,
    /// `wrap(export_key, K)` (docs/VAULT-API.md, "Wrapped key").
    pub wrapped_key: String,
    /// KSF profile name, e.g. `argon2id-rfc9106-2`.
    pub profile: String,
    /// `ticket` from the start reply.
    pub ticket: String,
    /// Ed25519 owner public key derived from K (32 bytes).
    pub owner_key: String,
    /// Needed when a live record exists (unless the token has the reset scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_proof: Option<OwnerProof>,
}

/// `POST /v1/register/finish` reply.
#[derive(Serialize, Deserialize, Debug)]
pub struct RegisterFinishReply {
    /// Wire version.
    pub v: u8,
    /// Guesses the new record allows.
    pub max_guesses: u32,
}

/// `POST /v1/recover/start` body.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RecoverStartRequest {
    /// Wire version.
    pub v: u8,
    /// OPAQUE KE1 (CredentialRequest).
    pub ke1: String,
}

/// `POST /v1/recover/start` reply.
#[derive(Serialize, Deserialize, Debug)]
pub struct RecoverStartReply {
    /// Wire version.
    pub v: u8,
    /// The server's login state, sealed by the core (a login ticket,
    /// docs/VAULT-API.md), echoed in `recover/finish`.
    pub session: String,
    /// OPAQUE KE2 (CredentialResponse).
    pub ke2: String,
    /// KSF profile name the client must stretch with.
    pub profile: String,
    /// Guesses left after this one.
    pub guesses_left: u32,
}

/// `POST /v1/recover/finish` body.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RecoverFinishRequest {
    /// Wire version.
    pub v: u8,
    /// `session` from the start reply.
    pub session: String,
    /// OPAQUE KE3 (CredentialFinalization).
    pub ke3: String,
}

/// `POST /v1/recover/finish` reply.
#[derive(Serialize, Deserialize, Debug)]
pub struct RecoverFinishReply {
    /// Wire version.
    pub v: u8,
    /// Release blob: the wrapped key encrypted under the session key.
    pub release: String,
}

/// `POST /v1/delete` body.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// Wire version.
    pub v: u8,
    /// Needed when a live record exists (unless the token has the reset scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_proof: Option<OwnerProof>,
}

/// `GET /v1/head` reply.
#[derive(Serialize, Deserialize, Debug)]
pub struct HeadReply {
    /// Wire version.
    pub v: u8,
    /// The stored head blob (docs/VAULT-API.md, "Repository head"), if any.
    pub head: Option<String>,
}

/// `POST /v1/head` body.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PutHeadRequest {
    /// Wire version.
    pub v: u8,
    /// The new head blob; its sequence number must be above the stored one's.
    pub head: String,
    /// The live record's owner proof over the blob.
    pub owner_proof: OwnerProof,
}

/// `POST /v1/head` reply.
#[derive(Serialize, Deserialize, Debug)]
pub struct PutHeadReply {
    /// Wire version.
    pub v: u8,
}

/// `POST /v1/delete` reply.
#[derive(Serialize, Deserialize, Debug)]
pub struct DeleteReply {
    /// Wire version.
    pub v: u8,
}

/// `GET /v1/status` reply.
#[derive(Serialize, Deserialize, Debug)]
pub struct StatusReply {
    /// Wire version.
    pub v: u8,
    /// A live record exists.
    pub exists: bool,
    /// The record was destroyed after too many wrong guesses.
    pub destroyed: bool,
    /// Guesses left, if a record exists.
    pub guesses_left: Option<u32>,
    /// The vault's guess limit.
    pub max_guesses: u32,
    /// The account's credential id (what an owner proof signs; docs/VAULT-API.md).
    pub credential_id: String,
    /// The live record's generation (what an owner proof signs), if one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

/// Every error reply: `{"v":1,"error":{...}}` with a 4xx/5xx status.
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorReply {
    /// Wire version.
    pub v: u8,
    /// The error.
    pub error: ErrorBody,
}

/// Body of [`ErrorReply`].
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorBody {
    /// Stable machine-readable code (docs/VAULT-API.md, "Errors").
    pub code: String,
    /// Human-readable message saying what went wrong and what to do.
    pub message: String,
    /// For `wrong_password`: guesses left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guesses_left: Option<u32>,
    /// For `rate_limited`: seconds to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}
