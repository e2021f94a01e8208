//! Login states between `recover/start` and `recover/finish`, kept in memory with a TTL.
//!
//! One replica only: a second replica would need the state in shared storage (it is
//! serializable) or sticky routing. A lost state costs the client one spent guess, never
//! an extra one: the guess was committed before KE2 left.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coffer_vault_core::{CredentialId, RecoverStarted};
use rand_core::{OsRng, RngCore};

/// Most pending logins kept; beyond it the oldest expire first.
const MAX_PENDING: usize = 100_000;

/// The pending logins.
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 16], (RecoverStarted, Instant)>>,
}

impl Sessions {
    /// Sessions live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Stores a state, returns its random handle.
    pub fn insert(&self, state: RecoverStarted, now: Instant) -> [u8; 16] {
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PENDING {
            map.retain(|_, (_, exp)| *exp > now);
        }
        map.insert(id, (state, now + self.ttl));
        id
    }

    /// Takes the state of `id` if it exists, is unexpired and belongs to `cred`.
    pub fn take(&self, id: &[u8], cred: &CredentialId, now: Instant) -> Option<RecoverStarted> {
        let id: [u8; 16] = id.try_into().ok()?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&id) {
            Some((state, exp)) if state.credential_id() == cred && *exp > now => {
                map.remove(&id).map(|(s, _)| s)
            }
            Some((_, exp)) if *exp <= now => {
                map.remove(&id);
                None
            }
            _ => None,
        }
    }
}
