//! Bearer tokens over real HTTP against the real binary: the EdDSA tenant path, algorithm
//! confusion, swapped `kid`s, `nbf`/`iat` in the future, and when development HS256
//! tokens are accepted.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// An app's auth server: an Ed25519 key pair, its public key written as a PEM file.
struct Tenant {
    name: &'static str,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
    pem: Vec<u8>,
    pem_path: String,
}

fn tenant(dir: &Path, name: &'static str) -> Tenant {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    // SubjectPublicKeyInfo for Ed25519 (RFC 8410): a fixed 12-byte prefix, then the key.
    let mut spki = hex::decode("302a300506032b6570032100").unwrap();
    spki.extend_from_slice(&public);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    )
    .into_bytes();
    let pem_path = dir.join(format!("{name}.pem"));
    std::fs::write(&pem_path, &pem).unwrap();
    Tenant {
        name,
        pkcs8: pkcs8.as_ref().to_vec(),
        public,
        pem,
        pem_path: pem_path.to_str().unwrap().to_string(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The vault id (the tokens' audience), read from a development token's payload.
fn vault_id(dir: &Path) -> String {
    let dev = token(dir, "probe", "1h");
    let payload = URL_SAFE_NO_PAD
        .decode(dev.split('.').nth(1).unwrap())
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    claims["aud"].as_str().unwrap().to_string()
}

fn claims(aud: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({"sub": "alice", "aud": aud, "exp": now() + 600, "iat": now()});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn eddsa(t: &Tenant, kid: &str, claims: &serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(&t.pkcs8)).unwrap()
}

fn hs256(secret: &[u8], kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// `alg: none`: header and claims, an empty signature.
fn unsigned(kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut h = serde_json::json!({"alg": "none", "typ": "JWT"});
    if let Some(k) = kid {
        h["kid"] = k.into();
    }
    let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.", enc(&h), enc(claims))
}

/// `GET /v1/status` with `tok`: the status and the error code (`ok` for 200).
fn status_with(url: &str, tok: &str) -> (u16, String) {
    let mut resp = agent()
        .get(format!("{url}/v1/status"))
        .header("Authorization", format!("Bearer {tok}"))
        .call()
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let code = body["error"]["code"].as_str().unwrap_or("ok").to_string();
    if status != 200 {
        let msg = body["error"]["message"].as_str().unwrap_or("");
        assert!(!msg.is_empty(), "{code} has a message");
    }
    (status, code)
}

#[test]
fn tenant_tokens_verify_and_confused_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    let aud = vault_id(dir);
    let keys = tempfile::tempdir().unwrap();
    let (acme, other) = (tenant(keys.path(), "acme"), tenant(keys.path(), "other"));
    let flags = [
        format!("--tenant-key=acme={}", acme.pem_path),
        format!("--tenant-key=other={}", other.pem_path),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let v = start(dir, &flags, &[]);
    let c = claims(&aud, serde_json::json!({}));
    let dev = token(dir, "alice", "1h");

    let cases = [
        (
            "a tenant's EdDSA token",
            eddsa(&acme, "acme", &c),
            200,
            "ok",
        ),
        ("another tenant's", eddsa(&other, "other", &c), 200, "ok"),
        (
            "signed by acme, kid swapped to other",
            eddsa(&acme, "other", &c),
            401,
            "bad_signature",
        ),
        (
            "a kid nobody configured",
            eddsa(&acme, "nobody", &c),
            401,
            "unknown_tenant",
        ),
        (
            "HS256 keyed with the tenant's public key PEM",
            hs256(&acme.pem, Some("acme"), &c),
            401,
            "wrong_algorithm",
        ),
        (
            "HS256 keyed with the tenant's raw public key",
            hs256(&acme.public, Some("acme"), &c),
            401,
            "wrong_algorithm",
        ),
        (
            "alg none with the tenant's kid",
            unsigned(Some("acme"), &c),
            401,
            "bad_token",
        ),
        ("alg none without kid", unsigned(None, &c), 401, "bad_token"),
        (
            "EdDSA without kid (checked as a dev token)",
            {
                let h = Header::new(Algorithm::EdDSA);
                jsonwebtoken::encode(&h, &c, &EncodingKey::from_ed_der(&acme.pkcs8)).unwrap()
            },
            401,
            "dev_tokens_disabled",
        ),
        (
            "a development HS256 token while tenant keys are configured",
            dev.clone(),
            401,
            "dev_tokens_disabled",
        ),
        (
            "nbf a minute ahead",
            eddsa(
                &acme,
                "acme",
                &claims(&aud, serde_json::json!({"nbf": now() + 60})),
            ),
            401,
            "token_not_yet_valid",
        ),
        (
            "nbf passed",
            eddsa(
                &acme,
                "acme",
                &claims(&aud, serde_json::json!({"nbf": now() - 60})),
            ),
            200,
            "ok",
        ),
        (
            "iat a minute ahead",
            eddsa(
                &acme,
                "acme",
                &claims(&aud, serde_json::json!({"iat": now() + 60})),
            ),
            401,
            "token_issued_in_future",
        ),
        (
            "expired",
            eddsa(
                &acme,
                "acme",
                &claims(&aud, serde_json::json!({"exp": now() - 60})),
            ),
            401,
            "token_expired",
        ),
        (
            "another vault's audience",
            eddsa(
                &acme,
                "acme",
                &claims(&"0".repeat(32), serde_json::json!({})),
            ),
            401,
            "wrong_audience",
        ),
    ];
    for (name, tok, want_status, want_code) in &cases {
        assert_eq!(
            status_with(&v.url, tok),
            (*want_status, want_code.to_string()),
            "{name}"
        );
    }
    stop(v);

    // With --dev-tokens the development key works beside the tenant keys; nothing else
    // changes (a swapped kid still fails).
    let mut dev_flags = flags.clone();
    dev_flags.push("--dev-tokens");
    let v = start(dir, &dev_flags, &[]);
    assert_eq!(status_with(&v.url, &dev), (200, "ok".into()));
    assert_eq!(
        status_with(&v.url, &eddsa(&acme, "acme", &c)),
        (200, "ok".into())
    );
    assert_eq!(
        status_with(&v.url, &eddsa(&other, "acme", &c)),
        (401, "bad_signature".into())
    );
    assert_eq!(
        status_with(&v.url, &unsigned(None, &c)),
        (401, "bad_token".into())
    );
}

#[test]
fn dev_tokens_work_without_tenant_keys_and_respect_nbf_and_iat() {
    let (tmp, v) = vault(&[]);
    let aud = vault_id(tmp.path());
    let key = read_token_key(tmp.path());
    assert_eq!(
        status_with(&v.url, &token(tmp.path(), "alice", "1h")),
        (200, "ok".into())
    );
    let future = |extra| hs256(&key, None, &claims(&aud, extra));
    assert_eq!(
        status_with(&v.url, &future(serde_json::json!({"nbf": now() + 60}))),
        (401, "token_not_yet_valid".into())
    );
    assert_eq!(
        status_with(&v.url, &future(serde_json::json!({"iat": now() + 60}))),
        (401, "token_issued_in_future".into())
    );
    // Within the 5 s leeway a slightly fast auth-server clock is tolerated.
    assert_eq!(
        status_with(
            &v.url,
            &future(serde_json::json!({"iat": now() + 2, "nbf": now() + 2}))
        ),
        (200, "ok".into())
    );
}

/// The development HS256 key from the host's key file (bytes 25..57, docs/VAULT-CORE.md).
fn read_token_key(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("host.key")).unwrap()[25..57].to_vec()
}

#[test]
fn token_reset_scope_flag_mints_the_scope_claim() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    let scope_of = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["token", "--account", "alice", "--data"])
            .arg(tmp.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        let tok = String::from_utf8(out.stdout).unwrap();
        let payload = URL_SAFE_NO_PAD
            .decode(tok.trim().split('.').nth(1).unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["scope"].clone()
    };
    assert_eq!(scope_of(&["--reset-scope"]), "coffer.reset");
    assert_eq!(scope_of(&[]), serde_json::Value::Null);
}

#[test]
fn a_tenant_named_dev_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    let t = tenant(tmp.path(), "dev");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path())
        .arg(format!("--tenant-key=dev={}", t.pem_path))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not `dev`"), "{err}");
    assert_eq!(t.name, "dev");
}
