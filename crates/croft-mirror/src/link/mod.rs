//! The primary's end of the replication stream: numbers operations, sends them in order, and lets
//! a FUSE thread wait for the peer's cumulative acknowledgement — the only thing a FUSE thread
//! ever waits on (besides its own local syscalls and the bounded socket send).
//!
//! When the peer is unreachable, refuses an operation or does not ack within `ack_timeout_ms`, the
//! peer is marked lost and nothing more is sent on this stream (reintegration starts a new one).
//! What happens to the operations that were not acknowledged is the caller's [`FailMode`].
//!
//! Files by concern: this one holds the types, the state and the live path of a change
//! (replicate, wait for the ack or handle the loss by the fail mode); [`peer`] the connection to
//! the peer, the ack reader and the loss of the peer; [`catchup`] what a reintegration drives on
//! its own stream (attach, catch-up operations, queries, going live); [`onsync`] how a change is
//! settled by the mount's [`SyncMode`] and what is sent and not yet acknowledged; [`excluded`]
//! the changes under excluded paths and the status; [`latency`] the ack latency histogram.

mod catchup;
mod excluded;
mod latency;
mod onsync;
mod peer;

pub use latency::{AckLatency, AckLatencySnapshot, ACK_LATENCY_BOUNDS_US};

pub(crate) use peer::connect;

use crate::exclude::{Exclude, Touches};
use crate::op::Op;
use crate::tracker::{ActivityLog, DirtyTracker};
use crate::wire::{self, AckLevel, Protocol, Sealed};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use crate::locks::{waited, Locked};

/// What a change does when the peer cannot acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// The application's call waits until the peer acknowledges or the caller switches to
    /// `Alone` (once the split-brain rule allows this node to run alone) or unmounts (EIO).
    Block,
    /// The change stays applied locally, its extents go to the [`DirtyTracker`], and the call
    /// returns: this node runs ALONE.
    Alone,
    /// This node gave up the primary role (its peer may be writing now): a change the peer has
    /// not acknowledged fails with EIO at once. It was applied locally, but this node's data is
    /// going to be replaced by the peer's (after a copy to the quarantine folder).
    Fence,
}

/// When an application's call waits for the peer (DESIGN.md, "Replication contracts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Every change is on the peer before its call returns (stronger than a local disk).
    EveryChange,
    /// The local-disk contract: changes stream to the peer in order as they happen, and only the
    /// calls that make data durable (fsync, fdatasync, writes on O_SYNC/O_DSYNC descriptors,
    /// msync, which reaches FUSE as fsync, and close) wait until everything before them is
    /// acknowledged. What was sent and not acknowledged stays covered by the dirty log (marked
    /// before it was applied) or, without one, by the in-memory list of unacknowledged extents,
    /// which goes to the tracker when the peer is lost.
    OnSync,
}

/// Where the peer is.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub addr: SocketAddr,
    /// The cluster key both sides prove they hold (HMAC-SHA256).
    pub key: Vec<u8>,
    pub ack_level: AckLevel,
    /// Beyond this the peer is lost. 2 s by default: long enough for a loaded peer's fsync, short
    /// enough that a stalled application is noticed well before any client timeout.
    pub ack_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// The protocol versions this side speaks (wire::Protocol; lowered only by croft's tests).
    pub protocol: Protocol,
}

impl PeerConfig {
    pub fn new(addr: SocketAddr, key: Vec<u8>) -> PeerConfig {
        PeerConfig { addr, key, ack_level: AckLevel::Received, ack_timeout_ms: 2000, connect_timeout_ms: 2000, protocol: Protocol::default() }
    }
}

/// Told to the caller (in the napi binding: a JS callback) from a replication thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorEvent {
    /// The peer was lost; nothing more is sent until a new stream is attached.
    PeerLost { reason: String },
}

pub type EventSink = Arc<dyn Fn(&MirrorEvent) + Send + Sync>;

/// How a change came to be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckedBy {
    /// The peer applied it (and fsync'd it at `Durable`).
    Peer(AckLevel),
    /// The peer was lost and the change was recorded in the dirty tracker.
    DirtyTracker,
    /// The file has no name any more (unlinked while open): nothing to replicate.
    Unnamed,
    /// [`SyncMode::OnSync`], a change that does not make data durable: sent in order, its ack
    /// is awaited by the next call that does (fsync, close...).
    Streamed,
}

/// Proof that a change may be acknowledged to the application: the FUSE layer replies to a
/// modifying request only with one of these (it cannot be built outside this module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct AckedOp {
    pub seq: u64,
    pub by: AckedBy,
    _private: (),
}

