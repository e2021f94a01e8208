//! The core's state machine without any server: counting in the core's own entry, the
//! reset, destruction with crypto-erasure, owner proofs, tickets, and bodies the host
//! serves from another registration or account.
#![allow(clippy::unwrap_used)]

use coffer_vault_core::{
    Authority, Challenge, CoreError, CoreKeys, CredentialId, ENTRY_LEN, Entry, Gated, KsfProfile,
    OwnerProofError, REGISTRATION_TICKET_LEN, RecoverStarted, Registered,
    RegistrationUploadRequest, SealedRecord, TICKET_LEN, TicketError, VaultCore,
};
use coffer_vault_proto::OwnerOp;
use coffer_vault_proto::client;
use coffer_vault_proto::owner::{OwnerKey, replace_content};
use rand_core::OsRng;

const P: KsfProfile = KsfProfile::TestCheap;

/// The core's clock in these tests: tickets sealed "now" expire at `NOW + 60`.
const NOW: u64 = 1_000;

/// One credential as an honest driver and host keep it: the core's entry and the host's
/// body.
struct Vault {
    core: VaultCore,
    cred: CredentialId,
    entry: Option<Entry>,
    body: Option<SealedRecord>,
}

/// A registration's request, owned.
struct Upload {
    ticket: Vec<u8>,
    msg: client::RegistrationUploadMsg,
}

impl Upload {
    fn new(core: &VaultCore, cred: &CredentialId, pw: &[u8], key: &[u8; 32]) -> Self {
        let (req, st) = client::register_start(pw, &mut OsRng).unwrap();
        let started = core
            .register_start(cred, &req, NOW + 60, &mut OsRng)
            .unwrap();
        let msg = st.finish(&started.response, key, P, &mut OsRng).unwrap();
        Self {
            ticket: started.ticket,
            msg,
        }
    }
    fn request(&self) -> RegistrationUploadRequest<'_> {
        RegistrationUploadRequest {
            ticket: &self.ticket,
            upload: &self.msg.upload,
            wrapped_key: &self.msg.wrapped_key,
            owner_key: &self.msg.owner_key,
            profile: P.name(),
        }
    }
    fn content(&self) -> [u8; 32] {
        replace_content(
            &self.ticket,
            &self.msg.upload,
            &self.msg.wrapped_key,
            &self.msg.owner_key,
            P.name(),
        )
    }
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

impl Vault {
    fn with_keys(keys: &CoreKeys, max: u32) -> Self {
        let mut v = Self {
            core: VaultCore::new(keys, max).unwrap(),
            cred: CredentialId::from_bytes([1; 32]),
            entry: None,
            body: None,
        };
        v.register(b"right", &[42; 32]);
        v
    }

    fn new(max: u32) -> Self {
        Self::with_keys(&CoreKeys::generate(&mut OsRng), max)
    }

    fn generation(&self) -> Option<u64> {
        self.core.status(self.entry.as_ref()).generation
    }

    fn guesses_left(&self) -> Option<u32> {
        self.core.status(self.entry.as_ref()).guesses_left
    }

    /// register/finish of `pw`/`key`, the live record (if any) replaced with a proof by
    /// `signer`'s K (`None`: the token alone).
    fn try_register(
        &self,
        pw: &[u8],
        key: &[u8; 32],
        signer: Option<&[u8; 32]>,
    ) -> Result<Gated<Registered>, CoreError> {
        let up = Upload::new(&self.core, &self.cred, pw, key);
        let sig = match (signer, self.generation()) {
            (Some(k), Some(g)) => Some((
                g,
                owner_sign(
                    k,
                    &self.core,
                    &self.cred,
                    OwnerOp::Replace,
                    g,
                    &up.content(),
                ),
            )),
            _ => None,
        };
        let authority = match &sig {
            Some((g, s)) => Authority::OwnerProof {
                generation: *g,
                signature: s,
            },
            None => Authority::Token,
        };
        self.core.register_finish(
            &self.cred,
            self.entry.as_ref(),
            &up.request(),
            authority,
            NOW,
            &mut OsRng,
        )
    }

