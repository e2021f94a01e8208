//! Replays every file of the fuzz corpora (`fuzz/corpus/<target>/`) through the same
//! `coffer_vault::fuzzing` entry points the cargo-fuzz targets call, on stable Rust, so
//! `cargo test` keeps every input the fuzzer once found interesting (and every crash it
//! found, kept as a corpus file) passing. docs/FUZZING.md says how the corpora are made.
//!
//! `cargo test -p coffer-vault --test fuzz_corpus -- --ignored write_seed_corpora` writes
//! the hand-made seeds the corpora started from (then `cargo fuzz cmin` minimises them);
//! `write_core_seed_corpora` does the same for the vault core's targets
//! (`coffer_vault_core::fuzzing`: real OPAQUE messages, tickets, records and owner proofs).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_vault::fuzzing::{self, FUZZ_AUDIENCE, FUZZ_DEV_KEY, FUZZ_TENANT_SEED};
use coffer_vault::keyfile::{KEY_FILE, KeyFile};
use coffer_vault_core::fuzzing::{self as core_fuzzing, Fixture};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Every file of `target`'s corpus; a corpus with fewer than `min` files is an error
/// (a replay of nothing proves nothing).
fn inputs(target: &str, min: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(corpus(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    assert!(v.len() >= min, "{target}: only {} corpus files", v.len());
    v
}

#[test]
fn request_body_corpus_replays() {
    let accepted: usize = inputs("request_body", 10)
        .iter()
        .map(|(_, b)| fuzzing::request_body(b))
        .sum();
    assert!(accepted > 0, "no corpus body parses: the corpus went stale");
}

#[test]
fn authorization_corpus_replays() {
    let auth = fuzzing::fuzz_auth();
    let accepted = inputs("authorization", 10)
        .iter()
        .filter(|(_, b)| fuzzing::authorization(&auth, b))
        .count();
    assert!(
        accepted > 0,
        "no corpus token verifies: the corpus went stale"
    );
}

#[test]
fn key_file_corpus_replays() {
    let accepted = inputs("key_file", 5)
        .iter()
        .filter(|(_, b)| fuzzing::key_file(b))
        .count();
    assert!(
        accepted > 0,
        "no corpus key file parses: the corpus went stale"
    );
}

/// Every vault core target's corpus replays; in each but `ke3` (whose inputs verify only
/// if libFuzzer forges a MAC) at least one input is still accepted: a seed stays valid
/// because the fixture's keys are constant.
#[test]
fn core_corpora_replay() {
    let fx = Fixture::new().unwrap();
    for target in core_fuzzing::TARGETS {
        let accepted = inputs(target, 3)
            .iter()
            .filter(|(path, b)| {
                core_fuzzing::run(&fx, target, b)
                    .unwrap_or_else(|| panic!("{}: unknown target", path.display()))
            })
            .count();
        assert!(
            target == "ke3" || accepted > 0,
            "{target}: no corpus input is accepted: the corpus went stale"
        );
    }
}

#[test]
#[ignore = "writes the seed corpora into the source tree; run by hand (docs/FUZZING.md)"]
fn write_core_seed_corpora() {
    let fx = Fixture::new().unwrap();
    for target in core_fuzzing::TARGETS {
        let seeds = core_fuzzing::seeds(&fx, target);
        assert!(seeds.len() >= 5, "{target}: {} seeds", seeds.len());
        write_seeds(target, &seeds);
    }
}

/// Signs `claims` as tenant `acme` of [`fuzzing::fuzz_auth`].
fn tenant_token(kid: &str, claims: &serde_json::Value) -> String {
    // PKCS#8 v1 of an Ed25519 seed (RFC 8410): a fixed 16-byte prefix, then the seed.
    let mut pkcs8 = hex::decode("302e020100300506032b657004220420").unwrap();
    pkcs8.extend_from_slice(&FUZZ_TENANT_SEED);
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(&pkcs8)).unwrap()
}

fn dev_token(kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(&FUZZ_DEV_KEY)).unwrap()
}

fn write_seeds(target: &str, seeds: &[Vec<u8>]) {
    let dir = corpus(target);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
    }
}