impl AckedOp {
    pub(crate) fn unnamed() -> AckedOp {
        AckedOp { seq: 0, by: AckedBy::Unnamed, _private: () }
    }
}

/// The sequence number to wait for and what to record if the wait fails.
#[must_use]
pub(crate) struct Ticket {
    seq: Option<u64>,
    extents: Vec<(PathBuf, u64, u64)>,
    /// Counted in `State::unresolved` until `wait` returns.
    counted: bool,
}

/// Counters for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStatus {
    pub connected: bool,
    pub lost_reason: Option<String>,
    pub sent_seq: u64,
    pub acked_seq: u64,
    pub bytes_sent: u64,
    /// Changes acknowledged through the dirty tracker instead of the peer.
    pub alone_ops: u64,
    /// Sessions ended because a record from the peer failed authentication (tampered, forged,
    /// replayed, reordered or dropped on the way).
    pub tampered: u64,
    /// Live changes (not a reintegration's) the peer acknowledged, over every stream.
    pub acked_ops: u64,
    /// How long the live changes waited for the peer's ack (send to ack).
    pub ack_latency: AckLatencySnapshot,
}

struct Tx {
    stream: Option<Sealed>,
    next_seq: u64,
    next_query: u64,
    /// The frames of one `replicate` call, encoded here (the buffer is reused).
    frames: Vec<u8>,
}

/// The frame buffer kept between calls at most (a burst of large writes does not keep its peak).
const FRAMES_KEEP_BYTES: usize = 4 << 20;

struct State {
    acked: u64,
    sent: u64,
    bytes_sent: u64,
    alone_ops: u64,
    tampered: u64,
    lost: Option<String>,
    fail_mode: FailMode,
    closing: bool,
    /// A clone of the stream, to shut it down from any thread.
    shutdown: Option<Sealed>,
    level: AckLevel,
    ack_timeout: Duration,
    /// Which stream the ack reader serves: a reader of an older stream changes nothing.
    generation: u64,
    /// A reintegration's stream is attached: it carries the reintegration's operations and
    /// queries, while the changes of the application are still recorded as dirty (`lost` stays
    /// set) until `go_live`.
    catchup: bool,
    /// Why the reintegration's stream ended.
    catchup_error: Option<String>,
    /// Query replies by id, until taken.
    replies: HashMap<u64, Vec<u8>>,
    /// Queries of the reintegration's stream sent and not answered yet.
    queries_pending: u64,
    /// Replies received on the reintegration's stream (progress, like acks).
    replies_received: u64,
    /// Tickets handed out by `replicate` whose `wait` has not returned: a change between its
    /// local application and its dirty mark is one of them (reintegration freezes on zero).
    unresolved: u64,
    /// [`SyncMode::OnSync`] without an activity log: the extents of changes sent and not yet
    /// acknowledged, by last sequence number, in order. Pruned by acks; marked in the tracker
    /// when the peer is lost (before any waiter is answered). Bounded by what the stream holds
    /// in flight (a send blocks on a full window, and an ack timeout loses the peer).
    unacked: std::collections::VecDeque<(u64, Vec<(PathBuf, u64, u64)>)>,
    /// Marking `unacked` failed once the peer was lost: sync points fail (EIO) until a
    /// reintegration went live.
    unacked_unrecorded: bool,
    /// A stream was attached at least once (at mount or by a reintegration): `level` is then
    /// the ack level the peer acknowledges at.
    attached: bool,
    /// Live sends waiting for their ack, timed for `latency` (bounded; cleared with the stream).
    pending: latency::Pending,
    /// Live changes acknowledged by the peer, over every stream.
    acked_ops: u64,
}

/// Extents recorded in memory while a reintegration runs, by path.
pub(crate) type Recent = BTreeMap<PathBuf, Vec<(u64, u64)>>;

