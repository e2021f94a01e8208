//! `serve --tls-cert/--tls-key` over real HTTPS through rustls, with a certificate made in
//! the test: the API answers over TLS, only to a client that trusts that certificate, and
//! plain HTTP to the TLS port gets no answer.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

fn tls_agent(roots: RootCerts) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
        .into()
}

#[test]
fn the_api_is_served_over_tls_with_the_given_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
    let v = start(
        dir,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        &[],
    );
    let port = v.url.strip_prefix("https://127.0.0.1:").unwrap();
    let trusting = tls_agent(RootCerts::Specific(Arc::new(vec![
        Certificate::from_der(ck.cert.der()).to_owned(),
    ])));

    let mut resp = trusting.get(format!("{}/healthz", v.url)).call().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body_mut().read_to_string().unwrap(), "ok");
    let tok = token(dir, "alice", "1h");
    let mut resp = trusting
        .get(format!("{}/v1/status", v.url))
        .header("Authorization", format!("Bearer {tok}"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["exists"], false, "{body}");
    // The handshake really checks the certificate: a client trusting only the public web
    // roots refuses this one.
    let untrusting = tls_agent(RootCerts::WebPki);
    assert!(
        untrusting.get(format!("{}/healthz", v.url)).call().is_err(),
        "a certificate nobody vouches for must not verify"
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = tls_agent(RootCerts::WebPki).get(format!("http://127.0.0.1:{port}/healthz"));
    match plain.call() {
        Err(_) => {}
        Ok(r) => panic!("plain HTTP to the TLS port answered {}", r.status()),
    }
    // The metrics listener stays plain HTTP beside TLS (it is for a private interface).
    assert!(v.metrics.starts_with("http://"));
    assert_eq!(
        metric(&v.metrics, "coffer_vault_requests_total{route=\"status\"}"),
        1
    );
}
