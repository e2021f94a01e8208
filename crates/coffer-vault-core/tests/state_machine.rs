//! The core's state machine without any server: counting, reset, destruction, staleness.
#![allow(clippy::unwrap_used)]

use coffer_vault_core::client;
use coffer_vault_core::{
    CoreKeys, CredentialId, KsfProfile, RecoverFinishError, RecoverStartOutcome, RecoverStarted,
    SealedRecord, VaultCore,
};
use rand_core::OsRng;

const P: KsfProfile = KsfProfile::TestCheap;

fn setup(max: u32) -> (VaultCore, CredentialId, SealedRecord) {
    let keys = CoreKeys::generate(&mut OsRng);
    let core = VaultCore::new(&keys, max).unwrap();
    let cred = CredentialId::from_bytes([1; 32]);
    let (req, st) = client::register_start(b"right", &mut OsRng).unwrap();
    let resp = core.register_start(&cred, &req).unwrap();
    let up = st.finish(&resp, &[42; 32], P, &mut OsRng).unwrap();
    let rec = core
        .register_finish(
            &cred,
            None,
            &up.upload,
            &up.wrapped_key,
            P.name(),
            &mut OsRng,
        )
        .unwrap();
    (core, cred, rec)
}

/// recover/start; returns (ke2, state, committed record) or panics if destroyed.
fn start(
    core: &VaultCore,
    cred: &CredentialId,
    rec: &SealedRecord,
    pw: &[u8],
) -> (
    client::RecoverStarted,
    Vec<u8>,
    RecoverStarted,
    SealedRecord,
) {
    let (ke1, c) = client::recover_start(pw, &mut OsRng).unwrap();
    match core
        .recover_start(cred, Some(rec), &ke1, &mut OsRng)
        .unwrap()
    {
        RecoverStartOutcome::Challenge {
            ke2, state, commit, ..
        } => (c, ke2, state, commit.unwrap()),
        RecoverStartOutcome::Destroyed { .. } => panic!("destroyed"),
    }
}

#[test]
fn guess_is_counted_before_ke2_and_success_resets() {
    let (core, cred, rec) = setup(10);
    let (c, ke2, st, rec2) = start(&core, &cred, &rec, b"right");
    assert!(rec2.generation() > rec.generation());
    assert_eq!(
        core.status(&cred, Some(&rec2)).unwrap().guesses_left,
        Some(9)
    );
    let (ke3, wait) = c.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let done = st.finish(&core, Some(&rec2), &ke3, &mut OsRng).unwrap();
    assert_eq!(*wait.open(&done.release_blob).unwrap(), [42; 32]);
    assert_eq!(
        core.status(&cred, Some(&done.commit)).unwrap().guesses_left,
        Some(10)
    );
}

#[test]
fn failed_ke3_never_resets() {
    let (core, cred, rec) = setup(10);
    let (c, ke2, st, rec2) = start(&core, &cred, &rec, b"right");
    let (mut ke3, _) = c.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    ke3[5] ^= 1;
    let err = st.finish(&core, Some(&rec2), &ke3, &mut OsRng).unwrap_err();
    assert!(matches!(
        err,
        RecoverFinishError::WrongPassword { guesses_left: 9 }
    ));
    assert_eq!(
        core.status(&cred, Some(&rec2)).unwrap().guesses_left,
        Some(9)
    );
}

#[test]
fn stale_finish_cannot_reset_a_newer_count() {
    let (core, cred, rec) = setup(10);
    let (c, ke2, st, rec2) = start(&core, &cred, &rec, b"right");
    // A second guess lands after the first start: the record moves on.
    let (_, _, _, rec3) = start(&core, &cred, &rec2, b"wrong");
    let (ke3, _) = c.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    assert!(matches!(
        st.finish(&core, Some(&rec3), &ke3, &mut OsRng),
        Err(RecoverFinishError::Superseded)
    ));
    assert_eq!(
        core.status(&cred, Some(&rec3)).unwrap().guesses_left,
        Some(8)
    );
}

