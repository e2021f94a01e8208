//! The core protocol: one request, one reply, in a versioned binary encoding the host and
//! the core process exchange (docs/VAULT-CORE.md, byte for byte). Sans-IO: this module
//! only turns bytes into [`Request`]s and [`Reply`]s and back; framing (a `u32` length
//! before each message) belongs to the transport.
//!
//! Every decode is strict: the version byte must be [`PROTOCOL_VERSION`], the op or tag
//! known, every length inside the message, and no byte left over. Anything else is
//! refused before the core looks at it, so a malformed request never changes state.

use coffer_vault_proto::{CredentialId, ErrorCode, KsfProfile};

use crate::error::{CoreError, OwnerProofError};

/// Version byte of every request and reply.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest message either side accepts (a framed message longer than this is refused
/// before it is read).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// How the host says the caller may change a live record (the core checks it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireAuthority {
    /// The token alone.
    Token,
    /// An owner proof over `generation`.
    OwnerProof {
        /// The generation the owner signed.
        generation: u64,
        /// The Ed25519 signature.
        signature: Vec<u8>,
    },
    /// A token with the `coffer.reset` scope.
    ResetScope,
}

impl WireAuthority {
    /// The core's view of it.
    pub fn as_authority(&self) -> crate::Authority<'_> {
        match self {
            WireAuthority::Token => crate::Authority::Token,
            WireAuthority::OwnerProof {
                generation,
                signature,
            } => crate::Authority::OwnerProof {
                generation: *generation,
                signature,
            },
            WireAuthority::ResetScope => crate::Authority::ResetScope,
        }
    }
}

/// A request from the host to the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The credential id of an account (`tenant || 0x00 || account`).
    Resolve {
        /// The account name as the host authenticated it.
        account: Vec<u8>,
    },
    /// `register/start`.
    RegisterStart {
        /// The credential.
        cred: CredentialId,
        /// OPAQUE RegistrationRequest.
        request: Vec<u8>,
    },
    /// `register/finish`.
    RegisterFinish {
        /// The credential.
        cred: CredentialId,
        /// Registration ticket.
        ticket: Vec<u8>,
        /// OPAQUE RegistrationUpload.
        upload: Vec<u8>,
        /// `wrap(export_key, K)`.
        wrapped_key: Vec<u8>,
        /// Ed25519 owner public key.
        owner_key: Vec<u8>,
        /// KSF profile name.
        profile: String,
        /// Who asks.
        authority: WireAuthority,
    },
    /// `recover/start`.
    RecoverStart {
        /// The credential.
        cred: CredentialId,
        /// The body the host's database holds, if any.
        body: Option<Vec<u8>>,
        /// KE1.
        ke1: Vec<u8>,
    },
    /// `recover/finish`.
    RecoverFinish {
        /// The credential.
        cred: CredentialId,
        /// Login ticket.
        ticket: Vec<u8>,
        /// KE3.
        ke3: Vec<u8>,
    },
    /// `status`.
    Status {
        /// The credential.
        cred: CredentialId,
    },
    /// `delete`.
    Delete {
        /// The credential.
        cred: CredentialId,
        /// Who asks.
        authority: WireAuthority,
    },
    /// May this caller store this repository head?
    AuthorizeHead {
        /// The credential.
        cred: CredentialId,
        /// Who asks.
        authority: WireAuthority,
        /// The head blob.
        blob: Vec<u8>,
    },
    /// The repository head a group keeps beside the entry (docs/VAULT-GROUP.md); a single
    /// core keeps no heads (its host does) and answers `None`.
    GetHead {
        /// The credential.
        cred: CredentialId,
    },
}

