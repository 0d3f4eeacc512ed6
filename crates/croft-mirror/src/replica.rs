//! The secondary's side: listens for the primary, checks that it holds the key, applies its
//! operations in place to the replicated directory (no mount on this node) and acknowledges them
//! cumulatively — after applying (`received`) or after fsync (`durable`).
//!
//! Operations that arrive together are applied as one batch and acknowledged with one ack, and at
//! `durable` each file or directory the batch touched is fsync'd once (group commit).

use crate::dirtylog::DirtyLog;
use crate::op::{self, Op};
use crate::sync;
use crate::sys::{self, HeldDir};
use crate::wire::{self, AckLevel, Frame, HandshakeError, Query};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A silent client is dropped after this; an honest primary answers in one round trip.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Operations applied before one ack at most, so that a long burst still gets acks.
const BATCH_OPS_MAX: usize = 1024;
/// Open descriptors kept for writes, so that a stream of writes to one file opens it once.
const FD_CACHE_MAX: usize = 64;

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
}

impl ReplicaConfig {
    pub fn new(dir: impl Into<PathBuf>, listen: SocketAddr, key: Vec<u8>) -> ReplicaConfig {
        ReplicaConfig { dir: dir.into(), listen, key, dirty_log: None }
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
    pub connected: bool,
    pub last_error: Option<String>,
    /// Reintegrations into this replica that finished (their "done" received).
    pub reintegrations: u64,
    /// Frame bytes received from primaries (operations and queries).
    pub bytes_received: u64,
    /// Queries answered (reintegration and verify sessions).
    pub queries: u64,
}

struct Shared {
    dir: HeldDir,
    key: Vec<u8>,
    dirty_log: Option<Arc<DirtyLog>>,
    /// One primary at a time applies; a second authenticated session waits for the first.
    apply: Mutex<FdCache>,
    status: Mutex<ReplicaStatus>,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
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
            apply: Mutex::new(FdCache::default()),
            status: Mutex::new(ReplicaStatus::default()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
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
        self.shared.status.lock().unwrap().clone()
    }

    /// Stops accepting, closes the sessions and waits for the accept thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
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
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        if let Ok(c) = stream.try_clone() {
            shared.conns.lock().unwrap().push(c);
        }
        let s = Arc::clone(&shared);
        sessions.retain(|h| !h.is_finished());
        if let Ok(h) = thread::Builder::new()
            .name("croft-replica-session".into())
            .spawn(move || session(&s, stream))
        {
            sessions.push(h);
        }
    }
    for h in sessions {
        let _ = h.join();
    }
}

