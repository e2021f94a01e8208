//! The `/v1/` HTTP API (docs/VAULT-API.md): parse, authenticate, ask the core (which
//! commits its own state before it answers), keep the record body the core hands back,
//! then reply. The host holds no core key and no login state: everything secret crosses
//! the core link as sealed bytes.

use std::collections::HashMap;
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
use coffer_vault_core::protocol::{Reply, Request, WireAuthority};
use coffer_vault_core::{CoreError, CredentialId, OwnerProofError, SealedRecord};
use coffer_vault_proto::wire::{self, WIRE_VERSION, b64, unb64};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::auth::{Account, Auth};
use crate::coreproc::link::CoreLink;
use crate::error::ApiError;
use crate::metrics::{Metrics, Route};
use crate::ratelimit::RateLimiter;
use crate::storage::Storage;

/// Largest request body accepted (every valid message is far smaller).
pub const BODY_LIMIT: usize = 16 * 1024;
const LOCK_SHARDS: usize = 1024;

/// Everything a handler needs.
pub struct AppState {
    /// The trusted core (a process, or embedded).
    pub core: CoreLink,
    /// Token verification.
    pub auth: Auth,
    /// Record bodies and repository heads.
    pub storage: Arc<dyn Storage>,
    /// Per-account limits.
    pub limiter: RateLimiter,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Test-only failpoint name (`COFFER_VAULT_FAILPOINT`).
    pub failpoint: Option<String>,
    /// The core keeps bodies and heads itself (a replicated group, docs/VAULT-GROUP.md):
    /// this host stores nothing, so any host in front of the group serves any account.
    records_in_core: bool,
    locks: Vec<Mutex<()>>,
    /// Credential ids the core named, by account name: each costs the core an HMAC and a
    /// round trip, and an account asks several times per login.
    creds: std::sync::Mutex<HashMap<Vec<u8>, CredentialId>>,
}

/// Entries of the credential-id cache before it starts over.
const CRED_CACHE: usize = 1 << 16;

