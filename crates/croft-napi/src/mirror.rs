//! Binding of crates/croft-mirror: `MirrorMount` (the FUSE mirror on the node running the
//! application), `MirrorReplica` (the peer's side) and `mirrorLazyUnmount`.
//!
//! Threads: mounting, unmounting and name resolution run on the libuv pool (AsyncTask). The FUSE
//! handlers are Rust threads that never call into JS: the only JS they reach is the event
//! callback, through a ThreadsafeFunction called in non-blocking mode on an unbounded queue, so a
//! FUSE thread never waits for the JS thread. That is also why synchronous `fs` calls on the mount
//! from the JS thread cannot deadlock on the binding (they can still wait for the peer's ack, and
//! forever under fail mode `block` with the peer lost: see src/native/mirror.ts).
//!
//! Errors: a `MirrorError` becomes a JS error whose message is its Display and whose `code` is
//! its `code()` (CROFT_ERR_MIRROR_*), built on the JS thread with napi_create_error.
//!
//! Leftover mounts: a `MirrorMount` collected without `unmount()` detaches lazily in its Drop, and
//! an atexit(3) handler detaches every mount still live when the process exits normally
//! (end of the event loop, `process.exit()`, an uncaught exception). After SIGKILL nothing runs:
//! the kernel aborts the FUSE connection when the process's /dev/fuse descriptor closes, and the
//! mount point answers ENOTCONN until `mirrorLazyUnmount(dir)` (`fusermount3 -u -z`).

use croft_mirror::{
    lazy_unmount, AckLevel, DirtyPaths, EventSink, FailMode, Mirror, MirrorConfig, MirrorError, MirrorEvent,
    MirrorStatus, PeerConfig, Replica, ReplicaConfig, ReplicaStatus, THREADS_DEFAULT,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::JsError;
use napi_derive::napi;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};

/// Events kept while no callback is registered (between mount and onEvent): the first ones
/// matter (why the peer was lost), and a mirror emits few.
const PENDING_EVENTS_MAX: usize = 16;
/// FUSE threads at most: each blocks on one in-flight change; more only burn memory.
const THREADS_MAX: u32 = 64;

/// A JS error whose `code` property is `code` (napi_create_error sets it), thrown as is.
fn coded_error(env: &Env, code: &str, message: String) -> Error {
    // SAFETY: called on the JS thread with its env; the value is referenced by the returned Error.
    unsafe {
        let raw = JsError::from(Error::new(code, message.clone())).into_value(env.raw());
        match Unknown::from_napi_value(env.raw(), raw) {
            Ok(value) => Error::from(value),
            Err(_) => Error::new(Status::GenericFailure, message),
        }
    }
}