fn session(shared: &Shared, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT));
    let level = match wire::handshake_replica(&mut stream, &shared.key) {
        Ok(level) => level,
        Err(e) => {
            let mut st = shared.status.lock().unwrap();
            st.refused += 1;
            st.last_error = Some(match e {
                HandshakeError::Refused(m) => m,
                HandshakeError::Io(e) => format!("handshake: {e}"),
            });
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = stream.set_read_timeout(None);
    let _ = stream.set_write_timeout(None);
    shared.status.lock().unwrap().sessions += 1;
    let mut applying = None;
    let result = serve(shared, &mut applying, &stream, level);
    if let Some(mut cache) = applying {
        cache.clear();
        shared.status.lock().unwrap().connected = false;
    }
    if let Err(e) = result {
        shared.status.lock().unwrap().last_error = Some(e);
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// The applying session's hold on the replica: taken at the first operation, so that a
/// query-only session (verify) runs alongside the applying one.
fn take_apply<'a>(shared: &'a Shared, applying: &mut Option<MutexGuard<'a, FdCache>>) {
    if applying.is_none() {
        let mut cache = shared.apply.lock().unwrap();
        cache.clear();
        let mut st = shared.status.lock().unwrap();
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
            let mut st = shared.status.lock().unwrap();
            st.reintegrations += 1;
            let mut out = vec![1u8];
            out.extend_from_slice(&st.reintegrations.to_le_bytes());
            out
        }
    }
}

/// True when the reader's buffer holds one whole frame: the next read will not block.
fn frame_buffered(r: &BufReader<TcpStream>) -> bool {
    let b = r.buffer();
    b.len() >= 4 && b.len() - 4 >= u32::from_le_bytes(b[..4].try_into().unwrap()) as usize
}

fn serve<'a>(
    shared: &'a Shared,
    applying: &mut Option<MutexGuard<'a, FdCache>>,
    stream: &TcpStream,
    level: AckLevel,
) -> Result<(), String> {
    let mut reader = BufReader::with_capacity(1 << 20, stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut expected = 1u64;
    let mut eof = false;
    while !eof {
        let mut batch: Vec<(u64, Op)> = Vec::new();
        let mut query = None;
        loop {
            match wire::read_frame(&mut reader) {
                Ok(Some(Frame::Op { seq, op })) => {
                    shared.status.lock().unwrap().bytes_received += op_bytes(&op);
                    batch.push((seq, op))
                }
                Ok(Some(Frame::Query { id, query: q })) => {
                    query = Some((id, q));
                    break;
                }
                Ok(Some(other)) => return Err(format!("the primary sent {other:?}")),
                Ok(None) => {
                    eof = true;
                    break;
                }
                Err(e) => return Err(format!("reading from the primary: {e}")),
            }
            if batch.len() >= BATCH_OPS_MAX || !frame_buffered(&reader) {
                // An empty buffer may just mean the rest is in the socket: peek without blocking.
                if batch.len() >= BATCH_OPS_MAX || !more_ready(&mut reader) {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            take_apply(shared, applying);
            let cache = &mut **applying.as_mut().unwrap();
            apply_batch(shared, cache, &mut writer, &mut expected, &batch, level)?;
        }
        if let Some((id, q)) = query {
            let body = answer(shared, &q);
            shared.status.lock().unwrap().queries += 1;
            writer.write_all(&wire::reply_frame(id, &body)).map_err(|e| format!("sending a reply: {e}"))?;
        }
    }
    Ok(())
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
    writer: &mut TcpStream,
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
            let mut st = shared.status.lock().unwrap();
            st.applied_ops += batch.len() as u64;
            st.acked_seq = last;
        }
        writer
            .write_all(&wire::ack_frame(last))
            .map_err(|e| format!("sending an ack: {e}"))?;
    }
    Ok(())
}

/// Pulls whatever the socket already has into the buffer without blocking; true if a whole frame
/// is then buffered.
fn more_ready(reader: &mut BufReader<TcpStream>) -> bool {
    if frame_buffered(reader) {
        return true;
    }
    // fill_buf only reads when the buffer is empty; with a partial frame buffered, the next
    // read_frame would block on the rest anyway, which is the frame we want.
    if !reader.buffer().is_empty() {
        return true;
    }
    if reader.get_ref().set_nonblocking(true).is_err() {
        return false;
    }
    let ready = matches!(reader.fill_buf(), Ok(b) if !b.is_empty());
    let _ = reader.get_ref().set_nonblocking(false);
    ready
}

fn describe(op: &Op) -> String {
    let s = format!("{op:?}");
    // Do not put a whole write's data in a message.
    match op {
        Op::Write { path, offset, data } => format!("Write {{ path: {path:?}, offset: {offset}, len: {} }}", data.len()),
        _ if s.len() > 300 => s[..300].to_string(),
        _ => s,
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
                None => op::sync_path(dir, path, *datasync),
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
                op::apply(dir, op)
            }
            _ => op::apply(dir, op),
        }
    }

    fn sync(&mut self, dir: &HeldDir, path: &Path) -> io::Result<()> {
        match self.fds.get(path) {
            Some(fd) => sys::fsync(fd.as_raw_fd(), false),
            None => op::sync_path(dir, path, false),
        }
    }
}
