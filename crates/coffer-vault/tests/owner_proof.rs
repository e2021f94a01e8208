//! Issue 9 over real HTTP against the real binary: no free guesses through
//! `register/start`, no replace or delete of a live record without proof of its key, and
//! the last guess leaves only a tombstone in the database file.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use coffer_vault::keyfile::KeyFile;
use coffer_vault::storage::{RedbStorage, Storage};
use coffer_vault_client::{KsfProfile, VaultClient, VaultError};
use coffer_vault_core::{CredentialId, VaultCore};
use coffer_vault_proto::OwnerOp;
use coffer_vault_proto::client;
use coffer_vault_proto::owner::OwnerKey;
use coffer_vault_proto::wire::{b64, unb64};
use common::*;
use rand_core::OsRng;

const P: KsfProfile = KsfProfile::TestCheap;

/// POSTs `body` to `path` with `tok`: status and JSON reply.
fn post(url: &str, path: &str, tok: &str, body: &str) -> (u16, serde_json::Value) {
    let mut resp = agent()
        .post(format!("{url}{path}"))
        .header("Authorization", format!("Bearer {tok}"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

fn bytes(v: &serde_json::Value, name: &str) -> Vec<u8> {
    unb64(v[name].as_str().unwrap()).unwrap()
}

fn status(url: &str, tok: &str) -> serde_json::Value {
    let mut resp = agent()
        .get(format!("{url}/v1/status"))
        .header("Authorization", format!("Bearer {tok}"))
        .call()
        .unwrap();
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn register_start_evaluates_nothing_a_counted_ke2_can_use() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let tok = token(tmp.path(), "alice", "1h");
    VaultClient::new(&v.url, &tok)
        .unwrap()
        .register(b"right", &[1; 32], P)
        .unwrap();
    // One counted guess gives a KE2 for a KE1 of the right password.
    let (ke1, c) = client::recover_start(b"right", &mut OsRng).unwrap();
    let (st, start) = post(
        &v.url,
        "/v1/recover/start",
        &tok,
        &format!(r#"{{"v":1,"ke1":"{}"}}"#, b64(&ke1)),
    );
    assert_eq!(st, 200, "{start}");
    let ke2 = bytes(&start, "ke2");
    // The attack: the same blinded element through register/start (counted nowhere).
    let (st, reg) = post(
        &v.url,
        "/v1/register/start",
        &tok,
        &format!(r#"{{"v":1,"request":"{}"}}"#, b64(&ke1[..32])),
    );
    assert_eq!(st, 200, "{reg}");
    let evaluated = bytes(&reg, "response");
    assert_ne!(
        evaluated[..32],
        ke2[..32],
        "register/start evaluated the live record's OPRF key"
    );
    let mut spliced = ke2.clone();
    spliced[..32].copy_from_slice(&evaluated[..32]);
    let vault_id: [u8; 16] =
        hex::decode(KeyFile::load(tmp.path()).unwrap().vault_id_hex().as_bytes())
            .unwrap()
            .try_into()
            .unwrap();
    assert!(matches!(
        c.finish(&vault_id, &spliced, P, &mut OsRng),
        Err(client::ClientError::WrongPassword)
    ));
    // And the one counted guess is all that was spent.
    assert_eq!(status(&v.url, &tok)["guesses_left"], 9);
}

#[test]
fn a_token_alone_cannot_replace_or_delete_a_live_record() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let tok = token(tmp.path(), "bob", "1h");
    let owner = [0xb0; 32];
    let thief = [0x7e; 32];
    let c = VaultClient::new(&v.url, &tok).unwrap();
    c.register(b"right", &owner, P).unwrap();
    // Someone with the token but not the key: no proof, or a proof by another key.
    assert!(matches!(
        c.register_replacing(b"mine", &thief, None, P),
        Err(VaultError::OwnerProofRequired { .. })
    ));
    assert!(matches!(
        c.register(b"mine", &thief, P),
        Err(VaultError::OwnerProofInvalid { .. })
    ));
    assert!(matches!(
        c.delete(None),
        Err(VaultError::OwnerProofRequired { .. })
    ));
    assert!(matches!(
        c.delete(Some(&thief)),
        Err(VaultError::OwnerProofInvalid { .. })
    ));
    assert_eq!(*c.recover(b"right").unwrap(), owner);

    // A proof cannot be replayed once the record moved on: a new registration bumps the
    // generation (a guess does not: counts live in the core's entry, not the record).
    let s = status(&v.url, &tok);
    let generation = s["generation"].as_u64().unwrap();
    let cred: [u8; 32] = bytes(&s, "credential_id").try_into().unwrap();
    let vault_id: [u8; 16] = hex::decode(KeyFile::load(tmp.path()).unwrap().vault_id_hex())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = OwnerKey::from_backup_key(&owner).unwrap().sign(
        OwnerOp::Delete,
        &vault_id,
        &CredentialId::from_bytes(cred),
        generation,
        &[0; 32],
    );
    let delete_body = format!(
        r#"{{"v":1,"owner_proof":{{"generation":{generation},"signature":"{}"}}}}"#,
        b64(&sig)
    );
    assert!(matches!(
        c.recover(b"wrong"),
        Err(VaultError::WrongPassword { .. })
    ));
    c.register(b"right", &owner, P).unwrap();
    let (st, body) = post(&v.url, "/v1/delete", &tok, &delete_body);
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("owner_proof_stale"))
    );

    // The owner changes the password (signs with K), then turns backups off.
    c.register(b"new password", &owner, P).unwrap();
    assert_eq!(*c.recover(b"new password").unwrap(), owner);
    // A rotation signs with the old key and stores the new one.
    let rotated = [0xb1; 32];
    c.register_replacing(b"new password", &rotated, Some(&owner), P)
        .unwrap();
    assert_eq!(*c.recover(b"new password").unwrap(), rotated);
    c.delete(Some(&rotated)).unwrap();
    assert!(!c.status().unwrap().exists);
}

#[test]
fn a_reset_scope_token_replaces_without_the_key_and_is_logged() {
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let tok = token(tmp.path(), "carol", "1h");
    VaultClient::new(&v.url, &tok)
        .unwrap()
        .register(b"forgotten", &[0xc0; 32], P)
        .unwrap();
    let out = Command::new(BIN)
        .args(["token", "--account", "carol", "--reset-scope", "--data"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let reset = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let r = VaultClient::new(&v.url, &reset).unwrap();
    r.register_replacing(b"fresh start", &[0xc1; 32], None, P)
        .unwrap();
    assert_eq!(*r.recover(b"fresh start").unwrap(), [0xc1; 32]);
    wait_for_stderr(&v, "under the token's reset scope");
    r.delete(None).unwrap();
    wait_for_stderr(&v, "record deleted under the token's reset scope");
}

#[test]
fn the_last_guess_erases_the_record_key_and_leaves_no_body() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir);
    let v = start(dir, &["--rate-limit", "0", "--max-guesses", "2"], &[]);
    let tok = token(dir, "dora", "1h");
    let c = VaultClient::new(&v.url, &tok).unwrap();
    c.register(b"right", &[0xd0; 32], P).unwrap();
    let cred: [u8; 32] = bytes(&status(&v.url, &tok), "credential_id")
        .try_into()
        .unwrap();
    let cred = CredentialId::from_bytes(cred);
    assert!(matches!(
        c.recover(b"wrong"),
        Err(VaultError::WrongPassword { guesses_left: 1 })
    ));
    // The last guess, with the right password: KE2 and its ticket come back...
    let pending = c.start_recovery(b"right").unwrap();
    // ... and the vault is killed before the client finishes.
    drop(v);
    // The host's database no longer holds the body, and the core's own entry is a
    // destroyed one: no record key left anywhere.
    let body = RedbStorage::open(&dir.join("vault.redb"))
        .unwrap()
        .get(&cred)
        .unwrap();
    assert!(body.is_none(), "the destroyed record's body is gone");
    let core_dir = dir.join("core");
    let keys = coffer_vault::coreproc::keys::load(
        &core_dir,
        &coffer_vault::master::MasterKeySource::File(core_dir.join("master.key")),
    )
    .unwrap();
    let core = VaultCore::new(&keys, 2).unwrap();
    {
        use coffer_vault::coreproc::store::{EntryStore, RedbEntryStore};
        let store = RedbEntryStore::open(&core_dir.join("core.redb")).unwrap();
        let sealed = store.get(&cred).unwrap().entry.unwrap();
        assert_eq!(sealed.len(), coffer_vault_core::ENTRY_LEN);
        assert!(matches!(
            core.open_entry(&cred, &sealed),
            Some(coffer_vault_core::Entry::Destroyed { .. })
        ));
    }
    // The ticket alone still finishes that one login, on the restarted vault.
    let v = start(dir, &["--rate-limit", "0", "--max-guesses", "2"], &[]);
    let c = VaultClient::new(&v.url, &tok).unwrap();
    assert_eq!(*c.finish_recovery(pending).unwrap(), [0xd0; 32]);
    assert!(c.status().unwrap().destroyed);
    assert!(matches!(c.recover(b"right"), Err(VaultError::KeyDestroyed)));
}

#[test]
fn a_repository_head_is_kept_only_by_the_owner_and_never_falls() {
    use coffer_vault_client::VaultHead;
    let (tmp, v) = vault(&["--rate-limit", "0"]);
    let tok = token(tmp.path(), "erin", "1h");
    let (k, other) = ([0xe0; 32], [0xe1; 32]);
    let c = VaultClient::new(&v.url, &tok).unwrap();
    // No record, no head.
    assert!(matches!(
        c.put_head(&k, &VaultHead::new(1, "s1")),
        Err(VaultError::NoRecord)
    ));
    c.register(b"right", &k, P).unwrap();
    assert_eq!(c.head(&k).unwrap(), None);
    c.put_head(&k, &VaultHead::new(2, "s2")).unwrap();
    let kept = c.head(&k).unwrap().unwrap();
    assert!(kept.seq == 2 && kept.names("s2"));
    // Never falling, only by the record's key, and verified under it when read.
    assert!(matches!(
        c.put_head(&k, &VaultHead::new(1, "s1")),
        Err(VaultError::HeadNotNewer { .. })
    ));
    assert!(matches!(
        c.put_head(&other, &VaultHead::new(9, "forged")),
        Err(VaultError::OwnerProofInvalid { .. })
    ));
    assert!(matches!(c.head(&other), Err(VaultError::Protocol { .. })));
    let (st, body) = post(
        &v.url,
        "/v1/head",
        &tok,
        &format!(r#"{{"v":1,"head":"{}"}}"#, b64(&[1u8; 73])),
    );
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("bad_json"))
    );
    c.put_head(&k, &VaultHead::new(3, "s3")).unwrap();
    assert_eq!(c.head(&k).unwrap().unwrap().seq, 3);
    // After a key rotation the owner seals the same head again under the new key: the
    // same sequence number is taken (a lower one still is not).
    let rotated = [0xe2; 32];
    c.register_replacing(b"right", &rotated, Some(&k), P)
        .unwrap();
    assert!(matches!(c.head(&rotated), Err(VaultError::Protocol { .. })));
    c.put_head(&rotated, &VaultHead::new(3, "s3")).unwrap();
    assert!(c.head(&rotated).unwrap().unwrap().names("s3"));
    assert!(matches!(
        c.put_head(&rotated, &VaultHead::new(2, "s2")),
        Err(VaultError::HeadNotNewer { .. })
    ));
    let k = rotated;
    // Turning backups off takes the head with the record.
    c.delete(Some(&k)).unwrap();
    assert_eq!(c.head(&k).unwrap(), None);
}