/// A reply from the core to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// To `Resolve`.
    Resolved {
        /// The credential id.
        cred: CredentialId,
    },
    /// To `RegisterStart`.
    RegisterStarted {
        /// OPAQUE RegistrationResponse.
        response: Vec<u8>,
        /// Registration ticket.
        ticket: Vec<u8>,
    },
    /// To `RegisterFinish`: the entry is durable; store `body`.
    Registered {
        /// The body for the host's record database.
        body: Vec<u8>,
        /// The registration's generation.
        generation: u64,
        /// The vault's guess limit.
        max_guesses: u32,
    },
    /// To `RecoverStart`: the guess is durably counted.
    Challenge {
        /// KE2.
        ke2: Vec<u8>,
        /// KSF profile.
        profile: KsfProfile,
        /// Guesses left after this one.
        guesses_left: u32,
        /// Login ticket.
        ticket: Vec<u8>,
        /// The guess destroyed the record: delete the stored body.
        drop_body: bool,
    },
    /// To `RecoverFinish`: a verified KE3 (any reset is durable).
    Recovered {
        /// The wrapped key under the session key.
        release_blob: Vec<u8>,
        /// The vault's guess limit.
        max_guesses: u32,
    },
    /// To `Status`.
    Status(crate::Status),
    /// To `Delete`: the entry is durable; delete the body.
    Deleted,
    /// To `AuthorizeHead`: store the head (a group already stored it).
    HeadAuthorized,
    /// To `GetHead`.
    Head(Option<Vec<u8>>),
    /// Any request refused; nothing changed.
    Error(CoreError),
}

const OP_RESOLVE: u8 = 1;
const OP_REGISTER_START: u8 = 2;
const OP_REGISTER_FINISH: u8 = 3;
const OP_RECOVER_START: u8 = 4;
const OP_RECOVER_FINISH: u8 = 5;
const OP_STATUS: u8 = 6;
const OP_DELETE: u8 = 7;
const OP_AUTHORIZE_HEAD: u8 = 8;
const OP_GET_HEAD: u8 = 9;
const TAG_ERROR: u8 = 0xFF;

/// Why bytes were not a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The version byte is not [`PROTOCOL_VERSION`].
    #[error("unsupported core protocol version")]
    Version,
    /// Unknown op, bad length, bad field, or trailing bytes.
    #[error("malformed core protocol message")]
    Malformed,
}

struct W(Vec<u8>);

impl W {
    fn new(tag: u8) -> Self {
        W(vec![PROTOCOL_VERSION, tag])
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn cred(&mut self, c: &CredentialId) -> &mut Self {
        self.0.extend_from_slice(c.as_bytes());
        self
    }
    /// `u16 LE length || bytes`. Every field is far below 64 KiB (the whole message is
    /// bounded by [`MAX_MESSAGE`]); a longer one is cut to an empty field, which the
    /// other side refuses as malformed rather than misreads.
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let b = if b.len() > u16::MAX as usize {
            &[][..]
        } else {
            b
        };
        self.0.extend_from_slice(&(b.len() as u16).to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }
    fn authority(&mut self, a: &WireAuthority) -> &mut Self {
        match a {
            WireAuthority::Token => self.u8(0),
            WireAuthority::OwnerProof {
                generation,
                signature,
            } => self.u8(1).u64(*generation).bytes(signature),
            WireAuthority::ResetScope => self.u8(2),
        }
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(
            self.take(2)?
                .try_into()
                .map_err(|_| DecodeError::Malformed)?,
        ))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| DecodeError::Malformed)?,
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?
                .try_into()
                .map_err(|_| DecodeError::Malformed)?,
        ))
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Malformed),
        }
    }
    fn cred(&mut self) -> Result<CredentialId, DecodeError> {
        let b: [u8; 32] = self
            .take(32)?
            .try_into()
            .map_err(|_| DecodeError::Malformed)?;
        Ok(CredentialId::from_bytes(b))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u16()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn authority(&mut self) -> Result<WireAuthority, DecodeError> {
        Ok(match self.u8()? {
            0 => WireAuthority::Token,
            1 => WireAuthority::OwnerProof {
                generation: self.u64()?,
                signature: self.bytes()?,
            },
            2 => WireAuthority::ResetScope,
            _ => return Err(DecodeError::Malformed),
        })
    }
    /// Reads the version and tag.
    fn open(bytes: &'a [u8]) -> Result<(Self, u8), DecodeError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(DecodeError::Malformed);
        }
        let mut r = R(bytes);
        if r.u8()? != PROTOCOL_VERSION {
            return Err(DecodeError::Version);
        }
        let tag = r.u8()?;
        Ok((r, tag))
    }
    fn end<T>(self, v: T) -> Result<T, DecodeError> {
        if self.0.is_empty() {
            Ok(v)
        } else {
            Err(DecodeError::Malformed)
        }
    }
}