    /// What the driver and host do with a registration: the entry, then the body.
    fn apply_registration(&mut self, g: Gated<Registered>) {
        self.entry = g.entry;
        self.body = Some(g.reply.body);
    }

    /// Registers `pw`/`key`, proving ownership of any live record with [42; 32].
    fn register(&mut self, pw: &[u8], key: &[u8; 32]) {
        let g = self.try_register(pw, key, Some(&[42; 32])).unwrap();
        self.apply_registration(g);
    }

    /// recover/start against the entry with `body`, committing nothing.
    fn recover(
        &self,
        body: Option<&SealedRecord>,
        ke1: &[u8],
    ) -> Result<Gated<Challenge>, CoreError> {
        self.core.recover_start(
            &self.cred,
            self.entry.as_ref(),
            body,
            ke1,
            NOW + 60,
            &mut OsRng,
        )
    }

    /// recover/start with the stored body, its entry committed; returns (client state,
    /// KE2, login ticket).
    fn start(&mut self, pw: &[u8]) -> (client::RecoverStarted, Vec<u8>, Vec<u8>) {
        let (ke1, c) = client::recover_start(pw, &mut OsRng).unwrap();
        let g = self.recover(self.body.as_ref(), &ke1).unwrap();
        assert!(g.entry.is_some(), "a counted KE2 without its entry");
        self.entry = g.entry;
        if g.reply.drop_body {
            self.body = None;
        }
        (c, g.reply.ke2, g.reply.ticket)
    }

    /// A recover/start that must be refused with `want`, leaving nothing to commit.
    fn refused_start(&self, body: Option<&SealedRecord>, want: CoreError) {
        let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
        assert_eq!(self.recover(body, &ke1).err(), Some(want));
    }

    /// recover/finish of `ticket` with `ke3` against the current entry; commits a reset.
    fn finish(&mut self, ticket: &[u8], ke3: &[u8]) -> Result<Vec<u8>, CoreError> {
        let done = self.core.recover_finish(
            &self.cred,
            self.entry.as_ref(),
            ticket,
            ke3,
            NOW,
            &mut OsRng,
        )?;
        if let Some(e) = done.entry {
            self.entry = Some(e);
        }
        Ok(done.release_blob)
    }
}

