//! [`CoreService`]: the core's driver. It takes request bytes, runs the sans-IO core
//! under the credential's lock with the entry from the core's own store, makes the new
//! entry durable, and only then returns the reply bytes. The `coffer-vault core` process
//! serves it on a socket; the embedded default calls it in-process, through the same
//! bytes, so both deployments run one code path.
//!
//! The clock and the RNG are the core's own: a host cannot stretch a ticket's life by
//! lying about the time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffer_vault_core::protocol::{DecodeError, Reply, Request};
use coffer_vault_core::{CoreError, Entry, RegistrationUploadRequest, SealedRecord, VaultCore};
use coffer_vault_proto::CredentialId;
use rand_core::OsRng;

use super::store::EntryStore;
use crate::unix_now;

const LOCK_SHARDS: usize = 1024;

/// The core with its store.
pub struct CoreService {
    core: VaultCore,
    store: Arc<dyn EntryStore>,
    ticket_ttl: Duration,
    locks: Vec<Mutex<()>>,
}

impl CoreService {
    /// A service over `core` and `store`; tickets live `ticket_ttl`.
    pub fn new(core: VaultCore, store: Arc<dyn EntryStore>, ticket_ttl: Duration) -> Self {
        Self {
            core,
            store,
            ticket_ttl,
            locks: (0..LOCK_SHARDS).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Answers one request. Never panics on any input; a malformed request is refused
    /// without touching the store.
    pub fn handle(&self, request: &[u8]) -> Vec<u8> {
        let reply = match Request::decode(request) {
            Ok(req) => self.run(&req),
            Err(DecodeError::Version) => Reply::Error(CoreError::Malformed {
                what: "core protocol version",
            }),
            Err(_) => Reply::Error(CoreError::Malformed {
                what: "core request",
            }),
        };
        reply.encode()
    }

    fn entry(&self, cred: &CredentialId) -> Result<Option<Entry>, CoreError> {
        match self.store.get(cred) {
            Ok(None) => Ok(None),
            Ok(Some(sealed)) => self
                .core
                .open_entry(cred, &sealed)
                .map(Some)
                .ok_or_else(|| {
                    tracing::error!("a core store entry does not open: the store is damaged");
                    CoreError::StoreUnavailable
                }),
            Err(e) => {
                tracing::error!(error = %e, "core store read failed");
                Err(CoreError::StoreUnavailable)
            }
        }
    }

    /// Makes `entry` durable (the reply waits for this).
    fn commit(&self, cred: &CredentialId, entry: &Entry) -> Result<(), CoreError> {
        let sealed = self
            .core
            .seal_entry(cred, entry, &mut OsRng)
            .ok_or(CoreError::Internal)?;
        self.store.commit(cred, sealed).map_err(|e| {
            tracing::error!(error = %e, "core store commit failed");
            CoreError::StoreUnavailable
        })
    }

    fn run(&self, req: &Request) -> Reply {
        let Some(cred) = req.credential() else {
            let Request::Resolve { account } = req else {
                return Reply::Error(CoreError::Internal);
            };
            return Reply::Resolved {
                cred: self.core.credential_id(account),
            };
        };
        let b = cred.as_bytes();
        let shard = &self.locks[(usize::from(b[0]) << 8 | usize::from(b[1])) % LOCK_SHARDS];
        // Read, decide, commit and reply under one lock: two concurrent guesses cannot
        // both read count n and both release a KE2.
        let _g = shard.lock().unwrap_or_else(|p| p.into_inner());
        match self.step(cred, req) {
            Ok(r) => r,
            Err(e) => Reply::Error(e),
        }
    }

    fn step(&self, cred: &CredentialId, req: &Request) -> Result<Reply, CoreError> {
        let expires = unix_now().saturating_add(self.ticket_ttl.as_secs());
        let rng = &mut OsRng;
        let entry = self.entry(cred)?;
        let entry = entry.as_ref();
        Ok(match req {
            Request::Resolve { .. } => return Err(CoreError::Internal),
            Request::RegisterStart { request, .. } => {
                let s = self.core.register_start(cred, request, expires, rng)?;
                Reply::RegisterStarted {
                    response: s.response,
                    ticket: s.ticket,
                }
            }
            Request::RegisterFinish {
                ticket,
                upload,
                wrapped_key,
                owner_key,
                profile,
                authority,
                ..
            } => {
                let up = RegistrationUploadRequest {
                    ticket,
                    upload,
                    wrapped_key,
                    owner_key,
                    profile,
                };
                let g = self.core.register_finish(
                    cred,
                    entry,
                    &up,
                    authority.as_authority(),
                    unix_now(),
                    rng,
                )?;
                if let Some(e) = &g.entry {
                    self.commit(cred, e)?;
                }
                Reply::Registered {
                    body: g.reply.body.as_bytes().to_vec(),
                    generation: g.reply.generation,
                    max_guesses: self.core.max_guesses(),
                }
            }
            Request::RecoverStart { body, ke1, .. } => {
                let body = body.clone().map(SealedRecord::from_bytes);
                let g = self
                    .core
                    .recover_start(cred, entry, body.as_ref(), ke1, expires, rng)?;
                // Invariant V2: KE2 lets the client test the password offline, so the
                // count is durable before KE2 exists outside this process.
                if let Some(e) = &g.entry {
                    self.commit(cred, e)?;
                }
                let c = g.reply;
                Reply::Challenge {
                    ke2: c.ke2,
                    profile: c.profile,
                    guesses_left: c.guesses_left,
                    ticket: c.ticket,
                    drop_body: c.drop_body,
                }
            }
            Request::RecoverFinish { ticket, ke3, .. } => {
                let done = self
                    .core
                    .recover_finish(cred, entry, ticket, ke3, unix_now(), rng)?;
                if let Some(e) = &done.entry {
                    self.commit(cred, e)?;
                }
                Reply::Recovered {
                    release_blob: done.release_blob,
                    max_guesses: done.max_guesses,
                }
            }
            Request::Status { .. } => Reply::Status(self.core.status(entry)),
            Request::Delete { authority, .. } => {
                let next = self.core.delete(cred, entry, authority.as_authority())?;
                self.commit(cred, &next)?;
                Reply::Deleted
            }
            Request::AuthorizeHead {
                authority, blob, ..
            } => {
                self.core
                    .authorize_head(cred, entry, authority.as_authority(), blob)?;
                Reply::HeadAuthorized
            }
        })
    }
}
