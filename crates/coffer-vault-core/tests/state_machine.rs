//! The core's state machine without any server: counting, reset, destruction, staleness,
//! and the rollback floor (invariant V7).
#![allow(clippy::unwrap_used)]

use coffer_vault_core::{
    Authority, CoreKeys, CredentialId, DeleteError, FLOOR_LEN, Floor, FloorUpdate, KsfProfile,
    OwnerProofError, REGISTRATION_TICKET_LEN, RecoverFinishError, RecoverStartError,
    RecoverStartOutcome, RecoverStarted, RegisterError, RegistrationUploadRequest, SealedRecord,
    StateChange, StatusError, TICKET_LEN, TicketError, VaultCore,
};
use coffer_vault_proto::OwnerOp;
use coffer_vault_proto::client;
use coffer_vault_proto::owner::{OwnerKey, replace_content};
use rand_core::OsRng;

const P: KsfProfile = KsfProfile::TestCheap;

/// What an honest host does with a change once both stores committed it.
fn commit(core: &VaultCore, change: StateChange) -> Option<SealedRecord> {
    if let Some(floor) = &change.floor {
        core.confirm(floor);
    }
    change.record
}

/// The host's clock in these tests: tickets sealed "now" expire at `NOW + 60`.
const NOW: u64 = 1_000;

/// Registers `key` behind "right" with `authority` for a live record (signed with
/// `signer` when `Some`): returns the state change or the core's refusal.
fn try_register(
    core: &VaultCore,
    cred: &CredentialId,
    current: Option<&SealedRecord>,
    key: &[u8; 32],
    signer: Option<&[u8; 32]>,
) -> Result<StateChange, RegisterError> {
    let (req, st) = client::register_start(b"right", &mut OsRng).unwrap();
    let started = core
        .register_start(cred, &req, NOW + 60, &mut OsRng)
        .unwrap();
    let up = st.finish(&started.response, key, P, &mut OsRng).unwrap();
    let content = replace_content(
        &started.ticket,
        &up.upload,
        &up.wrapped_key,
        &up.owner_key,
        P.name(),
    );
    let generation = current.and_then(|r| core.status(cred, Some(r)).ok()?.generation);
    let sig = match (signer, generation) {
        (Some(k), Some(g)) => Some((g, owner_sign(k, core, cred, OwnerOp::Replace, g, &content))),
        _ => None,
    };
    let authority = match &sig {
        Some((g, s)) => Authority::OwnerProof {
            generation: *g,
            signature: s,
        },
        None => Authority::Token,
    };
    core.register_finish(
        cred,
        current,
        &RegistrationUploadRequest {
            ticket: &started.ticket,
            upload: &up.upload,
            wrapped_key: &up.wrapped_key,
            owner_key: &up.owner_key,
            profile: P.name(),
        },
        authority,
        NOW,
        &mut OsRng,
    )
}

fn owner_sign(
    key: &[u8; 32],
    core: &VaultCore,
    cred: &CredentialId,
    op: OwnerOp,
    generation: u64,
    content: &[u8; 32],
) -> [u8; 64] {
    OwnerKey::from_backup_key(key)
        .unwrap()
        .sign(op, core.vault_id(), cred, generation, content)
}

/// Registers [42; 32] behind "right", proving ownership of any live record with the same key.
fn register(core: &VaultCore, cred: &CredentialId, current: Option<&SealedRecord>) -> StateChange {
    try_register(core, cred, current, &[42; 32], Some(&[42; 32])).unwrap()
}

fn setup_with(keys: &CoreKeys, max: u32) -> (VaultCore, CredentialId, SealedRecord) {
    let core = VaultCore::new(keys, max, []).unwrap();
    let cred = CredentialId::from_bytes([1; 32]);
    let change = register(&core, &cred, None);
    let rec = commit(&core, change).unwrap();
    (core, cred, rec)
}