#[test]
fn guess_is_counted_before_ke2_and_success_resets() {
    let mut v = Vault::new(10);
    let (c, ke2, ticket) = v.start(b"right");
    assert!(matches!(&v.entry, Some(Entry::Live(l)) if l.guesses_used == 1 && l.attempts == 1));
    assert_eq!(v.guesses_left(), Some(9));
    let (ke3, wait) = c.finish(v.core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let blob = v.finish(&ticket, &ke3).unwrap();
    assert_eq!(*wait.open(&blob).unwrap(), [42; 32]);
    assert_eq!(v.guesses_left(), Some(10));
    // A guess changes the entry only: the host's body is the registration's, unchanged.
    assert_eq!(v.generation(), Some(1));
}

#[test]
fn failed_ke3_never_resets() {
    let mut v = Vault::new(10);
    let (c, ke2, ticket) = v.start(b"right");
    let (mut ke3, _) = c.finish(v.core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    ke3[5] ^= 1;
    assert_eq!(
        v.finish(&ticket, &ke3),
        Err(CoreError::WrongPassword { guesses_left: 9 })
    );
    assert_eq!(v.guesses_left(), Some(9));
}

/// A host that holds back a good login's `recover/finish` and replays it cannot hand an
/// attacker's spent guesses back more than once: each ticket resets the count at most
/// once, and no ticket from before a reset resets again.
#[test]
fn every_verified_ticket_resets_the_count_at_most_once() {
    let mut v = Vault::new(10);
    let (c1, ke2_1, t1) = v.start(b"right");
    let (c2, ke2_2, t2) = v.start(b"right");
    let (ke3_1, w1) = c1.finish(v.core.vault_id(), &ke2_1, P, &mut OsRng).unwrap();
    let (ke3_2, _) = c2.finish(v.core.vault_id(), &ke2_2, P, &mut OsRng).unwrap();
    v.start(b"wrong");
    assert_eq!(v.guesses_left(), Some(7));
    // The held-back first login: verified, it resets (once).
    let blob = v.finish(&t1, &ke3_1).unwrap();
    assert_eq!(*w1.open(&blob).unwrap(), [42; 32]);
    assert_eq!(v.guesses_left(), Some(10));
    for _ in 0..3 {
        v.start(b"wrong");
    }
    // Replayed, and the second login issued before the reset: K again (to whoever holds
    // the session key), but the count stays.
    assert!(v.finish(&t1, &ke3_1).is_ok());
    assert!(v.finish(&t2, &ke3_2).is_ok());
    assert_eq!(v.guesses_left(), Some(7));
    // A login counted after the reset resets again.
    let (c3, ke2_3, t3) = v.start(b"right");
    let (ke3_3, _) = c3.finish(v.core.vault_id(), &ke2_3, P, &mut OsRng).unwrap();
    assert_eq!(v.guesses_left(), Some(6));
    v.finish(&t3, &ke3_3).unwrap();
    assert_eq!(v.guesses_left(), Some(10));
    // A KE3 fed to another login's ticket verifies nothing.
    let (_, _, t4) = v.start(b"right");
    assert!(matches!(
        v.finish(&t4, &ke3_3),
        Err(CoreError::WrongPassword { .. })
    ));
    assert_eq!(v.guesses_left(), Some(9));
}

#[test]
fn the_last_guess_destroys_the_entry_in_its_own_commit_and_its_ticket_still_releases() {
    let mut v = Vault::new(2);
    v.start(b"wrong");
    assert_eq!(v.guesses_left(), Some(1));
    // The last guess: KE2 goes out, and the entry it committed already holds no key.
    let old_body = v.body.clone().unwrap();
    v.start(b"wrong");
    assert!(matches!(v.entry, Some(Entry::Destroyed { generation: 2 })));
    assert!(
        v.body.is_none(),
        "the last guess tells the host to drop the body"
    );
    let s = v.core.status(v.entry.as_ref());
    assert!(s.destroyed && !s.exists);
    v.refused_start(None, CoreError::KeyDestroyed { drop_body: false });
    v.refused_start(Some(&old_body), CoreError::KeyDestroyed { drop_body: true });

    // The last guess's KE3 is still honoured when it is right, from its ticket alone
    // (opened as by another replica), and the entry stays destroyed.
    let mut v = Vault::new(1);
    let (c, ke2, ticket) = v.start(b"right");
    assert!(matches!(v.entry, Some(Entry::Destroyed { .. })));
    assert_eq!(ticket.len(), TICKET_LEN);
    let (ke3, wait) = c.finish(v.core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let destroyed = v.entry.clone();
    let done = RecoverStarted::open(&v.core, &v.cred, &ticket, NOW)
        .unwrap()
        .finish(&v.core, destroyed.as_ref(), &ke3, &mut OsRng)
        .unwrap();
    assert_eq!(*wait.open(&done.release_blob).unwrap(), [42; 32]);
    assert!(
        done.entry.is_none(),
        "a destroyed entry is never brought back"
    );
    // Not over a record registered since: that login belongs to a registration that is
    // gone.
    let g = v.try_register(b"new", &[1; 32], None).unwrap();
    v.apply_registration(g);
    assert_eq!(v.finish(&ticket, &ke3), Err(CoreError::NoLogin));
}

/// Crypto-erasure: a body the host kept (or restored from a backup of its database) opens
/// to nothing once its registration was destroyed, deleted or replaced, and a body moved
/// between accounts or edited never opens. None of it counts a guess.
#[test]
fn old_moved_or_edited_bodies_open_nothing_and_count_nothing() {
    let mut v = Vault::new(10);
    let first = v.body.clone().unwrap();
    // A live entry, and no body or another one: refused as rolled back, nothing counted.
    v.refused_start(None, CoreError::StorageRolledBack);
    let mut edited = first.as_bytes().to_vec();
    edited[30] ^= 1;
    v.refused_start(
        Some(&SealedRecord::from_bytes(edited)),
        CoreError::StorageRolledBack,
    );
    // Another vault's body for this credential.
    let other = Vault::new(10);
    v.refused_start(other.body.as_ref(), CoreError::StorageRolledBack);
    // Another account's body on this vault (same generation, same password and K).
    let g = v
        .core
        .register_finish(
            &CredentialId::from_bytes([3; 32]),
            None,
            &Upload::new(
                &v.core,
                &CredentialId::from_bytes([3; 32]),
                b"right",
                &[42; 32],
            )
            .request(),
            Authority::Token,
            NOW,
            &mut OsRng,
        )
        .unwrap();
    v.refused_start(Some(&g.reply.body), CoreError::StorageRolledBack);
    assert_eq!(v.guesses_left(), Some(10));

    // Replaced: the first body no longer opens (new generation, new record key).
    v.register(b"right", &[42; 32]);
    v.refused_start(Some(&first), CoreError::StorageRolledBack);
    let second = v.body.clone().unwrap();
    // Deleted: the account is unknown again; an old body gets a dummy KE2 that no
    // password opens, and nothing is counted.
    let g = v.generation().unwrap();
    let sig = owner_sign(&[42; 32], &v.core, &v.cred, OwnerOp::Delete, g, &[0; 32]);
    let deleted = v
        .core
        .delete(
            &v.cred,
            v.entry.as_ref(),
            Authority::OwnerProof {
                generation: g,
                signature: &sig,
            },
        )
        .unwrap();
    assert_eq!(deleted, Entry::Deleted { generation: g + 1 });
    v.entry = Some(deleted);
    let (ke1, c) = client::recover_start(b"right", &mut OsRng).unwrap();
    let dummy = v
        .core
        .recover_start(
            &v.cred,
            v.entry.as_ref(),
            Some(&second),
            &ke1,
            NOW + 60,
            &mut OsRng,
        )
        .unwrap();
    assert!(dummy.entry.is_none());
    assert!(matches!(
        c.finish(v.core.vault_id(), &dummy.reply.ke2, P, &mut OsRng),
        Err(client::ClientError::WrongPassword)
    ));
    assert_eq!(
        v.core.delete(&v.cred, v.entry.as_ref(), Authority::Token),
        Err(CoreError::NoRecord)
    );
    // Registering again lands above the delete, fresh.
    v.register(b"right", &[42; 32]);
    assert_eq!(v.generation(), Some(g + 2));
    assert_eq!(v.guesses_left(), Some(10));
    v.refused_start(Some(&second), CoreError::StorageRolledBack);
}

#[test]
fn entries_are_bound_to_their_credential_and_core_and_round_trip() {
    let mut v = Vault::new(10);
    v.start(b"wrong");
    let entry = v.entry.clone().unwrap();
    let sealed = v.core.seal_entry(&v.cred, &entry, &mut OsRng).unwrap();
    assert_eq!(sealed.len(), ENTRY_LEN);
    assert_eq!(v.core.open_entry(&v.cred, &sealed), Some(entry.clone()));
    for e in [
        Entry::Destroyed { generation: 7 },
        Entry::Deleted { generation: 8 },
    ] {
        let s = v.core.seal_entry(&v.cred, &e, &mut OsRng).unwrap();
        assert_eq!(s.len(), ENTRY_LEN, "every entry has one length");
        assert_eq!(v.core.open_entry(&v.cred, &s), Some(e));
    }
    assert_eq!(
        v.core
            .open_entry(&CredentialId::from_bytes([2; 32]), &sealed),
        None,
        "an entry moved to another credential"
    );
    for i in [0, 1, 20, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[i] ^= 1;
        assert_eq!(v.core.open_entry(&v.cred, &bad), None, "byte {i} edited");
    }
    assert_eq!(v.core.open_entry(&v.cred, &sealed[..ENTRY_LEN - 1]), None);
    let stranger = Vault::new(10);
    assert_eq!(stranger.core.open_entry(&v.cred, &sealed), None);
}

#[test]
fn dummy_ke2_matches_real_size_and_never_verifies() {
    let v = Vault::new(10);
    let (ke1, c) = client::recover_start(b"right", &mut OsRng).unwrap();
    let (ke1b, cb) = client::recover_start(b"right", &mut OsRng).unwrap();
    let unknown = CredentialId::from_bytes([9; 32]);
    let dummy = v
        .core
        .recover_start(&unknown, None, None, &ke1, NOW + 60, &mut OsRng)
        .unwrap();
    assert!(dummy.entry.is_none(), "a dummy counts nothing");
    let real = v.recover(v.body.as_ref(), &ke1b).unwrap();
    assert_eq!(dummy.reply.ke2.len(), real.reply.ke2.len());
    assert_eq!(dummy.reply.ticket.len(), real.reply.ticket.len());
    assert!(matches!(
        c.finish(v.core.vault_id(), &dummy.reply.ke2, P, &mut OsRng),
        Err(client::ClientError::WrongPassword)
    ));
    // The dummy's ticket never verifies a KE3, not even a genuine one of a real login.
    let (ke3, _) = cb
        .finish(v.core.vault_id(), &real.reply.ke2, P, &mut OsRng)
        .unwrap();
    assert!(matches!(
        v.core
            .recover_finish(&unknown, None, &dummy.reply.ticket, &ke3, NOW, &mut OsRng),
        Err(CoreError::WrongPassword { .. })
    ));
}

#[test]
fn message_sizes_match_the_core_document() {
    let mut v = Vault::new(10);
    let (req, st) = client::register_start(b"pw", &mut OsRng).unwrap();
    let started = v
        .core
        .register_start(&v.cred, &req, NOW + 60, &mut OsRng)
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
    let (c, ke2, ticket) = v.start(b"right");
    let (ke3, wait) = c.finish(v.core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let blob = v.finish(&ticket, &ke3).unwrap();
    assert_eq!(
        (ke1.len(), ke2.len(), ke3.len(), blob.len()),
        (96, 320, 64, 90)
    );
    assert_eq!(*wait.open(&blob).unwrap(), [42; 32]);
    // Login ticket: version, nonce, kind(1) generation(8) attempt(8) guesses_left(4)
    // expiry(8) server state(128) wrapped key(61), tag.
    assert_eq!((ticket.len(), TICKET_LEN), (247, 247));
    // Body: version, nonce, profile(1) nonce(32) len(2) password file(192) wrapped
    // key(61), tag.
    assert_eq!(v.body.as_ref().unwrap().as_bytes().len(), 1 + 12 + 288 + 16);
    // Entry: version, nonce, 93 bytes of plaintext, tag.
    assert_eq!(ENTRY_LEN, 1 + 12 + 93 + 16);
}

#[test]
fn login_ticket_carries_the_state_and_is_bound_to_account_time_and_core() {
    let mut v = Vault::new(10);
    let (c, ke2, ticket) = v.start(b"right");
    assert_eq!(ticket.len(), TICKET_LEN);
    // Another account, an edited byte, or the expiry: refused before KE3 is looked at.
    let other = CredentialId::from_bytes([2; 32]);
    let core = &v.core;
    let open = |cred: &CredentialId, t: &[u8], now| RecoverStarted::open(core, cred, t, now);
    assert_eq!(open(&other, &ticket, 999).err(), Some(TicketError::Invalid));
    for i in [0, 1, 20, ticket.len() - 1] {
        let mut bad = ticket.clone();
        bad[i] ^= 1;
        assert_eq!(open(&v.cred, &bad, 999).err(), Some(TicketError::Invalid));
    }
    assert_eq!(
        open(&v.cred, &ticket, NOW + 60).err(),
        Some(TicketError::Expired)
    );
    // A core with other keys (another vault) cannot open it.
    let stranger = Vault::new(10);
    assert!(RecoverStarted::open(&stranger.core, &v.cred, &ticket, 999).is_err());
    // Opened (as by another replica, or after a restart), it finishes the login.
    let (ke3, wait) = c.finish(v.core.vault_id(), &ke2, P, &mut OsRng).unwrap();
    let blob = v.finish(&ticket, &ke3).unwrap();
    assert_eq!(*wait.open(&blob).unwrap(), [42; 32]);
    // Expired, even a verified one is refused.
    assert_eq!(
        v.core
            .recover_finish(
                &v.cred,
                v.entry.as_ref(),
                &ticket,
                &ke3,
                NOW + 60,
                &mut OsRng
            )
            .err(),
        Some(CoreError::NoLogin)
    );
}

// ---- No free guesses: the registration oracle, owner proofs ----

/// The attack of issue 9: a blinded element sent to `register/start` must never be
/// evaluated under the live record's OPRF key, or its output spliced into one counted
/// KE2 tests any password offline.
#[test]
fn register_start_never_evaluates_the_live_records_oprf_key() {
    let mut v = Vault::new(10);
    let (ke1, c) = client::recover_start(b"right", &mut OsRng).unwrap();
    let ke2 = v.recover(v.body.as_ref(), &ke1).unwrap().reply.ke2;
    // KE1 starts with the blinded element, KE2 with its evaluation; a
    // RegistrationRequest is the blinded element alone, its response starts with the
    // evaluation.
    let blinded = &ke1[..32];
    let evaluated = |v: &Vault| {
        v.core
            .register_start(&v.cred, blinded, NOW + 60, &mut OsRng)
            .unwrap()
            .response[..32]
            .to_vec()
    };
    let via_register = evaluated(&v);
    assert_ne!(via_register, ke2[..32], "register/start is an OPRF oracle");
    // Every registration draws its own key: the same element twice, two evaluations.
    assert_ne!(evaluated(&v), via_register);
    // And the spliced KE2 does not open for the right password.
    let mut spliced = ke2.clone();
    spliced[..32].copy_from_slice(&via_register);
    assert!(matches!(
        c.finish(v.core.vault_id(), &spliced, P, &mut OsRng),
        Err(client::ClientError::WrongPassword)
    ));
    // Unknown accounts: a dummy evaluation is stable per credential (as a real record's
    // would be), yet differs between credentials.
    let eval = |cred: &CredentialId| {
        v.core
            .recover_start(cred, None, None, &ke1, NOW + 60, &mut OsRng)
            .unwrap()
            .reply
            .ke2[..32]
            .to_vec()
    };
    let unknown = CredentialId::from_bytes([9; 32]);
    assert_eq!(eval(&unknown), eval(&unknown));
    assert_ne!(eval(&unknown), eval(&CredentialId::from_bytes([8; 32])));
    assert_ne!(eval(&unknown), via_register);
    v.start(b"x");
}

#[test]
fn a_password_change_changes_the_oprf_key() {
    let mut v = Vault::new(10);
    let (ke1, _) = client::recover_start(b"right", &mut OsRng).unwrap();
    let eval = |v: &Vault| v.recover(v.body.as_ref(), &ke1).unwrap().reply.ke2[..32].to_vec();
    let before = eval(&v);
    v.start(b"wrong");
    v.register(b"right", &[42; 32]);
    assert_ne!(eval(&v), before);
}

#[test]
fn replace_and_delete_of_a_live_record_need_the_owner_proof() {
    let mut v = Vault::new(10);
    let refused = |r: Result<Gated<Registered>, CoreError>| match r {
        Err(CoreError::Owner(e)) => e,
        other => panic!("expected an owner refusal, got {other:?}"),
    };
    // The token alone, or a proof by another key: refused.
    assert_eq!(
        refused(v.try_register(b"evil", &[1; 32], None)),
        OwnerProofError::Required
    );
    assert_eq!(
        refused(v.try_register(b"evil", &[1; 32], Some(&[1; 32]))),
        OwnerProofError::Invalid
    );
    // Guesses do not move the generation: a proof read before a guess still holds.
    let g = v.generation().unwrap();
    v.start(b"wrong");
    assert_eq!(v.generation(), Some(g));
    // A proof of an older generation (the record was replaced since): stale, with the
    // new one.
    let old_sig = owner_sign(&[42; 32], &v.core, &v.cred, OwnerOp::Delete, g, &[0; 32]);
    v.register(b"right", &[42; 32]);
    let g = g + 1;
    let proof = |sig| Authority::OwnerProof {
        generation: g - 1,
        signature: sig,
    };
    assert_eq!(
        v.core.delete(&v.cred, v.entry.as_ref(), proof(&old_sig)),
        Err(CoreError::Owner(OwnerProofError::Stale { generation: g }))
    );
    // A delete proof is no replace proof, and a replace proof binds its content.
    let del = owner_sign(&[42; 32], &v.core, &v.cred, OwnerOp::Delete, g, &[0; 32]);
    let up = Upload::new(&v.core, &v.cred, b"evil", &[1; 32]);
    let as_proof = |sig| Authority::OwnerProof {
        generation: g,
        signature: sig,
    };
    let finish = |a| {
        v.core
            .register_finish(&v.cred, v.entry.as_ref(), &up.request(), a, NOW, &mut OsRng)
    };
    assert_eq!(refused(finish(as_proof(&del))), OwnerProofError::Invalid);
    let sig = owner_sign(&[42; 32], &v.core, &v.cred, OwnerOp::Replace, g, &[7; 32]);
    assert_eq!(refused(finish(as_proof(&sig))), OwnerProofError::Invalid);
    // The app's explicit reset scope replaces without the proof.
    assert!(finish(Authority::ResetScope).is_ok());
    // The token alone deletes nothing live, the right proof does.
    assert_eq!(
        v.core.delete(&v.cred, v.entry.as_ref(), Authority::Token),
        Err(CoreError::Owner(OwnerProofError::Required))
    );
    assert!(
        v.core
            .delete(&v.cred, v.entry.as_ref(), as_proof(&del))
            .is_ok()
    );
    // Over a destroyed record (no K left to prove) the token registers afresh.
    let mut v = Vault::new(1);
    v.start(b"wrong");
    assert!(v.try_register(b"new", &[1; 32], None).is_ok());
    assert!(
        v.core
            .delete(&v.cred, v.entry.as_ref(), Authority::Token)
            .is_ok()
    );
}

#[test]
fn a_registration_ticket_is_bound_to_its_account_and_expires() {
    let v = Vault::new(10);
    let other = CredentialId::from_bytes([2; 32]);
    let up = Upload::new(&v.core, &v.cred, b"pw", &[1; 32]);
    let finish = |cred: &CredentialId, ticket: &[u8], now| {
        v.core.register_finish(
            cred,
            None,
            &RegistrationUploadRequest {
                ticket,
                ..up.request()
            },
            Authority::Token,
            now,
            &mut OsRng,
        )
    };
    let bad = Some(CoreError::BadRegistrationTicket);
    assert_eq!(finish(&other, &up.ticket, NOW).err(), bad);
    assert_eq!(finish(&v.cred, &up.ticket, NOW + 60).err(), bad);
    let mut edited = up.ticket.clone();
    edited[20] ^= 1;
    assert_eq!(finish(&v.cred, &edited, NOW).err(), bad);
    assert_eq!(finish(&v.cred, &up.ticket[..60], NOW).err(), bad);
    // The registration it finishes logs in: the nonce it carried is the record's.
    let mut fresh = Vault {
        core: v.core,
        cred: v.cred,
        entry: None,
        body: None,
    };
    let g = fresh
        .core
        .register_finish(
            &fresh.cred,
            None,
            &up.request(),
            Authority::Token,
            NOW,
            &mut OsRng,
        )
        .unwrap();
    fresh.apply_registration(g);
    let (c, ke2, _) = fresh.start(b"pw");
    assert!(c.finish(fresh.core.vault_id(), &ke2, P, &mut OsRng).is_ok());
}
