//! The metrics listener over real HTTP: its own port, nothing on the API's, and counters
//! that move identically for an unknown account's dummy KE2 and a real one.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use coffer_vault_client::{KsfProfile, VaultClient, VaultError};
use common::*;

fn get(url: &str) -> (u16, String, String) {
    let mut resp = agent().get(url).call().unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        resp.status().as_u16(),
        ct,
        resp.body_mut().read_to_string().unwrap(),
    )
}

/// Every exported sample except the latency histogram's buckets and sum (see
/// docs/VAULT-API.md, "Metrics": those carry the reply's own timing), by name.
fn samples(metrics_url: &str) -> BTreeMap<String, u64> {
    let (status, _, body) = get(metrics_url);
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            !l.starts_with("coffer_vault_request_seconds_bucket")
                && !l.starts_with("coffer_vault_request_seconds_sum")
        })
        .map(|l| {
            let (name, v) = l.rsplit_once(' ').unwrap();
            (name.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the set of samples never changes"
    );
    b.iter()
        .filter(|(k, v)| a[*k] != **v)
        .map(|(k, v)| (k.clone(), v - a[k]))
        .collect()
}

#[test]
fn metrics_have_their_own_listener_and_the_api_port_serves_none() {
    let (_tmp, v) = vault(&[]);
    let (status, ct, body) = get(&v.metrics);
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(
        body.contains("# TYPE coffer_vault_ke2_total counter"),
        "{body}"
    );
    assert_eq!(get(&format!("{}/metrics", v.url)).0, 404);
    // And the metrics port serves nothing of the API.
    let base = v.metrics.strip_suffix("/metrics").unwrap();
    assert_eq!(get(&format!("{base}/healthz")).0, 404);
    assert_eq!(get(&format!("{base}/v1/status")).0, 404);
    for gone in [
        "guesses_counted",
        "dummy_ke2",
        "ke2_released",
        "records_destroyed",
        "commit_batches",
        "commit_writes",
    ] {
        assert!(!body.contains(gone), "{gone} must not be exported");
    }
}

#[test]
fn without_metrics_listen_there_is_no_metrics_listener() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    assert_eq!(get(&format!("{url}/metrics")).0, 404);
    let _ = child.kill();
    let _ = child.wait();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(!rest.contains("metrics on"), "{rest}");
}

#[test]
fn a_dummy_ke2_and_a_real_one_move_the_same_counters() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let real = token(tmp.path(), "real", "1h");
    let unknown = token(tmp.path(), "unknown", "1h");
    VaultClient::new(&v.url, &real)
        .unwrap()
        .register(b"right", &[4; 32], KsfProfile::TestCheap)
        .unwrap();
    // recover/start alone, then the client's whole wrong-password login (which stops after
    // recover/start, having found the password wrong in KE2).
    let step = |tok: &str| {
        assert_eq!(try_recover_start(&v.url, tok).unwrap().0, 200);
        let e = VaultClient::new(&v.url, tok).unwrap().recover(b"wrong");
        assert!(matches!(e, Err(VaultError::WrongPassword { .. })), "{e:?}");
    };
    let s0 = samples(&v.metrics);
    step(&real);
    let s1 = samples(&v.metrics);
    step(&unknown);
    let s2 = samples(&v.metrics);
    let (d_real, d_dummy) = (delta(&s0, &s1), delta(&s1, &s2));
    assert_eq!(d_real, d_dummy, "real {d_real:?} vs dummy {d_dummy:?}");
    assert_eq!(d_real.get("coffer_vault_ke2_total"), Some(&2));
    // The real account did spend its guesses; only the metrics cannot tell.
    let s = VaultClient::new(&v.url, &real).unwrap().status().unwrap();
    assert_eq!(s.guesses_left, Some(8));
}
