//! Entry points of the fuzz targets (`crates/coffer-vault/fuzz`, docs/FUZZING.md), kept in
//! the library so the targets stay thin shells and `tests/fuzz_corpus.rs` replays every
//! corpus file through exactly the code libFuzzer ran, on stable Rust. Each takes
//! untrusted bytes and must neither panic nor hang, whatever they are.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use coffer_vault_proto::wire::{self, WIRE_VERSION};
use jsonwebtoken::DecodingKey;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::de::DeserializeOwned;

use crate::api::{HasVersion, field, parse};
use crate::auth::Auth;
use crate::keyfile::KeyFile;

/// The audience of [`fuzz_auth`]'s tokens.
pub const FUZZ_AUDIENCE: &str = "00112233445566778899aabbccddeeff";
/// The development HS256 key of [`fuzz_auth`].
pub const FUZZ_DEV_KEY: [u8; 32] = [0x11; 32];
/// The Ed25519 seed of [`fuzz_auth`]'s tenant `acme` (seeds for the corpus are signed
/// with it, so the fuzzer starts from tokens that verify).
pub const FUZZ_TENANT_SEED: [u8; 32] = [0x42; 32];

/// Every endpoint's body parser, as the handlers run it: content type, JSON into the
/// wire request type, version, then each binary field's base64. Every input goes through
/// all five, so one corpus covers them all. Returns how many accepted it.
pub fn request_body(body: &[u8]) -> usize {
    [
        accepts::<wire::RegisterStartRequest>(body, |r| vec![(&r.request, "request")]),
        accepts::<wire::RegisterFinishRequest>(body, |r| {
            let mut f = vec![
                (&r.upload, "upload"),
                (&r.wrapped_key, "wrapped_key"),
                (&r.ticket, "ticket"),
                (&r.owner_key, "owner_key"),
            ];
            f.extend(
                r.owner_proof
                    .iter()
                    .map(|p| (&p.signature, "owner_proof.signature")),
            );
            f
        }),
        accepts::<wire::RecoverStartRequest>(body, |r| vec![(&r.ke1, "ke1")]),
        accepts::<wire::RecoverFinishRequest>(body, |r| {
            vec![(&r.session, "session"), (&r.ke3, "ke3")]
        }),
        accepts::<wire::DeleteRequest>(body, |r| {
            r.owner_proof
                .iter()
                .map(|p| (&p.signature, "owner_proof.signature"))
                .collect()
        }),
    ]
    .into_iter()
    .filter(|ok| *ok)
    .count()
}

/// Whether the handlers' `parse` and `field` accept `body` as a `T` whose binary fields
/// are `fields`. An error must be a 4xx, and is rendered as the reply it becomes (its
/// message quotes serde's error).
fn accepts<T: DeserializeOwned + HasVersion>(
    body: &[u8],
    fields: impl Fn(&T) -> Vec<(&String, &'static str)>,
) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let r = parse::<T>(&headers, Ok(Bytes::copy_from_slice(body))).and_then(|msg| {
        assert_eq!(
            msg.version(),
            WIRE_VERSION,
            "parse let another version through"
        );
        fields(&msg)
            .into_iter()
            .try_for_each(|(value, name)| field(value, name).map(drop))
    });
    match r {
        Ok(()) => true,
        Err(e) => {
            assert!(e.status.is_client_error(), "{}: {}", e.code, e.message);
            drop(e.into_response());
            false
        }
    }
}

/// An [`Auth`] with one tenant (`acme`, key from [`FUZZ_TENANT_SEED`]) and development
/// tokens allowed beside it, so both verification paths are reachable.
pub fn fuzz_auth() -> Auth {
    let public = Ed25519KeyPair::from_seed_unchecked(&FUZZ_TENANT_SEED)
        .map(|k| k.public_key().as_ref().to_vec())
        .unwrap_or_default();
    let tenants = HashMap::from([("acme".to_string(), DecodingKey::from_ed_der(&public))]);
    Auth::new(FUZZ_AUDIENCE.into(), &FUZZ_DEV_KEY, tenants).allow_dev_tokens()
}

/// `Auth::authenticate` on arbitrary `Authorization` header bytes; whether it accepted.
pub fn authorization(auth: &Auth, value: &[u8]) -> bool {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(value) {
        headers.insert(header::AUTHORIZATION, v);
    }
    match auth.authenticate(&headers) {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(e.status.as_u16(), 401, "{}: {}", e.code, e.message);
            drop(e.into_response());
            false
        }
    }
}

/// The key file parser; whatever it accepts must serialise back to the same bytes (there
/// is one encoding of each key file). Whether it accepted.
pub fn key_file(bytes: &[u8]) -> bool {
    let Some(kf) = KeyFile::from_bytes(bytes) else {
        return false;
    };
    assert_eq!(
        kf.to_bytes().as_slice(),
        bytes,
        "key file does not round-trip"
    );
    true
}