impl Request {
    /// The request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Resolve { account } => W::new(OP_RESOLVE).bytes(account).0.clone(),
            Request::RegisterStart { cred, request } => W::new(OP_REGISTER_START)
                .cred(cred)
                .bytes(request)
                .0
                .clone(),
            Request::RegisterFinish {
                cred,
                ticket,
                upload,
                wrapped_key,
                owner_key,
                profile,
                authority,
            } => W::new(OP_REGISTER_FINISH)
                .cred(cred)
                .bytes(ticket)
                .bytes(upload)
                .bytes(wrapped_key)
                .bytes(owner_key)
                .bytes(profile.as_bytes())
                .authority(authority)
                .0
                .clone(),
            Request::RecoverStart { cred, body, ke1 } => {
                let mut w = W::new(OP_RECOVER_START);
                w.cred(cred);
                match body {
                    None => w.u8(0),
                    Some(b) => w.u8(1).bytes(b),
                };
                w.bytes(ke1).0.clone()
            }
            Request::RecoverFinish { cred, ticket, ke3 } => W::new(OP_RECOVER_FINISH)
                .cred(cred)
                .bytes(ticket)
                .bytes(ke3)
                .0
                .clone(),
            Request::Status { cred } => W::new(OP_STATUS).cred(cred).0.clone(),
            Request::Delete { cred, authority } => {
                W::new(OP_DELETE).cred(cred).authority(authority).0.clone()
            }
            Request::AuthorizeHead {
                cred,
                authority,
                blob,
            } => W::new(OP_AUTHORIZE_HEAD)
                .cred(cred)
                .authority(authority)
                .bytes(blob)
                .0
                .clone(),
            Request::GetHead { cred } => W::new(OP_GET_HEAD).cred(cred).0.clone(),
        }
    }

    /// Parses a request; refuses anything [`Request::encode`] would not produce.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, op) = R::open(bytes)?;
        let req = match op {
            OP_RESOLVE => Request::Resolve {
                account: r.bytes()?,
            },
            OP_REGISTER_START => Request::RegisterStart {
                cred: r.cred()?,
                request: r.bytes()?,
            },
            OP_REGISTER_FINISH => Request::RegisterFinish {
                cred: r.cred()?,
                ticket: r.bytes()?,
                upload: r.bytes()?,
                wrapped_key: r.bytes()?,
                owner_key: r.bytes()?,
                profile: String::from_utf8(r.bytes()?).map_err(|_| DecodeError::Malformed)?,
                authority: r.authority()?,
            },
            OP_RECOVER_START => Request::RecoverStart {
                cred: r.cred()?,
                body: if r.flag()? { Some(r.bytes()?) } else { None },
                ke1: r.bytes()?,
            },
            OP_RECOVER_FINISH => Request::RecoverFinish {
                cred: r.cred()?,
                ticket: r.bytes()?,
                ke3: r.bytes()?,
            },
            OP_STATUS => Request::Status { cred: r.cred()? },
            OP_DELETE => Request::Delete {
                cred: r.cred()?,
                authority: r.authority()?,
            },
            OP_AUTHORIZE_HEAD => Request::AuthorizeHead {
                cred: r.cred()?,
                authority: r.authority()?,
                blob: r.bytes()?,
            },
            OP_GET_HEAD => Request::GetHead { cred: r.cred()? },
            _ => return Err(DecodeError::Malformed),
        };
        r.end(req)
    }

    /// The credential the request is about (`None` for `Resolve`): the driver serializes
    /// requests per credential.
    pub fn credential(&self) -> Option<&CredentialId> {
        match self {
            Request::Resolve { .. } => None,
            Request::RegisterStart { cred, .. }
            | Request::RegisterFinish { cred, .. }
            | Request::RecoverStart { cred, .. }
            | Request::RecoverFinish { cred, .. }
            | Request::Status { cred }
            | Request::Delete { cred, .. }
            | Request::AuthorizeHead { cred, .. }
            | Request::GetHead { cred } => Some(cred),
        }
    }
}

/// An error's detail on the wire: `guesses_left` of a wrong password, the generation of a
/// stale owner proof, or `drop_body` of a destroyed key.
fn error_detail(e: &CoreError) -> u64 {
    match e {
        CoreError::WrongPassword { guesses_left } => u64::from(*guesses_left),
        CoreError::Owner(OwnerProofError::Stale { generation }) => *generation,
        CoreError::KeyDestroyed { drop_body } => u64::from(*drop_body),
        CoreError::HeadNotNewer { kept } => *kept,
        _ => 0,
    }
}