fn setup(max: u32) -> (VaultCore, CredentialId, SealedRecord) {
    setup_with(&CoreKeys::generate(&mut OsRng), max)
}

/// recover/start, committed and confirmed; returns (client state, ke2, login state,
/// committed record) or panics if destroyed.
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
            ke2,
            state,
            commit: Some(change),
            ..
        } => (c, ke2, state, commit(core, change).unwrap()),
        _ => panic!("destroyed or dummy"),
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
    let rec3 = commit(&core, done.commit.unwrap()).unwrap();
    assert_eq!(
        core.status(&cred, Some(&rec3)).unwrap().guesses_left,
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
fn the_last_guess_destroys_the_record_in_its_own_commit_and_its_ticket_still_releases() {
    let (core, cred, mut rec) = setup(2);
    rec = start(&core, &cred, &rec, b"wrong").3;
    assert_eq!(
        core.status(&cred, Some(&rec)).unwrap().guesses_left,
        Some(1)
    );
    // The last guess: KE2 goes out, and the record it committed is already the tombstone.
    let tomb = start(&core, &cred, &rec, b"wrong").3;
    let s = core.status(&cred, Some(&tomb)).unwrap();
    assert!(s.destroyed && !s.exists);
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    assert!(matches!(
        core.recover_start(&cred, Some(&tomb), &ke1, &mut OsRng)
            .unwrap(),
        RecoverStartOutcome::Destroyed { commit: None }
    ));

    // The last guess's KE3 is still honoured when it is right, from its ticket alone
    // (opened as by another replica), and the record stays a tombstone.
    let (core, cred, rec) = setup(1);
    let (c, ke2, st, tomb) = start(&core, &cred, &rec, b"right");
    assert!(core.status(&cred, Some(&tomb)).unwrap().destroyed);
    let ticket = st.seal(&core, NOW + 60, &mut OsRng).unwrap();
    assert_eq!(ticket.len(), TICKET_LEN);
    let (ke3, wait) = c.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let done = RecoverStarted::open(&core, &cred, &ticket, NOW)
        .unwrap()
        .finish(&core, Some(&tomb), &ke3, &mut OsRng)
        .unwrap();
    assert_eq!(*wait.open(&done.release_blob).unwrap(), [42; 32]);
    assert!(done.commit.is_none(), "a tombstone is never brought back");
    // Not over a record registered since (the ticket's tombstone is gone).
    let again = commit(
        &core,
        try_register(&core, &cred, Some(&tomb), &[1; 32], None).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        RecoverStarted::open(&core, &cred, &ticket, NOW)
            .unwrap()
            .finish(&core, Some(&again), &ke3, &mut OsRng),
        Err(RecoverFinishError::Superseded)
    ));
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
    assert!(matches!(
        core2.status(&cred2, Some(&rec)),
        Err(StatusError::CorruptRecord)
    ));
}

#[test]
fn dummy_ke2_matches_real_size_and_never_verifies() {
    let (core, cred, rec) = setup(10);
    let (ke1, c) = client::recover_start(b"right", &mut OsRng).unwrap();
    let (ke1b, cb) = client::recover_start(b"right", &mut OsRng).unwrap();
    let unknown = CredentialId::from_bytes([9; 32]);
    let RecoverStartOutcome::Challenge {
        ke2: dummy,
        state: dummy_state,
        commit: None,
        ..
    } = core
        .recover_start(&unknown, None, &ke1, &mut OsRng)
        .unwrap()
    else {
        panic!("dummy expected")
    };
    let RecoverStartOutcome::Challenge {
        ke2: real, state, ..
    } = core
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
    // Their login tickets look alike too, and the dummy's never verifies a KE3.
    let dummy_ticket = dummy_state.seal(&core, 1_000, &mut OsRng).unwrap();
    let real_ticket = state.seal(&core, 1_000, &mut OsRng).unwrap();
    assert_eq!(dummy_ticket.len(), real_ticket.len());
    let (ke3, _) = cb.finish(core.vault_id(), &real, P, &mut OsRng).unwrap();
    assert!(matches!(
        RecoverStarted::open(&core, &unknown, &dummy_ticket, 999)
            .unwrap()
            .finish(&core, None, &ke3, &mut OsRng),
        Err(RecoverFinishError::WrongPassword { .. })
    ));
}

