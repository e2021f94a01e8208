//! The members' private channel: TCP between cores, every byte after a two-message
//! handshake sealed under keys derived from the group's link key, which only the group's
//! cores hold (made by `group-init`, sealed in each member's `group.key`). Hosts, proxies
//! and networks in between only carry bytes.
//!
//! Handshake (docs/VAULT-GROUP.md, "Link"): the dialer sends `0x01 || 0x01 || nonce_d`
//! (32 random bytes), the listener answers `0x01 || 0x02 || nonce_l`. Both derive
//! `HKDF-SHA256(salt = nonce_d || nonce_l, ikm = link key)` expanded with
//! `"coffer/v1/group/link d2l"` and `"... l2d"` into two AES-256-GCM keys. Frames are
//! `u32 LE length || AES-256-GCM(seal, nonce = 0u32 || seq u64 LE, aad = 0x01)`, `seq`
//! counting from 0 in each direction.
//!
//! Why this is enough: only a link-key holder can produce a frame that opens, so the first
//! frame each side receives authenticates the other as a member (mutual authentication
//! with a pre-shared key). Fresh nonces on both sides make every connection's keys new, so
//! bytes recorded from one connection open on no other (replay); the sequence number in
//! the nonce makes a duplicated, dropped or reordered frame fail to open, which closes the
//! connection. Raft itself then copes with lost and repeated RPCs.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// Version byte of the handshake and of every frame's associated data.
pub const LINK_VERSION: u8 = 1;
/// Largest frame: a snapshot chunk (1 MiB) or a batch of log entries, with room to spare.
pub const MAX_FRAME: usize = 16 << 20;
const HELLO: u8 = 1;
const WELCOME: u8 = 2;

/// A link failure: the connection is closed and the RPC fails (Raft retries).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Socket error.
    #[error("group link: {0}")]
    Io(#[from] std::io::Error),
    /// A frame did not open, or the handshake was not this protocol's.
    #[error(
        "group link: a frame from the peer did not authenticate (not a member of this group, or bytes replayed or altered in transit)"
    )]
    Auth,
    /// A frame over [`MAX_FRAME`].
    #[error("group link: frame of {0} bytes over the limit")]
    TooLong(usize),
}

struct Dir {
    key: LessSafeKey,
    seq: u64,
}

impl Dir {
    fn nonce(&mut self) -> Result<Nonce, LinkError> {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.seq.to_le_bytes());
        self.seq = self.seq.checked_add(1).ok_or(LinkError::Auth)?;
        Ok(Nonce::assume_unique_for_key(n))
    }
}

/// An authenticated, encrypted connection to another member.
pub struct Link {
    stream: TcpStream,
    send: Dir,
    recv: Dir,
}

struct KeyLen;
impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

fn derive(link_key: &[u8; 32], d: &[u8; 32], l: &[u8; 32]) -> Result<(Dir, Dir), LinkError> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(d);
    salt[32..].copy_from_slice(l);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(link_key);
    let key = |info: &[u8]| -> Result<Dir, LinkError> {
        let mut k = Zeroizing::new([0u8; 32]);
        prk.expand(&[info], KeyLen)
            .and_then(|okm| okm.fill(&mut k[..]))
            .map_err(|_| LinkError::Auth)?;
        let key = UnboundKey::new(&AES_256_GCM, &k[..]).map_err(|_| LinkError::Auth)?;
        Ok(Dir {
            key: LessSafeKey::new(key),
            seq: 0,
        })
    };
    Ok((
        key(b"coffer/v1/group/link d2l")?,
        key(b"coffer/v1/group/link l2d")?,
    ))
}

fn nonce32() -> Result<[u8; 32], LinkError> {
    let mut n = [0u8; 32];
    SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| LinkError::Auth)?;
    Ok(n)
}

async fn read_hello(s: &mut TcpStream, kind: u8) -> Result<[u8; 32], LinkError> {
    let mut m = [0u8; 34];
    s.read_exact(&mut m).await?;
    if m[0] != LINK_VERSION || m[1] != kind {
        return Err(LinkError::Auth);
    }
    let mut n = [0u8; 32];
    n.copy_from_slice(&m[2..]);
    Ok(n)
}

fn hello(kind: u8, n: &[u8; 32]) -> [u8; 34] {
    let mut m = [0u8; 34];
    m[0] = LINK_VERSION;
    m[1] = kind;
    m[2..].copy_from_slice(n);
    m
}

impl Link {
    /// Dials a member at `addr`.
    pub async fn dial(addr: &str, link_key: &[u8; 32]) -> Result<Self, LinkError> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let nd = nonce32()?;
        stream.write_all(&hello(HELLO, &nd)).await?;
        let nl = read_hello(&mut stream, WELCOME).await?;
        let (d2l, l2d) = derive(link_key, &nd, &nl)?;
        Ok(Self {
            stream,
            send: d2l,
            recv: l2d,
        })
    }

    /// Answers a dialer's handshake on an accepted connection.
    pub async fn accept(mut stream: TcpStream, link_key: &[u8; 32]) -> Result<Self, LinkError> {
        stream.set_nodelay(true)?;
        let nd = read_hello(&mut stream, HELLO).await?;
        let nl = nonce32()?;
        stream.write_all(&hello(WELCOME, &nl)).await?;
        let (d2l, l2d) = derive(link_key, &nd, &nl)?;
        Ok(Self {
            stream,
            send: l2d,
            recv: d2l,
        })
    }

    /// Seals and sends one message.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), LinkError> {
        let mut buf = msg.to_vec();
        let nonce = self.send.nonce()?;
        self.send
            .key
            .seal_in_place_append_tag(nonce, Aad::from([LINK_VERSION]), &mut buf)
            .map_err(|_| LinkError::Auth)?;
        if buf.len() > MAX_FRAME {
            return Err(LinkError::TooLong(buf.len()));
        }
        let len = u32::try_from(buf.len()).map_err(|_| LinkError::TooLong(buf.len()))?;
        let mut frame = Vec::with_capacity(4 + buf.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// Receives and opens one message.
    pub async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await?;
        let n = u32::from_le_bytes(len) as usize;
        if n > MAX_FRAME {
            return Err(LinkError::TooLong(n));
        }
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf).await?;
        let nonce = self.recv.nonce()?;
        let plain = self
            .recv
            .key
            .open_in_place(nonce, Aad::from([LINK_VERSION]), &mut buf)
            .map_err(|_| LinkError::Auth)?;
        let len = plain.len();
        buf.truncate(len);
        Ok(buf)
    }
}
