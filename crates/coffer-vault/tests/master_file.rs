//! The file master key (development) and the master key flags.
#![allow(clippy::unwrap_used)]

mod master_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Parser;
use coffer_vault::master::{
    DEFAULT_KEY_LABEL, MasterKey, MasterKeyArgs, MasterKeyError, MasterKeySource, Pkcs11Config,
};
use master_common::{AAD, SECRET, assert_alterations_refused, seal_checked};

fn file(dir: &Path) -> MasterKeySource {
    MasterKeySource::File(dir.join("master.key"))
}

#[test]
fn file_key_round_trips_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let src = file(dir.path());
    let sealed = seal_checked(&MasterKey::create(&src).unwrap(), 1);
    let meta = std::fs::metadata(dir.path().join("master.key")).unwrap();
    assert_eq!(meta.len(), 32);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // A fresh MasterKey, as after a restart.
    let key = MasterKey::open(&src).unwrap();
    assert_alterations_refused(&key, &sealed);

    // Another vault's master key opens nothing of this one.
    let other = tempfile::tempdir().unwrap();
    let other = MasterKey::create(&file(other.path())).unwrap();
    assert!(matches!(
        other.open_sealed(AAD, &sealed),
        Err(MasterKeyError::Unauthentic)
    ));
}

#[test]
fn file_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = file(dir.path());
    MasterKey::create(&src).unwrap();
    let path = dir.path().join("master.key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = MasterKey::open(&src).unwrap_err();
    assert!(
        matches!(err, MasterKeyError::Permissions { mode: 0o640, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    MasterKey::open(&src).unwrap();
}

#[test]
fn file_key_create_refuses_to_overwrite_and_open_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = file(dir.path());
    let err = MasterKey::open(&src).unwrap_err();
    assert!(matches!(err, MasterKeyError::FileMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("coffer-vault init"), "{err}");

    let sealed = MasterKey::create(&src).unwrap().seal(AAD, SECRET).unwrap();
    let err = MasterKey::create(&src).unwrap_err();
    assert!(matches!(err, MasterKeyError::FileExists { .. }), "{err:?}");
    // The refused create left the first key in place.
    let key = MasterKey::open(&src).unwrap();
    assert_eq!(key.open_sealed(AAD, &sealed).unwrap().as_slice(), SECRET);

    let path = dir.path().join("master.key");
    for len in [0usize, 31, 33] {
        std::fs::write(&path, vec![1u8; len]).unwrap();
        let err = MasterKey::open(&src).unwrap_err();
        assert!(
            matches!(err, MasterKeyError::FileMalformed { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn pin_file_readable_by_others_or_empty_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pin = dir.path().join("pin");
    let src = MasterKeySource::Pkcs11(Pkcs11Config {
        // Never loaded: the PIN file is checked first.
        module: dir.path().join("module.so"),
        slot: 0,
        pin_file: pin.clone(),
        label: DEFAULT_KEY_LABEL.into(),
    });
    std::fs::write(&pin, "1234\n").unwrap();
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = MasterKey::open(&src).unwrap_err();
    assert!(matches!(err, MasterKeyError::Permissions { .. }), "{err:?}");
    for (content, problem) in [("\n", "empty"), ("", "empty"), (&"9".repeat(300), "longer")] {
        std::fs::write(&pin, content).unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = MasterKey::open(&src).unwrap_err();
        assert!(
            matches!(err, MasterKeyError::PinFileInvalid { .. })
                && err.to_string().contains(problem),
            "{err:?}"
        );
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    master: MasterKeyArgs,
}

fn parse(args: &[&str]) -> Result<MasterKeySource, clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once("coffer-vault").chain(args.iter().copied()))?;
    Ok(cli.master.source(Path::new("/data/core/master.key")))
}

#[test]
fn flags_name_the_source() {
    assert_eq!(
        parse(&[]).unwrap(),
        MasterKeySource::File("/data/core/master.key".into())
    );
    assert_eq!(
        parse(&["--master-key-file", "/k"]).unwrap(),
        MasterKeySource::File("/k".into())
    );
    let pkcs11 = [
        "--pkcs11-module",
        "/m.so",
        "--pkcs11-slot",
        "7",
        "--pkcs11-pin-file",
        "/pin",
    ];
    let want = Pkcs11Config {
        module: PathBuf::from("/m.so"),
        slot: 7,
        pin_file: PathBuf::from("/pin"),
        label: DEFAULT_KEY_LABEL.into(),
    };
    assert_eq!(
        parse(&pkcs11).unwrap(),
        MasterKeySource::Pkcs11(want.clone())
    );
    let labelled = [&pkcs11[..], &["--pkcs11-key-label", "k2"]].concat();
    assert_eq!(
        parse(&labelled).unwrap(),
        MasterKeySource::Pkcs11(Pkcs11Config {
            label: "k2".into(),
            ..want
        })
    );
    // A module without its slot and PIN file, a slot without a module, and both sources.
    assert!(parse(&["--pkcs11-module", "/m.so"]).is_err());
    assert!(parse(&["--pkcs11-slot", "1"]).is_err());
    assert!(parse(&["--pkcs11-key-label", "x"]).is_err());
    let both = [&pkcs11[..], &["--master-key-file", "/k"]].concat();
    assert!(parse(&both).is_err());
}

/// The core shares one opened key between its threads (the token session is behind a lock).
#[test]
fn master_key_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<MasterKey>();
}
