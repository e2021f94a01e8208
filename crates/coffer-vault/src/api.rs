//! The `/v1/` HTTP API (docs/VAULT-API.md): parse, authenticate, run the core under the
//! account's lock, commit durably (record, then rollback floor), confirm, then reply.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coffer_vault_core::{
    Authority, CredentialId, DeleteError, HeadError, OwnerProofError, RecoverFinishError,
    RecoverStartError, RecoverStartOutcome, RecoverStarted, RegisterError,
    RegistrationUploadRequest, SealedRecord, Stale, StateChange, StatusError, TicketError,
    VaultCore,
};
use coffer_vault_proto::wire::{self, WIRE_VERSION, b64, unb64};
use rand_core::OsRng;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::auth::{Account, Auth};
use crate::committer::Committer;
use crate::error::ApiError;
use crate::metrics::{Metrics, Route};
use crate::ratelimit::RateLimiter;
use crate::storage::Storage;
use crate::unix_now;

/// Largest request body accepted (every valid message is far smaller).
pub const BODY_LIMIT: usize = 16 * 1024;
const LOCK_SHARDS: usize = 1024;

/// Everything a handler needs.
pub struct AppState {
    /// The trusted core.
    pub core: VaultCore,
    /// Token verification.
    pub auth: Auth,
    /// Record storage (reads).
    pub storage: Arc<dyn Storage>,
    /// Group committer (writes).
    pub committer: Committer,
    /// Lifetime of a login or registration ticket (`--login-ttl`).
    pub login_ttl: Duration,
    /// Per-account limits.
    pub limiter: RateLimiter,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Test-only failpoint name (`COFFER_VAULT_FAILPOINT`).
    pub failpoint: Option<String>,
    locks: Vec<Mutex<()>>,
}

impl AppState {
    /// Assembles the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        core: VaultCore,
        auth: Auth,
        storage: Arc<dyn Storage>,
        committer: Committer,
        login_ttl: Duration,
        limiter: RateLimiter,
        metrics: Arc<Metrics>,
        failpoint: Option<String>,
    ) -> Self {
        let locks = (0..LOCK_SHARDS).map(|_| Mutex::new(())).collect();
        Self {
            core,
            auth,
            storage,
            committer,
            login_ttl,
            limiter,
            metrics,
            failpoint,
            locks,
        }
    }

    /// The lock serialising read-modify-commit of one account's record: without it two
    /// concurrent recover/starts could both read count n and both release a KE2.
    fn lock_for(&self, id: &CredentialId) -> &Mutex<()> {
        let b = id.as_bytes();
        &self.locks[(usize::from(b[0]) << 8 | usize::from(b[1])) % LOCK_SHARDS]
    }

    fn read(&self, id: &CredentialId) -> Result<Option<SealedRecord>, ApiError> {
        self.storage.get(id).map_err(|e| {
            tracing::error!(error = %e, "storage read failed");
            unavailable()
        })
    }

    /// Reads the repository head kept beside `id`'s record.
    fn read_head(&self, id: &CredentialId) -> Result<Option<Vec<u8>>, ApiError> {
        self.storage.head(id).map_err(|e| {
            tracing::error!(error = %e, "storage read failed");
            unavailable()
        })
    }

    /// Makes `change` durable (record, then floor: committer.rs), then confirms its floor
    /// to the core. Called with the credential's lock held, so no other request of the
    /// credential runs between the commit and the confirm.
    async fn commit(&self, change: StateChange) -> Result<(), ApiError> {
        let floor = change.floor;
        self.committer.commit(change).await.map_err(|e| {
            tracing::error!(error = %e, "durable commit failed");
            unavailable()
        })?;
        if let Some(floor) = floor {
            self.core.confirm(&floor);
        }
        Ok(())
    }

    /// The reply to a record below its rollback floor. The caller holds a token for this
    /// very account, whose `status` says whether a record exists anyway, so naming the
    /// condition tells it nothing a dummy KE2 would hide; the operator gets the detail.
    fn rolled_back(&self, id: &CredentialId, stale: &Stale) -> ApiError {
        self.metrics.storage_rolled_back.fetch_add(1, Relaxed);
        tracing::error!(
            credential = %hex::encode(&id.as_bytes()[..8]),
            detail = %stale,
            "refused a stale record: the record database was restored from an older copy; restore the latest vault.redb (the trusted store trusted.redb is newer)"
        );
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_rolled_back",
            "the vault's record storage is older than its trusted state (restored from an old copy); nothing was released or counted; the vault operator must restore the latest database, retry later",
        )
    }

    fn rate_limit(&self, acct: &Account) -> Result<(), ApiError> {
        self.limiter
            .check(&acct.credential_id, Instant::now())
            .map_err(|secs| {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests for this account; wait and retry",
                );
                e.retry_after_secs = Some(secs);
                e
            })
    }
}

