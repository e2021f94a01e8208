//! forget (keep rules) and prune (delete what no snapshot uses), FORMAT.md "Prune".

use std::collections::{HashMap, HashSet};

use crate::Error;
use crate::format::{self, BlobEntry};
use crate::lock;
use crate::pipeline::{Blob, Group, PACK_TARGET, fits, pack_full, store_pack};
use crate::repo::{Repository, info, resolve_prefix};
use crate::types::{ForgetReport, KeepPolicy, Progress, ProgressEvent, PruneReport};
use crate::walk::{Found, Reach, Trees};

/// Days since 1970-01-01 to the UTC (year, month, day), proleptic Gregorian (Howard
/// Hinnant's civil-from-days). Public so that front ends print dates the way the keep
/// rules count them.
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn year_month(days: i64) -> (i64, i64) {
    let (y, m, _) = civil_date(days);
    (y, m)
}

pub(crate) fn forget(
    repo: &Repository,
    policy: &KeepPolicy,
    dry_run: bool,
) -> Result<ForgetReport, Error> {
    if policy.last.is_none()
        && policy.daily.is_none()
        && policy.weekly.is_none()
        && policy.monthly.is_none()
    {
        return Err(Error::InvalidArgument {
            detail: "the keep policy keeps nothing; give at least one rule".into(),
        });
    }
    let mut all = repo.load_manifests()?;
    all.reverse(); // newest first; the repository head is first
    // The rules apply within each group (by default host and paths, as restic), so one
    // device's --keep-last 1 never removes another device's snapshots.
    type Group<'a> = (Option<&'a str>, Option<&'a [String]>);
    let mut groups: HashMap<Group, Vec<usize>> = HashMap::new();
    for (i, (_, m)) in all.iter().enumerate() {
        let key = (
            policy.group_by.host.then_some(m.hostname.as_str()),
            policy.group_by.paths.then_some(m.paths.as_slice()),
        );
        groups.entry(key).or_default().push(i);
    }
    let mut keep = vec![false; all.len()];
    for members in groups.values() {
        let times: Vec<i64> = members.iter().map(|&i| all[i].1.time_ns).collect();
        for (k, &i) in keep_flags(&times, policy).into_iter().zip(members) {
            keep[i] |= k;
        }
    }
    // The head always stays: devices that saw it would take its removal for a rollback.
    if let Some(k) = keep.first_mut() {
        *k = true;
    }
    let mut report = ForgetReport {
        dry_run,
        ..Default::default()
    };
    for ((id, m), k) in all.iter().zip(keep) {
        if k {
            report.kept.push(info(id, m));
        } else {
            if !dry_run {
                repo.store.delete(&format!("snapshots/{id}"))?;
            }
            report.removed.push(info(id, m));
        }
    }
    report.kept.reverse();
    report.removed.reverse();
    Ok(report)
}

/// Which of one group's snapshots (times newest first) the rules keep.
fn keep_flags(times: &[i64], policy: &KeepPolicy) -> Vec<bool> {
    let mut keep = vec![false; times.len()];
    if let Some(n) = policy.last {
        for k in keep.iter_mut().take(n as usize) {
            *k = true;
        }
    }
    let day = |t: i64| t.div_euclid(86_400_000_000_000);
    type Bucket<'a> = &'a dyn Fn(i64) -> i64;
    let rules: [(Option<u32>, Bucket); 3] = [
        (policy.daily, &|t| day(t)),
        // 1970-01-01 was a Thursday; +3 makes buckets start on Mondays (ISO weeks).
        (policy.weekly, &|t| (day(t) + 3).div_euclid(7)),
        (policy.monthly, &|t| {
            let (y, m) = year_month(day(t));
            y * 12 + m
        }),
    ];
    for (n, bucket) in rules {
        let Some(n) = n else { continue };
        let mut seen = HashSet::new();
        for (i, &t) in times.iter().enumerate() {
            if seen.len() >= n as usize {
                break;
            }
            if seen.insert(bucket(t)) {
                keep[i] = true;
            }
        }
    }
    keep
}

