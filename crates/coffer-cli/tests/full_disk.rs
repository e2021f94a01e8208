//! A repository on a full disk: a backup that does not fit fails with `storage_full`
//! and a hint, and `forget` + `prune` free space on that same full disk (prune deletes
//! before it writes), after which the backup fits. The disk is a real tmpfs of 3 MiB,
//! which needs root (CI runs as root); elsewhere the test says SKIP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Device;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` bytes that do not compress (a keyed BLAKE3 stream).
fn noise(seed: u8, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    blake3::Hasher::new_keyed(&[seed; 32])
        .finalize_xof()
        .fill(&mut out);
    out
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A tmpfs of `size` mounted at `dir` (made here), unmounted when dropped; `None` (and a
/// SKIP line) where mounting needs a root this test does not have.
fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir(dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
        return None;
    }
    Some(Mount(dir.to_path_buf()))
}

/// A device with a repository, an empty `src` folder to back up, and a restore target
/// that is a tmpfs of 2 MiB, in a temporary folder removed (after the unmount) on drop;
/// `None` where mounting needs a root this test does not have.
struct SmallTarget {
    dev: Device,
    repo: PathBuf,
    src: PathBuf,
    target: PathBuf,
    // Fields drop in this order: unmounted before the folder holding it goes.
    _unmount: Mount,
    _tmp: tempfile::TempDir,
}

fn small_target() -> Option<SmallTarget> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let target = root.join("target");
    let unmount = tmpfs(&target, "2m")?;
    let dev = Device::new(root, "dev");
    let repo = root.join("repo");
    dev.run(&["init", "--repo", s(&repo), "--recovery-key-only"], "")
        .ok();
    let src = root.join("src");
    std::fs::create_dir(&src).unwrap();
    Some(SmallTarget {
        dev,
        repo,
        src,
        target,
        _unmount: unmount,
        _tmp: tmp,
    })
}

#[test]
fn prune_frees_space_on_a_full_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let disk = root.join("disk");
    let Some(_unmount) = tmpfs(&disk, "3m") else {
        return;
    };
    let repo = disk.join("repo");
    let dev = Device::new(root, "dev");
    dev.run(&["init", "--repo", s(&repo), "--recovery-key-only"], "")
        .ok();
    let folder = |name: &str, seed: u8| {
        let d = root.join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("media.bin"), noise(seed, 1200 * 1024)).unwrap();
        d
    };
    let (a, b, c) = (folder("a", 1), folder("b", 2), folder("c", 3));
    let first = dev.run(&["--json", "backup", s(&a)], "").ok().json();
    let second = dev.run(&["--json", "backup", s(&b)], "").ok().json();
    let full = dev.run(&["--json", "backup", s(&c)], "");
    assert_eq!(full.err_code(), "storage_full", "{}", full.stdout);
    assert!(
        full.stdout.contains("prune"),
        "the hint says what to do: {}",
        full.stdout
    );
    // Space comes back without writing first.
    for snap in [&first, &second] {
        dev.run(&["forget", snap["snapshot_id"].as_str().unwrap()], "")
            .ok();
    }
    dev.run(&["prune"], "").ok();
    dev.run(&["backup", s(&c)], "").ok();
    let out = root.join("restored");
    dev.run(&["restore", "latest", "--target", s(&out)], "")
        .ok();
    assert_eq!(
        std::fs::read(out.join("c/media.bin")).unwrap(),
        noise(3, 1200 * 1024)
    );
    dev.run(&["check", "--read-data"], "").ok();
}