type Shared = Arc<AppState>;

/// The router with every route and the body limit.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/register/start", post(register_start))
        .route("/v1/register/finish", post(register_finish))
        .route("/v1/recover/start", post(recover_start))
        .route("/v1/recover/finish", post(recover_finish))
        .route("/v1/delete", post(delete))
        .route("/v1/status", get(status))
        .route("/v1/head", get(get_head).post(put_head))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see docs/VAULT-API.md",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

pub(crate) fn parse<T: DeserializeOwned + HasVersion>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_content_type",
            "send the body as Content-Type: application/json",
        ));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body over {BODY_LIMIT} bytes"),
            )
        } else {
            ApiError::bad_request("bad_body", "request body could not be read")
        }
    })?;
    let msg: T = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("bad_json", format!("body is not the expected JSON: {e}"))
    })?;
    if msg.version() != WIRE_VERSION {
        return Err(ApiError::bad_request(
            "unsupported_version",
            format!(
                "wire version {} is not supported; this vault speaks v={WIRE_VERSION}",
                msg.version()
            ),
        ));
    }
    Ok(msg)
}

pub(crate) trait HasVersion {
    fn version(&self) -> u8;
}
macro_rules! has_version {
    ($($t:ty),*) => { $(impl HasVersion for $t { fn version(&self) -> u8 { self.v } })* };
}
has_version!(
    wire::RegisterStartRequest,
    wire::RegisterFinishRequest,
    wire::RecoverStartRequest,
    wire::RecoverFinishRequest,
    wire::DeleteRequest,
    wire::PutHeadRequest
);

/// Which authority a replace or delete request carries: its owner proof if it has one,
/// else the token's reset scope, else the token alone (enough only where no live record
/// exists; the core decides).
fn authority<'a>(
    proof: Option<&wire::OwnerProof>,
    signature: &'a [u8],
    acct: &Account,
) -> Authority<'a> {
    match proof {
        Some(p) => Authority::OwnerProof {
            generation: p.generation,
            signature,
        },
        None if acct.reset_scope => Authority::ResetScope,
        None => Authority::Token,
    }
}

fn proof_signature(proof: Option<&wire::OwnerProof>) -> Result<Vec<u8>, ApiError> {
    proof.map_or(Ok(Vec::new()), |p| {
        field(&p.signature, "owner_proof.signature")
    })
}

/// The reply to a replace or delete of a live record without a valid owner proof.
fn owner_refused(e: OwnerProofError) -> ApiError {
    match e {
        OwnerProofError::Required => ApiError::new(
            StatusCode::FORBIDDEN,
            "owner_proof_required",
            "this account has a live vault record: replacing or deleting it needs an owner proof made with the backup key (change the password from a device that holds the key, or connect with the recovery key first)",
        ),
        OwnerProofError::Stale { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "owner_proof_stale",
            "the record changed since the owner proof was made (a guess or another change); read /v1/status again and sign its generation",
        ),
        _ => ApiError::new(
            StatusCode::FORBIDDEN,
            "owner_proof_invalid",
            "the owner proof does not verify: it was not made with this record's backup key",
        ),
    }
}

fn registration_ticket_refused(expired: bool) -> ApiError {
    let message = if expired {
        "the registration expired (register/finish came later than --login-ttl after register/start); start again"
    } else {
        "the ticket is not a registration ticket of this vault for this account; start again"
    };
    ApiError::new(StatusCode::CONFLICT, "no_registration", message)
}

/// Logs a change made under the reset scope: the one way to wipe a live record without
/// the backup key, so the operator must be able to see every use.
fn log_reset_scope(acct: &Account, authority: &Authority<'_>, what: &str) {
    if matches!(authority, Authority::ResetScope) {
        tracing::warn!(tenant = %acct.tenant, credential = %hex::encode(&acct.credential_id.as_bytes()[..8]), "{what} under the token's reset scope (no owner proof)");
    }
}

pub(crate) fn field(s: &str, name: &str) -> Result<Vec<u8>, ApiError> {
    unb64(s).ok_or_else(|| {
        ApiError::bad_request(
            "bad_base64",
            format!("field `{name}` is not base64url without padding"),
        )
    })
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "vault storage is unavailable; retry later",
    )
}

