//! The primary's end of the replication stream: numbers operations, sends them in order, and lets
//! a FUSE thread wait for the peer's cumulative acknowledgement — the only thing a FUSE thread
//! ever waits on (besides its own local syscalls and the bounded socket send).
//!
//! When the peer is unreachable, refuses an operation or does not ack within `ack_timeout_ms`, the
//! peer is marked lost and nothing more is sent on this stream (reintegration starts a new one).
//! What happens to the operations that were not acknowledged is the caller's [`FailMode`].

use crate::op::Op;
use crate::wire::{self, AckLevel, Frame, HandshakeError};
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a change does when the peer cannot acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// The application's call waits until the peer acknowledges or the caller switches to
    /// `Alone` (once the split-brain rule allows this node to run alone) or unmounts (EIO).
    Block,
    /// The change stays applied locally, its extents go to the [`DirtyTracker`], and the call
    /// returns: this node runs ALONE.
    Alone,
}

/// Records what changed while the peer could not acknowledge it, so that reintegration copies
/// only that. `mark` is called on the FUSE thread before the application's call returns; an
/// implementation that must be durable (the dirty log) makes the record durable before it returns.
pub trait DirtyTracker: Send + Sync {
    /// `len == 0`: the entry `path` itself changed (created, removed, metadata);
    /// otherwise bytes `[offset, offset + len)` of it, `len == op::TO_END` meaning to the end.
    fn mark(&self, path: &Path, offset: u64, len: u64);
}

/// An in-memory [`DirtyTracker`]: the set of paths touched while alone (not crash-safe).
#[derive(Debug, Default)]
pub struct DirtyPaths {
    paths: Mutex<std::collections::BTreeSet<PathBuf>>,
}

impl DirtyPaths {
    pub fn new() -> DirtyPaths {
        DirtyPaths::default()
    }
    pub fn paths(&self) -> Vec<PathBuf> {
        self.paths.lock().unwrap().iter().cloned().collect()
    }
}

impl DirtyTracker for DirtyPaths {
    fn mark(&self, path: &Path, _offset: u64, _len: u64) {
        self.paths.lock().unwrap().insert(path.to_path_buf());
    }
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
}

impl PeerConfig {
    pub fn new(addr: SocketAddr, key: Vec<u8>) -> PeerConfig {
        PeerConfig { addr, key, ack_level: AckLevel::Received, ack_timeout_ms: 2000, connect_timeout_ms: 2000 }
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
}

struct Tx {
    stream: Option<TcpStream>,
    next_seq: u64,
}

struct State {
    acked: u64,
    sent: u64,
    bytes_sent: u64,
    alone_ops: u64,
    lost: Option<String>,
    fail_mode: FailMode,
    closing: bool,
    /// A clone of the stream, to shut it down from any thread.
    shutdown: Option<TcpStream>,
}

pub(crate) struct Replicator {
    ack_timeout: Duration,
    level: AckLevel,
    tx: Mutex<Tx>,
    state: Mutex<State>,
    cv: Condvar,
    dirty: Arc<dyn DirtyTracker>,
    events: Option<EventSink>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

/// Connects and authenticates to the peer.
pub(crate) fn connect(peer: &PeerConfig) -> Result<TcpStream, HandshakeError> {
    let timeout = Duration::from_millis(peer.connect_timeout_ms.max(1));
    let mut s = TcpStream::connect_timeout(&peer.addr, timeout)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    wire::handshake_primary(&mut s, &peer.key, peer.ack_level)?;
    s.set_read_timeout(None)?;
    // A send blocks only while the peer's receive window is full, i.e. on the peer's progress:
    // bounded by the ack timeout like the ack itself.
    s.set_write_timeout(Some(Duration::from_millis(peer.ack_timeout_ms.max(1))))?;
    Ok(s)
}

impl Replicator {
    /// `stream`: an authenticated stream, or `None` to start alone (`lost_reason` says why).
    pub(crate) fn start(
        stream: Option<TcpStream>,
        lost_reason: &str,
        level: AckLevel,
        ack_timeout_ms: u64,
        fail_mode: FailMode,
        dirty: Arc<dyn DirtyTracker>,
        events: Option<EventSink>,
    ) -> io::Result<Arc<Replicator>> {
        let (shutdown, read_half) = match &stream {
            Some(s) => (Some(s.try_clone()?), Some(s.try_clone()?)),
            None => (None, None),
        };
        let lost = if stream.is_some() { None } else { Some(lost_reason.to_string()) };
        let r = Arc::new(Replicator {
            ack_timeout: Duration::from_millis(ack_timeout_ms.max(1)),
            level,
            tx: Mutex::new(Tx { stream, next_seq: 1 }),
            state: Mutex::new(State {
                acked: 0,
                sent: 0,
                bytes_sent: 0,
                alone_ops: 0,
                lost,
                fail_mode,
                closing: false,
                shutdown,
            }),
            cv: Condvar::new(),
            dirty,
            events,
            reader: Mutex::new(None),
        });
        if let Some(read_half) = read_half {
            let me = Arc::clone(&r);
            let h = thread::Builder::new()
                .name("croft-mirror-acks".into())
                .spawn(move || me.read_acks(read_half))?;
            *r.reader.lock().unwrap() = Some(h);
        }
        Ok(r)
    }

