//! A replicated core (docs/VAULT-GROUP.md): 3 or 5 `coffer-vault core` processes form one
//! Raft group (openraft 0.9). Every change the core makes to an entry is a log entry, and
//! the reply it gates leaves only after a majority committed it.
//!
//! Three rules carry the safety argument:
//!
//! 1. **Compare-and-set.** A command names the entry it was decided from; the state
//!    machine applies it only if that is still the entry (`state.rs`). So any member may
//!    decide from its own, possibly stale, copy: a stale decision is refused at apply
//!    time and taken again, and two members can never both count guess n.
//! 2. **Every gated reply waits for a commit** (the service's rule in a group): a KE2
//!    for its count, a release for its reset, a refusal for a confirmation of the entry
//!    it was decided from.
//! 3. **A member never comes back with state the group cannot vouch for.** A member that
//!    starts while the rest of the group has a leader joins as a *new* member (a fresh
//!    node id, an empty log, caught up from the leader, then swapped for its old id by
//!    joint consensus): an old copy of its directory, a wiped disk or a RAM-only restart
//!    all look the same and none re-enters with old votes or an old log. Only when a
//!    majority of the members are starting together (a power loss everywhere) do they
//!    resume from their disks, which then must not have been rolled back.

pub mod link;
pub mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use coffer_vault_proto::CredentialId;
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError,
    RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, ChangeMembers, Config, SnapshotPolicy};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use self::link::{Link, LinkError};
use self::state::{Cmd, Disk, LogStore, Outcome, Raft, StateMachine, TypeConfig};
use super::store::{Change, CommitError, EntryStore, Read, StoreError};

/// File whose presence tells member 1 to found the group on its first start.
pub const BOOTSTRAP_FILE: &str = "bootstrap";
/// How long a commit may wait for a leader and a majority before the request is refused.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(20);

/// How a member starts.
pub struct GroupConfig {
    /// The member's directory (its `core.key`, `group.key`, and `raft.redb`).
    pub dir: PathBuf,
    /// The member's slot, 1..=N.
    pub member: u32,
    /// Where it accepts other members' connections.
    pub listen: SocketAddr,
    /// How to reach every member, by slot (its own included).
    pub peers: BTreeMap<u32, String>,
    /// Keep no Raft state on disk.
    pub ram_only: bool,
    /// The group's link key.
    pub link_key: Zeroizing<[u8; 32]>,
}

fn slot(id: u64) -> u32 {
    (id >> 32) as u32
}

/// Why a member refused a forwarded request.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Refusal {
    /// Not the leader; this one is, as far as it knows.
    NotLeader(Option<u64>),
    /// Anything else (a timeout, a membership change in progress, ...).
    Failed(String),
}

/// What one member tells another about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Hello {
    id: Option<u64>,
    leader: Option<u64>,
    /// Has not seen a leader since it started: with a majority of members in this state
    /// the group is starting from a power loss everywhere.
    starting: bool,
}

#[derive(Serialize, Deserialize)]
enum PeerReq {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    Propose(Cmd),
    Join(u64),
    /// Operator: take this slot out of the group (`group-remove`).
    Remove(u32),
    Barrier,
    Hello,
}

/// A request and the node id it is for: Raft RPCs are for one incarnation of a slot, and
/// a member refuses those addressed to an earlier one (its votes are not this one's).
#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u8,
    to: Option<u64>,
    req: PeerReq,
}

#[derive(Serialize, Deserialize)]
enum PeerResp {
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Propose(Result<Outcome, Refusal>),
    Join(Result<(), Refusal>),
    Remove(Result<(), Refusal>),
    Barrier(Result<Option<u64>, Refusal>),
    Hello(Hello),
    /// Not that incarnation, or not started yet.
    NotHere,
}

const ENVELOPE_VERSION: u8 = 1;

/// One member of a group.
pub struct Group {
    member: u32,
    peers: BTreeMap<u32, String>,
    link_key: Zeroizing<[u8; 32]>,
    raft: OnceLock<Raft>,
    sm: OnceLock<StateMachine>,
    id: OnceLock<u64>,
    starting: AtomicBool,
    pool: Mutex<HashMap<u32, Vec<Link>>>,
    rt: tokio::runtime::Handle,
}