fn malformed(what: &str) -> ApiError {
    ApiError::bad_request(
        "malformed_message",
        format!("{what} is truncated, oversized or invalid"),
    )
}

fn corrupt() -> ApiError {
    ApiError::internal(
        "the stored record fails authentication; the operator must investigate storage",
    )
}

fn finish<T: serde::Serialize>(
    st: &AppState,
    route: Route,
    started: Instant,
    r: Result<T, ApiError>,
) -> Response {
    let resp = match r {
        Ok(v) => (StatusCode::OK, Json(v)).into_response(),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(code = e.code, route = route.name(), "request failed");
            }
            e.into_response()
        }
    };
    st.metrics
        .request(route, resp.status().as_u16(), started.elapsed());
    resp
}

async fn register_start(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let t = Instant::now();
    let r = async {
        let acct = st.auth.authenticate(&headers)?;
        let req: wire::RegisterStartRequest = parse(&headers, body)?;
        st.rate_limit(&acct)?;
        let msg = field(&req.request, "request")?;
        let expires = unix_now().saturating_add(st.login_ttl.as_secs());
        let started = st
            .core
            .register_start(&acct.credential_id, &msg, expires, &mut OsRng)
            .map_err(|e| match e {
                RegisterError::Malformed { .. } => malformed("registration request"),
                _ => ApiError::internal("register/start failed inside the vault core"),
            })?;
        Ok(wire::RegisterStartReply {
            v: WIRE_VERSION,
            response: b64(&started.response),
            ticket: b64(&started.ticket),
        })
    }
    .await;
    finish(&st, Route::RegisterStart, t, r)
}

async fn register_finish(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let t = Instant::now();
    let r = async {
        let acct = st.auth.authenticate(&headers)?;
        let req: wire::RegisterFinishRequest = parse(&headers, body)?;
        let upload = field(&req.upload, "upload")?;
        let wrapped = field(&req.wrapped_key, "wrapped_key")?;
        let ticket = field(&req.ticket, "ticket")?;
        let owner_key = field(&req.owner_key, "owner_key")?;
        let signature = proof_signature(req.owner_proof.as_ref())?;
        let authority = authority(req.owner_proof.as_ref(), &signature, &acct);
        let id = acct.credential_id;
        let _g = st.lock_for(&id).lock().await;
        let current = st.read(&id)?;
        let request = RegistrationUploadRequest {
            ticket: &ticket,
            upload: &upload,
            wrapped_key: &wrapped,
            owner_key: &owner_key,
            profile: &req.profile,
        };
        let rec = st
            .core
            .register_finish(
                &id,
                current.as_ref(),
                &request,
                authority,
                unix_now(),
                &mut OsRng,
            )
            .map_err(|e| match e {
                RegisterError::Malformed { what } => malformed(what),
                RegisterError::UnknownProfile => ApiError::bad_request(
                    "unknown_profile",
                    format!("unknown KSF profile {:?}", req.profile),
                ),
                RegisterError::BadTicket => registration_ticket_refused(false),
                RegisterError::TicketExpired => registration_ticket_refused(true),
                RegisterError::Owner(e) => owner_refused(e),
                RegisterError::CorruptRecord => corrupt(),
                _ => ApiError::internal("registration failed inside the vault core"),
            })?;
        log_reset_scope(&acct, &authority, "record replaced");
        // Acknowledging before this commit could let a client believe a password is set
        // that a crash then forgets.
        st.commit(rec).await?;
        tracing::info!(tenant = %acct.tenant, "record registered");
        Ok(wire::RegisterFinishReply {
            v: WIRE_VERSION,
            max_guesses: st.core.max_guesses(),
        })
    }
    .await;
    finish(&st, Route::RegisterFinish, t, r)
}