#[test]
fn last_guess_honoured_then_destroyed() {
    let (core, cred, mut rec) = setup(2);
    for _ in 0..2 {
        rec = start(&core, &cred, &rec, b"wrong").3;
    }
    assert_eq!(
        core.status(&cred, Some(&rec)).unwrap().guesses_left,
        Some(0)
    );
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    let RecoverStartOutcome::Destroyed { commit: Some(tomb) } = core
        .recover_start(&cred, Some(&rec), &ke1, &mut OsRng)
        .unwrap()
    else {
        panic!("no KE2 may be released once every guess is spent");
    };
    let s = core.status(&cred, Some(&tomb)).unwrap();
    assert!(s.destroyed && !s.exists);
    assert!(matches!(
        core.recover_start(&cred, Some(&tomb), &ke1, &mut OsRng)
            .unwrap(),
        RecoverStartOutcome::Destroyed { commit: None }
    ));

    // The last guess's KE3 is still honoured when it is right.
    let (core, cred, rec) = setup(1);
    let (c, ke2, st, rec2) = start(&core, &cred, &rec, b"right");
    let (ke3, wait) = c.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let done = st.finish(&core, Some(&rec2), &ke3, &mut OsRng).unwrap();
    assert_eq!(*wait.open(&done.release_blob).unwrap(), [42; 32]);
}

#[test]
fn records_cannot_move_between_accounts_or_be_edited() {
    let (core, _cred, rec) = setup(10);
    let other = CredentialId::from_bytes([2; 32]);
    assert!(core.status(&other, Some(&rec)).is_err());
    let mut bytes = rec.as_bytes().to_vec();
    bytes[1] ^= 1; // generation
    assert!(
        core.status(
            &CredentialId::from_bytes([1; 32]),
            Some(&SealedRecord::from_bytes(bytes))
        )
        .is_err()
    );
    // A record from another vault's key does not open either.
    let (core2, cred2, _) = setup(10);
    assert!(core2.status(&cred2, Some(&rec)).is_err());
}

#[test]
fn dummy_ke2_matches_real_size_and_never_verifies() {
    let (core, cred, rec) = setup(10);
    let (ke1, c) = client::recover_start(b"right", &mut OsRng).unwrap();
    let (ke1b, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    let unknown = CredentialId::from_bytes([9; 32]);
    let RecoverStartOutcome::Challenge {
        ke2: dummy,
        commit: None,
        ..
    } = core
        .recover_start(&unknown, None, &ke1, &mut OsRng)
        .unwrap()
    else {
        panic!("dummy expected")
    };
    let RecoverStartOutcome::Challenge { ke2: real, .. } = core
        .recover_start(&cred, Some(&rec), &ke1b, &mut OsRng)
        .unwrap()
    else {
        panic!("challenge expected")
    };
    assert_eq!(dummy.len(), real.len());
    assert!(matches!(
        c.finish(core.vault_id(), &dummy, P, &mut OsRng),
        Err(client::ClientError::WrongPassword)
    ));
}

#[test]
fn message_sizes_match_the_api_document() {
    let (core, cred, rec) = setup(10);
    let (req, st) = client::register_start(b"pw", &mut OsRng).unwrap();
    let resp = core.register_start(&cred, &req).unwrap();
    let up = st.finish(&resp, &[1; 32], P, &mut OsRng).unwrap();
    assert_eq!(
        (req.len(), resp.len(), up.upload.len(), up.wrapped_key.len()),
        (32, 64, 192, 61)
    );
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    let (c2, ke2, st, rec2) = start(&core, &cred, &rec, b"right");
    let (ke3, wait) = c2.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let done = st.finish(&core, Some(&rec2), &ke3, &mut OsRng).unwrap();
    assert_eq!(
        (ke1.len(), ke2.len(), ke3.len(), done.release_blob.len()),
        (96, 320, 64, 90)
    );
    assert_eq!(*wait.open(&done.release_blob).unwrap(), [42; 32]);
    // Sealed live record: 21-byte header, 6 + 2 + 192 + 2 + 61 plaintext, 16-byte tag.
    assert_eq!(rec2.as_bytes().len(), 21 + 263 + 16);
}