/// Errors starting a member.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Listening, storage or Raft setup failed.
    #[error("{0}")]
    Setup(String),
}

fn setup(what: &str) -> impl FnOnce(String) -> GroupError + '_ {
    move |e| GroupError::Setup(format!("{what}: {e}"))
}

enum Start {
    Bootstrap,
    Join,
    Resume(u64),
}

impl Group {
    /// Starts the member: listens to the others, decides whether it founds, resumes or
    /// joins the group (module comment, rule 3), and starts its Raft node. Returns once the
    /// node runs; joining continues in the background.
    pub fn start(cfg: GroupConfig, rt: &tokio::runtime::Runtime) -> Result<Arc<Self>, GroupError> {
        if !cfg.peers.contains_key(&cfg.member) {
            return Err(GroupError::Setup(format!(
                "--peer lists no address for this member ({}); give every member's, this one's included",
                cfg.member
            )));
        }
        let g = Arc::new(Group {
            member: cfg.member,
            peers: cfg.peers,
            link_key: cfg.link_key,
            raft: OnceLock::new(),
            sm: OnceLock::new(),
            id: OnceLock::new(),
            starting: AtomicBool::new(true),
            pool: Mutex::new(HashMap::new()),
            rt: rt.handle().clone(),
        });
        let listener = rt
            .block_on(TcpListener::bind(cfg.listen))
            .map_err(|e| setup("listening for members")(e.to_string()))?;
        println!(
            "member {} listening on {}",
            g.member,
            listener
                .local_addr()
                .map_or_else(|_| cfg.listen.to_string(), |a| a.to_string())
        );
        rt.spawn(g.clone().serve(listener));
        let disk = if cfg.ram_only {
            Disk::ram()
        } else {
            match Disk::open(&cfg.dir) {
                Ok(d) => d,
                Err(e) => {
                    // A damaged disk is a lost disk: this member joins anew (rule 3).
                    tracing::warn!(error = %e, "raft.redb does not open; joining as a new member");
                    fresh_disk(&cfg.dir)?
                }
            }
        };
        let bootstrap = cfg.dir.join(BOOTSTRAP_FILE);
        let start = match (disk.node_id(), bootstrap.exists()) {
            (Some(id), _) => rt.block_on(g.resume_or_rejoin(id)),
            (None, true) => Start::Bootstrap,
            (None, false) => Start::Join,
        };
        let (disk, id) = match start {
            Start::Resume(id) => {
                tracing::info!(member = g.member, id, "resuming from this member's disk");
                (disk, id)
            }
            Start::Bootstrap | Start::Join => {
                // A new incarnation: nothing of an earlier one survives (rule 3).
                let disk = if cfg.ram_only {
                    disk
                } else {
                    drop(disk);
                    fresh_disk(&cfg.dir)?
                };
                let id = (u64::from(g.member) << 32) | u64::from(OsRng.next_u32() | 1);
                disk.set_node_id(id)
                    .map_err(|e| setup("writing raft.redb")(e.to_string()))?;
                (disk, id)
            }
        };
        let config = Config {
            cluster_name: "coffer-vault".into(),
            heartbeat_interval: 100,
            election_timeout_min: 600,
            election_timeout_max: 1200,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(5000),
            max_in_snapshot_log_to_keep: 500,
            snapshot_max_chunk_size: 1 << 20,
            ..Default::default()
        }
        .validate()
        .map_err(|e| setup("raft config")(e.to_string()))?;
        let log = LogStore::open(disk.clone()).map_err(|e| setup("raft log")(e.to_string()))?;
        let sm = StateMachine::open(disk).map_err(|e| setup("raft state")(e.to_string()))?;
        let raft = rt
            .block_on(Raft::new(
                id,
                Arc::new(config),
                Net(g.clone()),
                log,
                sm.clone(),
            ))
            .map_err(|e| setup("raft")(e.to_string()))?;
        let _ = g.sm.set(sm);
        let _ = g.id.set(id);
        let _ = g.raft.set(raft.clone());
        rt.spawn(g.clone().watch_leader());
        match start {
            Start::Bootstrap => {
                let mut members = BTreeMap::new();
                members.insert(id, BasicNode::default());
                rt.block_on(raft.initialize(members))
                    .map_err(|e| setup("founding the group")(e.to_string()))?;
                // Founded once: a later start of this member (wiped, restored) joins.
                std::fs::remove_file(&bootstrap)
                    .map_err(|e| setup("removing the bootstrap marker")(e.to_string()))?;
                tracing::info!(member = g.member, id, "founded the group");
            }
            Start::Join => {
                rt.spawn(g.clone().join());
            }
            Start::Resume(_) => {}
        }
        Ok(g)
    }