async fn recover_start(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let t = Instant::now();
    let r = async {
        let acct = st.auth.authenticate(&headers)?;
        let req: wire::RecoverStartRequest = parse(&headers, body)?;
        st.rate_limit(&acct)?;
        let ke1 = field(&req.ke1, "ke1")?;
        let id = acct.credential_id;
        let _g = st.lock_for(&id).lock().await;
        let current = st.read(&id)?;
        let outcome = st.core.recover_start(&id, current.as_ref(), &ke1, &mut OsRng).map_err(|e| match e {
            RecoverStartError::Malformed => malformed("KE1"),
            RecoverStartError::CorruptRecord => corrupt(),
            RecoverStartError::StorageRolledBack(s) => st.rolled_back(&id, &s),
            _ => ApiError::internal("recover/start failed inside the vault core"),
        })?;
        match outcome {
            RecoverStartOutcome::Destroyed { commit } => {
                if let Some(tomb) = commit {
                    // The tombstone must be durable before we say the key is gone.
                    st.commit(tomb).await?;
                    tracing::info!(tenant = %acct.tenant, "record destroyed after the last wrong guess");
                }
                Err(ApiError::new(
                    StatusCode::GONE,
                    "key_destroyed",
                    "the backup key was destroyed after too many wrong password guesses; recover with the recovery key",
                ))
            }
            RecoverStartOutcome::Challenge { ke2, profile, guesses_left, state, commit } => {
                if let Some(rec) = commit {
                    // Invariant V2: KE2 lets the client test the password offline, so the
                    // counted guess must be durable before KE2 leaves; a crash after this
                    // line keeps the count. V7: its floor is durable too, so an old copy
                    // of the database restored later cannot hand the guess back.
                    st.commit(rec).await?;
                    if st.failpoint.as_deref() == Some("hang-after-guess-commit") {
                        eprintln!("FAILPOINT hang-after-guess-commit reached");
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                }
                // The login state leaves sealed (login.rs): the client carries it to
                // recover/finish, so any replica, or this one after a restart, can finish.
                let expires = unix_now().saturating_add(st.login_ttl.as_secs());
                let session = state
                    .seal(&st.core, expires, &mut OsRng)
                    .ok_or_else(|| ApiError::internal("sealing the login ticket failed"))?;
                // One counter for real and dummy KE2s alike (metrics.rs).
                st.metrics.ke2_sent.fetch_add(1, Relaxed);
                Ok(wire::RecoverStartReply {
                    v: WIRE_VERSION,
                    session: b64(&session),
                    ke2: b64(&ke2),
                    profile: profile.name().to_string(),
                    guesses_left,
                })
            }
        }
    }
    .await;
    finish(&st, Route::RecoverStart, t, r)
}

async fn recover_finish(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let t = Instant::now();
    let r = async {
        let acct = st.auth.authenticate(&headers)?;
        let req: wire::RecoverFinishRequest = parse(&headers, body)?;
        let session = field(&req.session, "session")?;
        let ke3 = field(&req.ke3, "ke3")?;
        let id = acct.credential_id;
        let state = RecoverStarted::open(&st.core, &id, &session, unix_now()).map_err(|e| match e {
            TicketError::Expired => ApiError::new(StatusCode::CONFLICT, "no_login", "the login expired (recover/finish came later than --login-ttl after recover/start); start again"),
            _ => ApiError::new(StatusCode::CONFLICT, "no_login", "the session is not a login ticket of this vault for this account; start again"),
        })?;
        let _g = st.lock_for(&id).lock().await;
        let current = st.read(&id)?;
        match state.finish(&st.core, current.as_ref(), &ke3, &mut OsRng) {
            Ok(done) => {
                // Every reply follows its state change (invariant V2); here a crash
                // before the commit only leaves the count unreset, never K released
                // by a login the vault then forgets. The last guess's login has no
                // change to make: its record is already the tombstone.
                if let Some(change) = done.commit {
                    st.commit(change).await?;
                }
                st.metrics.recoveries.fetch_add(1, Relaxed);
                Ok(wire::RecoverFinishReply { v: WIRE_VERSION, release: b64(&done.release_blob) })
            }
            Err(e) => Err(match e {
                RecoverFinishError::Malformed => malformed("KE3"),
                RecoverFinishError::WrongPassword { guesses_left } => {
                    st.metrics.ke3_failed.fetch_add(1, Relaxed);
                    let mut e = ApiError::unauthorized("wrong_password", format!("wrong password; {guesses_left} guesses left"));
                    e.status = StatusCode::FORBIDDEN;
                    e.guesses_left = Some(guesses_left);
                    e
                }
                RecoverFinishError::Superseded => ApiError::new(
                    StatusCode::CONFLICT,
                    "superseded",
                    "the record changed since recover/start (another guess, registration or delete); start again",
                ),
                RecoverFinishError::CorruptRecord => corrupt(),
                RecoverFinishError::StorageRolledBack(s) => st.rolled_back(&id, &s),
                _ => ApiError::internal("recover/finish failed inside the vault core"),
            }),
        }
    }
    .await;
    finish(&st, Route::RecoverFinish, t, r)
}

async fn delete(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let t = Instant::now();
    let r = async {
        let acct = st.auth.authenticate(&headers)?;
        let req: wire::DeleteRequest = parse(&headers, body)?;
        let signature = proof_signature(req.owner_proof.as_ref())?;
        let authority = authority(req.owner_proof.as_ref(), &signature, &acct);
        let id = acct.credential_id;
        let _g = st.lock_for(&id).lock().await;
        let current = st.read(&id)?;
        let change = st
            .core
            .delete(&id, current.as_ref(), authority)
            .map_err(|e| match e {
                DeleteError::NoRecord => ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_record",
                    "this account has no vault record",
                ),
                DeleteError::Owner(e) => owner_refused(e),
                DeleteError::CorruptRecord => corrupt(),
                _ => ApiError::internal("delete failed inside the vault core"),
            })?;
        log_reset_scope(&acct, &authority, "record deleted");
        // "Backups off" must survive a crash once acknowledged; the Deleted floor keeps an
        // old copy of the record, restored later, from coming back.
        st.commit(change).await?;
        tracing::info!(tenant = %acct.tenant, "record deleted");
        Ok(wire::DeleteReply { v: WIRE_VERSION })
    }
    .await;
    finish(&st, Route::Delete, t, r)
}

