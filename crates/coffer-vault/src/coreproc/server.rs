//! The core process's transport: a Unix socket, one thread per connection, each message
//! framed as `length (u32 LE) || message` (docs/VAULT-CORE.md, "Framing"). A frame longer
//! than the protocol's maximum closes the connection before anything is read into memory.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use coffer_vault_core::protocol::MAX_MESSAGE;

use super::service::CoreService;

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(s: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {n} bytes is over the {MAX_MESSAGE}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Writes one frame.
pub fn write_frame(s: &mut impl Write, msg: &[u8]) -> std::io::Result<()> {
    let n = u32::try_from(msg.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too long"))?;
    let mut out = Vec::with_capacity(4 + msg.len());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
}

/// Binds `path` (replacing a stale socket left by a killed core, never any other kind
/// of file), owner-only, and serves `service` until the process ends. Prints
/// `core listening on unix:PATH` once it accepts connections.
pub fn serve_unix(path: &Path, service: Arc<CoreService>) -> std::io::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; choose another --listen path",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    // Only the host's user may speak to the core.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    println!("core listening on unix:{}", path.display());
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let service = service.clone();
        let spawned = std::thread::Builder::new()
            .name("core-conn".into())
            .spawn(move || serve_conn(conn, &service));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a connection thread");
        }
    }
    Ok(())
}

fn serve_conn(mut conn: UnixStream, service: &CoreService) {
    loop {
        match read_frame(&mut conn) {
            Ok(Some(req)) => {
                let reply = service.handle(&req);
                if write_frame(&mut conn, &reply).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "closing a core connection");
                return;
            }
        }
    }
}