    fn raft(&self) -> Option<&Raft> {
        self.raft.get()
    }

    fn my_id(&self) -> Option<u64> {
        self.id.get().copied()
    }

    /// Notes the first leader seen (this member is no longer "starting") and logs every
    /// change of leader (operators and the fault harness read it).
    async fn watch_leader(self: Arc<Self>) {
        let Some(raft) = self.raft() else { return };
        let mut m = raft.metrics();
        let mut last = None;
        loop {
            let (leader, term) = {
                let b = m.borrow();
                (b.current_leader, b.current_term)
            };
            if leader.is_some() {
                self.starting.store(false, Ordering::Relaxed);
            }
            if leader != last {
                if let Some(l) = leader {
                    tracing::info!(term, leader_slot = slot(l), leader = l, "leader changed");
                }
                last = leader;
            }
            if m.changed().await.is_err() {
                return;
            }
        }
    }

    /// Rule 3: asks the others until either a majority is starting too (resume) or some
    /// member names a live leader (join anew).
    async fn resume_or_rejoin(&self, old: u64) -> Start {
        let majority = self.peers.len() / 2 + 1;
        loop {
            let mut starting = 1;
            let mut leader = false;
            for &s in self.peers.keys().filter(|&&s| s != self.member) {
                if let Ok(PeerResp::Hello(h)) =
                    self.call(s, None, PeerReq::Hello, RPC_TIMEOUT).await
                {
                    if h.starting {
                        starting += 1;
                    }
                    if h.leader.is_some_and(|l| l != old) {
                        leader = true;
                    }
                }
            }
            if leader {
                tracing::warn!(
                    member = self.member,
                    "the group runs without this member: joining as a new member (its disk's state is not used)"
                );
                return Start::Join;
            }
            if starting >= majority {
                return Start::Resume(old);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Asks members to admit this node until it is a voter.
    async fn join(self: Arc<Self>) {
        let (Some(raft), Some(id)) = (self.raft(), self.my_id()) else {
            return;
        };
        let mut next: Option<u32> = None;
        loop {
            let voter = raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == id);
            if voter {
                tracing::info!(member = self.member, id, "joined the group as a voter");
                return;
            }
            let targets: Vec<u32> = match next.take() {
                Some(s) => vec![s],
                None => self
                    .peers
                    .keys()
                    .copied()
                    .filter(|&s| s != self.member)
                    .collect(),
            };
            for s in targets {
                match self
                    .call(s, None, PeerReq::Join(id), Duration::from_secs(60))
                    .await
                {
                    Ok(PeerResp::Join(Ok(()))) => break,
                    Ok(PeerResp::Join(Err(Refusal::NotLeader(Some(l)))))
                        if slot(l) != self.member =>
                    {
                        next = Some(slot(l));
                        break;
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// On the leader: catch `id` up as a learner, then make it a voter in place of any
    /// earlier incarnation of its slot (joint consensus).
    async fn admit(&self, id: u64) -> Result<(), Refusal> {
        let raft = self.raft().ok_or(Refusal::NotLeader(None))?;
        let leader = raft.metrics().borrow().current_leader;
        if leader != self.my_id() {
            return Err(Refusal::NotLeader(leader));
        }
        if slot(id) == 0 || !self.peers.contains_key(&slot(id)) {
            return Err(Refusal::Failed(format!("no member slot {}", slot(id))));
        }
        let failed = |e: &dyn std::fmt::Display| Refusal::Failed(e.to_string());
        raft.add_learner(id, BasicNode::default(), true)
            .await
            .map_err(|e| failed(&e))?;
        let mut voters: BTreeSet<u64> = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .filter(|&v| slot(v) != slot(id))
            .collect();
        voters.insert(id);
        raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
            .await
            .map_err(|e| failed(&e))?;
        tracing::info!(member = self.member, id, "admitted a member");
        Ok(())
    }

    /// On the leader: makes the group's voters those of every slot but `s` (joint
    /// consensus). The group then needs a majority of the smaller set.
    async fn remove(&self, s: u32) -> Result<(), Refusal> {
        let raft = self.raft().ok_or(Refusal::NotLeader(None))?;
        let leader = raft.metrics().borrow().current_leader;
        if leader != self.my_id() {
            return Err(Refusal::NotLeader(leader));
        }
        if s == self.member {
            return Err(Refusal::Failed(
                "the leader does not remove itself: ask again after stopping it (another member leads then)".into(),
            ));
        }
        let voters: BTreeSet<u64> = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .filter(|&v| slot(v) != s)
            .collect();
        if voters.len() < 2 {
            return Err(Refusal::Failed("a group keeps at least two voters".into()));
        }
        raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
            .await
            .map_err(|e| Refusal::Failed(e.to_string()))?;
        tracing::info!(member = self.member, removed = s, "removed a member");
        Ok(())
    }

    /// One request to the member in `slot`, over a pooled link. A failure before the
    /// request was sent is `Err(None)`-like (`LinkError::Io` from dialing): see
    /// [`Group::propose`] for why the difference matters.
    async fn call(
        &self,
        slot: u32,
        to: Option<u64>,
        req: PeerReq,
        timeout: Duration,
    ) -> Result<PeerResp, CallError> {
        let addr = self.peers.get(&slot).ok_or(CallError::NotSent)?;
        let pooled = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.get_mut(&slot).and_then(Vec::pop));
        let mut link = match pooled {
            Some(l) => l,
            None => tokio::time::timeout(RPC_TIMEOUT, Link::dial(addr, &self.link_key))
                .await
                .map_err(|_| CallError::NotSent)?
                .map_err(|_| CallError::NotSent)?,
        };
        let resp = exchange(&mut link, to, req, timeout).await?;
        if let Ok(mut p) = self.pool.lock() {
            p.entry(slot).or_default().push(link);
        }
        Ok(resp)
    }

    async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let g = self.clone();
            tokio::spawn(async move {
                let Ok(mut link) = Link::accept(stream, &g.link_key).await else {
                    return;
                };
                loop {
                    let msg = match link.recv().await {
                        Ok(m) => m,
                        Err(LinkError::Auth) => {
                            tracing::warn!(
                                "dropped a member link whose frame did not authenticate"
                            );
                            return;
                        }
                        Err(_) => return,
                    };
                    let Ok(env) = serde_json::from_slice::<Envelope>(&msg) else {
                        return;
                    };
                    if env.v != ENVELOPE_VERSION {
                        return;
                    }
                    let resp = g.answer(env).await;
                    let Ok(bytes) = serde_json::to_vec(&resp) else {
                        return;
                    };
                    if link.send(&bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    async fn answer(&self, env: Envelope) -> PeerResp {
        if let PeerReq::Hello = env.req {
            return PeerResp::Hello(Hello {
                id: self.my_id(),
                leader: self
                    .raft()
                    .and_then(|r| r.metrics().borrow().current_leader),
                starting: self.starting.load(Ordering::Relaxed),
            });
        }
        let Some(raft) = self.raft() else {
            return PeerResp::NotHere;
        };
        if env.to.is_some() && env.to != self.my_id() {
            return PeerResp::NotHere;
        }
        match env.req {
            PeerReq::Append(r) => PeerResp::Append(raft.append_entries(r).await),
            PeerReq::Vote(r) => PeerResp::Vote(raft.vote(r).await),
            PeerReq::Snapshot(r) => PeerResp::Snapshot(raft.install_snapshot(r).await),
            PeerReq::Propose(cmd) => PeerResp::Propose(self.write_local(cmd).await),
            PeerReq::Join(id) => PeerResp::Join(self.admit(id).await),
            PeerReq::Remove(s) => PeerResp::Remove(self.remove(s).await),
            PeerReq::Barrier => PeerResp::Barrier(match raft.ensure_linearizable().await {
                Ok(l) => Ok(l.map(|l| l.index)),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    Err(Refusal::NotLeader(f.leader_id))
                }
                Err(e) => Err(Refusal::Failed(e.to_string())),
            }),
            PeerReq::Hello => PeerResp::NotHere,
        }
    }

    async fn write_local(&self, cmd: Cmd) -> Result<Outcome, Refusal> {
        let raft = self.raft().ok_or(Refusal::NotLeader(None))?;
        match tokio::time::timeout(COMMIT_TIMEOUT, raft.client_write(cmd)).await {
            Ok(Ok(r)) => Ok(r.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(Refusal::NotLeader(f.leader_id))
            }
            Ok(Err(e)) => Err(Refusal::Failed(e.to_string())),
            Err(_) => Err(Refusal::Failed("no majority answered in time".into())),
        }
    }

    /// Commits `cmd` through the leader, wherever it is. Retried only where the command
    /// surely was not appended (a refusal as not-leader, or a link that never carried
    /// it); a lost answer fails the request, since a command applied twice is refused the
    /// second time by its compare-and-set anyway, but its first outcome would be unknown.
    async fn propose(&self, cmd: Cmd) -> Result<Outcome, StoreError> {
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        loop {
            let leader = match self.write_local(cmd.clone()).await {
                Ok(o) => return Ok(o),
                Err(Refusal::NotLeader(l)) => l,
                Err(Refusal::Failed(e)) => return Err(StoreError(e)),
            };
            if let Some(l) = leader.filter(|&l| Some(l) != self.my_id()) {
                match self
                    .call(
                        slot(l),
                        Some(l),
                        PeerReq::Propose(cmd.clone()),
                        COMMIT_TIMEOUT,
                    )
                    .await
                {
                    Ok(PeerResp::Propose(Ok(o))) => return Ok(o),
                    Ok(PeerResp::Propose(Err(Refusal::NotLeader(_))) | PeerResp::NotHere)
                    | Err(CallError::NotSent) => {}
                    Ok(PeerResp::Propose(Err(Refusal::Failed(e)))) => return Err(StoreError(e)),
                    Ok(_) | Err(CallError::Lost) => {
                        return Err(StoreError("the leader's answer was lost".into()));
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError(
                    "no leader with a majority answered in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until this member applied everything the leader had committed when asked
    /// (a read that sees every acknowledged write).
    async fn barrier(&self) -> Result<(), StoreError> {
        let raft = self
            .raft()
            .ok_or_else(|| StoreError("not started".into()))?;
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        loop {
            let leader = raft.metrics().borrow().current_leader;
            let index = match leader {
                Some(l) if Some(l) == self.my_id() => match raft.ensure_linearizable().await {
                    Ok(_) => return Ok(()),
                    Err(e) => return Err(StoreError(e.to_string())),
                },
                Some(l) => match self
                    .call(slot(l), Some(l), PeerReq::Barrier, RPC_TIMEOUT)
                    .await
                {
                    Ok(PeerResp::Barrier(Ok(i))) => Some(i),
                    _ => None,
                },
                None => None,
            };
            if let Some(i) = index {
                return raft
                    .wait(Some(COMMIT_TIMEOUT))
                    .applied_index_at_least(i, "read barrier")
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError(e.to_string()));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError("no leader answered in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One request and its answer on `link`, within `timeout`.
async fn exchange(
    link: &mut Link,
    to: Option<u64>,
    req: PeerReq,
    timeout: Duration,
) -> Result<PeerResp, CallError> {
    let msg = serde_json::to_vec(&Envelope {
        v: ENVELOPE_VERSION,
        to,
        req,
    })
    .map_err(|_| CallError::NotSent)?;
    let bytes = tokio::time::timeout(timeout, async {
        link.send(&msg).await?;
        link.recv().await
    })
    .await
    .map_err(|_| CallError::Lost)?
    .map_err(|_| CallError::Lost)?;
    serde_json::from_slice(&bytes).map_err(|_| CallError::Lost)
}

enum CallError {
    /// The request never left (no address, dial failed).
    NotSent,
    /// Sent, but no answer came back: it may have been acted on.
    Lost,
}

/// Replaces `dir/raft.redb` with an empty one.
fn fresh_disk(dir: &Path) -> Result<Disk, GroupError> {
    let p = dir.join(state::RAFT_FILE);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(setup("removing the old raft.redb")(e.to_string())),
    }
    Disk::open(dir).map_err(|e| setup("creating raft.redb")(e.to_string()))
}

/// openraft's network: one link per target, redialled after any failure.
struct Net(Arc<Group>);

struct Conn {
    g: Arc<Group>,
    target: u64,
}

impl RaftNetworkFactory<TypeConfig> for Net {
    type Network = Conn;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Conn {
        Conn {
            g: self.0.clone(),
            target,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("member {0} did not answer")]
struct NoAnswer(u64);

impl Conn {
    async fn rpc(&self, req: PeerReq, timeout: Duration) -> Result<PeerResp, NoAnswer> {
        match self
            .g
            .call(slot(self.target), Some(self.target), req, timeout)
            .await
        {
            Ok(PeerResp::NotHere) | Err(_) => Err(NoAnswer(self.target)),
            Ok(r) => Ok(r),
        }
    }
}

fn unreachable<E: std::error::Error>(e: &NoAnswer) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
    RPCError::Unreachable(Unreachable::new(e))
}

fn unexpected<E: std::error::Error>(t: u64) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
    RPCError::Network(NetworkError::new(&NoAnswer(t)))
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.rpc(PeerReq::Append(rpc), RPC_TIMEOUT).await {
            Ok(PeerResp::Append(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(unexpected(self.target)),
            Err(e) => Err(unreachable(&e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self.rpc(PeerReq::Snapshot(rpc), SNAPSHOT_TIMEOUT).await {
            Ok(PeerResp::Snapshot(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(unexpected(self.target)),
            Err(e) => Err(unreachable(&e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.rpc(PeerReq::Vote(rpc), RPC_TIMEOUT).await {
            Ok(PeerResp::Vote(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(unexpected(self.target)),
            Err(e) => Err(unreachable(&e)),
        }
    }
}

/// The service's store on a group: reads from this member's applied state, commits
/// through the leader (module comment).
pub struct GroupStore(pub Arc<Group>);

impl EntryStore for GroupStore {
    fn get(&self, cred: &CredentialId) -> Result<Read, StoreError> {
        let sm = self
            .0
            .sm
            .get()
            .ok_or_else(|| StoreError("the member has not started".into()))?;
        Ok(sm.read(cred.as_bytes()))
    }

    fn commit(&self, cred: &CredentialId, change: Change) -> Result<(), CommitError> {
        let cmd = Cmd {
            cred: *cred.as_bytes(),
            change,
        };
        match self.0.rt.block_on(self.0.propose(cmd))? {
            Outcome::Done => Ok(()),
            Outcome::Conflict(now) => Err(CommitError::Conflict(now)),
            Outcome::HeadNotNewer(kept) => Err(CommitError::HeadNotNewer(kept)),
            Outcome::None => Err(CommitError::Store(StoreError(
                "a command applied as no command".into(),
            ))),
        }
    }

    fn replicated(&self) -> bool {
        true
    }

    fn head(&self, cred: &CredentialId) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.rt.block_on(self.0.barrier())?;
        let sm = self
            .0
            .sm
            .get()
            .ok_or_else(|| StoreError("the member has not started".into()))?;
        Ok(sm.head(cred.as_bytes()))
    }
}

/// Operator side of `coffer-vault group-remove`: asks the members at `peers` (any of them;
/// the leader acts) to take slot `member` out of the group. Speaks the members' link, so
/// it needs the link key (a member's directory and master key): hosts cannot shrink a group.
pub async fn remove_member(
    peers: &[String],
    link_key: &[u8; 32],
    member: u32,
) -> Result<(), GroupError> {
    let mut last = String::from("no member answered");
    for addr in peers {
        let Ok(Ok(mut link)) = tokio::time::timeout(RPC_TIMEOUT, Link::dial(addr, link_key)).await
        else {
            last = format!("{addr}: unreachable");
            continue;
        };
        let reply = exchange(
            &mut link,
            None,
            PeerReq::Remove(member),
            Duration::from_secs(30),
        )
        .await;
        match reply {
            Ok(PeerResp::Remove(Ok(()))) => return Ok(()),
            Ok(PeerResp::Remove(Err(Refusal::NotLeader(_)))) => {
                last = format!("{addr}: not the leader");
            }
            Ok(PeerResp::Remove(Err(Refusal::Failed(e)))) => return Err(GroupError::Setup(e)),
            _ => last = format!("{addr}: no answer"),
        }
    }
    Err(GroupError::Setup(format!(
        "no leader took the request ({last}); give every member's address with --peer"
    )))
}