/// A request's account once the core named its credential.
struct Caller {
    acct: Account,
    id: CredentialId,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        core: CoreLink,
        auth: Auth,
        storage: Arc<dyn Storage>,
        limiter: RateLimiter,
        metrics: Arc<Metrics>,
        failpoint: Option<String>,
    ) -> Self {
        let locks = (0..LOCK_SHARDS).map(|_| Mutex::new(())).collect();
        Self {
            core,
            auth,
            storage,
            limiter,
            metrics,
            failpoint,
            records_in_core: false,
            locks,
            creds: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Leaves bodies and heads to the core (`serve --records-in-core`).
    #[must_use]
    pub fn with_records_in_core(mut self) -> Self {
        self.records_in_core = true;
        self
    }

    /// The lock serialising one account's core call with the body write that follows
    /// it: two registrations racing could otherwise leave the older body stored beside
    /// the newer entry.
    fn lock_for(&self, id: &CredentialId) -> &Mutex<()> {
        let b = id.as_bytes();
        &self.locks[(usize::from(b[0]) << 8 | usize::from(b[1])) % LOCK_SHARDS]
    }

    /// Sends `req` to the core; a refusal becomes the API's error reply.
    async fn ask(&self, req: Request) -> Result<Reply, ApiError> {
        match self.core.call(&req).await {
            Ok(Reply::Error(e)) => Err(self.core_error(e)),
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::error!(error = %e, "vault core unreachable");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the vault core is unavailable; retry later",
                ))
            }
        }
    }

    /// Authenticates the request and asks the core for its credential id.
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let acct = self.auth.authenticate(headers)?;
        let cached = self
            .creds
            .lock()
            .ok()
            .and_then(|c| c.get(&acct.name).copied());
        if let Some(id) = cached {
            return Ok(Caller { acct, id });
        }
        let Reply::Resolved { cred } = self
            .ask(Request::Resolve {
                account: acct.name.clone(),
            })
            .await?
        else {
            return Err(unexpected());
        };
        if let Ok(mut c) = self.creds.lock() {
            if c.len() >= CRED_CACHE {
                c.clear();
            }
            c.insert(acct.name.clone(), cred);
        }
        Ok(Caller { acct, id: cred })
    }

    fn read(&self, id: &CredentialId) -> Result<Option<SealedRecord>, ApiError> {
        if self.records_in_core {
            return Ok(None);
        }
        self.storage.get(id).map_err(|e| {
            tracing::error!(error = %e, "storage read failed");
            unavailable()
        })
    }

    /// Reads the repository head kept beside `id`'s record.
    async fn read_head(&self, id: &CredentialId) -> Result<Option<Vec<u8>>, ApiError> {
        if self.records_in_core {
            let Reply::Head(h) = self.ask(Request::GetHead { cred: *id }).await? else {
                return Err(unexpected());
            };
            return Ok(h);
        }
        self.storage.head(id).map_err(|e| {
            tracing::error!(error = %e, "storage read failed");
            unavailable()
        })
    }

    /// Stores (`Some`) or removes (`None`) `id`'s body, durably.
    fn write(&self, id: &CredentialId, body: Option<SealedRecord>) -> Result<(), ApiError> {
        if self.records_in_core {
            // The core committed the body with the entry, in one log entry.
            return Ok(());
        }
        self.storage.commit(&[(*id, body)]).map_err(|e| {
            tracing::error!(error = %e, "durable record write failed");
            unavailable()
        })
    }

    fn core_error(&self, e: CoreError) -> ApiError {
        let code = e.code().as_str();
        let (status, message): (StatusCode, String) = match &e {
            CoreError::Malformed { what } => (
                StatusCode::BAD_REQUEST,
                format!("{what} is truncated, oversized or invalid"),
            ),
            CoreError::UnknownProfile => (
                StatusCode::BAD_REQUEST,
                "unknown KSF profile".into(),
            ),
            CoreError::BadRegistrationTicket => (
                StatusCode::CONFLICT,
                "the ticket is not a registration ticket of this vault for this account, or it expired (register/finish came later than --login-ttl after register/start); start again".into(),
            ),
            CoreError::NoLogin => (
                StatusCode::CONFLICT,
                "no such login: the session is not a login ticket of this vault for this account, it expired (--login-ttl), or the record changed since recover/start; start again".into(),
            ),
            CoreError::WrongPassword { guesses_left } => {
                self.metrics.ke3_failed.fetch_add(1, Relaxed);
                let mut err = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_password",
                    format!("wrong password; {guesses_left} guesses left"),
                );
                err.guesses_left = Some(*guesses_left);
                return err;
            }
            CoreError::KeyDestroyed { .. } => (
                StatusCode::GONE,
                "the backup key was destroyed after too many wrong password guesses; recover with the recovery key".into(),
            ),
            CoreError::NoRecord => (
                StatusCode::NOT_FOUND,
                "this account has no vault record".into(),
            ),
            CoreError::Owner(OwnerProofError::Required) => (
                StatusCode::FORBIDDEN,
                "this account has a live vault record: replacing or deleting it needs an owner proof made with the backup key (change the password from a device that holds the key, or connect with the recovery key first)".into(),
            ),
            CoreError::Owner(OwnerProofError::Stale { .. }) => (
                StatusCode::CONFLICT,
                "the record changed since the owner proof was made; read /v1/status again and sign its generation".into(),
            ),
            CoreError::Owner(_) => (
                StatusCode::FORBIDDEN,
                "the owner proof does not verify: it was not made with this record's backup key".into(),
            ),
            CoreError::StorageRolledBack => {
                self.metrics.storage_rolled_back.fetch_add(1, Relaxed);
                tracing::error!(
                    "the record database served a body that is not the core's current registration (restored from an old copy, or lost a write); restore the latest vault.redb"
                );
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the vault's record storage does not hold this account's current record (restored from an old copy); nothing was released or counted; the vault operator must restore the latest database, retry later".into(),
                )
            }
            CoreError::HeadNotNewer { kept } => (
                StatusCode::CONFLICT,
                format!("the vault already keeps head {kept}; a head is only replaced by a newer one"),
            ),
            CoreError::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "vault storage is unavailable; retry later".into(),
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the vault core failed; the operator must look at its log".into(),
            ),
        };
        ApiError::new(status, code, message)
    }

    fn rate_limit(&self, id: &CredentialId) -> Result<(), ApiError> {
        self.limiter.check(id, Instant::now()).map_err(|secs| {
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
/// exists; the core decides from its own entry).
fn authority(proof: Option<&wire::OwnerProof>, acct: &Account) -> Result<WireAuthority, ApiError> {
    Ok(match proof {
        Some(p) => WireAuthority::OwnerProof {
            generation: p.generation,
            signature: field(&p.signature, "owner_proof.signature")?,
        },
        None if acct.reset_scope => WireAuthority::ResetScope,
        None => WireAuthority::Token,
    })
}

/// Logs a change made under the reset scope: the one way to wipe a live record without
/// the backup key, so the operator must be able to see every use.
fn log_reset_scope(c: &Caller, authority: &WireAuthority, what: &str) {
    if matches!(authority, WireAuthority::ResetScope) {
        tracing::warn!(tenant = %c.acct.tenant, credential = %hex::encode(&c.id.as_bytes()[..8]), "{what} under the token's reset scope (no owner proof)");
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

/// The core answered with a reply of another request's kind.
fn unexpected() -> ApiError {
    tracing::error!("the vault core answered with a reply of the wrong kind");
    ApiError::internal("the vault core answered out of protocol")
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
        let c = st.caller(&headers).await?;
        let req: wire::RegisterStartRequest = parse(&headers, body)?;
        st.rate_limit(&c.id)?;
        let request = field(&req.request, "request")?;
        let Reply::RegisterStarted { response, ticket } = st
            .ask(Request::RegisterStart {
                cred: c.id,
                request,
            })
            .await?
        else {
            return Err(unexpected());
        };
        Ok(wire::RegisterStartReply {
            v: WIRE_VERSION,
            response: b64(&response),
            ticket: b64(&ticket),
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
        let c = st.caller(&headers).await?;
        let req: wire::RegisterFinishRequest = parse(&headers, body)?;
        let authority = authority(req.owner_proof.as_ref(), &c.acct)?;
        let request = Request::RegisterFinish {
            cred: c.id,
            ticket: field(&req.ticket, "ticket")?,
            upload: field(&req.upload, "upload")?,
            wrapped_key: field(&req.wrapped_key, "wrapped_key")?,
            owner_key: field(&req.owner_key, "owner_key")?,
            profile: req.profile.clone(),
            authority: authority.clone(),
        };
        let _g = st.lock_for(&c.id).lock().await;
        let Reply::Registered {
            body, max_guesses, ..
        } = st.ask(request).await?
        else {
            return Err(unexpected());
        };
        log_reset_scope(&c, &authority, "record replaced");
        // The core's entry is durable; acknowledging before the body is too could let a
        // client believe a password is set that a crash then forgets.
        st.write(&c.id, Some(SealedRecord::from_bytes(body)))?;
        tracing::info!(tenant = %c.acct.tenant, "record registered");
        Ok(wire::RegisterFinishReply {
            v: WIRE_VERSION,
            max_guesses,
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
        let c = st.caller(&headers).await?;
        let req: wire::RecoverStartRequest = parse(&headers, body)?;
        st.rate_limit(&c.id)?;
        let ke1 = field(&req.ke1, "ke1")?;
        let _g = st.lock_for(&c.id).lock().await;
        let current = st.read(&c.id)?;
        let reply = st
            .core
            .call(&Request::RecoverStart {
                cred: c.id,
                body: current.map(|b| b.as_bytes().to_vec()),
                ke1,
            })
            .await;
        let (ke2, profile, guesses_left, ticket, drop_body) = match reply {
            Ok(Reply::Challenge {
                ke2,
                profile,
                guesses_left,
                ticket,
                drop_body,
            }) => (ke2, profile, guesses_left, ticket, drop_body),
            Ok(Reply::Error(CoreError::KeyDestroyed { drop_body })) => {
                if drop_body {
                    st.write(&c.id, None)?;
                }
                return Err(st.core_error(CoreError::KeyDestroyed { drop_body }));
            }
            Ok(Reply::Error(e)) => return Err(st.core_error(e)),
            Ok(_) => return Err(unexpected()),
            Err(e) => {
                tracing::error!(error = %e, "vault core unreachable");
                return Err(unavailable());
            }
        };
        if drop_body {
            // The last guess destroyed the entry and its record key: the body opens to
            // nothing now. Removing it is tidiness, not safety, so a failure here does
            // not hold back the KE2 the core already counted.
            let _ = st.write(&c.id, None);
            tracing::info!(tenant = %c.acct.tenant, "record destroyed by the last allowed guess");
        }
        if st.failpoint.as_deref() == Some("hang-after-guess-commit") {
            eprintln!("FAILPOINT hang-after-guess-commit reached");
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        // One counter for real and dummy KE2s alike (metrics.rs).
        st.metrics.ke2_sent.fetch_add(1, Relaxed);
        Ok(wire::RecoverStartReply {
            v: WIRE_VERSION,
            session: b64(&ticket),
            ke2: b64(&ke2),
            profile: profile.name().to_string(),
            guesses_left,
        })
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
        let c = st.caller(&headers).await?;
        let req: wire::RecoverFinishRequest = parse(&headers, body)?;
        let request = Request::RecoverFinish {
            cred: c.id,
            ticket: field(&req.session, "session")?,
            ke3: field(&req.ke3, "ke3")?,
        };
        let Reply::Recovered { release_blob, .. } = st.ask(request).await? else {
            return Err(unexpected());
        };
        st.metrics.recoveries.fetch_add(1, Relaxed);
        Ok(wire::RecoverFinishReply {
            v: WIRE_VERSION,
            release: b64(&release_blob),
        })
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
        let c = st.caller(&headers).await?;
        let req: wire::DeleteRequest = parse(&headers, body)?;
        let authority = authority(req.owner_proof.as_ref(), &c.acct)?;
        let _g = st.lock_for(&c.id).lock().await;
        let Reply::Deleted = st
            .ask(Request::Delete {
                cred: c.id,
                authority: authority.clone(),
            })
            .await?
        else {
            return Err(unexpected());
        };
        log_reset_scope(&c, &authority, "record deleted");
        // The core erased the record key durably: "backups off" holds from here even if
        // this removal of the now useless body is lost.
        st.write(&c.id, None)?;
        tracing::info!(tenant = %c.acct.tenant, "record deleted");
        Ok(wire::DeleteReply { v: WIRE_VERSION })
    }
    .await;
    finish(&st, Route::Delete, t, r)
}

async fn status(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let t = Instant::now();
    let r = async {
        let c = st.caller(&headers).await?;
        let Reply::Status(s) = st.ask(Request::Status { cred: c.id }).await? else {
            return Err(unexpected());
        };
        Ok(wire::StatusReply {
            v: WIRE_VERSION,
            exists: s.exists,
            destroyed: s.destroyed,
            guesses_left: s.guesses_left,
            max_guesses: s.max_guesses,
            credential_id: b64(c.id.as_bytes()),
            generation: s.generation,
        })
    }
    .await;
    finish(&st, Route::Status, t, r)
}

async fn get_head(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let t = Instant::now();
    let r = async {
        let c = st.caller(&headers).await?;
        let head = st.read_head(&c.id).await?;
        Ok(wire::HeadReply {
            v: WIRE_VERSION,
            head: head.map(|h| b64(&h)),
        })
    }
    .await;
    finish(&st, Route::GetHead, t, r)
}

/// `POST /v1/head`: keeps the client's repository head beside its live record, if the
/// owner proves the record's key and the head's sequence number does not fall (proto's head.rs
/// says why the vault checks no more).
async fn put_head(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let t = Instant::now();
    let r = async {
        let c = st.caller(&headers).await?;
        let req: wire::PutHeadRequest = parse(&headers, body)?;
        let blob = field(&req.head, "head")?;
        let seq = coffer_vault_proto::head::head_seq(&blob).ok_or_else(|| malformed("head"))?;
        let authority = authority(Some(&req.owner_proof), &c.acct)?;
        // Under the credential's lock: two writers cannot both pass the sequence check.
        let _g = st.lock_for(&c.id).lock().await;
        let Reply::HeadAuthorized = st
            .ask(Request::AuthorizeHead {
                cred: c.id,
                authority,
                blob: blob.clone(),
            })
            .await?
        else {
            return Err(unexpected());
        };
        if st.records_in_core {
            // The core checked the sequence and stored the head in the same log entry.
            return Ok(wire::PutHeadReply { v: WIRE_VERSION });
        }
        // The same sequence number is taken too: a key rotation seals the kept head again
        // under the new key (the owner proof shows the writer holds it); only a fall is
        // refused, which is what rollback detection needs.
        if let Some(old) = st.read_head(&c.id).await?.as_deref().and_then(coffer_vault_proto::head::head_seq)
            && seq < old
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "head_not_newer",
                format!("the vault already keeps head {old}; a head is only replaced by one at least as new (sequence {seq} is older)"),
            ));
        }
        st.storage.put_head(&c.id, &blob).map_err(|e| {
            tracing::error!(error = %e, "durable head write failed");
            unavailable()
        })?;
        Ok(wire::PutHeadReply { v: WIRE_VERSION })
    }
    .await;
    finish(&st, Route::PutHead, t, r)
}