#[test]
fn message_sizes_match_the_api_document() {
    let (core, cred, rec) = setup(10);
    let (req, st) = client::register_start(b"pw", &mut OsRng).unwrap();
    let started = core
        .register_start(&cred, &req, NOW + 60, &mut OsRng)
        .unwrap();
    let up = st
        .finish(&started.response, &[1; 32], P, &mut OsRng)
        .unwrap();
    assert_eq!(
        (
            req.len(),
            started.response.len(),
            started.ticket.len(),
            up.upload.len(),
            up.wrapped_key.len(),
            up.owner_key.len()
        ),
        (32, 64, REGISTRATION_TICKET_LEN, 192, 61, 32)
    );
    assert_eq!(REGISTRATION_TICKET_LEN, 69);
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    let (c2, ke2, st, rec2) = start(&core, &cred, &rec, b"right");
    let (ke3, wait) = c2.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let done = st.finish(&core, Some(&rec2), &ke3, &mut OsRng).unwrap();
    assert!(
        done.commit.as_ref().unwrap().floor.is_none(),
        "a count reset carries no floor"
    );
    assert_eq!(core.floor(&cred).unwrap().to_bytes().len(), FLOOR_LEN);
    assert_eq!(
        (ke1.len(), ke2.len(), ke3.len(), done.release_blob.len()),
        (96, 320, 64, 90)
    );
    assert_eq!(*wait.open(&done.release_blob).unwrap(), [42; 32]);
    // Login ticket: every sealed ticket has this length (checked in the ticket tests).
    assert_eq!(TICKET_LEN, 239);
    // Sealed live record: 21-byte header, 6 + 32 + 32 + 2 + 192 + 2 + 61 plaintext,
    // 16-byte tag.
    assert_eq!(rec2.as_bytes().len(), 21 + 327 + 16);
}

#[test]
fn login_ticket_carries_the_state_and_is_bound_to_account_time_and_record() {
    let (core, cred, rec) = setup(10);
    let (c, ke2, st, counted) = start(&core, &cred, &rec, b"right");
    let ticket = st.seal(&core, 1_000, &mut OsRng).unwrap();
    assert_eq!(ticket.len(), TICKET_LEN);
    // Another account, an edited byte, or the expiry: refused before KE3 is looked at.
    let other = CredentialId::from_bytes([2; 32]);
    let open = |cred: &CredentialId, t: &[u8], now| RecoverStarted::open(&core, cred, t, now);
    assert_eq!(open(&other, &ticket, 999).err(), Some(TicketError::Invalid));
    for i in [0, 1, 20, ticket.len() - 1] {
        let mut bad = ticket.clone();
        bad[i] ^= 1;
        assert_eq!(open(&cred, &bad, 999).err(), Some(TicketError::Invalid));
    }
    assert_eq!(
        open(&cred, &ticket, 1_000).err(),
        Some(TicketError::Expired)
    );
    // A core with other keys (another vault) cannot open it.
    let (stranger, _, _) = setup(10);
    assert!(RecoverStarted::open(&stranger, &cred, &ticket, 999).is_err());
    // Opened (as by another replica, or after a restart), it finishes the login.
    let (ke3, wait) = c.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let done = open(&cred, &ticket, 999)
        .unwrap()
        .finish(&core, Some(&counted), &ke3, &mut OsRng)
        .unwrap();
    assert_eq!(*wait.open(&done.release_blob).unwrap(), [42; 32]);
    let reset = commit(&core, done.commit.unwrap()).unwrap();
    // Presented again, it is single-use in effect: the record moved on.
    assert!(matches!(
        open(&cred, &ticket, 999)
            .unwrap()
            .finish(&core, Some(&reset), &ke3, &mut OsRng),
        Err(RecoverFinishError::Superseded)
    ));
}

