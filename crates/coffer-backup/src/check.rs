//! check: the structure (every snapshot's blobs indexed, every indexed pack present with
//! its size), and with read_data every byte of every pack.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::Error;
use crate::format;
use crate::repo::Repository;
use crate::types::{CheckReport, Head, Progress, ProgressEvent};
use crate::walk::{Found, Reach, Trees};

pub(crate) fn check(
    repo: &Repository,
    read_data: bool,
    progress: Option<&dyn Progress>,
) -> Result<CheckReport, Error> {
    let mut r = CheckReport::default();
    let keys = repo.store.list("keys/")?;
    if keys.len() > 1 {
        r.warnings.push(format!(
            "{} keyring objects: an interrupted key rotation left the old key working; rotate again",
            keys.len()
        ));
    }
    let (index, problems) = repo.load_index()?;
    r.errors.extend(problems);
    r.packs = index.packs.len() as u64;
    r.blobs = index.blob_count() as u64;
    let trees = Trees::new(repo, &index);
    let mut reach = Reach::default();

    let listed_snapshots = repo.snapshot_names()?;
    let mut head: Option<(u64, i64, String)> = None;
    let mut seqs = Vec::new();
    for name in &listed_snapshots {
        match repo.load_manifest(name) {
            Ok(m) => {
                r.snapshots += 1;
                let key = (m.seq.unwrap_or(0), m.time_ns, name.clone());
                if head.as_ref().is_none_or(|h| key > *h) {
                    head = Some(key);
                }
                seqs.extend(m.seq);
                // Trees shared with a snapshot checked before are not walked again: their
                // blobs were counted then.
                let mut missing = 0u64;
                let (mut errors, mut unreadable) = (Vec::new(), Vec::new());
                reach.snapshot(
                    &trees,
                    &m,
                    &format!("snapshots/{name}"),
                    &mut |f| match f {
                        Found::TreePart(id) | Found::Chunk(id) => {
                            missing += u64::from(!index.contains(id));
                        }
                        Found::Malformed(path) => errors.push(format!(
                            "snapshot {name}: {} has a malformed chunk list",
                            path.display()
                        )),
                    },
                    &mut |e| {
                        unreadable.push(format!("snapshot {name}: {e}"));
                        Ok(())
                    },
                )?;
                r.errors.append(&mut errors);
                r.errors.append(&mut unreadable);
                if missing > 0 {
                    r.errors.push(format!(
                        "snapshot {name}: {missing} blobs are not in any pack"
                    ));
                }
            }
            Err(e @ Error::Integrity { .. }) => r.errors.push(format!(
                "snapshot {name} cannot be read ({e}); coffer forget {name} removes it"
            )),
            Err(e) => return Err(e),
        }
    }
    let head = head.map(|(seq, _, id)| Head { seq, id });
    if let Err(e) = repo.observe_head(head, &listed_snapshots) {
        r.errors.push(e.to_string());
    }
    seqs.sort_unstable();
    seqs.dedup();
    for w in seqs.windows(2) {
        if w[1] > w[0] + 1 {
            let (a, b) = (w[0] + 1, w[1] - 1);
            let range = if a == b {
                a.to_string()
            } else {
                format!("{a}..{b}")
            };
            r.warnings.push(format!(
                "snapshot sequence numbers {range} are missing: forget removes snapshots like this; if nobody ran forget, the storage dropped them"
            ));
        }
    }

    let listed: HashMap<String, u64> = repo.store.list("data/")?.into_iter().collect();
    let indexed: HashSet<&str> = index.packs.iter().map(|p| p.name.as_str()).collect();
    for name in listed.keys() {
        if !indexed.contains(name.as_str()) {
            r.warnings.push(format!(
                "data/{name} is not indexed (left by an interrupted backup; prune removes it)"
            ));
        }
    }
    let old_tmp = repo.store.stale_tmp(crate::lock::STALE_AFTER)?;
    for name in repo.store.stale_tmp(std::time::Duration::ZERO)? {
        r.warnings.push(if old_tmp.contains(&name) {
            format!("tmp/{name} is a partial object left by a killed backup or prune; prune removes it")
        } else {
            format!("tmp/{name} is being written, or was left by a process killed in the last 30 minutes (prune removes it once older)")
        });
    }
    for name in crate::lock::stale_locks(&repo.store)? {
        r.warnings.push(format!(
            "locks/{name} is stale (a backup or prune died); it is ignored, and coffer unlock removes it"
        ));
    }

    if !read_data {
        for p in &index.packs {
            match repo.store.stat_len(&format!("data/{}", p.name))? {
                None => r.errors.push(format!("data/{}: missing", p.name)),
                Some(l) if l != p.len => r
                    .errors
                    .push(format!("data/{}: size {l}, index says {}", p.name, p.len)),
                Some(_) => {}
            }
        }
        return Ok(r);
    }

    let next = AtomicUsize::new(0);
    let verified = AtomicU64::new(0);
    let errors = Mutex::new(Vec::new());
    let total: u64 = index.packs.iter().map(|p| p.len).sum();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let fatal = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(p) = index.packs.get(i) else { break };
                    let entries = index.pack_entries(i);
                    let object = format!("data/{}", p.name);
                    let bytes = match repo.store.read_opt(&object) {
                        Ok(Some(b)) => b,
                        Ok(None) => {
                            push(&errors, format!("{object}: missing"));
                            continue;
                        }
                        Err(e) => {
                            if let Ok(mut f) = fatal.lock() {
                                *f = Some(e);
                            }
                            break;
                        }
                    };
                    for e in verify_pack(repo, &object, &p.name, &bytes, entries) {
                        push(&errors, e);
                    }
                    let done = verified.fetch_add(bytes.len() as u64, Ordering::SeqCst)
                        + bytes.len() as u64;
                    if let Some(pr) = progress {
                        pr.event(&ProgressEvent::Bytes { done, total });
                    }
                }
            });
        }
    });
    if let Some(e) = fatal.into_inner().ok().flatten() {
        return Err(e);
    }
    r.errors.extend(errors.into_inner().unwrap_or_default());
    r.bytes_verified = verified.load(Ordering::SeqCst);
    Ok(r)
}

fn push(v: &Mutex<Vec<String>>, s: String) {
    if let Ok(mut g) = v.lock() {
        g.push(s);
    }
}

/// Every way a pack can be wrong: name, header, tiling, each blob's AEAD and id.
fn verify_pack(
    repo: &Repository,
    object: &str,
    name: &str,
    bytes: &[u8],
    indexed: &[format::BlobEntry],
) -> Vec<String> {
    let mut errs = Vec::new();
    if blake3::hash(bytes).to_hex().as_str() != name {
        errs.push(format!("{object}: content does not match its name"));
    }
    let (epoch, entries) = match format::pack_header(&repo.keyring, bytes, object) {
        Ok(x) => x,
        Err(e) => {
            errs.push(e.to_string());
            return errs;
        }
    };
    if entries != indexed {
        errs.push(format!("{object}: header differs from its index"));
    }
    let Ok(ep) = repo.keyring.epoch(epoch, object) else {
        errs.push(format!("{object}: unknown epoch {epoch}"));
        return errs;
    };
    for run in format::blob_runs(&entries) {
        // Within the pack after the header's tiling check; a range outside it would open
        // as nothing and be reported with its blobs.
        let sealed = format::run_bytes(bytes, run).unwrap_or_default();
        format::open_run(ep, run, sealed, |e, data| {
            if data.is_none() {
                errs.push(format!("{object}: blob {} is damaged", hex::encode(e.id)));
            }
        });
    }
    errs
}
