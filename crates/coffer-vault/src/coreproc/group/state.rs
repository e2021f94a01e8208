//! The group's replicated state and its Raft storage: the log, the vote and the state
//! machine (per credential: the sealed entry, the sealed record body, the repository
//! head), in memory, and with `--ram-only` off also in `raft.redb`.
//!
//! Durability (durable mode): `append` and `save_vote` return, or call back, only after
//! the redb transaction that holds them committed with `Durability::Immediate` (an fsync).
//! A member therefore never acknowledges an entry or a vote it could forget in a power
//! loss; that is what lets a majority's acknowledgement stand for "committed". The state
//! machine itself is rebuilt on start from the last snapshot plus the committed log, so it
//! is written only as a snapshot.

// openraft's storage traits return its `StorageError` by value; the helpers here share it.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::coreproc::store::{BodyChange, Change, Read};

/// The group's Raft log file inside a member's directory (durable mode).
pub const RAFT_FILE: &str = "raft.redb";

openraft::declare_raft_types!(
    /// The group's Raft types: commands are [`Cmd`], results [`Outcome`].
    pub TypeConfig:
        D = Cmd,
        R = Outcome,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The group's Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// One log entry's command: a change to one credential, applied only if the entry it was
/// decided from is still the one held (compare-and-set).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cmd {
    /// The credential.
    pub cred: [u8; 32],
    /// The change.
    pub change: Change,
}

/// What applying a [`Cmd`] did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (or, for a confirmation, confirmed).
    Done,
    /// Not applied: the entry is no longer the one read. The current state.
    Conflict(Read),
    /// Not applied: the head is not newer than the kept one (its sequence number).
    HeadNotNewer(u64),
    /// A blank or membership entry.
    None,
}

/// One credential's replicated record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    entry: Option<Vec<u8>>,
    body: Option<Vec<u8>>,
    head: Option<Vec<u8>>,
}

/// The state machine.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    #[serde(with = "as_pairs")]
    records: BTreeMap<[u8; 32], Record>,
}

/// JSON maps want string keys: the records cross as a list of pairs.
mod as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Record;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<[u8; 32], Record>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        m.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<[u8; 32], Record>, D::Error> {
        Ok(Vec::<([u8; 32], Record)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

impl Data {
    fn apply(&mut self, cmd: &Cmd) -> Outcome {
        let c = &cmd.change;
        let held = self.records.get(&cmd.cred);
        if held.and_then(|r| r.entry.as_ref()) != c.read.as_ref() {
            return Outcome::Conflict(Read {
                entry: held.and_then(|r| r.entry.clone()),
                body: held.and_then(|r| r.body.clone()),
            });
        }
        if c.entry.is_none() && c.body == BodyChange::Keep && c.head.is_none() {
            // A confirmation: nothing stored (an unknown account probed leaves no trace).
            return Outcome::Done;
        }
        let rec = self.records.entry(cmd.cred).or_default();
        if let Some(h) = &c.head {
            let kept = rec
                .head
                .as_deref()
                .and_then(coffer_vault_proto::head::head_seq);
            match (coffer_vault_proto::head::head_seq(h), kept) {
                // Equal is taken: a key rotation seals the kept head again (api.rs).
                (Some(new), Some(old)) if new < old => return Outcome::HeadNotNewer(old),
                (None, old) => return Outcome::HeadNotNewer(old.unwrap_or(0)),
                _ => rec.head = Some(h.clone()),
            }
        }
        if let Some(e) = &c.entry {
            rec.entry = Some(e.clone());
        }
        match &c.body {
            BodyChange::Keep => {}
            BodyChange::Put(b) => rec.body = Some(b.clone()),
            BodyChange::Remove => rec.body = None,
        }
        Outcome::Done
    }
}

fn io_err(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::write_logs(e).into()
}

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log_v1");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta_v1");

/// The member's persistent half: `raft.redb` (durable mode) or nothing (RAM-only).
#[derive(Clone)]
pub struct Disk(Option<Arc<Database>>);

impl Disk {
    /// No disk at all: nothing to roll back.
    pub fn ram() -> Self {
        Disk(None)
    }