// ---- No free guesses: the registration oracle, owner proofs ----

/// The attack of issue 9: a blinded element sent to `register/start` must never be
/// evaluated under the live record's OPRF key, or its output spliced into one counted
/// KE2 tests any password offline.
#[test]
fn register_start_never_evaluates_the_live_records_oprf_key() {
    let (core, cred, rec) = setup(10);
    let (ke1, c) = client::recover_start(b"right", &mut OsRng).unwrap();
    let RecoverStartOutcome::Challenge { ke2, .. } = core
        .recover_start(&cred, Some(&rec), &ke1, &mut OsRng)
        .unwrap()
    else {
        panic!("challenge expected")
    };
    // KE1 starts with the blinded element, KE2 with its evaluation; a
    // RegistrationRequest is the blinded element alone, its response starts with the
    // evaluation.
    let blinded = &ke1[..32];
    let evaluated = |core: &VaultCore| {
        core.register_start(&cred, blinded, NOW + 60, &mut OsRng)
            .unwrap()
            .response[..32]
            .to_vec()
    };
    let via_register = evaluated(&core);
    assert_ne!(via_register, ke2[..32], "register/start is an OPRF oracle");
    // Every registration draws its own key: the same element twice, two evaluations.
    assert_ne!(evaluated(&core), via_register);
    // And the spliced KE2 does not open for the right password.
    let mut spliced = ke2.clone();
    spliced[..32].copy_from_slice(&via_register);
    assert!(matches!(
        c.finish(core.vault_id(), &spliced, P, &mut OsRng),
        Err(client::ClientError::WrongPassword)
    ));
    // Unknown accounts: a dummy evaluation is stable per credential (as a real record's
    // would be), yet differs between credentials and from any registration.
    let unknown = CredentialId::from_bytes([9; 32]);
    let dummy_eval = |cred: &CredentialId| {
        let (ke1, _) = client::recover_start(b"x", &mut OsRng).unwrap();
        let (ke1b, _) = client::recover_start(b"x", &mut OsRng).unwrap();
        let mut out = Vec::new();
        for k in [&ke1, &ke1b] {
            let RecoverStartOutcome::Challenge { ke2, .. } =
                core.recover_start(cred, None, k, &mut OsRng).unwrap()
            else {
                panic!()
            };
            out.push(ke2);
        }
        (ke1, ke1b, out)
    };
    let (_, _, ke2s) = dummy_eval(&unknown);
    assert_eq!(ke2s[0].len(), 320);
    // Stability: the same blinded element gets the same dummy evaluation.
    let (ke1, _) = client::recover_start(b"x", &mut OsRng).unwrap();
    let eval = |cred: &CredentialId| {
        let RecoverStartOutcome::Challenge { ke2, .. } =
            core.recover_start(cred, None, &ke1, &mut OsRng).unwrap()
        else {
            panic!()
        };
        ke2[..32].to_vec()
    };
    assert_eq!(eval(&unknown), eval(&unknown));
    assert_ne!(eval(&unknown), eval(&CredentialId::from_bytes([8; 32])));
}

#[test]
fn a_password_change_changes_the_oprf_key() {
    let (core, cred, rec) = setup(10);
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    let eval = |rec: &SealedRecord| {
        let RecoverStartOutcome::Challenge { ke2, .. } = core
            .recover_start(&cred, Some(rec), &ke1, &mut OsRng)
            .unwrap()
        else {
            panic!()
        };
        ke2[..32].to_vec()
    };
    let before = eval(&rec);
    let counted = start(&core, &cred, &rec, b"wrong").3;
    let replaced = commit(&core, register(&core, &cred, Some(&counted))).unwrap();
    assert_ne!(eval(&replaced), before);
}

