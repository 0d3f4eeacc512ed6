//! The secondary's side: listens for the primary, checks that it holds the key, applies its
//! operations in place to the replicated directory (no mount on this node) and acknowledges them
//! cumulatively — after applying (`received`) or after fsync (`durable`).
//!
//! Operations that arrive together are applied as one batch and acknowledged with one ack, and at
//! `durable` each file or directory the batch touched is fsync'd once (group commit).
//!
//! Files by concern: this one holds the configuration, the status, the listener and its accept
//! loop; [`session`] one connection of the primary (handshake, frames, queries, the apply role);
//! [`batch`] applying a batch of operations in order and acknowledging it.

mod batch;
mod session;
#[cfg(test)]
mod tests;

use batch::FdCache;
use session::session_thread;
use crate::dirtylog::DirtyLog;
use crate::sys::HeldDir;
use crate::wire::Protocol;
use crate::locks::Locked;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The whole handshake of a connection, however slowly it sends: an honest primary needs two
/// round trips.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once (in the handshake or in a session); one more is closed at once
/// and counted. The primary needs two (its live or reintegration stream, and a verify).
pub const SESSIONS_MAX: usize = 16;
/// Operations applied before one ack at most, so that a long burst still gets acks.
const BATCH_OPS_MAX: usize = 1024;
/// Bytes of operations buffered before they are applied and acknowledged: with the frame
/// bounds of [`wire`], what one session holds in memory at most is this plus one frame.
pub const BATCH_BYTES_MAX: u64 = 16 << 20;
/// An acknowledgement or reply that cannot be sent for this long (the primary stopped reading)
/// ends the session.
const SESSION_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Back-off after a failed accept (EMFILE, ENFILE, ENOBUFS...), doubled up to the maximum.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Open descriptors kept for writes, so that a stream of writes to one file opens it once.
const FD_CACHE_MAX: usize = 64;
/// Length of an operation's description in a refusal (the path may be long).
const DESCRIBE_CHARS_MAX: usize = 300;

#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The replicated directory on this node (written in place).
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub key: Vec<u8>,
    /// This node's own dirty log (in its state directory), when it was primary before: a
    /// reintegration into this replica asks for its entries and copies them too, and the log is
    /// cleared when that reintegration is done.
    pub dirty_log: Option<Arc<DirtyLog>>,
    /// The addresses the primary may connect from (the peer node's configured addresses); a
    /// connection from any other is closed at once and counted. Empty: any (tests, benches).
    pub allowed_peers: Vec<IpAddr>,
    /// The protocol versions this side speaks (wire::Protocol; lowered only by croft's tests).
    pub protocol: Protocol,
}