pub(crate) struct Replicator {
    tx: Mutex<Tx>,
    state: Mutex<State>,
    cv: Condvar,
    dirty: Arc<dyn DirtyTracker>,
    /// The tracker has a durable log: mark before the local change (see [`DirtyTracker::activity_log`]).
    activity: bool,
    /// When an application's call waits for the peer; fixed for the life of the mount.
    mode: SyncMode,
    /// `Some` while a reintegration runs: every mark is also remembered here.
    recent: Mutex<Option<Recent>>,
    events: Option<EventSink>,
    reader: Mutex<Option<JoinHandle<()>>>,
    latency: AckLatency,
    /// Subtrees that stay local: their changes are neither sent nor marked dirty.
    pub(crate) exclude: Arc<Exclude>,
}
impl Replicator {
    /// `stream`: an authenticated stream, or `None` to start alone (`lost_reason` says why).
    pub(crate) fn start(
        stream: Option<Sealed>,
        lost_reason: &str,
        level: AckLevel,
        ack_timeout_ms: u64,
        fail_mode: FailMode,
        mode: SyncMode,
        dirty: Arc<dyn DirtyTracker>,
        events: Option<EventSink>,
        exclude: Arc<Exclude>,
    ) -> io::Result<Arc<Replicator>> {
        let (shutdown, read_half) = match &stream {
            Some(s) => (Some(s.try_clone()?), Some(s.try_clone()?)),
            None => (None, None),
        };
        let lost = if stream.is_some() { None } else { Some(lost_reason.to_string()) };
        let attached = stream.is_some();
        let activity = dirty.activity_log().is_some();
        let r = Arc::new(Replicator {
            tx: Mutex::new(Tx { stream, next_seq: 1, next_query: 1, frames: Vec::new() }),
            state: Mutex::new(State {
                acked: 0,
                sent: 0,
                bytes_sent: 0,
                alone_ops: 0,
                tampered: 0,
                lost,
                fail_mode,
                closing: false,
                shutdown,
                level,
                ack_timeout: Duration::from_millis(ack_timeout_ms.max(1)),
                generation: 0,
                catchup: false,
                catchup_error: None,
                replies: HashMap::new(),
                queries_pending: 0,
                replies_received: 0,
                unresolved: 0,
                unacked: std::collections::VecDeque::new(),
                unacked_unrecorded: false,
                attached,
                pending: latency::Pending::default(),
                acked_ops: 0,
            }),
            cv: Condvar::new(),
            dirty,
            activity,
            mode,
            recent: Mutex::new(None),
            events,
            reader: Mutex::new(None),
            latency: AckLatency::default(),
            exclude,
        });
        if let Some(read_half) = read_half {
            r.spawn_reader(read_half, 0)?;
        }
        Ok(r)
    }

    /// [`Self::replicate`] of the changes that are sent (under no excluded path).
    pub(super) fn replicate_kept(&self, ops: &[Op]) -> Ticket {
        // With an activity log the extents were marked before the local change.
        let extents: Vec<(PathBuf, u64, u64)> =
            if self.activity { Vec::new() } else { ops.iter().flat_map(Op::dirty_extents).collect() };
        let mut tx = self.tx.locked();
        let not_sent = {
            let mut st = self.state.locked();
            st.unresolved += 1;
            if st.lost.is_some() && !st.catchup {
                tx.stream = None;
            }
            st.lost.is_some() || tx.stream.is_none()
        };
        if not_sent {
            drop(tx);
            // Known lost: record it now, while the caller still holds the order lock, so that
            // a reintegration that freezes on that lock sees every change made before it.
            // What could not be recorded is tried again by `wait`, which fails if it fails again.
            let unrecorded = extents.into_iter().filter(|(path, offset, len)| self.mark(path, *offset, *len).is_err()).collect();
            return Ticket { seq: None, extents: unrecorded, counted: true };
        }
        let first = tx.next_seq;
        let Tx { stream, frames, .. } = &mut *tx;
        let Some(stream) = stream.as_mut() else { unreachable!() };
        frames.clear();
        for (i, op) in ops.iter().enumerate() {
            wire::encode_op_frame(frames, first + i as u64, op);
        }
        let last = first + ops.len() as u64 - 1;
        {
            // Before the write: the ack may come back before write_all returns.
            let mut st = self.state.locked();
            st.sent = last;
            st.bytes_sent += frames.len() as u64;
            if !st.catchup {
                st.pending.push(last, Instant::now());
            }
        }
        let written = stream.write_all(frames);
        if frames.capacity() > FRAMES_KEEP_BYTES {
            *frames = Vec::new();
        }
        match written {
            Ok(()) => {
                tx.next_seq = last + 1;
                Ticket { seq: Some(last), extents, counted: true }
            }
            Err(e) => {
                tx.stream = None;
                drop(tx);
                self.lose(&format!("sending to the peer: {e}"));
                Ticket { seq: None, extents, counted: true }
            }
        }
    }

    /// Called under the order lock before `ops` are applied locally: with an activity log,
    /// their extents are durable in it before the change exists. `Err`: they could not be
    /// recorded; the caller must not apply the change and answers EIO (issue 8, finding 11).
    pub(crate) fn before_apply(&self, ops: &[Op]) -> io::Result<()> {
        if self.activity {
            for op in ops.iter().filter(|op| self.exclude.touches(op) == Touches::Replicated) {
                for (path, offset, len) in op.dirty_extents() {
                    self.mark(&path, offset, len)?;
                }
            }
        }
        Ok(())
    }