#[test]
fn replace_and_delete_of_a_live_record_need_the_owner_proof() {
    let (core, cred, rec) = setup(10);
    let refused = |r: Result<StateChange, RegisterError>| match r {
        Err(RegisterError::Owner(e)) => e,
        other => panic!("expected an owner refusal, got {other:?}"),
    };
    // The token alone, or a proof by another key: refused.
    assert_eq!(
        refused(try_register(&core, &cred, Some(&rec), &[1; 32], None)),
        OwnerProofError::Required
    );
    assert_eq!(
        refused(try_register(
            &core,
            &cred,
            Some(&rec),
            &[1; 32],
            Some(&[1; 32])
        )),
        OwnerProofError::Invalid
    );
    // A proof of an older generation (a guess landed since): stale, with the new one.
    let g = core.status(&cred, Some(&rec)).unwrap().generation.unwrap();
    let sig = owner_sign(&[42; 32], &core, &cred, OwnerOp::Delete, g, &[0; 32]);
    let counted = start(&core, &cred, &rec, b"wrong").3;
    let proof = Authority::OwnerProof {
        generation: g,
        signature: &sig,
    };
    assert!(matches!(
        core.delete(&cred, Some(&counted), proof),
        Err(DeleteError::Owner(OwnerProofError::Stale { generation })) if generation == g + 1
    ));
    // A delete proof is no replace proof, and a replace proof binds its content.
    let g = g + 1;
    let sig = owner_sign(&[42; 32], &core, &cred, OwnerOp::Delete, g, &[0; 32]);
    let (req, st) = client::register_start(b"evil", &mut OsRng).unwrap();
    let started = core
        .register_start(&cred, &req, NOW + 60, &mut OsRng)
        .unwrap();
    let up = st
        .finish(&started.response, &[1; 32], P, &mut OsRng)
        .unwrap();
    let upload = RegistrationUploadRequest {
        ticket: &started.ticket,
        upload: &up.upload,
        wrapped_key: &up.wrapped_key,
        owner_key: &up.owner_key,
        profile: P.name(),
    };
    let as_proof = |sig| Authority::OwnerProof {
        generation: g,
        signature: sig,
    };
    let finish = |a| core.register_finish(&cred, Some(&counted), &upload, a, NOW, &mut OsRng);
    assert_eq!(refused(finish(as_proof(&sig))), OwnerProofError::Invalid);
    let other_content = [7; 32];
    let sig = owner_sign(&[42; 32], &core, &cred, OwnerOp::Replace, g, &other_content);
    assert_eq!(refused(finish(as_proof(&sig))), OwnerProofError::Invalid);
    // The app's explicit reset scope replaces without the proof.
    assert!(finish(Authority::ResetScope).is_ok());
    // The token alone deletes nothing live, the right proof does.
    assert!(matches!(
        core.delete(&cred, Some(&counted), Authority::Token),
        Err(DeleteError::Owner(OwnerProofError::Required))
    ));
    let sig = owner_sign(&[42; 32], &core, &cred, OwnerOp::Delete, g, &[0; 32]);
    assert!(core.delete(&cred, Some(&counted), as_proof(&sig)).is_ok());
    // Over a destroyed record (no K left to prove) the token registers afresh.
    let (core, cred, rec) = setup(1);
    let tomb = start(&core, &cred, &rec, b"wrong").3;
    assert!(try_register(&core, &cred, Some(&tomb), &[1; 32], None).is_ok());
    assert!(core.delete(&cred, Some(&tomb), Authority::Token).is_ok());
}

