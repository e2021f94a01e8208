//! The core protocol's decoders are strict: every message has one encoding, so whatever
//! decodes re-encodes to the same bytes (the `core_request`/`core_reply` fuzz targets'
//! property, here for the cases they found).
#![allow(clippy::unwrap_used)]

use coffer_vault_core::fuzzing::{self, Fixture};
use coffer_vault_core::protocol::{DecodeError, Reply, Request};

/// An error reply: `version || 0xFF || u16 len || code || detail(u64 LE)`.
fn error_reply(code: &str, detail: u64) -> Vec<u8> {
    let mut b = vec![1, 0xff];
    b.extend_from_slice(&(code.len() as u16).to_le_bytes());
    b.extend_from_slice(code.as_bytes());
    b.extend_from_slice(&detail.to_le_bytes());
    b
}

#[test]
fn an_error_detail_its_code_does_not_carry_is_refused() {
    // Details the encoder writes decode and re-encode to themselves.
    for (code, detail) in [
        ("wrong_password", 3),
        ("key_destroyed", 1),
        ("key_destroyed", 0),
        ("owner_proof_stale", 9),
        ("no_login", 0),
    ] {
        let b = error_reply(code, detail);
        assert!(fuzzing::core_reply(&b), "{code} {detail} refused");
    }
    // Anything else would be rewritten on the way (a second encoding of one reply).
    for (code, detail) in [
        ("key_destroyed", 2),
        ("no_login", 5),
        ("storage_rolled_back", 1),
        ("wrong_password", u64::from(u32::MAX) + 1),
    ] {
        assert_eq!(
            Reply::decode(&error_reply(code, detail)),
            Err(DecodeError::Malformed),
            "{code} with detail {detail}"
        );
    }
}

#[test]
fn every_seeded_request_and_reply_round_trips() {
    let fx = Fixture::new().unwrap();
    let reqs = fuzzing::every_request(&fx);
    assert!(reqs.len() >= 8);
    for r in reqs {
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
    }
    for r in fuzzing::every_reply(&fx) {
        assert!(fuzzing::core_reply(&r.encode()), "{r:?}");
    }
}