    fn read_acks(&self, stream: TcpStream) {
        let mut r = BufReader::new(stream);
        let reason = loop {
            match wire::read_frame(&mut r) {
                Ok(Some(Frame::Ack { seq })) => {
                    let mut st = self.state.lock().unwrap();
                    if seq > st.sent {
                        break format!("the peer acknowledged seq {seq} that was never sent ({} sent)", st.sent);
                    }
                    st.acked = st.acked.max(seq);
                    self.cv.notify_all();
                }
                Ok(Some(Frame::Nack { seq, errno, message })) => {
                    break format!(
                        "the peer could not apply operation {seq}: {message} (errno {errno}); the trees differ"
                    )
                }
                Ok(Some(Frame::Op { .. })) => break "the peer sent an operation frame".into(),
                Ok(None) => break "the peer closed the connection".into(),
                Err(e) => break format!("reading acks from the peer: {e}"),
            }
        };
        self.lose(&reason);
    }

    /// Marks the peer lost (once), closes the stream and wakes every waiter.
    pub(crate) fn lose(&self, reason: &str) {
        let newly = {
            let mut st = self.state.lock().unwrap();
            if st.lost.is_some() {
                false
            } else {
                st.lost = Some(reason.to_string());
                if let Some(s) = st.shutdown.take() {
                    let _ = s.shutdown(Shutdown::Both);
                }
                self.cv.notify_all();
                true
            }
        };
        if newly {
            if let Some(ev) = &self.events {
                ev(&MirrorEvent::PeerLost { reason: reason.to_string() });
            }
        }
    }

    /// Sends `ops` in order. The caller holds the filesystem's order lock and has just applied
    /// them locally, so sequence order is local application order.
    pub(crate) fn replicate(&self, ops: &[Op]) -> Ticket {
        let extents = ops.iter().flat_map(Op::dirty_extents).collect();
        let mut tx = self.tx.lock().unwrap();
        if self.state.lock().unwrap().lost.is_some() {
            tx.stream = None;
            return Ticket { seq: None, extents };
        }
        let first = tx.next_seq;
        let Some(stream) = tx.stream.as_mut() else {
            return Ticket { seq: None, extents };
        };
        let mut buf = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            buf.extend(wire::op_frame(first + i as u64, op));
        }
        let last = first + ops.len() as u64 - 1;
        {
            // Before the write: the ack may come back before write_all returns.
            let mut st = self.state.lock().unwrap();
            st.sent = last;
            st.bytes_sent += buf.len() as u64;
        }
        match stream.write_all(&buf) {
            Ok(()) => {
                tx.next_seq = last + 1;
                Ticket { seq: Some(last), extents }
            }
            Err(e) => {
                tx.stream = None;
                drop(tx);
                self.lose(&format!("sending to the peer: {e}"));
                Ticket { seq: None, extents }
            }
        }
    }

    /// A ticket for "everything sent so far" (flush: nothing new, but nothing pending either).
    pub(crate) fn barrier(&self) -> Ticket {
        let tx = self.tx.lock().unwrap();
        let sent = tx.next_seq - 1;
        Ticket { seq: if sent == 0 { Some(0) } else { Some(sent) }, extents: Vec::new() }
    }

    /// Waits until the ticket is acknowledged by the peer, or — once the peer is lost — handles
    /// it by the fail mode. `Err` only when the mirror is closing under `Block` (the caller
    /// answers EIO: the change is applied locally but could not be acknowledged).
    pub(crate) fn wait(&self, ticket: Ticket) -> Result<AckedOp, ()> {
        let deadline = Instant::now() + self.ack_timeout;
        let mut st = self.state.lock().unwrap();
        loop {
            if let Some(seq) = ticket.seq {
                if st.acked >= seq {
                    return Ok(AckedOp { seq, by: AckedBy::Peer(self.level), _private: () });
                }
            }
            if st.lost.is_some() || ticket.seq.is_none() {
                match st.fail_mode {
                    FailMode::Alone => {
                        st.alone_ops += 1;
                        drop(st);
                        for (path, offset, len) in &ticket.extents {
                            self.dirty.mark(path, *offset, *len);
                        }
                        return Ok(AckedOp { seq: ticket.seq.unwrap_or(0), by: AckedBy::DirtyTracker, _private: () });
                    }
                    FailMode::Block if st.closing => return Err(()),
                    FailMode::Block => {
                        st = self.cv.wait(st).unwrap();
                        continue;
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                drop(st);
                self.lose(&format!("no acknowledgement within {} ms", self.ack_timeout.as_millis()));
                st = self.state.lock().unwrap();
                continue;
            }
            st = self.cv.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    pub(crate) fn set_fail_mode(&self, mode: FailMode) {
        let mut st = self.state.lock().unwrap();
        st.fail_mode = mode;
        self.cv.notify_all();
    }

    pub(crate) fn status(&self) -> LinkStatus {
        let st = self.state.lock().unwrap();
        LinkStatus {
            connected: st.lost.is_none(),
            lost_reason: st.lost.clone(),
            sent_seq: st.sent,
            acked_seq: st.acked,
            bytes_sent: st.bytes_sent,
            alone_ops: st.alone_ops,
        }
    }

    /// Closes the stream; blocked waiters return `Err` (EIO) under `Block`.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap().closing = true;
        self.lose("the mirror was closed");
        self.cv.notify_all();
        if let Some(h) = self.reader.lock().unwrap().take() {
            let _ = h.join();
        }
    }
}