#[test]
fn a_registration_ticket_is_bound_to_its_account_and_expires() {
    let (core, cred, _) = setup(10);
    let other = CredentialId::from_bytes([2; 32]);
    let (req, st) = client::register_start(b"pw", &mut OsRng).unwrap();
    let started = core
        .register_start(&cred, &req, NOW + 60, &mut OsRng)
        .unwrap();
    let up = st
        .finish(&started.response, &[1; 32], P, &mut OsRng)
        .unwrap();
    let finish = |cred: &CredentialId, ticket: &[u8], now| {
        core.register_finish(
            cred,
            None,
            &RegistrationUploadRequest {
                ticket,
                upload: &up.upload,
                wrapped_key: &up.wrapped_key,
                owner_key: &up.owner_key,
                profile: P.name(),
            },
            Authority::Token,
            now,
            &mut OsRng,
        )
    };
    assert!(matches!(
        finish(&other, &started.ticket, NOW),
        Err(RegisterError::BadTicket)
    ));
    assert!(matches!(
        finish(&cred, &started.ticket, NOW + 60),
        Err(RegisterError::TicketExpired)
    ));
    let mut edited = started.ticket.clone();
    edited[20] ^= 1;
    assert!(matches!(
        finish(&cred, &edited, NOW),
        Err(RegisterError::BadTicket)
    ));
    assert!(matches!(
        finish(&cred, &started.ticket[..60], NOW),
        Err(RegisterError::BadTicket)
    ));
    // The registration it finishes logs in: the nonce it carried is the record's.
    let rec = commit(&core, finish(&cred, &started.ticket, NOW).unwrap()).unwrap();
    let (c, ke2, _, _) = start(&core, &cred, &rec, b"pw");
    assert!(c.finish(core.vault_id(), &ke2, P, &mut OsRng).is_ok());
}

// ---- Rollback floor (invariant V7) ----

/// A recover/start that must be refused as rolled back: no KE2, nothing to commit.
fn assert_rolled_back(core: &VaultCore, cred: &CredentialId, rec: Option<&SealedRecord>) {
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    match core.recover_start(cred, rec, &ke1, &mut OsRng) {
        Err(RecoverStartError::StorageRolledBack(s)) => {
            assert!(s.to_string().contains("rolled back"), "{s}");
        }
        other => panic!("expected StorageRolledBack, got {other:?}"),
    }
    assert!(matches!(
        core.status(cred, rec),
        Err(StatusError::StorageRolledBack(_))
    ));
}

#[test]
fn older_record_is_refused_after_confirm() {
    let (core, cred, old) = setup(10);
    let (_, _, _, newer) = start(&core, &cred, &old, b"wrong");
    // The host hands back the record from before the guess: one guess regained.
    assert_rolled_back(&core, &cred, Some(&old));
    // The floor did not move because of the refusal; the real record still works.
    assert_eq!(
        core.status(&cred, Some(&newer)).unwrap().guesses_left,
        Some(9)
    );
}

#[test]
fn floor_survives_a_new_core_built_from_the_trusted_store() {
    let keys = CoreKeys::generate(&mut OsRng);
    let (core, cred, old) = setup_with(&keys, 10);
    let (_, _, _, newer) = start(&core, &cred, &old, b"wrong");
    // What the host persisted in the trusted store, as a restart loads it.
    let stored = FloorUpdate {
        credential_id: cred,
        floor: Floor::from_bytes(&core.floor(&cred).unwrap().to_bytes()).unwrap(),
    };
    let restarted = VaultCore::new(&keys, 10, [stored]).unwrap();
    assert_rolled_back(&restarted, &cred, Some(&old));
    assert_rolled_back(&restarted, &cred, None);
    assert!(restarted.status(&cred, Some(&newer)).unwrap().exists);
}

#[test]
fn missing_record_where_the_floor_has_one_is_stale() {
    let (core, cred, _rec) = setup(10);
    assert_rolled_back(&core, &cred, None);
}