/// A restore into a target that fills up: the files it could not take are named as
/// "could not be written into the target" (not as damaged data), the exit is 8 with a
/// hint to free space and restore again, nothing half written keeps a name, and the same
/// restore run again once there is room completes.
#[test]
fn a_restore_onto_a_full_disk_says_so_and_completes_when_run_again() {
    // Bound whole: its fields drop in their declared order (unmount, then the folder);
    // a destructuring pattern would drop them in reverse.
    let Some(t) = small_target() else {
        return;
    };
    let (dev, src, target) = (&t.dev, t.src.clone(), t.target.clone());
    for i in 0..6u8 {
        std::fs::write(src.join(format!("f{i}.bin")), noise(i, 700 * 1024)).unwrap();
    }
    dev.run(&["backup", s(&src)], "").ok();
    let out = dev.run(&["--json", "restore", "latest", "--target", s(&target)], "");
    assert_eq!(out.err_code(), "restore_incomplete", "{}", out.stdout);
    let j = out.json();
    let unwritten = j["error"]["unwritten"].as_array().unwrap();
    assert!(!unwritten.is_empty(), "{}", out.stdout);
    assert!(
        j["error"]["failed"].as_array().unwrap().is_empty(),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("could not be written into the target")
            && out.stdout.contains("free space")
            && !out.stdout.contains("damaged"),
        "{}",
        out.stdout
    );
    // What is there is whole: a restored file is complete, a failed one has no name.
    for e in std::fs::read_dir(target.join("src")).unwrap() {
        let p = e.unwrap().path();
        let i: u8 = p.file_name().unwrap().to_str().unwrap()[1..2]
            .parse()
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), noise(i, 700 * 1024), "{p:?}");
    }
    let room = Command::new("mount")
        .args(["-o", "remount,size=20m"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(room.success());
    dev.run(&["restore", "latest", "--target", s(&target)], "")
        .ok();
    for i in 0..6u8 {
        assert_eq!(
            std::fs::read(target.join(format!("src/f{i}.bin"))).unwrap(),
            noise(i, 700 * 1024)
        );
    }
}

/// Damaged data and a full target in one restore: the exit is 6 (damage comes first), and
/// the message and hint name both troubles, each with its remedy; the hint used to speak
/// of the damage only, leaving the user to guess why sound files were missing.
#[test]
fn a_restore_meeting_damage_and_a_full_disk_names_both() {
    // Bound whole: its fields drop in their declared order (unmount, then the folder);
    // a destructuring pattern would drop them in reverse.
    let Some(t) = small_target() else {
        return;
    };
    let (dev, repo, src, target) = (&t.dev, t.repo.clone(), t.src.clone(), t.target.clone());
    std::fs::write(src.join("f0.bin"), noise(0, 700 * 1024)).unwrap();
    dev.run(&["backup", s(&src)], "").ok();
    // The first backup's packs: f0's data, and trees the latest snapshot does not use.
    let first: Vec<_> = walk(&repo.join("data"));
    for i in 1..6u8 {
        std::fs::write(src.join(format!("f{i}.bin")), noise(i, 700 * 1024)).unwrap();
    }
    dev.run(&["backup", s(&src)], "").ok();
    for p in &first {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        std::fs::write(p, b).unwrap();
    }
    let out = dev.run(&["--json", "restore", "latest", "--target", s(&target)], "");
    assert_eq!(out.err_code(), "integrity_error", "{}", out.stdout);
    let j = out.json();
    assert!(
        !j["error"]["failed"].as_array().unwrap().is_empty(),
        "{}",
        out.stdout
    );
    assert!(
        !j["error"]["unwritten"].as_array().unwrap().is_empty(),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, 6, "damage decides the exit: {}", out.stdout);
    let (message, hint) = (
        j["error"]["message"].as_str().unwrap_or_default(),
        j["error"]["hint"].as_str().unwrap_or_default(),
    );
    assert!(
        message.contains("damaged data") && message.contains("could not be written"),
        "{}",
        out.stdout
    );
    assert!(
        hint.contains("check --read-data")
            && hint.contains("free space")
            && !hint.contains("the backup is sound"),
        "{}",
        out.stdout
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        match p.is_dir() {
            true => out.extend(walk(&p)),
            false => out.push(p),
        }
    }
    out
}