fn error_from_wire(code: ErrorCode, detail: u64) -> Result<CoreError, DecodeError> {
    Ok(match code {
        ErrorCode::WrappedKey => CoreError::Malformed {
            what: "wrapped key",
        },
        ErrorCode::OwnerKey => CoreError::Malformed { what: "owner key" },
        ErrorCode::MalformedMessage => CoreError::Malformed { what: "message" },
        ErrorCode::UnknownProfile => CoreError::UnknownProfile,
        ErrorCode::NoRegistration => CoreError::BadRegistrationTicket,
        ErrorCode::NoLogin => CoreError::NoLogin,
        ErrorCode::WrongPassword => CoreError::WrongPassword {
            guesses_left: u32::try_from(detail).map_err(|_| DecodeError::Malformed)?,
        },
        ErrorCode::KeyDestroyed => CoreError::KeyDestroyed {
            drop_body: detail == 1,
        },
        ErrorCode::NoRecord => CoreError::NoRecord,
        ErrorCode::OwnerProofRequired => CoreError::Owner(OwnerProofError::Required),
        ErrorCode::OwnerProofStale => {
            CoreError::Owner(OwnerProofError::Stale { generation: detail })
        }
        ErrorCode::OwnerProofInvalid => CoreError::Owner(OwnerProofError::Invalid),
        ErrorCode::StorageRolledBack => CoreError::StorageRolledBack,
        ErrorCode::HeadNotNewer => CoreError::HeadNotNewer { kept: detail },
        ErrorCode::StorageUnavailable => CoreError::StoreUnavailable,
        ErrorCode::Internal => CoreError::Internal,
        _ => return Err(DecodeError::Malformed),
    })
}