    /// The tracker's mark, remembered in memory too while a reintegration runs.
    fn mark(&self, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        self.dirty.mark(path, offset, len)?;
        if let Some(r) = self.recent.locked().as_mut() {
            r.entry(path.to_path_buf()).or_default().push((offset, len));
        }
        Ok(())
    }

    /// A ticket for "everything sent so far" (flush: nothing new, but nothing pending either).
    pub(crate) fn barrier(&self) -> Ticket {
        let tx = self.tx.locked();
        let sent = tx.next_seq - 1;
        Ticket { seq: Some(sent), extents: Vec::new(), counted: false }
    }

    /// Waits until the ticket is acknowledged by the peer, or — once the peer is lost — handles
    /// it by the fail mode. `Err` when fenced, or when the mirror is closing under `Block` (the
    /// caller answers EIO: the change is applied locally but could not be acknowledged).
    pub(crate) fn wait(&self, ticket: Ticket) -> Result<AckedOp, ()> {
        let counted = ticket.counted;
        let r = self.wait_inner(ticket);
        if counted {
            let mut st = self.state.locked();
            st.unresolved -= 1;
            self.cv.notify_all();
        }
        r
    }

    fn wait_inner(&self, ticket: Ticket) -> Result<AckedOp, ()> {
        let mut st = self.state.locked();
        let deadline = Instant::now() + st.ack_timeout;
        // A ticket of an earlier stream is never acked by the current one.
        let generation = st.generation;
        // The deliberately broken build (feature chaos-ack-early, never in a release): a change
        // that was sent counts as acknowledged by the peer at once, and is not recorded as dirty.
        #[cfg(feature = "chaos-ack-early")]
        if let (Some(seq), None) = (ticket.seq, &st.lost) {
            return Ok(AckedOp { seq, by: AckedBy::Peer(st.level), _private: () });
        }
        loop {
            if let Some(seq) = ticket.seq {
                if st.acked >= seq && st.generation == generation {
                    return Ok(AckedOp { seq, by: AckedBy::Peer(st.level), _private: () });
                }
            }
            if st.lost.is_some() || ticket.seq.is_none() || st.generation != generation {
                if st.lost.is_some() {
                    self.mark_unacked(&mut st);
                }
                match st.fail_mode {
                    FailMode::Alone if st.unacked_unrecorded => return Err(()),
                    FailMode::Alone => {
                        st.alone_ops += 1;
                        drop(st);
                        for (path, offset, len) in &ticket.extents {
                            // Not recorded, not acknowledged: the application gets EIO.
                            self.mark(path, *offset, *len).map_err(drop)?;
                        }
                        return Ok(AckedOp { seq: ticket.seq.unwrap_or(0), by: AckedBy::DirtyTracker, _private: () });
                    }
                    FailMode::Fence => {
                        drop(st);
                        // Applied here, never acknowledged: recorded as dirty (the quarantine
                        // copies it aside) whether the loss was known when it was sent or came
                        // after (a tampered stream); the application gets EIO either way.
                        for (path, offset, len) in &ticket.extents {
                            let _ = self.mark(path, *offset, *len);
                        }
                        return Err(());
                    }
                    FailMode::Block if st.closing => return Err(()),
                    FailMode::Block => {
                        st = waited(self.cv.wait(st));
                        continue;
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                let ms = st.ack_timeout.as_millis();
                drop(st);
                self.lose(&format!("no acknowledgement within {ms} ms"));
                st = self.state.locked();
                continue;
            }
            st = waited(self.cv.wait_timeout(st, deadline - now)).0;
        }
    }

    pub(crate) fn set_fail_mode(&self, mode: FailMode) {
        let mut st = self.state.locked();
        st.fail_mode = mode;
        self.cv.notify_all();
    }

    /// True when connected and the peer acknowledged every change sent (waits up to the ack
    /// timeout for the last ones). The caller holds the order lock.
    pub(crate) fn all_acked(&self) -> bool {
        let mut st = self.state.locked();
        let deadline = Instant::now() + st.ack_timeout;
        loop {
            if st.lost.is_some() || st.catchup {
                return false;
            }
            if st.acked >= st.sent {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.cv.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    pub(crate) fn dirty_log(&self) -> Option<&dyn ActivityLog> {
        self.dirty.activity_log()
    }

    /// Closes the stream; blocked waiters return `Err` (EIO) under `Block`.
    pub(crate) fn close(&self) {
        self.state.locked().closing = true;
        self.lose("the mirror was closed");
        self.cv.notify_all();
        if let Some(h) = self.reader.locked().take() {
            let _ = h.join();
        }
    }
}