impl ReplicaConfig {
    pub fn new(dir: impl Into<PathBuf>, listen: SocketAddr, key: Vec<u8>) -> ReplicaConfig {
        ReplicaConfig { dir: dir.into(), listen, key, dirty_log: None, allowed_peers: Vec::new(), protocol: Protocol::default() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Authenticated sessions so far.
    pub sessions: u64,
    /// Connections dropped in the handshake (wrong key, not a croft peer, silent, version).
    pub refused: u64,
    /// Of `refused`: the primary's protocol version is older than this side speaks.
    pub refused_version: u64,
    pub applied_ops: u64,
    /// The last sequence number acknowledged in the current (or last) session.
    pub acked_seq: u64,
    /// A session is applying the primary's operations now, or is the live stream of a
    /// reintegration that finished (its "done" answered), even if it has sent no operation yet.
    pub connected: bool,
    pub last_error: Option<String>,
    /// Reintegrations into this replica that finished (their "done" received).
    pub reintegrations: u64,
    /// Frame bytes received from primaries (operations and queries).
    pub bytes_received: u64,
    /// Queries answered (reintegration and verify sessions).
    pub queries: u64,
    /// Sessions ended because a record failed authentication (tampered, forged, replayed,
    /// reordered or dropped on the way).
    pub tampered: u64,
    /// Connections closed at once: from an address that is not the peer's.
    pub rejected_peers: u64,
    /// Connections closed at once: [`SESSIONS_MAX`] were being served.
    pub rejected_busy: u64,
    /// Failed accepts (each followed by a back-off).
    pub accept_errors: u64,
    /// Applying sessions shut down because a newer one of the primary took over.
    pub superseded: u64,
    /// Connections being served now (handshake or session).
    pub active_sessions: u64,
}

struct Shared {
    dir: HeldDir,
    key: Vec<u8>,
    dirty_log: Option<Arc<DirtyLog>>,
    allowed: Vec<IpAddr>,
    protocol: Protocol,
    /// One primary at a time applies; a newer session takes it over (see `take_apply`).
    apply: Mutex<FdCache>,
    /// The session that holds (or is taking) `apply`.
    applier: Mutex<Option<u64>>,
    status: Mutex<ReplicaStatus>,
    stop: AtomicBool,
    /// Every connection being served, by session id: removed when its session ends.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
}

pub struct Replica {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Replica {
    /// Opens the directory, binds the listener and starts accepting in a thread.
    pub fn start(config: ReplicaConfig) -> io::Result<Replica> {
        let dir = HeldDir::open(&config.dir)?;
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            dir,
            key: config.key,
            dirty_log: config.dirty_log,
            allowed: config.allowed_peers.iter().map(|a| a.to_canonical()).collect(),
            protocol: config.protocol,
            apply: Mutex::new(FdCache::default()),
            applier: Mutex::new(None),
            status: Mutex::new(ReplicaStatus::default()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        let s = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("croft-replica-accept".into())
            .spawn(move || accept_loop(s, listener))?;
        Ok(Replica { shared, addr, accept: Some(accept) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn status(&self) -> ReplicaStatus {
        self.shared.status.locked().clone()
    }

    /// Stops accepting, closes the sessions and waits for the accept thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in self.shared.conns.locked().values() {
            let _ = c.shutdown(Shutdown::Both);
        }
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop_inner();
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut sessions: Vec<JoinHandle<()>> = Vec::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let conn = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let (stream, from) = match conn {
            Ok(c) => {
                backoff = ACCEPT_BACKOFF_MIN;
                c
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors or buffers: wait instead of spinning on the same error.
                shared.status.locked().accept_errors += 1;
                thread::sleep(backoff);
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if !shared.allowed.is_empty() && !shared.allowed.contains(&from.ip().to_canonical()) {
            shared.status.locked().rejected_peers += 1;
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        sessions.retain(|h| !h.is_finished());
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        {
            let mut conns = shared.conns.locked();
            if conns.len() >= SESSIONS_MAX {
                drop(conns);
                shared.status.locked().rejected_busy += 1;
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            }
            match stream.try_clone() {
                Ok(c) => {
                    conns.insert(id, c);
                }
                Err(_) => {
                    drop(conns);
                    shared.status.locked().accept_errors += 1;
                    continue;
                }
            }
            shared.status.locked().active_sessions = conns.len() as u64;
        }
        let s = Arc::clone(&shared);
        match thread::Builder::new()
            .name("croft-replica-session".into())
            .spawn(move || session_thread(&s, id, stream))
        {
            Ok(h) => sessions.push(h),
            Err(_) => {
                forget_session(&shared, id);
                shared.status.locked().accept_errors += 1;
            }
        }
    }
    for h in sessions {
        let _ = h.join();
    }
}

/// The session's connection leaves `conns` (its descriptor is closed) and the apply role.
fn forget_session(shared: &Shared, id: u64) {
    let mut conns = shared.conns.locked();
    conns.remove(&id);
    shared.status.locked().active_sessions = conns.len() as u64;
    drop(conns);
    let mut applier = shared.applier.locked();
    if *applier == Some(id) {
        *applier = None;
    }
}