fn invalid(msg: String) -> Error {
    Error::new(Status::InvalidArg, msg)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under one of these locks was already turned into a JS error; the data (an Option
    // and counters) stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn panicked(what: &str) -> Error {
    Error::new(Status::GenericFailure, format!("{what} panicked (a croft bug)"))
}

fn parse_fail_mode(mode: &str) -> Result<FailMode> {
    match mode {
        "block" => Ok(FailMode::Block),
        "alone" => Ok(FailMode::Alone),
        _ => Err(invalid(format!("failMode must be 'block' or 'alone', got {mode:?}"))),
    }
}

fn fail_mode_name(mode: FailMode) -> String {
    match mode {
        FailMode::Block => "block".into(),
        FailMode::Alone => "alone".into(),
    }
}

fn ack_level_name(level: AckLevel) -> String {
    match level {
        AckLevel::Received => "received".into(),
        AckLevel::Durable => "durable".into(),
    }
}

fn port_u16(port: u32) -> Result<u16> {
    u16::try_from(port).map_err(|_| invalid(format!("port {port} is out of range 0..65535")))
}

// ---------------------------------------------------------------------------------------------
// Events

#[napi(object)]
pub struct MirrorEventJs {
    /// "peerLost".
    pub kind: String,
    pub reason: String,
}

fn event_js(ev: &MirrorEvent) -> MirrorEventJs {
    match ev {
        MirrorEvent::PeerLost { reason } => MirrorEventJs { kind: "peerLost".into(), reason: reason.clone() },
    }
}

/// Weak: a registered callback does not keep the process alive. CalleeHandled false: the
/// callback gets the event as its only argument.
type EventCallback = ThreadsafeFunction<MirrorEventJs, Unknown<'static>, MirrorEventJs, Status, false, true>;

#[derive(Default)]
struct EventHub {
    inner: Mutex<HubInner>,
}

#[derive(Default)]
struct HubInner {
    callback: Option<EventCallback>,
    pending: VecDeque<MirrorEvent>,
}

impl EventHub {
    /// Called from a replication or FUSE thread: never blocks beyond a short lock.
    fn emit(&self, ev: &MirrorEvent) {
        let mut h = lock(&self.inner);
        match &h.callback {
            Some(cb) => {
                // Non-blocking on an unbounded queue: returns at once; Closing at exit is fine.
                let _ = cb.call(event_js(ev), ThreadsafeFunctionCallMode::NonBlocking);
            }
            None => {
                if h.pending.len() < PENDING_EVENTS_MAX {
                    h.pending.push_back(ev.clone());
                }
            }
        }
    }

    fn set(&self, cb: Option<EventCallback>) {
        let mut guard = lock(&self.inner);
        let h = &mut *guard;
        h.callback = cb;
        if let Some(cb) = &h.callback {
            // Events from before the callback, delivered through the queue like the others.
            for ev in h.pending.drain(..) {
                let _ = cb.call(event_js(&ev), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Live mounts, detached at process exit

type Slot = Mutex<Option<Mirror>>;

static LIVE: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

extern "C" fn detach_live_mounts() {
    let live = std::mem::take(&mut *lock(&LIVE));
    for slot in live.iter().filter_map(Weak::upgrade) {
        // Drop: releases blocked callers, unmounts (lazily when busy).
        drop(lock(&slot).take());
    }
}

fn register_live(slot: &Arc<Slot>) {
    ATEXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" function; the addon is never unloaded.
        unsafe { libc::atexit(detach_live_mounts) };
    });
    let mut live = lock(&LIVE);
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(slot));
}

// ---------------------------------------------------------------------------------------------
// MirrorMount

#[napi(object)]
pub struct MirrorPeerOptions {
    pub host: String,
    pub port: u32,
    /// The cluster key (both nodes hold it).
    pub key: Buffer,
    /// "received" or "durable".
    pub ack_level: String,
    pub ack_timeout_ms: Option<u32>,
    pub connect_timeout_ms: Option<u32>,
}

#[napi(object)]
pub struct MirrorMountOptions {
    pub dir: String,
    pub peer: Option<MirrorPeerOptions>,
    /// "block" or "alone" (default "alone").
    pub fail_mode: Option<String>,
    pub threads: Option<u32>,
}

#[napi(object)]
pub struct MirrorLinkStatusJs {
    pub connected: bool,
    pub lost_reason: Option<String>,
    pub sent_seq: i64,
    pub acked_seq: i64,
    pub bytes_sent: i64,
    pub alone_ops: i64,
}

#[napi(object)]
pub struct MirrorStatusJs {
    pub dir: String,
    /// "received" | "durable", absent when mounted without a peer.
    pub ack_level: Option<String>,
    /// "block" | "alone".
    pub fail_mode: String,
    pub link: MirrorLinkStatusJs,
    pub mounted: bool,
}

fn status_js(s: &MirrorStatus, mounted: bool) -> MirrorStatusJs {
    MirrorStatusJs {
        dir: s.dir.to_string_lossy().into_owned(),
        ack_level: s.ack_level.map(ack_level_name),
        fail_mode: fail_mode_name(s.fail_mode),
        link: MirrorLinkStatusJs {
            connected: s.link.connected,
            lost_reason: s.link.lost_reason.clone(),
            sent_seq: s.link.sent_seq as i64,
            acked_seq: s.link.acked_seq as i64,
            bytes_sent: s.link.bytes_sent as i64,
            alone_ops: s.link.alone_ops as i64,
        },
        mounted,
    }
}

struct PeerTarget {
    host: String,
    port: u16,
    key: Vec<u8>,
    ack_level: AckLevel,
    ack_timeout_ms: u64,
    connect_timeout_ms: u64,
}

pub struct MountTask {
    dir: PathBuf,
    peer: Option<PeerTarget>,
    fail_mode: FailMode,
    threads: usize,
    dirty: Arc<DirtyPaths>,
    hub: Arc<EventHub>,
    /// The MirrorError code of a failed compute, for reject() on the JS thread.
    code: &'static str,
}

impl MountTask {
    fn mount(&mut self) -> std::result::Result<Mirror, (&'static str, String)> {
        let peer = match &self.peer {
            None => None,
            Some(p) => {
                let addr = (p.host.as_str(), p.port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        (
                            "CROFT_ERR_MIRROR_PEER_UNREACHABLE",
                            format!("cannot resolve the mirror peer's host {:?}", p.host),
                        )
                    })?;
                let mut c = PeerConfig::new(addr, p.key.clone());
                c.ack_level = p.ack_level;
                c.ack_timeout_ms = p.ack_timeout_ms;
                c.connect_timeout_ms = p.connect_timeout_ms;
                Some(c)
            }
        };
        let mut config = MirrorConfig::new(self.dir.clone(), peer);
        config.fail_mode = self.fail_mode;
        config.threads = self.threads;
        let hub = Arc::clone(&self.hub);
        let sink: EventSink = Arc::new(move |ev: &MirrorEvent| hub.emit(ev));
        Mirror::mount(config, self.dirty.clone(), Some(sink)).map_err(|e: MirrorError| (e.code(), e.to_string()))
    }
}

impl Task for MountTask {
    type Output = Mirror;
    type JsValue = MirrorMount;

    // libuv pool: connects, authenticates and mounts (each may wait for the network or FUSE).
    fn compute(&mut self) -> Result<Mirror> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.mount())) {
            Ok(Ok(m)) => Ok(m),
            Ok(Err((code, msg))) => {
                self.code = code;
                Err(Error::new(Status::GenericFailure, msg))
            }
            Err(_) => Err(panicked("mounting the mirror")),
        }
    }

    fn resolve(&mut self, _env: Env, mirror: Mirror) -> Result<MirrorMount> {
        let slot = Arc::new(Mutex::new(Some(mirror)));
        register_live(&slot);
        Ok(MirrorMount {
            slot,
            dir: self.dir.to_string_lossy().into_owned(),
            dirty: Arc::clone(&self.dirty),
            hub: Arc::clone(&self.hub),
            last_status: Mutex::new(None),
        })
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<MirrorMount> {
        if self.code.is_empty() {
            return Err(err);
        }
        Err(coded_error(&env, self.code, err.reason.clone()))
    }
}

