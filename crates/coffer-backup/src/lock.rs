//! Lock objects (FORMAT.md "Locks"): backups take shared locks, prune an exclusive one.
//! Each side writes its lock first and then lists the others, so of two racing processes
//! at least one sees the other and backs off.

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::keys::fill_random;
use crate::storage::Store;
use crate::types::UnlockReport;

/// A lock not refreshed for this long belongs to a dead process and is ignored.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Live locks are rewritten this often, by a thread, whatever the operation is doing
/// (a long scan or a slow upload must not make a live lock look stale).
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Serialize, Deserialize)]
struct LockBody {
    version: u8,
    exclusive: bool,
    time_s: u64,
    pid: u32,
    /// The host of the process; with it a lock of a process of this host that no longer
    /// runs is stale at once (as restic does), not after 30 minutes.
    #[serde(default)]
    hostname: String,
}

/// A held lock, refreshed by a thread; deleted on drop.
pub(crate) struct LockGuard {
    store: Store,
    object: String,
    exclusive: bool,
    last: Mutex<Instant>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn body(exclusive: bool) -> Vec<u8> {
    serde_json::to_vec(&LockBody {
        version: 1,
        exclusive,
        time_s: now_s(),
        pid: std::process::id(),
        hostname: hostname(),
    })
    .unwrap_or_default()
}

impl LockBody {
    /// Dead: not refreshed for [`STALE_AFTER`], or of this host and its process is gone.
    fn is_stale(&self) -> bool {
        if now_s().saturating_sub(self.time_s) > STALE_AFTER.as_secs() {
            return true;
        }
        let here = hostname();
        !here.is_empty()
            && self.hostname == here
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Takes a shared (backup) or exclusive (prune) lock.
pub(crate) fn acquire(store: &Store, exclusive: bool) -> Result<LockGuard, Error> {
    acquire_refreshing(store, exclusive, REFRESH_EVERY)
}

fn acquire_refreshing(store: &Store, exclusive: bool, every: Duration) -> Result<LockGuard, Error> {
    let mut rnd = [0u8; 16];
    fill_random(&mut rnd);
    let name = hex::encode(rnd);
    let object = format!("locks/{name}");
    store.write(&object, body(exclusive))?;
    let (tx, rx) = mpsc::channel::<()>();
    let (s, o) = (store.clone(), object.clone());
    // The thread ends when the guard drops its sender (recv then fails at once).
    let refresher = std::thread::Builder::new()
        .name("coffer-lock".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                let _ = s.write(&o, body(exclusive));
            }
        })
        .map_err(|e| Error::io("lock refresh thread", e))?;
    let guard = LockGuard {
        store: store.clone(),
        object,
        exclusive,
        last: Mutex::new(Instant::now()),
        stop: Some(tx),
        refresher: Some(refresher),
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
        if l.is_stale() {
            continue;
        }
        if exclusive || l.exclusive {
            let what = if l.exclusive { "a prune" } else { "a backup" };
            let age = now_s().saturating_sub(l.time_s);
            return Err(Error::Locked {
                detail: format!(
                    "{what} (pid {} on {:?}) holds lock {other}, written {age} s ago; retry later, or if that process is dead run coffer unlock (its lock counts as stale {} minutes after its last refresh)",
                    l.pid,
                    l.hostname,
                    STALE_AFTER.as_secs() / 60
                ),
            });
        }
    }
    Ok(guard)
}

impl LockGuard {
    /// Rewrites the lock if it is due (besides the thread; cheap when not due).
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
        // Stop the refresher before deleting, or it could write the lock back.
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let _ = self.store.delete(&self.object);
    }
}

/// Stale locks (for check's warnings).
pub(crate) fn stale_locks(store: &Store) -> Result<Vec<String>, Error> {
    let mut v = Vec::new();
    for (name, _) in store.list("locks/")? {
        if let Some(b) = store.read_opt(&format!("locks/{name}"))?
            && serde_json::from_slice::<LockBody>(&b).is_ok_and(|l| l.is_stale())
        {
            v.push(name);
        }
    }
    Ok(v)
}

/// Removes stale and unreadable locks; with `force`, every lock.
pub(crate) fn unlock(store: &Store, force: bool) -> Result<UnlockReport, Error> {
    let mut r = UnlockReport::default();
    for (name, _) in store.list("locks/")? {
        let object = format!("locks/{name}");
        let stale = match store.read_opt(&object)? {
            None => continue,
            Some(b) => serde_json::from_slice::<LockBody>(&b).map_or(true, |l| l.is_stale()),
        };
        if stale || force {
            store.delete(&object)?;
            r.removed.push(name);
        } else {
            r.live.push(name);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lock_time(store: &Store, object: &str) -> (u64, Vec<u8>) {
        let b = store.read(object).unwrap();
        (serde_json::from_slice::<LockBody>(&b).unwrap().time_s, b)
    }

    #[test]
    fn a_thread_refreshes_the_lock_while_the_holder_is_busy() {
        let store = crate::storage::connect("memory://lock-refresh", true).unwrap();
        let g = acquire_refreshing(&store, false, Duration::from_millis(50)).unwrap();
        // Backdate the lock as if it had not been refreshed for an hour.
        let old = serde_json::to_vec(&LockBody {
            version: 1,
            exclusive: false,
            time_s: now_s() - 3600,
            pid: std::process::id(),
            hostname: hostname(),
        })
        .unwrap();
        store.write(&g.object, old).unwrap();
        assert_eq!(stale_locks(&store).unwrap().len(), 1);
        // No call into the guard: only its thread can bring the time forward.
        std::thread::sleep(Duration::from_millis(400));
        let (t, _) = lock_time(&store, &g.object);
        assert!(now_s() - t < 60, "the lock was not refreshed");
        assert!(stale_locks(&store).unwrap().is_empty());
        let object = g.object.clone();
        drop(g);
        assert!(
            store.read_opt(&object).unwrap().is_none(),
            "drop deletes it"
        );
    }

    #[test]
    fn a_dead_process_lock_on_this_host_is_stale_and_unlock_removes_only_stale_ones() {
        let store = crate::storage::connect("memory://lock-dead", true).unwrap();
        let dead = LockBody {
            version: 1,
            exclusive: false,
            time_s: now_s(),
            pid: u32::MAX - 7, // no such process
            hostname: hostname(),
        };
        store
            .write("locks/dead", serde_json::to_vec(&dead).unwrap())
            .unwrap();
        let live = acquire(&store, false).unwrap();
        // The dead backup does not block a prune, the live one does.
        let e = acquire(&store, true).err().unwrap();
        assert!(e.to_string().contains("coffer unlock"), "{e}");
        let r = unlock(&store, false).unwrap();
        assert_eq!(r.removed, vec!["dead".to_string()]);
        assert_eq!(r.live.len(), 1);
        let r = unlock(&store, true).unwrap();
        assert_eq!(r.removed.len(), 1);
        drop(live);
        acquire(&store, true).unwrap();
    }
}
