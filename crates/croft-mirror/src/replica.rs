//! The secondary's side: listens for the primary, checks that it holds the key, applies its
//! operations in place to the replicated directory (no mount on this node) and acknowledges them
//! cumulatively — after applying (`received`) or after fsync (`durable`).
//!
//! Operations that arrive together are applied as one batch and acknowledged with one ack, and at
//! `durable` each file or directory the batch touched is fsync'd once (group commit).

use crate::dirtylog::DirtyLog;
use crate::apply;
use crate::op::Op;
use crate::sync;
use crate::sys::{self, HeldDir};
use crate::locks::Locked;
use crate::wire::{self, AckLevel, Frame, HandshakeError, Query, Sealed};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

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
}

impl ReplicaConfig {
    pub fn new(dir: impl Into<PathBuf>, listen: SocketAddr, key: Vec<u8>) -> ReplicaConfig {
        ReplicaConfig { dir: dir.into(), listen, key, dirty_log: None, allowed_peers: Vec::new() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Authenticated sessions so far.
    pub sessions: u64,
    /// Connections dropped in the handshake (wrong key, not a croft peer, silent).
    pub refused: u64,
    pub applied_ops: u64,
    /// The last sequence number acknowledged in the current (or last) session.
    pub acked_seq: u64,
    /// A session is applying the primary's operations now.
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

/// Ends a session whatever happens in it (a panic included: it is recorded, and the locks it
/// held stay usable for the next session).
struct SessionGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        forget_session(self.shared, self.id);
    }
}

fn session_thread(shared: &Shared, id: u64, stream: TcpStream) {
    let _guard = SessionGuard { shared, id };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session(shared, id, stream)));
    if let Err(p) = r {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "?".into());
        let was_applier = *shared.applier.locked() == Some(id);
        let mut st = shared.status.locked();
        if was_applier {
            st.connected = false;
        }
        st.last_error = Some(format!("a replica session failed: {what}"));
    }
}

fn session(shared: &Shared, id: u64, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    wire::set_keepalive(&stream);
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let (sealed, level) = match wire::handshake_replica(stream, &shared.key, deadline) {
        Ok(ok) => ok,
        Err(e) => {
            let mut st = shared.status.locked();
            st.refused += 1;
            st.last_error = Some(match e {
                HandshakeError::Refused(m) => m,
                HandshakeError::Io(e) => format!("handshake: {e}"),
            });
            return;
        }
    };
    let _ = sealed.set_read_timeout(None);
    let _ = sealed.set_write_timeout(Some(SESSION_WRITE_TIMEOUT));
    shared.status.locked().sessions += 1;
    let mut applying = None;
    let result = serve(shared, id, &mut applying, &sealed, level);
    let mut st = shared.status.locked();
    if sealed.tampered() {
        st.tampered += 1;
    }
    if let Some(mut cache) = applying.take() {
        // Still holding the apply lock: a newer session cannot have said connected yet.
        cache.clear();
        st.connected = false;
        drop(cache);
    }
    if let Err(e) = result {
        st.last_error = Some(e);
    }
    drop(st);
    let _ = sealed.shutdown(Shutdown::Both);
}

/// The applying session's hold on the replica: taken at the first operation, so that a
/// query-only session (verify) runs alongside the applying one. A newer session of the
/// primary takes over: the older applier is shut down (its next read or send fails and it
/// lets go), so a silent or stuck session never holds the replica.
fn take_apply<'a>(shared: &'a Shared, id: u64, applying: &mut Option<MutexGuard<'a, FdCache>>) {
    if applying.is_none() {
        {
            let mut applier = shared.applier.locked();
            if let Some(old) = applier.replace(id) {
                if old != id {
                    if let Some(c) = shared.conns.locked().get(&old) {
                        let _ = c.shutdown(Shutdown::Both);
                    }
                    shared.status.locked().superseded += 1;
                }
            }
        }
        let mut cache = shared.apply.locked();
        cache.clear();
        let mut st = shared.status.locked();
        st.connected = true;
        st.acked_seq = 0;
        *applying = Some(cache);
    }
}

fn answer(shared: &Shared, q: &Query) -> Vec<u8> {
    match q {
        Query::DirtyEntries => {
            sync::encode_entries(shared.dirty_log.as_ref().map(|l| (l.is_trustworthy(), l.entries())))
        }
        Query::ListDir { path } => sync::encode_infos(sync::list_infos(&shared.dir, path)),
        Query::Checksums { path, zone_bytes } => sync::encode_sums(sync::checksums(&shared.dir, path, *zone_bytes)),
        Query::Done => {
            if let Some(l) = &shared.dirty_log {
                if let Err(e) = l.clear() {
                    return sync::reply_err(&e);
                }
            }
            let mut st = shared.status.locked();
            st.reintegrations += 1;
            let mut out = vec![1u8];
            out.extend_from_slice(&st.reintegrations.to_le_bytes());
            out
        }
    }
}