pub struct UnmountTask {
    mirror: Option<Mirror>,
    code: &'static str,
}

impl Task for UnmountTask {
    type Output = ();
    type JsValue = ();

    // libuv pool: umount2 retries while busy, then joins the FUSE session.
    fn compute(&mut self) -> Result<()> {
        let Some(mirror) = self.mirror.take() else { return Ok(()) };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || mirror.unmount())) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.code = e.code();
                Err(Error::new(Status::GenericFailure, e.to_string()))
            }
            Err(_) => Err(panicked("unmounting the mirror")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<()> {
        if self.code.is_empty() {
            return Err(err);
        }
        Err(coded_error(&env, self.code, err.reason.clone()))
    }
}

/// The mirror mounted over a directory: FUSE passthrough plus synchronous replication to the peer.
#[napi]
pub struct MirrorMount {
    slot: Arc<Slot>,
    dir: String,
    /// In-memory record of what changed while the peer could not ack (not crash-safe).
    dirty: Arc<DirtyPaths>,
    hub: Arc<EventHub>,
    /// Status when unmount() was called, answered afterwards.
    last_status: Mutex<Option<MirrorStatus>>,
}

#[napi]
impl MirrorMount {
    /// Opens `dir`, connects to the peer (if any) and mounts the mirror over `dir`, off the JS
    /// thread. Rejects with code CROFT_ERR_MIRROR_* (nothing stays mounted then).
    #[napi(catch_unwind, ts_return_type = "Promise<MirrorMount>")]
    pub fn mount(opts: MirrorMountOptions) -> Result<AsyncTask<MountTask>> {
        let fail_mode = parse_fail_mode(opts.fail_mode.as_deref().unwrap_or("alone"))?;
        let threads = opts.threads.unwrap_or(THREADS_DEFAULT as u32);
        if threads == 0 || threads > THREADS_MAX {
            return Err(invalid(format!("threads must be 1..{THREADS_MAX}, got {threads}")));
        }
        let peer = match opts.peer {
            None => None,
            Some(p) => Some(PeerTarget {
                host: p.host,
                port: port_u16(p.port)?,
                key: p.key.to_vec(),
                ack_level: match p.ack_level.as_str() {
                    "received" => AckLevel::Received,
                    "durable" => AckLevel::Durable,
                    other => return Err(invalid(format!("ackLevel must be 'received' or 'durable', got {other:?}"))),
                },
                ack_timeout_ms: p.ack_timeout_ms.unwrap_or(2000).max(1) as u64,
                connect_timeout_ms: p.connect_timeout_ms.unwrap_or(2000).max(1) as u64,
            }),
        };
        Ok(AsyncTask::new(MountTask {
            dir: PathBuf::from(opts.dir),
            peer,
            fail_mode,
            threads: threads as usize,
            dirty: Arc::new(DirtyPaths::new()),
            hub: Arc::new(EventHub::default()),
            code: "",
        }))
    }