    /// Opens or creates `dir/raft.redb`.
    pub fn open(dir: &Path) -> Result<Self, redb::Error> {
        let db = Database::create(dir.join(RAFT_FILE))?;
        let w = db.begin_write()?;
        w.open_table(LOG)?;
        w.open_table(META)?;
        w.commit()?;
        Ok(Disk(Some(Arc::new(db))))
    }

    /// Writes `meta` values and log entries in one fsynced transaction (module comment).
    fn write(
        &self,
        meta: &[(&str, Option<Vec<u8>>)],
        log_put: &[(u64, Vec<u8>)],
        log_drop: Option<(u64, u64)>,
    ) -> Result<(), redb::Error> {
        let Some(db) = &self.0 else { return Ok(()) };
        let mut w = db.begin_write()?;
        w.set_durability(Durability::Immediate)?;
        {
            let mut m = w.open_table(META)?;
            for (k, v) in meta {
                match v {
                    Some(v) => {
                        m.insert(*k, v.as_slice())?;
                    }
                    None => {
                        m.remove(*k)?;
                    }
                }
            }
            let mut l = w.open_table(LOG)?;
            if let Some((from, to)) = log_drop {
                l.retain_in(from..to, |_, _| false)?;
            }
            for (i, e) in log_put {
                l.insert(*i, e.as_slice())?;
            }
        }
        w.commit()?;
        Ok(())
    }

    fn meta<T: for<'a> Deserialize<'a>>(&self, key: &str) -> Option<T> {
        let db = self.0.as_ref()?;
        let r = db.begin_read().ok()?;
        let t = r.open_table(META).ok()?;
        let v = t.get(key).ok()??;
        serde_json::from_slice(v.value()).ok()
    }

    /// The node id this member last ran as, if its disk holds a Raft state.
    pub fn node_id(&self) -> Option<u64> {
        self.meta("node")
    }

    /// Records the node id this disk belongs to (before the Raft node starts).
    pub fn set_node_id(&self, id: u64) -> Result<(), redb::Error> {
        let v = serde_json::to_vec(&id).unwrap_or_default();
        self.write(&[("node", Some(v))], &[], None)
    }

