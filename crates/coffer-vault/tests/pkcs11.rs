//! The PKCS#11 master key against a real SoftHSM2 token.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process, at C_Initialize, so every test makes
//! its own token directory and runs each of its steps as this test binary re-run in a
//! child process (the ignored test `pkcs11_child`) with that configuration. A step in a
//! new process is also what a core restart is: a new C_Initialize, session and login.
//!
//! Needs Debian's `softhsm2` package; without it these tests fail, they do not skip.
#![allow(clippy::unwrap_used)]

mod master_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_vault::master::{MasterKey, MasterKeyError, MasterKeySource, Pkcs11Config};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use master_common::{AAD, SECRET, assert_alterations_refused, seal_checked};

/// Where Debian's `softhsm2` puts the module.
const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];
const LABEL: &str = "coffer-vault-master";

fn module() -> PathBuf {
    let installed = MODULES.iter().map(Path::new).find(|p| p.exists());
    let util = Command::new("softhsm2-util").arg("--version").output();
    match (installed, util) {
        (Some(m), Ok(out)) if out.status.success() => m.to_path_buf(),
        _ => panic!(
            "SoftHSM2 is not installed: run `apt-get install -y softhsm2` (Debian); the PKCS#11 master key tests need its module ({}) and softhsm2-util",
            MODULES[0]
        ),
    }
}

/// A fresh SoftHSM2 token in its own directory.
struct Token {
    dir: tempfile::TempDir,
    conf: PathBuf,
    slot: u64,
}

impl Token {
    fn new() -> Token {
        module();
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "coffer"])
            .args(["--pin", "1234", "--so-pin", "5678"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "softhsm2-util --init-token: {text}");
        // "The token has been initialized and is reassigned to slot 1234567"
        let slot = text
            .split_whitespace()
            .last()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no slot id in softhsm2-util's output: {text}"));
        let t = Token { dir, conf, slot };
        t.pin_file("pin", "1234\n");
        t
    }

    fn pin_file(&self, name: &str, pin: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, pin).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// Runs step `step` in a child process; its panic message if it failed.
    fn run(&self, step: &str, env: &[(&str, &str)]) -> Result<(), String> {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "pkcs11_child", "--ignored", "--nocapture"])
            .args(["--test-threads=1"])
            .env("SOFTHSM2_CONF", &self.conf)
            .env("COFFER_PKCS11_STEP", step)
            .env("COFFER_PKCS11_DIR", self.dir.path())
            .env("COFFER_PKCS11_SLOT", self.slot.to_string());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            // Guards against a filter that matched nothing, which would pass silently.
            assert!(
                stdout.contains("test pkcs11_child ... ok"),
                "step {step} did not run: {stdout}"
            );
            Ok(())
        } else {
            Err(format!("{stdout}\n{stderr}"))
        }
    }

    fn step(&self, step: &str) {
        if let Err(e) = self.run(step, &[]) {
            panic!("step {step} failed:\n{e}");
        }
    }
}

#[test]
fn pkcs11_seal_survives_a_restart() {
    let t = Token::new();
    t.step("create_and_seal");
    t.step("reopen_and_open");
}

#[test]
fn pkcs11_key_is_sensitive_and_never_extractable() {
    let t = Token::new();
    t.step("create_and_seal");
    t.step("inspect_key_object");
}

#[test]
fn pkcs11_wrong_pin_is_refused_clearly() {
    let t = Token::new();
    t.step("create_and_seal");
    t.pin_file("wrong-pin", "9999\n");
    t.step("wrong_pin");
    // The wrong try did not lock the token or damage the key.
    t.step("reopen_and_open");
}

#[test]
fn pkcs11_tampered_blob_or_wrong_aad_is_refused() {
    let t = Token::new();
    t.step("create_and_seal");
    t.step("tampered");
}

#[test]
fn pkcs11_second_create_refuses_and_keeps_the_key() {
    let t = Token::new();
    t.step("create_and_seal");
    t.step("create_again");
    t.step("reopen_and_open");
}

#[test]
fn pkcs11_missing_key_or_slot_says_what_to_do() {
    let t = Token::new();
    t.step("missing_key_and_slot");
}

#[test]
fn pkcs11_imported_key_is_refused() {
    let t = Token::new();
    t.step("import_known_key");
}