/// Removes snapshots by id or unique prefix without reading them, so a damaged or
/// undecodable snapshot can be removed too. All ids are resolved before anything is
/// deleted: one unknown or ambiguous id removes nothing.
pub(crate) fn forget_ids(
    repo: &Repository,
    ids: &[String],
    dry_run: bool,
) -> Result<Vec<String>, Error> {
    if ids.is_empty() {
        return Err(Error::InvalidArgument {
            detail: "no snapshot ids given".into(),
        });
    }
    let names = repo.snapshot_names()?;
    let mut chosen = Vec::new();
    for q in ids {
        let id = resolve_prefix(&names, q)?;
        if !chosen.contains(&id) {
            chosen.push(id);
        }
    }
    if !dry_run {
        for id in &chosen {
            repo.store.delete(&format!("snapshots/{id}"))?;
        }
    }
    Ok(chosen)
}

pub(crate) fn prune(
    repo: &Repository,
    progress: Option<&dyn Progress>,
) -> Result<PruneReport, Error> {
    // Exclusive: no backup is between uploading a pack and writing its snapshot while we
    // decide what is unused (FORMAT.md "Locks").
    let _lock = lock::acquire(&repo.store, true)?;
    let (index, problems) = repo.load_index()?;
    if let Some(p) = problems.first() {
        return Err(Error::InvalidArgument {
            detail: format!("the index is damaged ({p}); run check --read-data and repair first"),
        });
    }
    // One bit per indexed blob (FORMAT.md "What is held in memory"): used, and a tree
    // part. A blob counts only at the position the index resolves it to; other copies
    // are garbage. Each distinct tree is walked once however many snapshots share it.
    let n = index.entry_count();
    let (mut used, mut tree) = (vec![0u64; n.div_ceil(64)], vec![0u64; n.div_ceil(64)]);
    let set = |bits: &mut Vec<u64>, i: usize| bits[i / 64] |= 1 << (i % 64);
    let is = |bits: &[u64], i: usize| bits[i / 64] & (1 << (i % 64)) != 0;
    let trees = Trees::new(repo, &index);
    let mut reach = Reach::default();
    let listed = repo.load_manifests()?;
    // A snapshot that cannot be read may still name blobs (it may be over a bound of this
    // build, not corrupt): pruning now could delete its only copy. The user decides.
    if let Some(d) = repo.damaged_snapshots().first() {
        return Err(Error::InvalidArgument {
            detail: format!(
                "snapshot {} cannot be read ({}); prune would delete data only it uses: remove it first with coffer forget {}",
                d.id, d.reason, d.id
            ),
        });
    }
    for (id, _) in listed {
        // One whole manifest at a time: version 1/2 ones list every file.
        let m = repo.load_manifest(&id)?;
        let object = format!("snapshots/{id}");
        reach.snapshot(
            &trees,
            &m,
            &object,
            &mut |f| match f {
                Found::TreePart(b) => {
                    if let Some(i) = index.position(b) {
                        set(&mut used, i);
                        set(&mut tree, i);
                    }
                }
                Found::Chunk(b) => {
                    if let Some(i) = index.position(b) {
                        set(&mut used, i);
                    }
                }
                Found::Malformed(_) => {}
            },
            // A tree that can not be read may name data: deleting it could lose it.
            &mut |e| {
                Err(Error::InvalidArgument {
                    detail: format!(
                        "snapshot {id} cannot be read ({e}); prune would delete data only it uses: run check, then remove it with coffer forget {id}"
                    ),
                })
            },
        )?;
    }
    let mut report = PruneReport::default();
    let mut delete = Vec::new();
    let mut rewrite: Vec<usize> = Vec::new();
    for (pi, p) in index.packs.iter().enumerate() {
        let start = index.pack_start(pi);
        let entries = index.pack_entries(pi);
        let live = (0..entries.len()).filter(|k| is(&used, start + k)).count();
        let live_bytes = live_bytes(entries, |k| is(&used, start + k));
        if live == 0 {
            report.blobs_removed += entries.len() as u64;
            report.bytes_freed += p.len;
            delete.push(p.name.clone());
        } else if live < entries.len() && live_bytes < p.len * 3 / 4 {
            report.blobs_removed += (entries.len() - live) as u64;
            report.bytes_freed += p.len.saturating_sub(live_bytes);
            rewrite.push(pi);
        }
    }
    let indexed: HashSet<&str> = index.packs.iter().map(|p| p.name.as_str()).collect();
    let mut orphans = Vec::new();
    for (name, _) in repo.store.list("data/")? {
        if !indexed.contains(name.as_str()) {
            orphans.push(name);
        }
    }

    // Unused packs and orphans go first: on a full disk this frees space before the
    // rewrite below needs any. Index before pack: a crash in between leaves an unindexed
    // pack (a warning in check, removed by the next prune), never an index naming a
    // missing pack.
    for name in &delete {
        repo.store.delete(&format!("index/{name}"))?;
        repo.store.delete(&format!("data/{name}"))?;
    }
    for name in &orphans {
        repo.store.delete(&format!("data/{name}"))?;
    }
    report.packs_deleted = (delete.len() + orphans.len()) as u64;
    // Partial objects of killed processes; a live writer refreshes its lock and our
    // exclusive lock excludes it, and the age rule spares a frozen one, as for locks.
    for name in repo.store.stale_tmp(lock::STALE_AFTER)? {
        repo.store.delete(&format!("tmp/{name}"))?;
        report.tmp_removed += 1;
    }

    // Copy live blobs of sparse packs into new packs, grouped by epoch and kind (trees
    // stay apart from data, pipeline.rs, so tree readers read no data pack). A group
    // whose members all live is copied as it is; one with dead members is opened and its
    // live members sealed again as a group of their own, so dead members do not linger.
    // Each new pack is written once full: memory holds the old pack being copied and one
    // pack being filled per epoch and kind, however many packs are rewritten. The new
    // packs and their indexes are complete before any old object is deleted, so a crash
    // leaves duplicates (harmless), never a missing blob.
    let mut filling: HashMap<(u32, bool), (Vec<u8>, Vec<BlobEntry>)> = HashMap::new();
    let mut zc = None;
    let total = rewrite.len() as u64;
    for (done, pi) in rewrite.iter().enumerate() {
        let object = format!("data/{}", index.packs[*pi].name);
        let bytes = repo.store.read(&object)?;
        // The runs come from the pack's own header, whose layout is checked (F7), not from
        // the index alone: an index sealed by a compromised device could describe groups
        // whose members overlap, which sealed again would make a pack no reader accepts.
        let (epoch, header) = format::pack_header(&repo.keyring, &bytes, &object)?;
        if header != index.pack_entries(*pi) {
            return Err(Error::integrity(
                &object,
                "its header differs from its index; run coffer check",
            ));
        }
        let ep = repo.keyring.epoch(epoch, &object)?;
        let mut k = index.pack_start(*pi);
        for run in format::blob_runs(&header) {
            let first = k;
            k += run.len();
            let live: Vec<bool> = (first..k).map(|i| is(&used, i)).collect();
            if !live.contains(&true) {
                continue;
            }
            // Verified before copying so damage is not carried into a new pack.
            let damaged = |id: &[u8; 32]| {
                Error::integrity(
                    &object,
                    format!("blob {} is damaged or missing", hex::encode(id)),
                )
            };
            let sealed = format::run_bytes(&bytes, run).ok_or_else(|| damaged(&run[0].id))?;
            // Only a group with dead members is sealed again; a fully live run is verified
            // and copied as it is.
            let partial = live.contains(&false);
            let mut regroup = Group::default();
            let (mut bad, mut alive) = (None, live.iter());
            format::open_run(ep, run, sealed, |m, data| {
                match (alive.next() == Some(&true), data) {
                    (true, Some(d)) if partial => regroup.push(m.id, d),
                    (true, Some(_)) | (false, _) => {}
                    (true, None) => bad = bad.or(Some(m.id)),
                }
            });
            if let Some(id) = bad {
                return Err(damaged(&id));
            }
            let blob = if partial {
                let zc = match &mut zc {
                    Some(z) => z,
                    None => {
                        zc.insert(zstd::bulk::Compressor::new(1).map_err(|e| Error::io("zstd", e))?)
                    }
                };
                match regroup.seal(&ep.data, zc)? {
                    Some(b) => b,
                    None => continue,
                }
            } else {
                Blob {
                    members: run.iter().map(|m| (m.id, m.raw_len, m.start)).collect(),
                    bytes: sealed.to_vec(),
                    tree: is(&tree, first),
                }
            };
            let (pack, entries) = filling
                .entry((epoch, blob.tree))
                .or_insert_with(|| (format::pack_start(epoch), Vec::new()));
            // Closed before a blob that does not fit, as a backup closes its packs: a
            // group's members would otherwise take the pack past the entry cap.
            if !fits(
                pack.len(),
                entries.len(),
                blob.bytes.len(),
                blob.members.len(),
                PACK_TARGET,
            ) {
                write_pack(repo, epoch, blob.tree, pack, entries)?;
            }
            blob.append_to(pack, entries);
            if pack_full(pack.len(), entries.len(), PACK_TARGET) {
                write_pack(repo, epoch, blob.tree, pack, entries)?;
            }
        }
        if let Some(p) = progress {
            p.event(&ProgressEvent::Bytes {
                done: done as u64 + 1,
                total,
            });
        }
    }
    for ((epoch, trees), (mut pack, mut entries)) in filling {
        if !entries.is_empty() {
            write_pack(repo, epoch, trees, &mut pack, &mut entries)?;
        }
    }
    report.packs_rewritten = rewrite.len() as u64;
    // The rewritten packs' blobs are now in new packs with their indexes: the old ones go,
    // index before pack as above.
    for pi in &rewrite {
        let name = &index.packs[*pi].name;
        repo.store.delete(&format!("index/{name}"))?;
        repo.store.delete(&format!("data/{name}"))?;
    }
    Ok(report)
}