impl Reply {
    /// The reply's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Resolved { cred } => W::new(OP_RESOLVE).cred(cred).0.clone(),
            Reply::RegisterStarted { response, ticket } => W::new(OP_REGISTER_START)
                .bytes(response)
                .bytes(ticket)
                .0
                .clone(),
            Reply::Registered {
                body,
                generation,
                max_guesses,
            } => W::new(OP_REGISTER_FINISH)
                .bytes(body)
                .u64(*generation)
                .u32(*max_guesses)
                .0
                .clone(),
            Reply::Challenge {
                ke2,
                profile,
                guesses_left,
                ticket,
                drop_body,
            } => W::new(OP_RECOVER_START)
                .bytes(ke2)
                .u8(profile.id())
                .u32(*guesses_left)
                .bytes(ticket)
                .u8(u8::from(*drop_body))
                .0
                .clone(),
            Reply::Recovered {
                release_blob,
                max_guesses,
            } => W::new(OP_RECOVER_FINISH)
                .bytes(release_blob)
                .u32(*max_guesses)
                .0
                .clone(),
            Reply::Status(s) => {
                let mut w = W::new(OP_STATUS);
                w.u8(u8::from(s.exists))
                    .u8(u8::from(s.destroyed))
                    .u32(s.max_guesses);
                match (s.guesses_left, s.generation) {
                    (Some(left), Some(generation)) => w.u8(1).u32(left).u64(generation),
                    _ => w.u8(0),
                };
                w.0
            }
            Reply::Deleted => W::new(OP_DELETE).0,
            Reply::HeadAuthorized => W::new(OP_AUTHORIZE_HEAD).0,
            Reply::Head(None) => W::new(OP_GET_HEAD).u8(0).0.clone(),
            Reply::Head(Some(h)) => W::new(OP_GET_HEAD).u8(1).bytes(h).0.clone(),
            Reply::Error(e) => W::new(TAG_ERROR)
                .bytes(e.code().as_str().as_bytes())
                .u64(error_detail(e))
                .0
                .clone(),
        }
    }

    /// Parses a reply; refuses anything [`Reply::encode`] would not produce.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, tag) = R::open(bytes)?;
        let reply = match tag {
            OP_RESOLVE => Reply::Resolved { cred: r.cred()? },
            OP_REGISTER_START => Reply::RegisterStarted {
                response: r.bytes()?,
                ticket: r.bytes()?,
            },
            OP_REGISTER_FINISH => Reply::Registered {
                body: r.bytes()?,
                generation: r.u64()?,
                max_guesses: r.u32()?,
            },
            OP_RECOVER_START => Reply::Challenge {
                ke2: r.bytes()?,
                profile: KsfProfile::from_id(r.u8()?).ok_or(DecodeError::Malformed)?,
                guesses_left: r.u32()?,
                ticket: r.bytes()?,
                drop_body: r.flag()?,
            },
            OP_RECOVER_FINISH => Reply::Recovered {
                release_blob: r.bytes()?,
                max_guesses: r.u32()?,
            },
            OP_STATUS => {
                let exists = r.flag()?;
                let destroyed = r.flag()?;
                let max_guesses = r.u32()?;
                let (guesses_left, generation) = if r.flag()? {
                    (Some(r.u32()?), Some(r.u64()?))
                } else {
                    (None, None)
                };
                Reply::Status(crate::Status {
                    exists,
                    destroyed,
                    guesses_left,
                    max_guesses,
                    generation,
                })
            }
            OP_DELETE => Reply::Deleted,
            OP_AUTHORIZE_HEAD => Reply::HeadAuthorized,
            OP_GET_HEAD => Reply::Head(if r.flag()? { Some(r.bytes()?) } else { None }),
            TAG_ERROR => {
                let code = std::str::from_utf8(&r.bytes()?)
                    .ok()
                    .and_then(|s| s.parse::<ErrorCode>().ok())
                    .ok_or(DecodeError::Malformed)?;
                let detail = r.u64()?;
                let e = error_from_wire(code, detail)?;
                // A detail the code does not carry would re-encode differently: refused,
                // so every reply has exactly one encoding.
                if error_detail(&e) != detail {
                    return Err(DecodeError::Malformed);
                }
                Reply::Error(e)
            }
            _ => return Err(DecodeError::Malformed),
        };
        r.end(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred() -> CredentialId {
        CredentialId::from_bytes([7; 32])
    }

    #[test]
    fn every_request_round_trips_and_no_truncation_or_extension_decodes() {
        let reqs = [
            Request::Resolve {
                account: b"t\0alice".to_vec(),
            },
            Request::RegisterStart {
                cred: cred(),
                request: vec![1; 32],
            },
            Request::RegisterFinish {
                cred: cred(),
                ticket: vec![2; 69],
                upload: vec![3; 192],
                wrapped_key: vec![4; 61],
                owner_key: vec![5; 32],
                profile: "test-cheap".into(),
                authority: WireAuthority::OwnerProof {
                    generation: 9,
                    signature: vec![6; 64],
                },
            },
            Request::RecoverStart {
                cred: cred(),
                body: Some(vec![8; 300]),
                ke1: vec![9; 96],
            },
            Request::RecoverStart {
                cred: cred(),
                body: None,
                ke1: vec![9; 96],
            },
            Request::RecoverFinish {
                cred: cred(),
                ticket: vec![1; 10],
                ke3: vec![2; 64],
            },
            Request::Status { cred: cred() },
            Request::Delete {
                cred: cred(),
                authority: WireAuthority::ResetScope,
            },
            Request::AuthorizeHead {
                cred: cred(),
                authority: WireAuthority::Token,
                blob: vec![3; 73],
            },
            Request::GetHead { cred: cred() },
        ];
        for req in reqs {
            let b = req.encode();
            assert_eq!(Request::decode(&b), Ok(req.clone()));
            for cut in 0..b.len() {
                assert!(Request::decode(&b[..cut]).is_err(), "{req:?} cut at {cut}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(Request::decode(&longer), Err(DecodeError::Malformed));
            let mut v2 = b.clone();
            v2[0] = 2;
            assert_eq!(Request::decode(&v2), Err(DecodeError::Version));
        }
    }

    #[test]
    fn every_reply_round_trips() {
        let replies = [
            Reply::Resolved { cred: cred() },
            Reply::Challenge {
                ke2: vec![1; 320],
                profile: KsfProfile::TestCheap,
                guesses_left: 3,
                ticket: vec![2; 260],
                drop_body: true,
            },
            Reply::Status(crate::Status {
                exists: true,
                destroyed: false,
                guesses_left: Some(4),
                max_guesses: 10,
                generation: Some(2),
            }),
            Reply::Error(CoreError::WrongPassword { guesses_left: 5 }),
            Reply::Error(CoreError::Owner(OwnerProofError::Stale { generation: 7 })),
            Reply::Error(CoreError::KeyDestroyed { drop_body: true }),
            Reply::Error(CoreError::HeadNotNewer { kept: 12 }),
            Reply::Deleted,
            Reply::Head(None),
            Reply::Head(Some(vec![7; 73])),
        ];
        for r in replies {
            assert_eq!(Reply::decode(&r.encode()), Ok(r.clone()));
        }
    }
}