fn serve<'a>(
    shared: &'a Shared,
    id: u64,
    applying: &mut Option<MutexGuard<'a, FdCache>>,
    stream: &Sealed,
    level: AckLevel,
) -> Result<(), String> {
    let mut reader = stream;
    let mut writer = stream.clone();
    let mut expected = 1u64;
    let mut eof = false;
    while !eof {
        let mut batch: Vec<(u64, Op)> = Vec::new();
        let mut batch_bytes = 0u64;
        let mut query = None;
        loop {
            match wire::read_frame(&mut reader) {
                Ok(Some(Frame::Op { seq, op })) => {
                    let n = op_bytes(&op);
                    shared.status.locked().bytes_received += n;
                    batch_bytes += n;
                    batch.push((seq, op))
                }
                Ok(Some(Frame::Query { id, query: q })) => {
                    query = Some((id, q));
                    break;
                }
                Ok(Some(other)) => return Err(format!("the primary sent {}", frame_name(&other))),
                Ok(None) => {
                    eof = true;
                    break;
                }
                Err(e) => return Err(format!("reading from the primary: {e}")),
            }
            // Apply and ack what is buffered when nothing more is ready, and at the bounds.
            if batch.len() >= BATCH_OPS_MAX || batch_bytes >= BATCH_BYTES_MAX || !stream.ready() {
                break;
            }
        }
        if !batch.is_empty() {
            take_apply(shared, id, applying);
            let Some(cache) = applying.as_mut() else { return Err("the apply lock was not taken".into()) };
            apply_batch(shared, cache, &mut writer, &mut expected, &batch, level)?;
        }
        if let Some((qid, q)) = query {
            let body = answer(shared, &q);
            shared.status.locked().queries += 1;
            writer.write_all(&wire::reply_frame(qid, &body)).map_err(|e| format!("sending a reply: {e}"))?;
        }
    }
    Ok(())
}

fn frame_name(f: &Frame) -> String {
    match f {
        Frame::Op { seq, .. } => format!("operation {seq}"),
        Frame::Ack { seq } => format!("an ack ({seq})"),
        Frame::Nack { seq, .. } => format!("a refusal ({seq})"),
        Frame::Query { id, .. } => format!("query {id}"),
        Frame::Reply { id, .. } => format!("a reply ({id})"),
    }
}

/// Rough frame size of an operation, for the counters.
fn op_bytes(op: &Op) -> u64 {
    match op {
        Op::Write { data, .. } => data.len() as u64 + 32,
        _ => 64,
    }
}

fn apply_batch(
    shared: &Shared,
    cache: &mut FdCache,
    writer: &mut Sealed,
    expected: &mut u64,
    batch: &[(u64, Op)],
    level: AckLevel,
) -> Result<(), String> {
    {
        let expected = &mut *expected;
        let mut to_sync: BTreeSet<PathBuf> = BTreeSet::new();
        let mut last = 0;
        for (seq, op) in batch {
            if *seq != *expected {
                let m = format!("operation seq {seq} where {expected} was expected");
                let _ = writer.write_all(&wire::nack_frame(*seq, libc::EPROTO, &m));
                return Err(m);
            }
            if let Err(e) = cache.apply(&shared.dir, op) {
                let m = format!("{op_name} failed: {e}", op_name = describe(op));
                let _ = writer.write_all(&wire::nack_frame(*seq, sys::errno_of(&e), &m));
                return Err(m);
            }
            if level == AckLevel::Durable {
                to_sync.extend(op.sync_targets());
            }
            *expected += 1;
            last = *seq;
        }
        for p in &to_sync {
            if let Err(e) = cache.sync(&shared.dir, p) {
                // A path removed later in the same batch needs no sync; anything else is fatal.
                if e.raw_os_error() != Some(libc::ENOENT) {
                    let m = format!("fsync of {p:?} failed: {e}");
                    let _ = writer.write_all(&wire::nack_frame(last, sys::errno_of(&e), &m));
                    return Err(m);
                }
            }
        }
        {
            let mut st = shared.status.locked();
            st.applied_ops += batch.len() as u64;
            st.acked_seq = last;
        }
        writer
            .write_all(&wire::ack_frame(last))
            .map_err(|e| format!("sending an ack: {e}"))?;
    }
    Ok(())
}