#[test]
fn floor_rises_only_when_the_host_confirms() {
    let (core, cred, rec) = setup(10);
    let before = core.floor(&cred).unwrap();
    let (ke1, _) = client::recover_start(b"wrong", &mut OsRng).unwrap();
    let RecoverStartOutcome::Challenge {
        commit: Some(change),
        ..
    } = core
        .recover_start(&cred, Some(&rec), &ke1, &mut OsRng)
        .unwrap()
    else {
        panic!("challenge expected")
    };
    // Emitted but not (yet) durable: a failed commit must not strand the stored record
    // below the floor.
    assert_eq!(core.floor(&cred), Some(before));
    assert!(core.status(&cred, Some(&rec)).is_ok());
    // Crash after the record commit, before the floor commit: the record is ahead of
    // the floor and accepted.
    let ahead = change.record.clone().unwrap();
    assert_eq!(
        core.status(&cred, Some(&ahead)).unwrap().guesses_left,
        Some(9)
    );
    core.confirm(change.floor.as_ref().unwrap());
    assert_eq!(
        core.floor(&cred).unwrap().generation(),
        before.generation() + 1
    );
    assert_rolled_back(&core, &cred, Some(&rec));
    // Confirming an older update never lowers the floor.
    core.confirm(&FloorUpdate {
        credential_id: cred,
        floor: before,
    });
    assert_eq!(
        core.floor(&cred).unwrap().generation(),
        before.generation() + 1
    );
}

#[test]
fn a_reset_has_no_floor_and_rolling_it_back_only_takes_guesses() {
    let (core, cred, rec) = setup(10);
    // Two wrong guesses, then the right password: the reset record is floorless.
    let (_, _, _, rec1) = start(&core, &cred, &rec, b"wrong");
    let (c, ke2, st, counted) = start(&core, &cred, &rec1, b"right");
    let floor_at_counted = core.floor(&cred).unwrap();
    let (ke3, _) = c.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let done = st.finish(&core, Some(&counted), &ke3, &mut OsRng).unwrap();
    assert!(done.commit.as_ref().unwrap().floor.is_none());
    let reset = commit(&core, done.commit.unwrap()).unwrap();
    assert_eq!(core.floor(&cred), Some(floor_at_counted));
    assert_eq!(
        core.status(&cred, Some(&reset)).unwrap().guesses_left,
        Some(10)
    );
    // A host that serves the counted record instead of the reset (a rollback, or a
    // crash before the reset was durable) hands out fewer guesses, never more.
    assert_eq!(
        core.status(&cred, Some(&counted)).unwrap().guesses_left,
        Some(8)
    );
    // The next counted guess floors above the reset, which is then stale like any
    // older record, so it cannot be replayed to wipe later guesses.
    let (_, _, _, next) = start(&core, &cred, &reset, b"wrong");
    assert_eq!(
        core.status(&cred, Some(&next)).unwrap().guesses_left,
        Some(9)
    );
    assert_rolled_back(&core, &cred, Some(&reset));
    assert_rolled_back(&core, &cred, Some(&counted));
}

#[test]
fn a_fork_at_the_floor_generation_is_refused() {
    let (core, cred, rec) = setup(10);
    // Two records sealed from the same base: one committed and floored, the other never
    // accepted (its commit failed, or a crash came before its floor).
    let (ke1, _) = client::recover_start(b"a", &mut OsRng).unwrap();
    let Ok(RecoverStartOutcome::Challenge {
        commit: Some(lost), ..
    }) = core.recover_start(&cred, Some(&rec), &ke1, &mut OsRng)
    else {
        panic!()
    };
    let (_, _, _, kept) = start(&core, &cred, &rec, b"b");
    let lost = lost.record.unwrap();
    assert_eq!(lost.generation(), kept.generation());
    assert_rolled_back(&core, &cred, Some(&lost));
    assert!(core.status(&cred, Some(&kept)).is_ok());
}