    fn load_log(&self) -> Result<BTreeMap<u64, Entry<TypeConfig>>, StorageError<u64>> {
        let mut out = BTreeMap::new();
        let Some(db) = &self.0 else { return Ok(out) };
        let r = db.begin_read().map_err(|e| StorageIOError::read_logs(&e))?;
        let t = r
            .open_table(LOG)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        for row in t.iter().map_err(|e| StorageIOError::read_logs(&e))? {
            let (k, v) = row.map_err(|e| StorageIOError::read_logs(&e))?;
            let e: Entry<TypeConfig> =
                serde_json::from_slice(v.value()).map_err(|e| StorageIOError::read_logs(&e))?;
            out.insert(k.value(), e);
        }
        Ok(out)
    }
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, StorageError<u64>> {
    serde_json::to_vec(v).map_err(|e| io_err(&e))
}

struct LogInner {
    log: BTreeMap<u64, Entry<TypeConfig>>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
}

/// The Raft log and vote.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    disk: Disk,
}

impl LogStore {
    /// The log kept on `disk` (loaded from it).
    pub fn open(disk: Disk) -> Result<Self, StorageError<u64>> {
        let log = disk.load_log()?;
        let inner = LogInner {
            log,
            vote: disk.meta("vote"),
            committed: disk.meta("committed"),
            purged: disk.meta("purged"),
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            disk,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .lock()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let g = self.lock();
        let last = g.log.values().next_back().map(|e| e.log_id).or(g.purged);
        Ok(LogState {
            last_purged_log_id: g.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        // Durable before the vote is granted: a member that forgot its vote could vote
        // twice in one term.
        self.disk
            .write(&[("vote", Some(json(vote)?))], &[], None)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        // A hint for the restart (how far to re-apply), not a safety fact: written
        // without waiting for an fsync of its own; it rides on the next log write.
        self.lock().committed = committed;
        if let Some(db) = &self.disk.0 {
            let v = json(&committed)?;
            let res: Result<(), redb::Error> = (|| {
                let mut w = db.begin_write()?;
                w.set_durability(Durability::None)?;
                w.open_table(META)?.insert("committed", v.as_slice())?;
                w.commit()?;
                Ok(())
            })();
            res.map_err(|e| io_err(&e))?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let mut rows = Vec::with_capacity(entries.len());
        for e in &entries {
            rows.push((e.log_id.index, json(e)?));
        }
        // Acknowledged (callback) only once fsynced: module comment.
        let res = self.disk.write(&[], &rows, None);
        match res {
            Ok(()) => {
                let mut g = self.lock();
                for e in entries {
                    g.log.insert(e.log_id.index, e);
                }
                drop(g);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg)));
                Err(io_err(&e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.disk
            .write(&[], &[], Some((log_id.index, u64::MAX)))
            .map_err(|e| io_err(&e))?;
        let mut g = self.lock();
        g.log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.disk
            .write(
                &[("purged", Some(json(&log_id)?))],
                &[],
                Some((0, log_id.index.saturating_add(1))),
            )
            .map_err(|e| io_err(&e))?;
        let mut g = self.lock();
        g.purged = Some(log_id);
        let keep = g.log.split_off(&log_id.index.saturating_add(1));
        g.log = keep;
        Ok(())
    }
}

/// A snapshot as kept: its meta and the serialized [`Data`].
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// The state machine, shared with the service's reads.
#[derive(Clone)]
pub struct StateMachine {
    data: Arc<RwLock<Data>>,
    snapshot: Arc<Mutex<Option<Stored>>>,
    disk: Disk,
}

impl StateMachine {
    /// The state machine of `disk`, starting from its last snapshot.
    pub fn open(disk: Disk) -> Result<Self, StorageError<u64>> {
        let snap: Option<Stored> = disk.meta("snapshot");
        let data = match &snap {
            Some(s) => serde_json::from_slice(&s.data).map_err(|e| io_err(&e))?,
            None => Data::default(),
        };
        Ok(Self {
            data: Arc::new(RwLock::new(data)),
            snapshot: Arc::new(Mutex::new(snap)),
            disk,
        })
    }

    /// The entry and body of `cred`, from one applied state.
    pub fn read(&self, cred: &[u8; 32]) -> Read {
        let d = self.data.read().unwrap_or_else(|p| p.into_inner());
        d.records
            .get(cred)
            .map(|r| Read {
                entry: r.entry.clone(),
                body: r.body.clone(),
            })
            .unwrap_or_default()
    }

    /// The head kept for `cred`.
    pub fn head(&self, cred: &[u8; 32]) -> Option<Vec<u8>> {
        let d = self.data.read().unwrap_or_else(|p| p.into_inner());
        d.records.get(cred).and_then(|r| r.head.clone())
    }

    fn keep(&self, s: Stored) -> Result<(), StorageError<u64>> {
        self.disk
            .write(&[("snapshot", Some(json(&s)?))], &[], None)
            .map_err(|e| io_err(&e))?;
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (data, meta) = {
            let d = self.data.read().unwrap_or_else(|p| p.into_inner());
            let id = d
                .last_applied
                .map(|l| format!("{}-{}", l.leader_id, l.index))
                .unwrap_or_default();
            (
                json(&*d)?,
                SnapshotMeta {
                    last_log_id: d.last_applied,
                    last_membership: d.membership.clone(),
                    snapshot_id: id,
                },
            )
        };
        self.keep(Stored {
            meta: meta.clone(),
            data: data.clone(),
        })?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let d = self.data.read().unwrap_or_else(|p| p.into_inner());
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut d = self.data.write().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for e in entries {
            d.last_applied = Some(e.log_id);
            out.push(match e.payload {
                EntryPayload::Blank => Outcome::None,
                EntryPayload::Normal(cmd) => d.apply(&cmd),
                EntryPayload::Membership(m) => {
                    d.membership = StoredMembership::new(Some(e.log_id), m);
                    Outcome::None
                }
            });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let mut data: Data = serde_json::from_slice(&bytes).map_err(|e| io_err(&e))?;
        data.last_applied = meta.last_log_id;
        data.membership = meta.last_membership.clone();
        self.keep(Stored {
            meta: meta.clone(),
            data: bytes,
        })?;
        *self.data.write().unwrap_or_else(|p| p.into_inner()) = data;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let s = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(s.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
