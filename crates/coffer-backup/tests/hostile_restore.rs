//! A snapshot written by a compromised device holding K can name anything, in any order.
//! Restore must never change anything outside its target (THREAT_MODEL.md "A hostile
//! snapshot"). The snapshots here are crafted with the engine's own writer
//! (`coffer_backup::testing`), the way such a device would write them.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use coffer_backup::testing::{CraftedEntry, CraftedKind, write_snapshot};
use coffer_backup::{Overwrite, Repository, RestoreOptions, RestoreSummary};
use common::key;

/// Every entry at and below `root` with kind, mode, mtime and content: what "nothing
/// changed" is compared on.
fn state(root: &Path) -> Vec<(PathBuf, u32, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let content = if m.file_type().is_symlink() {
            use std::os::unix::ffi::OsStrExt;
            std::fs::read_link(&p)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
            b"<dir>".to_vec()
        } else {
            std::fs::read(&p).unwrap()
        };
        let mtime = m.mtime() * 1_000_000_000 + m.mtime_nsec();
        out.push((p, m.mode(), mtime, content));
    }
    out.sort();
    out
}

/// A directory outside the target with a sentinel file, both with old times and odd modes.
fn outside(root: &Path) -> PathBuf {
    let o = root.join("outside");
    std::fs::create_dir(&o).unwrap();
    std::fs::write(o.join("sentinel"), b"keep me").unwrap();
    std::fs::set_permissions(o.join("sentinel"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for p in [o.join("sentinel"), o.clone()] {
        std::fs::File::open(&p).unwrap().set_modified(old).unwrap();
    }
    std::fs::set_permissions(&o, std::fs::Permissions::from_mode(0o750)).unwrap();
    o
}

fn entry(path: impl AsRef<[u8]>, kind: CraftedKind) -> CraftedEntry {
    let mode = match kind {
        CraftedKind::Dir => 0o777,
        _ => 0o666,
    };
    CraftedEntry {
        path: path.as_ref().to_vec(),
        kind,
        mode,
        mtime_ns: 0,
    }
}

fn file(path: impl AsRef<[u8]>) -> CraftedEntry {
    entry(path, CraftedKind::File(b"written by the attacker".to_vec()))
}

fn link(path: impl AsRef<[u8]>, to: impl AsRef<[u8]>) -> CraftedEntry {
    entry(path, CraftedKind::Symlink(to.as_ref().to_vec()))
}

fn bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

/// Restores `entries` into a fresh target next to a fresh `outside`, asserts that nothing
/// outside the target changed, and returns the summary and the target.
fn restore_crafted(
    name: &str,
    make: impl Fn(&Path) -> Vec<CraftedEntry>,
) -> (RestoreSummary, PathBuf) {
    restore_crafted_with(name, make, |_| {}, &RestoreOptions::default())
}

fn restore_crafted_with(
    name: &str,
    make: impl Fn(&Path) -> Vec<CraftedEntry>,
    prepare_target: impl Fn(&Path),
    opts: &RestoreOptions,
) -> (RestoreSummary, PathBuf) {
    let tmp = tempfile::tempdir().unwrap().keep();
    let o = outside(&tmp);
    let target = tmp.join("target");
    std::fs::create_dir(&target).unwrap();
    prepare_target(&target);
    let repo = Repository::init(&format!("memory://hostile-{name}"), &key()).unwrap();
    let id = write_snapshot(&repo, &make(&o)).unwrap();
    let before = state(&o);
    let s = repo.restore(&id, &target, &[], opts).unwrap();
    assert_eq!(
        state(&o),
        before,
        "{name}: something outside the target changed"
    );
    assert!(
        !s.is_complete(),
        "{name}: a refused entry makes the restore incomplete"
    );
    (s, target)
}

fn refused(s: &RestoreSummary) -> Vec<PathBuf> {
    s.refused.iter().map(|(p, _)| p.clone()).collect()
}

#[test]
fn symlink_then_file_writes_nothing_through_the_link() {
    let (s, target) = restore_crafted("link-file", |o| {
        vec![link("h", bytes(o)), file("h/f"), file("h/sentinel")]
    });
    // The files land in a real directory h inside the target; the link is then refused.
    assert_eq!(refused(&s), [PathBuf::from("h")]);
    assert!(
        std::fs::symlink_metadata(target.join("h"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        std::fs::read(target.join("h/f")).unwrap(),
        b"written by the attacker"
    );
}

#[test]
fn symlink_then_dir_creates_nothing_and_changes_no_mode_or_time_outside() {
    let (s, _) = restore_crafted("link-dir", |o| {
        vec![
            link("h", bytes(o)),
            entry("h/new", CraftedKind::Dir),
            entry("h", CraftedKind::Dir),
        ]
    });
    assert!(refused(&s).contains(&PathBuf::from("h")), "{s:?}");
}

#[test]
fn symlink_then_symlink_replaces_nothing_outside() {
    let (s, _) = restore_crafted("link-link", |o| {
        vec![link("h", bytes(o)), link("h/sentinel", "/etc/passwd")]
    });
    assert_eq!(refused(&s).len(), 1, "{s:?}");
}

#[test]
fn links_created_in_any_order_never_lead_a_later_entry_outside() {
    // Links first and last, nested, and a link whose parent is a link.
    let (s, _) = restore_crafted("link-order", |o| {
        vec![
            link("a", bytes(o)),
            link("a/b", bytes(o)),
            link("c", "a"),
            file("c/sentinel"),
            entry("a/d", CraftedKind::Dir),
            link("a", "."),
        ]
    });
    assert!(!s.refused.is_empty());
}

#[test]
fn dot_dot_and_absolute_names_are_refused() {
    let (s, target) = restore_crafted("dotdot", |o| {
        let mut abs = bytes(o);
        abs.extend_from_slice(b"/abs");
        vec![
            file("../outside/sentinel"),
            file("ok/../../outside/sentinel"),
            file(abs),
            file("/etc/coffer-test-never"),
            file(""),
            file("fine"),
        ]
    });
    assert_eq!(s.refused.len(), 5, "{s:?}");
    assert_eq!(s.files, 1);
    assert!(target.join("fine").is_file());
    assert!(!Path::new("/etc/coffer-test-never").exists());
}

#[test]
fn symlink_to_a_directory_inside_the_target_is_not_followed_either() {
    let (s, target) = restore_crafted("inner-link", |_| {
        vec![
            entry("real", CraftedKind::Dir),
            link("h", "real"),
            file("h/f"),
        ]
    });
    assert_eq!(refused(&s), [PathBuf::from("h")]);
    assert!(
        !target.join("real/f").exists(),
        "nothing was written through h"
    );
}

#[test]
fn links_already_in_the_target_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("outside");
    let (s, _) = restore_crafted_with(
        "existing-link",
        |_| {
            vec![
                file("h/f"),
                entry("h/g", CraftedKind::Dir),
                link("h/l", "/etc"),
            ]
        },
        |t| std::os::unix::fs::symlink(&o, t.join("h")).unwrap(),
        &RestoreOptions {
            overwrite: Overwrite::Always,
            ..Default::default()
        },
    );
    assert_eq!(s.refused.len(), 3, "{s:?}");
    assert!(
        s.refused.iter().all(|(_, why)| why.contains("symlink")),
        "{s:?}"
    );
}

#[test]
fn setuid_and_setgid_are_dropped_unless_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::init(tmp.path().join("repo").to_str().unwrap(), &key()).unwrap();
    let mut suid = file("suid");
    suid.mode = 0o6755;
    let mut dir = entry("sgid-dir", CraftedKind::Dir);
    dir.mode = 0o2775;
    let id = write_snapshot(&repo, &[suid, dir]).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;

    let t1 = tmp.path().join("t1");
    let s = repo
        .restore(&id, &t1, &[], &RestoreOptions::default())
        .unwrap();
    assert!(s.is_complete(), "{s:?}");
    assert_eq!(mode(&t1.join("suid")), 0o755);
    assert_eq!(mode(&t1.join("sgid-dir")), 0o775);

    let t2 = tmp.path().join("t2");
    let opts = RestoreOptions {
        preserve_setuid: true,
        ..Default::default()
    };
    repo.restore(&id, &t2, &[], &opts).unwrap();
    assert_eq!(mode(&t2.join("suid")), 0o6755);
    assert_eq!(mode(&t2.join("sgid-dir")), 0o2775);
}
