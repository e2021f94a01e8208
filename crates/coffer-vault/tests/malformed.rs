//! Every kind of bad input gets a 4xx with a JSON error, never a 500 or a crash.
#![allow(clippy::unwrap_used)]

mod common;

use coffer_vault_proto::client;
use coffer_vault_proto::wire::b64;
use common::*;
use rand_core::OsRng;

fn send(
    url: &str,
    path: &str,
    auth: Option<&str>,
    ct: Option<&str>,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(format!("{url}{path}"));
    if let Some(a) = auth {
        req = req.header("Authorization", format!("Bearer {a}"));
    }
    if let Some(c) = ct {
        req = req.header("Content-Type", c);
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn code(v: &serde_json::Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no JSON error>")
}

#[test]
fn malformed_inputs_get_4xx_json_errors() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let tok = token(tmp.path(), "mallory", "1h");
    let json = Some("application/json");
    let (ke1, _) = client::recover_start(b"pw", &mut OsRng).unwrap();
    let ke1_json = |bytes: &[u8]| format!(r#"{{"v":1,"ke1":"{}"}}"#, b64(bytes)).into_bytes();
    // A well-formed registration upload (made against a throwaway core) to pair with a
    // forged ticket.
    let upload = {
        let core = coffer_vault_core::VaultCore::new(
            &coffer_vault_core::CoreKeys::generate(&mut OsRng),
            10,
            [],
        )
        .unwrap();
        let cred = coffer_vault_core::CredentialId::from_bytes([0; 32]);
        let (req, st) = client::register_start(b"pw", &mut OsRng).unwrap();
        let started = core
            .register_start(&cred, &req, u64::MAX, &mut OsRng)
            .unwrap();
        st.finish(
            &started.response,
            &[1; 32],
            coffer_vault_core::KsfProfile::TestCheap,
            &mut OsRng,
        )
        .unwrap()
    };
    let url = &v.url;
    let cases: Vec<(&str, u16, &str, (u16, serde_json::Value))> = vec![
        (
            "bad base64",
            400,
            "bad_base64",
            send(
                url,
                "/v1/recover/start",
                Some(&tok),
                json,
                br#"{"v":1,"ke1":"***"}"#,
            ),
        ),
        (
            "truncated KE1",
            400,
            "malformed_message",
            send(
                url,
                "/v1/recover/start",
                Some(&tok),
                json,
                &ke1_json(&ke1[..ke1.len() - 1]),
            ),
        ),
        (
            "oversized KE1",
            400,
            "malformed_message",
            send(
                url,
                "/v1/recover/start",
                Some(&tok),
                json,
                &ke1_json(&[ke1.as_slice(), &[0]].concat()),
            ),
        ),
        (
            "empty KE1",
            400,
            "malformed_message",
            send(url, "/v1/recover/start", Some(&tok), json, &ke1_json(&[])),
        ),
        (
            "wrong content type",
            415,
            "wrong_content_type",
            send(
                url,
                "/v1/recover/start",
                Some(&tok),
                Some("text/plain"),
                &ke1_json(&ke1),
            ),
        ),
        (
            "no content type",
            415,
            "wrong_content_type",
            send(url, "/v1/recover/start", Some(&tok), None, &ke1_json(&ke1)),
        ),
        (
            "body over limit",
            413,
            "body_too_large",
            send(
                url,
                "/v1/recover/start",
                Some(&tok),
                json,
                &vec![b' '; 64 * 1024],
            ),
        ),
        (
            "not JSON",
            400,
            "bad_json",
            send(url, "/v1/recover/start", Some(&tok), json, b"{nope"),
        ),
        (
            "unknown field",
            400,
            "bad_json",
            send(
                url,
                "/v1/recover/start",
                Some(&tok),
                json,
                br#"{"v":1,"ke1":"","x":1}"#,
            ),
        ),
        (
            "wrong version",
            400,
            "unsupported_version",
            send(
                url,
                "/v1/recover/start",
                Some(&tok),
                json,
                br#"{"v":2,"ke1":""}"#,
            ),
        ),
        (
            "missing token",
            401,
            "missing_token",
            send(url, "/v1/recover/start", None, json, &ke1_json(&ke1)),
        ),
        (
            "garbage token",
            401,
            "bad_token",
            send(url, "/v1/recover/start", Some("abc"), json, &ke1_json(&ke1)),
        ),
        (
            "expired token",
            401,
            "token_expired",
            send(
                url,
                "/v1/recover/start",
                Some(&token(tmp.path(), "mallory", "-1h")),
                json,
                &ke1_json(&ke1),
            ),
        ),
        (
            "unknown session",
            409,
            "no_login",
            send(
                url,
                "/v1/recover/finish",
                Some(&tok),
                json,
                br#"{"v":1,"session":"AAAA","ke3":"AAAA"}"#,
            ),
        ),
        (
            "bad upload",
            400,
            "malformed_message",
            send(
                url,
                "/v1/register/finish",
                Some(&tok),
                json,
                br#"{"v":1,"upload":"AAAA","wrapped_key":"AAAA","profile":"argon2id-test","ticket":"AAAA","owner_key":"AAAA"}"#,
            ),
        ),
        (
            "forged registration ticket",
            409,
            "no_registration",
            send(
                url,
                "/v1/register/finish",
                Some(&tok),
                json,
                format!(
                    r#"{{"v":1,"upload":"{}","wrapped_key":"{}","profile":"argon2id-test","ticket":"{}","owner_key":"{}"}}"#,
                    b64(&upload.upload),
                    b64(&upload.wrapped_key),
                    b64(&[0u8; 69]),
                    b64(&upload.owner_key)
                )
                .as_bytes(),
            ),
        ),
        (
            "bad registration request",
            400,
            "malformed_message",
            send(
                url,
                "/v1/register/start",
                Some(&tok),
                json,
                br#"{"v":1,"request":"AAAA"}"#,
            ),
        ),
        (
            "unknown endpoint",
            404,
            "not_found",
            send(url, "/v1/nope", Some(&tok), json, b"{}"),
        ),
    ];
    let out = std::process::Command::new(BIN)
        .args(["token", "--data"])
        .arg(tmp.path())
        .args([
            "--account",
            "mallory",
            "--audience",
            "00112233445566778899aabbccddeeff",
        ])
        .output()
        .unwrap();
    let foreign = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let wrong_aud = send(
        url,
        "/v1/recover/start",
        Some(&foreign),
        json,
        &ke1_json(&ke1),
    );
    // A token signed by another vault's development key.
    let other = tempfile::tempdir().unwrap();
    init(other.path());
    let forged = send(
        url,
        "/v1/recover/start",
        Some(&token(other.path(), "mallory", "1h")),
        json,
        &ke1_json(&ke1),
    );
    let mut all = cases;
    all.push(("wrong audience", 401, "wrong_audience", wrong_aud));
    all.push(("other vault's key", 401, "bad_signature", forged));
    for (name, want_status, want_code, (status, body)) in &all {
        assert_eq!(
            (*status, code(body)),
            (*want_status, *want_code),
            "{name}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert_eq!(body["v"], 1, "{name}");
    }
    // The server is still alive and healthy, and never answered 5xx.
    assert_eq!(
        metric(&v.metrics, "coffer_vault_errors_total{class=\"5xx\"}"),
        0
    );
    assert_eq!(
        ureq::get(format!("{url}/healthz")).call().unwrap().status(),
        200
    );
}

#[test]
fn unknown_accounts_get_a_dummy_ke2_of_the_same_size() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let known = token(tmp.path(), "known", "1h");
    coffer_vault_client::VaultClient::new(&v.url, &known)
        .unwrap()
        .register(b"pw", &[1; 32], coffer_vault_client::KsfProfile::TestCheap)
        .unwrap();
    let unknown = token(tmp.path(), "unknown", "1h");
    let mut shapes = Vec::new();
    for t in [&known, &unknown] {
        let (ke1, _) = client::recover_start(b"pw", &mut OsRng).unwrap();
        let body = format!(r#"{{"v":1,"ke1":"{}"}}"#, b64(&ke1));
        let (status, reply) = send(
            &v.url,
            "/v1/recover/start",
            Some(t),
            Some("application/json"),
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{reply}");
        shapes.push((
            reply["ke2"].as_str().unwrap().len(),
            reply["profile"].clone(),
            reply["guesses_left"].clone(),
        ));
    }
    assert_eq!(shapes[0], shapes[1]);
    assert_eq!(metric(&v.metrics, "coffer_vault_ke2_total"), 2);
}
