//! Lock objects (FORMAT.md "Locks"): backups take shared locks, prune an exclusive one.
//! Each side writes its lock first and then lists the others, so of two racing processes
//! at least one sees the other and backs off.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::keys::fill_random;
use crate::storage::Store;

/// A lock not refreshed for this long belongs to a dead process and is ignored.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Live locks are rewritten this often.
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Serialize, Deserialize)]
struct LockBody {
    version: u8,
    exclusive: bool,
    time_s: u64,
    pid: u32,
}

/// A held lock; deleted on drop.
pub(crate) struct LockGuard {
    store: Store,
    object: String,
    exclusive: bool,
    last: Mutex<Instant>,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn body(exclusive: bool) -> Vec<u8> {
    serde_json::to_vec(&LockBody {
        version: 1,
        exclusive,
        time_s: now_s(),
        pid: std::process::id(),
    })
    .unwrap_or_default()
}

/// Takes a shared (backup) or exclusive (prune) lock.
pub(crate) fn acquire(store: &Store, exclusive: bool) -> Result<LockGuard, Error> {
    let mut rnd = [0u8; 16];
    fill_random(&mut rnd);
    let name = hex::encode(rnd);
    let object = format!("locks/{name}");
    store.write(&object, body(exclusive))?;
    let guard = LockGuard {
        store: store.clone(),
        object,
        exclusive,
        last: Mutex::new(Instant::now()),
    };
    for (other, _) in store.list("locks/")? {
        if other == name {
            continue;
        }
        let Some(b) = store.read_opt(&format!("locks/{other}"))? else {
            continue;
        };
        let Ok(l) = serde_json::from_slice::<LockBody>(&b) else {
            continue;
        };
        let age = now_s().saturating_sub(l.time_s);
        if age > STALE_AFTER.as_secs() {
            continue;
        }
        if exclusive || l.exclusive {
            let what = if l.exclusive { "a prune" } else { "a backup" };
            return Err(Error::Locked {
                detail: format!(
                    "{what} (pid {}) holds lock {other}, written {age} s ago; retry later",
                    l.pid
                ),
            });
        }
    }
    Ok(guard)
}

impl LockGuard {
    /// Rewrites the lock if it is due, so long backups never look stale.
    pub(crate) fn refresh(&self) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.elapsed() >= REFRESH_EVERY {
            *last = Instant::now();
            let _ = self.store.write(&self.object, body(self.exclusive));
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.store.delete(&self.object);
    }
}

/// Locks older than [`STALE_AFTER`] (for check's warnings).
pub(crate) fn stale_locks(store: &Store) -> Result<Vec<String>, Error> {
    let mut v = Vec::new();
    for (name, _) in store.list("locks/")? {
        if let Some(b) = store.read_opt(&format!("locks/{name}"))?
            && let Ok(l) = serde_json::from_slice::<LockBody>(&b)
            && now_s().saturating_sub(l.time_s) > STALE_AFTER.as_secs()
        {
            v.push(name);
        }
    }
    Ok(v)
}
