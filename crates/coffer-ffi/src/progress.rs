//! Progress callbacks from the app and the cancel handle.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One progress event of a backup or restore.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum ProgressEvent {
    /// The scan finished: this many files and bytes will be considered.
    Scanned {
        /// Regular files found.
        files: u64,
        /// Their total size.
        bytes: u64,
    },
    /// A file is being read (backup) or written (restore).
    File {
        /// Path inside the snapshot.
        path: String,
    },
    /// Bytes done so far out of `total` (0 if unknown).
    Bytes {
        /// Done so far.
        done: u64,
        /// Expected total.
        total: u64,
    },
    /// A non-fatal problem: a file skipped.
    Warning {
        /// Human-readable text.
        message: String,
    },
}

/// Implemented by the app to follow a backup or restore.
///
/// Called from the engine's worker threads, often: keep it cheap and post to the UI
/// thread yourself. It must not throw; an exception is dropped (and the event with it).
#[uniffi::export(callback_interface)]
pub trait ProgressListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: ProgressEvent);
}

/// Feeds the engine's events to the app's listener.
pub(crate) struct Bridge(pub(crate) Box<dyn ProgressListener>);

impl coffer_client::Progress for Bridge {
    fn event(&self, e: &coffer_client::ProgressEvent) {
        use coffer_client::ProgressEvent as P;
        let event = match e {
            P::Scanned { files, bytes } => ProgressEvent::Scanned {
                files: *files,
                bytes: *bytes,
            },
            P::File { path } => ProgressEvent::File { path: path.clone() },
            P::Bytes { done, total } => ProgressEvent::Bytes {
                done: *done,
                total: *total,
            },
            P::Warning { message } => ProgressEvent::Warning {
                message: message.clone(),
            },
            // Events added to the engine later reach apps once this crate maps them.
            _ => return,
        };
        // A foreign exception surfaces here as a panic of uniffi's callback glue; it must
        // not unwind through the engine's pipeline threads and fail the backup.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.0.on_event(event)));
    }
}

/// Stops a running backup or restore: pass it to `backup` or `restore`, call `cancel()`
/// from any thread. The call then fails with code `cancelled` at its next safe point. A
/// backup leaves the repository valid and the next one resumes (finished packs are not
/// uploaded again); a restore leaves the files it finished complete, removes the one it
/// was writing, and the same restore run again finishes. One handle per call.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelHandle {
    flag: Arc<AtomicBool>,
}

#[uniffi::export]
impl CancelHandle {
    /// A handle that has not been cancelled.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Asks the operation to stop.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether `cancel()` was called.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl CancelHandle {
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}