/// Bytes of a pack that are live (`live(k)` for its `k`th entry): the blobs, a group by
/// the share of its data that is live (a rewrite seals only that again), and the header
/// entries of the live chunks, which a pack of small grouped chunks is mostly made of.
fn live_bytes(entries: &[BlobEntry], live: impl Fn(usize) -> bool) -> u64 {
    let mut k = 0;
    let mut sum = 0u64;
    for run in format::blob_runs(entries) {
        let (mut all, mut kept, mut any) = (0u64, 0u64, false);
        for (i, m) in run.iter().enumerate() {
            all += u64::from(m.raw_len);
            if live(k + i) {
                kept += u64::from(m.raw_len);
                sum += format::ENTRY_LEN as u64;
                any = true;
            }
        }
        k += run.len();
        sum += match (any, all) {
            (false, _) => 0,
            (true, 0) => u64::from(run[0].length),
            (true, _) => u64::from(run[0].length) * kept / all,
        };
    }
    sum
}

/// Finishes `pack` (of key epoch `epoch`, of trees or not) with `entries`, stores it as
/// a backup does (pack, then its index), and starts the next one empty.
fn write_pack(
    repo: &Repository,
    epoch: u32,
    trees: bool,
    pack: &mut Vec<u8>,
    entries: &mut Vec<BlobEntry>,
) -> Result<(), Error> {
    let key = &repo.keyring.epoch(epoch, "prune")?.data;
    format::pack_finish(key, pack, entries)?;
    let full = std::mem::replace(pack, format::pack_start(epoch));
    store_pack(&repo.store, &repo.keyring, epoch, trees, full, entries)?;
    entries.clear();
    Ok(())
}