#[test]
fn pkcs11_module_that_does_not_load_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pin = dir.path().join("pin");
    std::fs::write(&pin, "1234").unwrap();
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    let src = MasterKeySource::Pkcs11(Pkcs11Config {
        module: dir.path().join("no-such-module.so"),
        slot: 0,
        pin_file: pin,
        label: LABEL.into(),
    });
    let err = MasterKey::open(&src).unwrap_err();
    assert!(matches!(err, MasterKeyError::ModuleLoad { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-module.so") && msg.contains("--pkcs11-module"),
        "{msg}"
    );
}

/// One step of a test above, in its own process (see the module comment).
#[test]
#[ignore = "run by the PKCS#11 tests as their child process, with SOFTHSM2_CONF set"]
fn pkcs11_child() {
    let (Ok(step), Ok(dir), Ok(slot)) = (
        std::env::var("COFFER_PKCS11_STEP"),
        std::env::var("COFFER_PKCS11_DIR"),
        std::env::var("COFFER_PKCS11_SLOT"),
    ) else {
        panic!(
            "pkcs11_child is a step of the other tests in this file; it runs only as their child process"
        );
    };
    let dir = PathBuf::from(dir);
    let slot: u64 = slot.parse().unwrap();
    let src = |pin: &str| {
        MasterKeySource::Pkcs11(Pkcs11Config {
            module: module(),
            slot,
            pin_file: dir.join(pin),
            label: LABEL.into(),
        })
    };
    let sealed_path = dir.join("sealed");
    match step.as_str() {
        "create_and_seal" => {
            let key = MasterKey::create(&src("pin")).unwrap();
            let sealed = seal_checked(&key, 2);
            // A fresh MasterKey on a new session of the same process opens it too.
            drop(key);
            let again = MasterKey::open(&src("pin")).unwrap();
            assert_eq!(again.open_sealed(AAD, &sealed).unwrap().as_slice(), SECRET);
            std::fs::write(&sealed_path, &sealed).unwrap();
        }
        "reopen_and_open" => {
            let sealed = std::fs::read(&sealed_path).unwrap();
            let key = MasterKey::open(&src("pin")).unwrap();
            assert_eq!(key.open_sealed(AAD, &sealed).unwrap().as_slice(), SECRET);
        }
        "inspect_key_object" => inspect_key_object(slot),
        "wrong_pin" => {
            let err = MasterKey::open(&src("wrong-pin")).unwrap_err();
            assert!(matches!(err, MasterKeyError::WrongPin { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains("refused the PIN") && msg.contains("wrong-pin"),
                "{msg}"
            );
            assert!(!msg.contains("9999"), "the PIN must not appear: {msg}");
            let err = MasterKey::create(&src("wrong-pin")).unwrap_err();
            assert!(matches!(err, MasterKeyError::WrongPin { .. }), "{err:?}");
        }
        "tampered" => {
            let sealed = std::fs::read(&sealed_path).unwrap();
            let key = MasterKey::open(&src("pin")).unwrap();
            assert_alterations_refused(&key, &sealed);
        }
        "create_again" => {
            let err = MasterKey::create(&src("pin")).unwrap_err();
            assert!(matches!(err, MasterKeyError::KeyExists { .. }), "{err:?}");
            assert!(err.to_string().contains("refusing"), "{err}");
        }
        "missing_key_and_slot" => {
            let err = MasterKey::open(&src("pin")).unwrap_err();
            assert!(matches!(err, MasterKeyError::KeyNotFound { .. }), "{err:?}");
            assert!(
                err.to_string()
                    .contains("run coffer-vault init with the same --pkcs11-* flags"),
                "{err}"
            );
            let other_slot = MasterKeySource::Pkcs11(Pkcs11Config {
                module: module(),
                slot: slot.wrapping_add(1),
                pin_file: dir.join("pin"),
                label: LABEL.into(),
            });
            let err = MasterKey::open(&other_slot).unwrap_err();
            assert!(matches!(err, MasterKeyError::NoSuchSlot { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("{slot} (coffer)")) && msg.contains("--pkcs11-slot"),
                "{msg}"
            );
        }
        "import_known_key" => {
            // A key whose value was known outside the token, even though it is now
            // sensitive and non-extractable, must not become the master key.
            let session = login(slot);
            session
                .create_object(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Value(vec![7u8; 32]),
                    Attribute::Label(LABEL.as_bytes().to_vec()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ])
                .unwrap();
            drop(session);
            let err = MasterKey::open(&src("pin")).unwrap_err();
            assert!(
                matches!(err, MasterKeyError::KeyExtractable { .. }),
                "{err:?}"
            );
        }
        other => panic!("unknown step {other}"),
    }
}

/// A logged-in session through cryptoki directly, independent of the code under test.
fn login(slot: u64) -> cryptoki::session::Session {
    let ctx = Pkcs11::new(module()).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let session = ctx.open_rw_session(Slot::try_from(slot).unwrap()).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from("1234")))
        .unwrap();
    session
}

fn inspect_key_object(slot: u64) {
    let session = login(slot);
    let keys = session
        .find_objects(&[Attribute::Label(LABEL.as_bytes().to_vec())])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0];
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Class,
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Wrap,
                AttributeType::Unwrap,
                AttributeType::Sign,
                AttributeType::Derive,
            ],
        )
        .unwrap();
    for want in [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32u64.into()),
        Attribute::Token(true),
        Attribute::Sensitive(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Derive(false),
    ] {
        assert!(attrs.contains(&want), "{want:?} missing in {attrs:?}");
    }
    // C_GetAttributeValue on CKA_VALUE: the token answers CKR_ATTRIBUTE_SENSITIVE, which
    // cryptoki reports as the attribute being unavailable.
    let value = session
        .get_attributes(key, &[AttributeType::Value])
        .unwrap();
    assert!(value.is_empty(), "CKA_VALUE readable: {value:?}");
    // Nor can it leave wrapped under a key the caller knows.
    let wrapping = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(vec![9u8; 32]),
            Attribute::Token(false),
            Attribute::Wrap(true),
        ])
        .unwrap();
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key);
    assert!(
        matches!(wrapped, Err(CkError::Pkcs11(RvError::KeyUnextractable, _))),
        "{wrapped:?}"
    );
    // Nor be made extractable again.
    let changed = session.update_attributes(key, &[Attribute::Extractable(true)]);
    assert!(changed.is_err(), "CKA_EXTRACTABLE set back to true");
}