fn describe(op: &Op) -> String {
    let s = format!("{op:?}");
    // Do not put a whole write's data in a message.
    match op {
        Op::Write { path, offset, data } => {
            truncate_chars(&format!("Write {{ path: {path:?}, offset: {offset}, len: {} }}", data.len()), DESCRIBE_CHARS_MAX)
        }
        _ => truncate_chars(&s, DESCRIBE_CHARS_MAX),
    }
}

/// At most `max` characters of `s` (never cut inside one), with an ellipsis when cut.
fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Open descriptors for data operations, dropped whenever the namespace changes (a cached path
/// could then name another file).
#[derive(Default)]
struct FdCache {
    fds: HashMap<PathBuf, OwnedFd>,
}

impl FdCache {
    fn clear(&mut self) {
        self.fds.clear();
    }

    fn fd(&mut self, dir: &HeldDir, path: &Path) -> io::Result<&OwnedFd> {
        if !self.fds.contains_key(path) {
            if self.fds.len() >= FD_CACHE_MAX {
                self.fds.clear();
            }
            let fd = dir.open_at(path, libc::O_WRONLY, 0)?;
            self.fds.insert(path.to_path_buf(), fd);
        }
        Ok(&self.fds[path])
    }

    fn apply(&mut self, dir: &HeldDir, op: &Op) -> io::Result<()> {
        match op {
            Op::Write { path, offset, data } => sys::pwrite_all(self.fd(dir, path)?.as_raw_fd(), data, *offset),
            Op::Truncate { path, size } => sys::ftruncate(self.fd(dir, path)?.as_raw_fd(), *size),
            Op::Fallocate { path, mode, offset, len } => {
                sys::fallocate(self.fd(dir, path)?.as_raw_fd(), *mode, *offset, *len)
            }
            Op::Fsync { path, datasync } => match self.fds.get(path.as_path()) {
                Some(fd) => sys::fsync(fd.as_raw_fd(), *datasync),
                None => apply::sync_path(dir, path, *datasync),
            },
            Op::Unlink { .. }
            | Op::Rmdir { .. }
            | Op::Rename { .. }
            | Op::RemoveTree { .. }
            | Op::SyncDir { .. }
            | Op::SyncFile { .. }
            | Op::SyncSymlink { .. }
            | Op::SyncNode { .. }
            | Op::LinkReplace { .. } => {
                self.clear();
                apply::apply(dir, op)
            }
            _ => apply::apply(dir, op),
        }
    }

    fn sync(&mut self, dir: &HeldDir, path: &Path) -> io::Result<()> {
        match self.fds.get(path) {
            Some(fd) => sys::fsync(fd.as_raw_fd(), false),
            None => apply::sync_path(dir, path, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_4_descriptions_are_cut_between_characters() {
        let op = Op::Truncate { path: "é".repeat(400).into(), size: 0 };
        let d = describe(&op);
        assert!(d.ends_with('…') && d.chars().count() == DESCRIBE_CHARS_MAX + 1, "{d}");
        let w = Op::Write { path: "ü".repeat(500).into(), offset: 0, data: vec![0; 10] };
        assert!(describe(&w).ends_with('…'));
        assert_eq!(truncate_chars("abc", 300), "abc");
    }

    #[test]
    fn finding_4_a_panic_under_the_replicas_locks_does_not_stop_later_sessions() {
        let dir = std::env::temp_dir().join(format!("croft-replica-poison-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = Replica::start(ReplicaConfig::new(&dir, "127.0.0.1:0".parse().unwrap(), b"k".to_vec())).unwrap();
        let shared = Arc::clone(&r.shared);
        let _ = thread::spawn(move || {
            let _apply = shared.apply.lock();
            let _status = shared.status.lock();
            panic!("a panic while holding the replica's locks");
        })
        .join();
        assert!(r.shared.apply.is_poisoned() && r.shared.status.is_poisoned());
        let s = TcpStream::connect(r.local_addr()).unwrap();
        let s = wire::handshake_primary(s, b"k", AckLevel::Received, Instant::now() + Duration::from_secs(5)).unwrap();
        (&s).write_all(&wire::op_frame(1, &Op::Create { path: "after".into(), mode: 0o644, uid: 0, gid: 0 })).unwrap();
        let mut rd = &s;
        assert_eq!(wire::read_frame(&mut rd).unwrap(), Some(Frame::Ack { seq: 1 }));
        assert!(dir.join("after").exists());
        assert!(r.status().connected);
        drop(s);
        r.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