    #[napi(getter)]
    pub fn dir(&self) -> String {
        self.dir.clone()
    }

    /// State and counters; after unmount() the last ones, with `mounted: false`.
    #[napi(catch_unwind)]
    pub fn status(&self) -> Result<MirrorStatusJs> {
        if let Some(m) = lock(&self.slot).as_ref() {
            return Ok(status_js(&m.status(), true));
        }
        match lock(&self.last_status).as_ref() {
            Some(s) => Ok(status_js(s, false)),
            None => Err(Error::new(Status::GenericFailure, format!("the mirror over {} is gone", self.dir))),
        }
    }

    /// Paths (relative to the directory) changed while the peer could not acknowledge them.
    #[napi(catch_unwind)]
    pub fn dirty_paths(&self) -> Vec<String> {
        self.dirty.paths().iter().map(|p| p.to_string_lossy().into_owned()).collect()
    }

    /// "alone" releases every call blocked on a lost peer (each records its change as dirty).
    #[napi(catch_unwind)]
    pub fn set_fail_mode(&self, mode: String) -> Result<()> {
        let mode = parse_fail_mode(&mode)?;
        self.with_mirror(|m| m.set_fail_mode(mode))
    }

    /// Declares the peer lost now (membership saw it die before the ack timeout).
    #[napi(catch_unwind)]
    pub fn drop_peer(&self, reason: String) -> Result<()> {
        self.with_mirror(|m| m.drop_peer(&reason))
    }

    /// Registers the event callback (replacing any previous one), called on the JS thread with
    /// `{ kind: 'peerLost', reason }`. Events from before the registration are delivered too.
    #[napi(catch_unwind, ts_args_type = "callback: (event: MirrorEventJs) => void")]
    pub fn on_event(&self, callback: EventCallback) {
        self.hub.set(Some(callback));
    }

    /// Unmounts off the JS thread and closes the stream; idempotent. A busy mount is detached
    /// lazily and the promise rejects with CROFT_ERR_MIRROR_UNMOUNT.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn unmount(&self) -> AsyncTask<UnmountTask> {
        let mirror = lock(&self.slot).take();
        if let Some(m) = &mirror {
            *lock(&self.last_status) = Some(m.status());
        }
        self.hub.set(None);
        AsyncTask::new(UnmountTask { mirror, code: "" })
    }

    fn with_mirror(&self, f: impl FnOnce(&Mirror)) -> Result<()> {
        match lock(&self.slot).as_ref() {
            Some(m) => {
                f(m);
                Ok(())
            }
            None => Err(Error::new(Status::GenericFailure, format!("the mirror over {} is unmounted", self.dir))),
        }
    }
}

