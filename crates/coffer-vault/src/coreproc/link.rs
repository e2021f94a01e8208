//! The host's side of the core protocol: [`CoreLink`] sends a request and waits for the
//! reply, to a core process over its Unix socket or to a core embedded in this process.
//! Either way the request crosses as bytes, so the host holds no core state or key.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use coffer_vault_core::protocol::{Reply, Request};
use thiserror::Error;

use super::server::{read_frame, write_frame};
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

    /// One request, one reply, blocking. A connection that fails is dropped, never
    /// reused; the request is not retried (a lost `recover/start` reply counted a
    /// guess all the same, and the client starts again).
    fn call(&self, msg: &[u8]) -> Result<Vec<u8>, LinkError> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => UnixStream::connect(&self.path).map_err(|e| self.io(e))?,
        };
        write_frame(&mut conn, msg).map_err(|e| self.io(e))?;
        let reply = read_frame(&mut conn)
            .map_err(|e| self.io(e))?
            .ok_or_else(|| self.io(std::io::ErrorKind::UnexpectedEof.into()))?;
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
            CoreLink::Unix(u) => {
                let u = u.clone();
                tokio::task::spawn_blocking(move || u.call(&msg))
                    .await
                    .map_err(|e| LinkError::Embedded(e.to_string()))??
            }
        };
        Reply::decode(&bytes).map_err(|_| LinkError::BadReply)
    }
}