async fn status(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let t = Instant::now();
    let r = async {
        let acct = st.auth.authenticate(&headers)?;
        let id = acct.credential_id;
        // The lock keeps a concurrent change from committing and raising the floor
        // between this read and the core's check, which would look like a rollback.
        let _g = st.lock_for(&id).lock().await;
        let current = st.read(&id)?;
        let s = st.core.status(&id, current.as_ref()).map_err(|e| match e {
            StatusError::StorageRolledBack(s) => st.rolled_back(&id, &s),
            _ => corrupt(),
        })?;
        Ok(wire::StatusReply {
            v: WIRE_VERSION,
            exists: s.exists,
            destroyed: s.destroyed,
            guesses_left: s.guesses_left,
            max_guesses: s.max_guesses,
            credential_id: b64(id.as_bytes()),
            generation: s.generation,
        })
    }
    .await;
    finish(&st, Route::Status, t, r)
}

async fn get_head(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let t = Instant::now();
    let r = async {
        let acct = st.auth.authenticate(&headers)?;
        let head = st.read_head(&acct.credential_id)?;
        Ok(wire::HeadReply {
            v: WIRE_VERSION,
            head: head.map(|h| b64(&h)),
        })
    }
    .await;
    finish(&st, Route::GetHead, t, r)
}

/// `POST /v1/head`: keeps the client's repository head beside its live record, if the
/// owner proves the record's key and the head's sequence number rises (head.rs says why
/// the vault checks no more).
async fn put_head(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let t = Instant::now();
    let r = async {
        let acct = st.auth.authenticate(&headers)?;
        let req: wire::PutHeadRequest = parse(&headers, body)?;
        let blob = field(&req.head, "head")?;
        let seq = coffer_vault_proto::head::head_seq(&blob).ok_or_else(|| malformed("head"))?;
        let signature = proof_signature(Some(&req.owner_proof))?;
        let authority = authority(Some(&req.owner_proof), &signature, &acct);
        let id = acct.credential_id;
        // Under the credential's lock: the proof is checked against the record the
        // head is stored beside, and two writers cannot both pass the sequence check.
        let _g = st.lock_for(&id).lock().await;
        let current = st.read(&id)?;
        st.core
            .authorize_head(&id, current.as_ref(), authority, &blob)
            .map_err(|e| match e {
                HeadError::NoRecord => ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_record",
                    "this account has no live vault record to keep a repository head beside",
                ),
                HeadError::Owner(e) => owner_refused(e),
                HeadError::StorageRolledBack(s) => st.rolled_back(&id, &s),
                _ => corrupt(),
            })?;
        if let Some(old) = st.read_head(&id)?.as_deref().and_then(coffer_vault_proto::head::head_seq)
            && seq <= old
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "head_not_newer",
                format!("the vault already keeps head {old}; a head is only replaced by a newer one (sequence {seq} is not)"),
            ));
        }
        st.storage.put_head(&id, &blob).map_err(|e| {
            tracing::error!(error = %e, "durable head write failed");
            unavailable()
        })?;
        Ok(wire::PutHeadReply { v: WIRE_VERSION })
    }
    .await;
    finish(&st, Route::PutHead, t, r)
}