impl Drop for MirrorMount {
    // Collected without unmount(): Mirror's Drop releases blocked callers and detaches lazily
    // (it never waits for the FUSE session).
    fn drop(&mut self) {
        drop(lock(&self.slot).take());
        self.hub.set(None);
    }
}

pub struct LazyUnmountTask {
    dir: PathBuf,
}

impl Task for LazyUnmountTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        std::panic::catch_unwind(|| lazy_unmount(&self.dir)).map_err(|_| panicked("lazy unmount"))
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// `fusermount3 -u -z <dir>`: detaches a FUSE mount even when busy or when its server died
/// (SIGKILL leaves ENOTCONN). Quiet when nothing is mounted there.
#[napi(catch_unwind, ts_return_type = "Promise<void>")]
pub fn mirror_lazy_unmount(dir: String) -> AsyncTask<LazyUnmountTask> {
    AsyncTask::new(LazyUnmountTask { dir: PathBuf::from(dir) })
}

// ---------------------------------------------------------------------------------------------
// MirrorReplica

#[napi(object)]
pub struct MirrorReplicaOptions {
    pub dir: String,
    /// Listening IP address ("0.0.0.0", "127.0.0.1", "::"...).
    pub host: String,
    /// 0: any free port (see the `port` getter).
    pub port: u32,
    pub key: Buffer,
}

#[napi(object)]
pub struct MirrorReplicaStatusJs {
    pub sessions: i64,
    pub refused: i64,
    pub applied_ops: i64,
    pub acked_seq: i64,
    pub connected: bool,
    pub last_error: Option<String>,
}

fn replica_status_js(s: &ReplicaStatus) -> MirrorReplicaStatusJs {
    MirrorReplicaStatusJs {
        sessions: s.sessions as i64,
        refused: s.refused as i64,
        applied_ops: s.applied_ops as i64,
        acked_seq: s.acked_seq as i64,
        connected: s.connected,
        last_error: s.last_error.clone(),
    }
}

/// The peer's side: applies the primary's changes in place to `dir` (no mount) and acks them.
#[napi]
pub struct MirrorReplica {
    inner: Mutex<Option<Replica>>,
    port: u16,
    stopped_status: Mutex<Option<ReplicaStatus>>,
}

#[napi]
impl MirrorReplica {
    /// Opens `dir` and listens (both immediate); sessions run on Rust threads. Throws
    /// CROFT_ERR_MIRROR_REPLICA when the directory cannot be opened or the address bound.
    #[napi(factory, catch_unwind)]
    pub fn start(env: Env, opts: MirrorReplicaOptions) -> Result<MirrorReplica> {
        let ip: IpAddr = opts
            .host
            .parse()
            .map_err(|_| invalid(format!("host must be an IP address to listen on, got {:?}", opts.host)))?;
        let listen = SocketAddr::new(ip, port_u16(opts.port)?);
        let config = ReplicaConfig { dir: PathBuf::from(&opts.dir), listen, key: opts.key.to_vec() };
        match Replica::start(config) {
            Ok(r) => Ok(MirrorReplica {
                port: r.local_addr().port(),
                inner: Mutex::new(Some(r)),
                stopped_status: Mutex::new(None),
            }),
            Err(e) => Err(coded_error(
                &env,
                "CROFT_ERR_MIRROR_REPLICA",
                format!("cannot start the mirror replica over {} on {listen}: {e}", opts.dir),
            )),
        }
    }

    /// The bound port (the real one when started with port 0).
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port as u32
    }

    /// Counters; after stop() the final ones.
    #[napi(catch_unwind)]
    pub fn status(&self) -> MirrorReplicaStatusJs {
        if let Some(r) = lock(&self.inner).as_ref() {
            return replica_status_js(&r.status());
        }
        replica_status_js(&lock(&self.stopped_status).clone().unwrap_or_default())
    }

    /// Stops listening and closes the sessions (the primary sees the peer lost); idempotent.
    /// Bounded: it shuts the sockets down and joins threads that then return.
    #[napi(catch_unwind)]
    pub fn stop(&self) {
        let taken = lock(&self.inner).take();
        if let Some(r) = taken {
            let mut last = r.status();
            r.stop();
            last.connected = false;
            *lock(&self.stopped_status) = Some(last);
        }
    }
}
