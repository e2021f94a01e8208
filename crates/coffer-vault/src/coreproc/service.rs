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

use super::store::{BodyChange, Change, CommitError, EntryStore, Read};
use crate::unix_now;

const LOCK_SHARDS: usize = 1024;
/// Decisions taken again after a group's compare-and-set found the entry changed; each
/// retry starts from the state the group committed, so more than a few means a storm of
/// requests for one credential, which is refused rather than served late.
const MAX_RETRIES: usize = 8;

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

    fn open(&self, cred: &CredentialId, sealed: Option<&[u8]>) -> Result<Option<Entry>, CoreError> {
        match sealed {
            None => Ok(None),
            Some(sealed) => self.core.open_entry(cred, sealed).map(Some).ok_or_else(|| {
                tracing::error!("a core store entry does not open: the store is damaged");
                CoreError::StoreUnavailable
            }),
        }
    }

    /// Commits `next` (or, with `None`, confirms that `read` is still current: a group
    /// must before it releases a reply decided from it; a single store returns at once).
    fn commit(
        &self,
        cred: &CredentialId,
        read: &Read,
        next: Option<&Entry>,
        body: BodyChange,
        head: Option<Vec<u8>>,
    ) -> Result<(), Step> {
        let entry = match next {
            Some(e) => Some(
                self.core
                    .seal_entry(cred, e, &mut OsRng)
                    .ok_or(Step::Refuse(CoreError::Internal))?,
            ),
            None => None,
        };
        let change = Change {
            read: read.entry.clone(),
            entry,
            body,
            head,
        };
        self.store.commit(cred, change).map_err(|e| match e {
            CommitError::Conflict(now) => Step::Retry(now),
            CommitError::HeadNotNewer(kept) => Step::Refuse(CoreError::HeadNotNewer { kept }),
            CommitError::Store(e) => {
                tracing::error!(error = %e, "core store commit failed");
                Step::Refuse(CoreError::StoreUnavailable)
            }
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
        // both read count n and both release a KE2. (In a group, requests for the same
        // credential can also reach other members: there the commit's compare-and-set is
        // what serialises them, and a decision taken on a stale read is taken again.)
        let _g = shard.lock().unwrap_or_else(|p| p.into_inner());
        let mut read = match self.store.get(cred) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "core store read failed");
                return Reply::Error(CoreError::StoreUnavailable);
            }
        };
        for _ in 0..MAX_RETRIES {
            match self.step(cred, req, &read) {
                Ok(r) => return r,
                Err(Step::Refuse(e)) => return Reply::Error(e),
                Err(Step::Retry(now)) => read = now,
            }
        }
        tracing::warn!("an entry kept changing under one request; refused");
        Reply::Error(CoreError::StoreUnavailable)
    }

    fn step(&self, cred: &CredentialId, req: &Request, read: &Read) -> Result<Reply, Step> {
        let expires = unix_now().saturating_add(self.ticket_ttl.as_secs());
        let rng = &mut OsRng;
        let group = self.store.replicated();
        let entry = self.open(cred, read.entry.as_deref())?;
        let entry = entry.as_ref();
        Ok(match req {
            Request::Resolve { .. } => return Err(Step::Refuse(CoreError::Internal)),
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
                let body = g.reply.body.as_bytes().to_vec();
                self.commit(
                    cred,
                    read,
                    g.entry.as_ref(),
                    BodyChange::Put(body.clone()),
                    None,
                )?;
                Reply::Registered {
                    body,
                    generation: g.reply.generation,
                    max_guesses: self.core.max_guesses(),
                }
            }
            Request::RecoverStart { body, ke1, .. } => {
                // A group keeps the body beside the entry, read from the same state; a
                // single core's host sends it.
                let body = if group {
                    read.body.clone()
                } else {
                    body.clone()
                };
                let body = body.map(SealedRecord::from_bytes);
                let g = match self
                    .core
                    .recover_start(cred, entry, body.as_ref(), ke1, expires, rng)
                {
                    Ok(g) => g,
                    Err(e) => {
                        // A refusal decided from a stale copy could be wrong (say, a
                        // record registered elsewhere a moment ago): confirmed first.
                        self.commit(cred, read, None, BodyChange::Keep, None)?;
                        return Err(Step::Refuse(e));
                    }
                };
                // Invariant V2: KE2 lets the client test the password offline, so the
                // count is durable before KE2 exists outside this process.
                let drop = if g.reply.drop_body {
                    BodyChange::Remove
                } else {
                    BodyChange::Keep
                };
                self.commit(cred, read, g.entry.as_ref(), drop, None)?;
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
                let done = match self
                    .core
                    .recover_finish(cred, entry, ticket, ke3, unix_now(), rng)
                {
                    Ok(d) => d,
                    Err(e) => {
                        self.commit(cred, read, None, BodyChange::Keep, None)?;
                        return Err(Step::Refuse(e));
                    }
                };
                self.commit(cred, read, done.entry.as_ref(), BodyChange::Keep, None)?;
                Reply::Recovered {
                    release_blob: done.release_blob,
                    max_guesses: done.max_guesses,
                }
            }
            Request::Status { .. } => Reply::Status(self.core.status(entry)),
            Request::Delete { authority, .. } => {
                let next = self.core.delete(cred, entry, authority.as_authority())?;
                self.commit(cred, read, Some(&next), BodyChange::Remove, None)?;
                Reply::Deleted
            }
            Request::AuthorizeHead {
                authority, blob, ..
            } => {
                self.core
                    .authorize_head(cred, entry, authority.as_authority(), blob)?;
                // A group keeps the head in the same log entry that confirms the owner
                // key it was checked against.
                let head = group.then(|| blob.clone());
                self.commit(cred, read, None, BodyChange::Keep, head)?;
                Reply::HeadAuthorized
            }
            Request::GetHead { .. } => match self.store.head(cred) {
                Ok(h) => Reply::Head(h),
                Err(e) => {
                    tracing::error!(error = %e, "core store read failed");
                    return Err(Step::Refuse(CoreError::StoreUnavailable));
                }
            },
        })
    }
}

/// How one decision ended short of a reply.
enum Step {
    /// Refuse the request with this error.
    Refuse(CoreError),
    /// The entry changed under the decision (a group's compare-and-set): decide again on
    /// the state the group holds now.
    Retry(Read),
}

impl From<CoreError> for Step {
    fn from(e: CoreError) -> Self {
        Step::Refuse(e)
    }
}