#[test]
#[ignore = "writes the seed corpora into the source tree; run by hand (docs/FUZZING.md)"]
fn write_seed_corpora() {
    let b64 = |n: usize| URL_SAFE_NO_PAD.encode(vec![0xa5u8; n]);
    let bodies: Vec<String> = vec![
        format!(r#"{{"v":1,"request":"{}"}}"#, b64(32)),
        format!(
            r#"{{"v":1,"upload":"{}","wrapped_key":"{}","profile":"argon2id-rfc9106-2"}}"#,
            b64(192),
            b64(61)
        ),
        format!(r#"{{"v":1,"ke1":"{}"}}"#, b64(96)),
        format!(r#"{{"v":1,"session":"{}","ke3":"{}"}}"#, b64(178), b64(64)),
        r#"{"v":1}"#.into(),
        r#"{"v":2}"#.into(),
        r#"{"v":256}"#.into(),
        r#"{"v":-1,"ke1":""}"#.into(),
        r#"{"v":1,"ke1":"AA=="}"#.into(),
        r#"{"v":1,"ke1":"+/+/"}"#.into(),
        r#"{"v":1,"ke1":"A"}"#.into(),
        r#"{"v":1,"ke1":"\u00e9\ud800"}"#.into(),
        r#"{"v":1,"ke1":null}"#.into(),
        r#"{"v":1,"ke1":"AAAA","extra":1}"#.into(),
        r#"{"v":1,"v":1}"#.into(),
        r#"[1,"AAAA"]"#.into(),
        r#"{"v":1e400}"#.into(),
        format!("{}1{}", "[".repeat(200), "]".repeat(200)),
        String::new(),
        "\u{feff}{\"v\":1}".into(),
    ];
    let mut seeds: Vec<Vec<u8>> = bodies.into_iter().map(String::into_bytes).collect();
    seeds.push(b"{\"v\":1,\"ke1\":\"\xff\xfe\"}".to_vec());
    write_seeds("request_body", &seeds);

    let now = 1_767_225_600u64; // 2026-01-01
    let forever = 4_102_444_800u64; // 2100-01-01
    let c = |extra: serde_json::Value| {
        let mut c =
            serde_json::json!({"sub": "alice", "aud": FUZZ_AUDIENCE, "exp": forever, "iat": now});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let none = serde_json::json!({});
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"acme"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c(none.clone())).unwrap())
    );
    let tokens = [
        tenant_token("acme", &c(none.clone())),
        tenant_token(
            "acme",
            &c(serde_json::json!({"scope": "openid coffer.reset"})),
        ),
        tenant_token("acme", &c(serde_json::json!({"scope": ["coffer.reset"]}))),
        tenant_token("acme", &c(serde_json::json!({"nbf": forever}))),
        tenant_token("acme", &c(serde_json::json!({"iat": forever}))),
        tenant_token("acme", &c(serde_json::json!({"exp": 1}))),
        tenant_token("acme", &c(serde_json::json!({"aud": "other"}))),
        tenant_token("acme", &c(serde_json::json!({"sub": ""}))),
        tenant_token(
            "acme",
            &serde_json::json!({"aud": FUZZ_AUDIENCE, "exp": forever}),
        ),
        tenant_token("other", &c(none.clone())),
        dev_token(None, &c(none.clone())),
        dev_token(Some("acme"), &c(none.clone())),
        dev_token(None, &c(serde_json::json!({"aud": [FUZZ_AUDIENCE, "x"]}))),
        unsigned,
        "a.b.c".into(),
        "..".into(),
        String::new(),
    ];
    let mut seeds: Vec<Vec<u8>> = tokens
        .iter()
        .map(|t| format!("Bearer {t}").into_bytes())
        .collect();
    seeds.push(b"Basic YWxpY2U6cHc=".to_vec());
    seeds.push(b"bearer x.y.z".to_vec());
    seeds.push(b"Bearer \xff\xfe".to_vec());
    write_seeds("authorization", &seeds);

    let tmp = tempfile::tempdir().unwrap();
    KeyFile::init(tmp.path(), [0x5a; 16]).unwrap();
    let good = std::fs::read(tmp.path().join(KEY_FILE)).unwrap();
    // host.key: "COFFERHK" || version(1) || vault_id(16) || token_key(32).
    let mut seeds = vec![
        good.clone(),
        good[..25].to_vec(),
        good[..good.len() - 1].to_vec(),
        [good.as_slice(), &[0]].concat(),
    ];
    let mut v2 = good.clone();
    v2[8] = 2;
    seeds.push(v2);
    let mut legacy = good.clone();
    legacy[..8].copy_from_slice(b"COFFERVK");
    seeds.push(legacy);
    seeds.push(b"COFFERHK".to_vec());
    write_seeds("key_file", &seeds);
}