#[test]
fn destroyed_record_stays_destroyed_against_an_old_copy() {
    let (core, cred, old) = setup(2);
    let (_, _, _, counted) = start(&core, &cred, &old, b"wrong");
    let (_, _, _, tomb) = start(&core, &cred, &counted, b"wrong");
    assert!(core.status(&cred, Some(&tomb)).unwrap().destroyed);
    assert_rolled_back(&core, &cred, Some(&old));
    assert_rolled_back(&core, &cred, Some(&counted));
    assert_rolled_back(&core, &cred, None);
}

#[test]
fn deleted_record_restored_from_an_old_copy_is_refused() {
    let (core, cred, rec) = setup(10);
    let g = core.status(&cred, Some(&rec)).unwrap().generation.unwrap();
    let sig = owner_sign(&[42; 32], &core, &cred, OwnerOp::Delete, g, &[0; 32]);
    let del = core
        .delete(
            &cred,
            Some(&rec),
            Authority::OwnerProof {
                generation: g,
                signature: &sig,
            },
        )
        .unwrap();
    assert!(del.record.is_none());
    assert!(matches!(del.floor.unwrap().floor, Floor::Deleted { .. }));
    assert!(commit(&core, del).is_none());
    assert_rolled_back(&core, &cred, Some(&rec));
    // With no record it is an unknown account again: a dummy KE2, nothing to commit.
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    assert!(matches!(
        core.recover_start(&cred, None, &ke1, &mut OsRng),
        Ok(RecoverStartOutcome::Challenge { commit: None, .. })
    ));
    assert!(matches!(
        core.delete(&cred, None, Authority::Token),
        Err(DeleteError::NoRecord)
    ));
    // Registering again lands above the delete, so the new record is fresh.
    let again = commit(&core, register(&core, &cred, None)).unwrap();
    assert!(again.generation() > rec.generation().map(|g| g + 1));
    assert_eq!(
        core.status(&cred, Some(&again)).unwrap().guesses_left,
        Some(10)
    );
}

#[test]
fn registration_replaces_a_stale_record() {
    let (core, cred, old) = setup(10);
    let (_, _, _, _newer) = start(&core, &cred, &old, b"wrong");
    assert_rolled_back(&core, &cred, Some(&old));
    let fresh = commit(&core, register(&core, &cred, Some(&old))).unwrap();
    assert!(core.status(&cred, Some(&fresh)).unwrap().exists);
}

#[test]
fn stale_record_is_refused_at_recover_finish() {
    let (core, cred, rec) = setup(10);
    let (c, ke2, st, rec2) = start(&core, &cred, &rec, b"right");
    // Another guess moves the floor on; the host then hands back the older record.
    let (_, _, _, _rec3) = start(&core, &cred, &rec2, b"wrong");
    let (ke3, _) = c.finish(core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    assert!(matches!(
        st.finish(&core, Some(&rec2), &ke3, &mut OsRng),
        Err(RecoverFinishError::StorageRolledBack(_))
    ));
}

#[test]
fn floor_bytes_round_trip_and_reject_garbage() {
    let f = Floor::Record {
        generation: 0x0102_0304_0506_0708,
        digest: [7; 32],
    };
    let b = f.to_bytes();
    assert_eq!(b.len(), FLOOR_LEN);
    assert_eq!((b[0], b[1], b[2], b[9]), (1, 1, 0x08, 0x01));
    assert_eq!(Floor::from_bytes(&b), Some(f));
    let d = Floor::Deleted { generation: 5 };
    assert_eq!(Floor::from_bytes(&d.to_bytes()), Some(d));
    let mut bad = b;
    bad[0] = 2;
    assert_eq!(Floor::from_bytes(&bad), None, "unknown version");
    let mut bad = b;
    bad[1] = 9;
    assert_eq!(Floor::from_bytes(&bad), None, "unknown kind");
    let mut bad = d.to_bytes();
    bad[20] = 1;
    assert_eq!(Floor::from_bytes(&bad), None, "digest on a delete");
    assert_eq!(Floor::from_bytes(&b[..41]), None, "truncated");
}
