//! The host's side of the core protocol: [`CoreLink`] sends a request and waits for the
//! reply, to a core process over its Unix socket or to a core embedded in this process.
//! Either way the request crosses as bytes, so the host holds no core state or key.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use coffer_vault_core::CoreError;
use coffer_vault_core::protocol::{MAX_MESSAGE, Reply, Request};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::service::CoreService;

/// The core could not be asked.
#[derive(Debug, Error)]
pub enum LinkError {
    /// The core process is unreachable or hung up.
    #[error("vault core at {path} unreachable: {source}")]
    Io {
        /// Its socket.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The core's reply did not decode.
    #[error("vault core sent a malformed reply")]
    BadReply,
    /// The embedded core's thread failed.
    #[error("embedded vault core failed: {0}")]
    Embedded(String),
}

/// Where the core is.
#[derive(Clone)]
pub enum CoreLink {
    /// In this process (`serve` without `--core`).
    Embedded(Arc<CoreService>),
    /// A `coffer-vault core` process.
    Unix(Arc<UnixLink>),
}

/// A pool of connections to a core process, or to any of a group's members.
pub struct UnixLink {
    paths: Vec<PathBuf>,
    /// The member new connections go to first.
    preferred: AtomicUsize,
    idle: Mutex<Vec<(usize, UnixStream)>>,
}

impl UnixLink {
    /// A link to the core listening at `path` (connects lazily).
    pub fn new(path: PathBuf) -> Self {
        Self::group(vec![path])
    }

    /// A link to a group's members (any member answers any request): connections go to
    /// one member until it cannot be reached or says its group is unavailable, then to
    /// the next.
    pub fn group(paths: Vec<PathBuf>) -> Self {
        Self {
            paths,
            preferred: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn io(&self, i: usize, source: std::io::Error) -> LinkError {
        LinkError::Io {
            path: self
                .paths
                .get(i)
                .map_or_else(String::new, |p| p.display().to_string()),
            source,
        }
    }

    /// Stops preferring member `i` (and drops its idle connections).
    fn avoid(&self, i: usize) {
        if self.paths.len() < 2 {
            return;
        }
        let _ = self.preferred.compare_exchange(
            i,
            (i + 1) % self.paths.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        if let Ok(mut v) = self.idle.lock() {
            v.retain(|(j, _)| *j != i);
        }
    }

    /// A connection: an idle one, or a new one to the preferred member or, if it cannot
    /// be reached, the next. A request is sent only on a connection that exists, so
    /// moving on after a failed connect never sends it twice.
    async fn connect(&self) -> Result<(usize, UnixStream), LinkError> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(c);
        }
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = None;
        for k in 0..self.paths.len() {
            let i = (first + k) % self.paths.len();
            match UnixStream::connect(&self.paths[i]).await {
                Ok(c) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok((i, c));
                }
                Err(e) => last = Some(self.io(i, e)),
            }
        }
        Err(last.unwrap_or_else(|| self.io(0, std::io::ErrorKind::NotFound.into())))
    }

    /// One request, one reply, on the runtime's own I/O (no thread hand-off). A
    /// connection that fails is dropped, never reused; the request is not retried (a lost
    /// `recover/start` reply counted a guess all the same, and the client starts again).
    async fn call(&self, msg: &[u8]) -> Result<(usize, Vec<u8>), LinkError> {
        let (i, mut conn) = self.connect().await?;
        let res = async {
            let len = u32::try_from(msg.len())
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
            let mut frame = Vec::with_capacity(4 + msg.len());
            frame.extend_from_slice(&len.to_le_bytes());
            frame.extend_from_slice(msg);
            conn.write_all(&frame).await?;
            let mut len = [0u8; 4];
            conn.read_exact(&mut len).await?;
            let n = u32::from_le_bytes(len) as usize;
            if n > MAX_MESSAGE {
                return Err(std::io::Error::from(std::io::ErrorKind::InvalidData));
            }
            let mut reply = vec![0u8; n];
            conn.read_exact(&mut reply).await?;
            Ok(reply)
        }
        .await;
        match res {
            Ok(reply) => {
                if let Ok(mut v) = self.idle.lock() {
                    v.push((i, conn));
                }
                Ok((i, reply))
            }
            Err(e) => {
                self.avoid(i);
                Err(self.io(i, e))
            }
        }
    }
}

impl CoreLink {
    /// Sends `req` and decodes the reply.
    pub async fn call(&self, req: &Request) -> Result<Reply, LinkError> {
        let msg = req.encode();
        let bytes = match self {
            CoreLink::Embedded(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.handle(&msg))
                    .await
                    .map_err(|e| LinkError::Embedded(e.to_string()))?
            }
            CoreLink::Unix(u) => {
                let (i, bytes) = u.call(&msg).await?;
                let reply = Reply::decode(&bytes).map_err(|_| LinkError::BadReply)?;
                if matches!(reply, Reply::Error(CoreError::StoreUnavailable)) {
                    // That member cannot reach a majority: later requests try another.
                    u.avoid(i);
                }
                return Ok(reply);
            }
        };
        Reply::decode(&bytes).map_err(|_| LinkError::BadReply)
    }
}
