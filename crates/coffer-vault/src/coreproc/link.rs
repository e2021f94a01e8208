//! The host's side of the core protocol: [`CoreLink`] sends a request and waits for the
//! reply, to a core process over its Unix socket or to a core embedded in this process.
//! Either way the request crosses as bytes, so the host holds no core state or key.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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

/// A pool of connections to a core process.
pub struct UnixLink {
    path: PathBuf,
    idle: Mutex<Vec<UnixStream>>,
}

impl UnixLink {
    /// A link to the core listening at `path` (connects lazily).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn io(&self, source: std::io::Error) -> LinkError {
        LinkError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// One request, one reply, on the runtime's own I/O (no thread hand-off). A
    /// connection that fails is dropped, never reused; the request is not retried (a lost
    /// `recover/start` reply counted a guess all the same, and the client starts again).
    async fn call(&self, msg: &[u8]) -> Result<Vec<u8>, LinkError> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => UnixStream::connect(&self.path)
                .await
                .map_err(|e| self.io(e))?,
        };
        let len = u32::try_from(msg.len())
            .map_err(|_| self.io(std::io::ErrorKind::InvalidInput.into()))?;
        let mut frame = Vec::with_capacity(4 + msg.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(msg);
        conn.write_all(&frame).await.map_err(|e| self.io(e))?;
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).await.map_err(|e| self.io(e))?;
        let n = u32::from_le_bytes(len) as usize;
        if n > MAX_MESSAGE {
            return Err(LinkError::BadReply);
        }
        let mut reply = vec![0u8; n];
        conn.read_exact(&mut reply).await.map_err(|e| self.io(e))?;
        if let Ok(mut v) = self.idle.lock() {
            v.push(conn);
        }
        Ok(reply)
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
            CoreLink::Unix(u) => u.call(&msg).await?,
        };
        Reply::decode(&bytes).map_err(|_| LinkError::BadReply)
    }
}
