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
//!
//! Dirty tracking: in memory (`DirtyPaths`, paths only) unless the mount is given a dirty log
//! directory, then the durable zone log, opened as `croft_mirror::LockedLog`: its directory is
//! held under an exclusive flock(2) on `<dir>/dirty.lock` for as long as its log is open (by a
//! mount or by `MirrorMount.openDirtyLog`), so the log has a single writer, and a second opener
//! (this process or another) fails with CROFT_ERR_MIRROR_DIRTY_LOG instead of corrupting it.

use croft_mirror::{
    lazy_unmount, AckLevel, DirtyEntry, DirtyLog, DirtyPaths, DirtyTracker, EventSink, LockedLog, FailMode, Mirror, MirrorConfig,
    MirrorError, MirrorEvent, MirrorHandle, MirrorStatus, PeerConfig, ReintegrateOptions, ReintegrationStatus, Replica,
    ReplicaConfig, ReplicaStatus, VerifyReport, FREEZE_BELOW_BYTES_DEFAULT, THREADS_DEFAULT, TO_END,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::JsError;
use napi_derive::napi;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
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
        "fence" => Ok(FailMode::Fence),
        _ => Err(invalid(format!("failMode must be 'block', 'alone' or 'fence', got {mode:?}"))),
    }
}

fn fail_mode_name(mode: FailMode) -> String {
    match mode {
        FailMode::Block => "block".into(),
        FailMode::Alone => "alone".into(),
        FailMode::Fence => "fence".into(),
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
// Dirty tracking

const DIRTY_LOG_CODE: &str = "CROFT_ERR_MIRROR_DIRTY_LOG";

#[derive(Clone)]
enum Dirty {
    Paths(Arc<DirtyPaths>),
    Log(Arc<LockedLog>),
}

impl Dirty {
    fn tracker(&self) -> Arc<dyn DirtyTracker> {
        match self {
            Dirty::Paths(p) => p.clone(),
            Dirty::Log(l) => l.clone(),
        }
    }

    fn paths(&self) -> Vec<String> {
        match self {
            Dirty::Paths(p) => p.paths().iter().map(|p| p.to_string_lossy().into_owned()).collect(),
            Dirty::Log(l) => l.log().entries().iter().map(|e| e.path.to_string_lossy().into_owned()).collect(),
        }
    }

    fn log(&self) -> Result<&Arc<LockedLog>> {
        match self {
            Dirty::Log(l) => Ok(l),
            Dirty::Paths(_) => {
                Err(Error::new(Status::GenericFailure, "mounted without a dirty log (option dirtyLog)".to_string()))
            }
        }
    }
}

/// The dirty log's health (issue 8, finding 11): while `failing`, changes it cannot record fail
/// with EIO in the application.
#[napi(object)]
pub struct MirrorDirtyLogStatusJs {
    pub trusted: bool,
    /// A write failure not repaired yet: changes are refused (EIO) until the log can write.
    pub failing: bool,
    /// Writes, fdatasyncs, compactions or clears of the log that failed since it was opened.
    pub write_failures: i64,
    /// Changes refused since it was opened because their record could not be made durable.
    pub marks_refused: i64,
    /// The last failure since it was opened.
    pub last_error: Option<String>,
}

fn dirty_log_status_js(log: &DirtyLog) -> MirrorDirtyLogStatusJs {
    let s = log.stats();
    MirrorDirtyLogStatusJs {
        trusted: log.is_trustworthy(),
        failing: s.failing,
        write_failures: s.write_failures as i64,
        marks_refused: s.marks_refused as i64,
        last_error: log.last_error(),
    }
}

#[napi(object)]
pub struct MirrorDirtyEntryJs {
    /// Relative to the replicated directory ("" for the directory itself).
    pub path: String,
    /// `[start, len]` byte ranges, zone-aligned, sorted; `len == -1`: to the end of the file.
    pub zones: Vec<Vec<i64>>,
    pub entry_changed: bool,
}

fn entry_js(e: &DirtyEntry) -> MirrorDirtyEntryJs {
    MirrorDirtyEntryJs {
        path: e.path.to_string_lossy().into_owned(),
        zones: e
            .zones
            .iter()
            .map(|&(start, len)| vec![start as i64, if len == TO_END { -1 } else { len as i64 }])
            .collect(),
        entry_changed: e.entry_changed,
    }
}

fn zone_bytes_arg(zone_bytes: f64) -> Result<u64> {
    if !(zone_bytes.is_finite() && zone_bytes >= 1.0 && zone_bytes.fract() == 0.0 && zone_bytes <= u32::MAX as f64) {
        return Err(invalid(format!("zoneBytes must be a positive integer, got {zone_bytes}")));
    }
    Ok(zone_bytes as u64)
}

/// `dirty_bytes` off the JS thread: one lstat per dirty path, through the mount.
pub struct DirtyBytesTask {
    log: Arc<LockedLog>,
    dir: PathBuf,
}

impl Task for DirtyBytesTask {
    type Output = f64;
    type JsValue = f64;

    fn compute(&mut self) -> Result<f64> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.log.dirty_bytes_under(&self.dir) as f64))
            .map_err(|_| panicked("computing the dirty bytes"))
    }

    fn resolve(&mut self, _env: Env, output: f64) -> Result<f64> {
        Ok(output)
    }
}

/// `clear()` of a log off the JS thread (it writes and fsyncs a snapshot).
pub struct ClearDirtyTask {
    log: Arc<LockedLog>,
}

impl Task for ClearDirtyTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.log.log().clear())) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::new(
                Status::GenericFailure,
                format!("cannot clear the dirty log in {}: {e}", self.log.log().dir().display()),
            )),
            Err(_) => Err(panicked("clearing the dirty log")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<()> {
        Err(coded_error(&env, DIRTY_LOG_CODE, err.reason.clone()))
    }
}

pub struct OpenDirtyLogTask {
    dir: PathBuf,
    zone_bytes: u64,
    opened: Option<LockedLog>,
}

impl Task for OpenDirtyLogTask {
    type Output = ();
    type JsValue = MirrorDirtyLog;

    fn compute(&mut self) -> Result<()> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| LockedLog::open(&self.dir, self.zone_bytes).map_err(|e| e.to_string()))) {
            Ok(Ok(l)) => {
                self.opened = Some(l);
                Ok(())
            }
            Ok(Err(msg)) => Err(Error::new(Status::GenericFailure, msg)),
            Err(_) => Err(panicked("opening the dirty log")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<MirrorDirtyLog> {
        let log = self.opened.take().ok_or_else(|| panicked("opening the dirty log"))?;
        Ok(MirrorDirtyLog { log: Mutex::new(Some(Arc::new(log))) })
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<MirrorDirtyLog> {
        Err(coded_error(&env, DIRTY_LOG_CODE, err.reason.clone()))
    }
}

/// A dirty log opened without a mount (after a crash, before reintegration): read it, clear it.
#[napi]
pub struct MirrorDirtyLog {
    /// None once closed (the flock released).
    log: Mutex<Option<Arc<LockedLog>>>,
}

impl MirrorDirtyLog {
    fn get(&self) -> Result<Arc<LockedLog>> {
        lock(&self.log).clone().ok_or_else(|| Error::new(Status::GenericFailure, "the dirty log is closed".to_string()))
    }
}

#[napi]
impl MirrorDirtyLog {
    #[napi(catch_unwind)]
    pub fn dirty_paths(&self) -> Result<Vec<String>> {
        Ok(Dirty::Log(self.get()?).paths())
    }

    #[napi(catch_unwind)]
    pub fn dirty_entries(&self) -> Result<Vec<MirrorDirtyEntryJs>> {
        Ok(self.get()?.log().entries().iter().map(entry_js).collect())
    }

    /// Sizes from lstat of `<data_dir>/<path>`.
    #[napi(catch_unwind)]
    pub fn dirty_bytes(&self, data_dir: String) -> Result<f64> {
        Ok(self.get()?.dirty_bytes_under(Path::new(&data_dir)) as f64)
    }

    #[napi(catch_unwind)]
    pub fn dirty_trusted(&self) -> Result<bool> {
        Ok(self.get()?.log().is_trustworthy())
    }

    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn clear_dirty(&self) -> Result<AsyncTask<ClearDirtyTask>> {
        Ok(AsyncTask::new(ClearDirtyTask { log: self.get()? }))
    }

    /// Releases the lock (a pending clearDirty() keeps it until it ends); idempotent.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        lock(&self.log).take();
    }
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
    /// The durable dirty log instead of the in-memory path set.
    pub dirty_log: Option<MirrorDirtyLogOptions>,
}

#[napi(object)]
pub struct MirrorDirtyLogOptions {
    pub dir: String,
    /// A power of two from 64 KiB to 1 MiB.
    pub zone_bytes: f64,
}

#[napi(object)]
pub struct MirrorLinkStatusJs {
    pub connected: bool,
    pub lost_reason: Option<String>,
    pub sent_seq: i64,
    pub acked_seq: i64,
    pub bytes_sent: i64,
    pub alone_ops: i64,
    /// Sessions ended because a record from the peer failed authentication.
    pub tampered: i64,
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
            tampered: s.link.tampered as i64,
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

impl PeerTarget {
    fn parse(p: MirrorPeerOptions) -> Result<PeerTarget> {
        Ok(PeerTarget {
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
        })
    }

    /// Name resolution may block: off the JS thread.
    fn resolve(&self) -> std::result::Result<PeerConfig, (&'static str, String)> {
        let addr = (self.host.as_str(), self.port).to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| {
            ("CROFT_ERR_MIRROR_PEER_UNREACHABLE", format!("cannot resolve the mirror peer's host {:?}", self.host))
        })?;
        let mut c = PeerConfig::new(addr, self.key.clone());
        c.ack_level = self.ack_level;
        c.ack_timeout_ms = self.ack_timeout_ms;
        c.connect_timeout_ms = self.connect_timeout_ms;
        Ok(c)
    }
}

pub struct MountTask {
    dir: PathBuf,
    peer: Option<PeerTarget>,
    fail_mode: FailMode,
    threads: usize,
    /// Where to open the dirty log (`None`: in-memory paths).
    dirty_log: Option<(PathBuf, u64)>,
    /// The tracker, made by compute.
    dirty: Option<Dirty>,
    hub: Arc<EventHub>,
    /// The MirrorError code of a failed compute, for reject() on the JS thread.
    code: &'static str,
}

impl MountTask {
    fn mount(&mut self) -> std::result::Result<Mirror, (&'static str, String)> {
        let dirty = match &self.dirty_log {
            None => Dirty::Paths(Arc::new(DirtyPaths::new())),
            Some((dir, zone_bytes)) => {
                Dirty::Log(Arc::new(LockedLog::open(dir, *zone_bytes).map_err(|e| e.to_string()).map_err(|m| (DIRTY_LOG_CODE, m))?))
            }
        };
        self.dirty = Some(dirty.clone());
        let peer = match &self.peer {
            None => None,
            Some(p) => Some(p.resolve()?),
        };
        let mut config = MirrorConfig::new(self.dir.clone(), peer);
        config.fail_mode = self.fail_mode;
        config.threads = self.threads;
        let hub = Arc::clone(&self.hub);
        let sink: EventSink = Arc::new(move |ev: &MirrorEvent| hub.emit(ev));
        Mirror::mount(config, dirty.tracker(), Some(sink)).map_err(|e: MirrorError| (e.code(), e.to_string()))
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
            dirty: Mutex::new(Some(self.dirty.take().ok_or_else(|| panicked("mounting the mirror"))?)),
            hub: Arc::clone(&self.hub),
            last_status: Mutex::new(None),
            last_reintegration: Mutex::new(None),
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
    /// Dropped after the mirror (its last mark done), releasing the log's lock.
    log: Option<Dirty>,
    code: &'static str,
}

impl Task for UnmountTask {
    type Output = ();
    type JsValue = ();

    // libuv pool: umount2 retries while busy, then joins the FUSE session.
    fn compute(&mut self) -> Result<()> {
        let log = self.log.take();
        let Some(mirror) = self.mirror.take() else { return Ok(()) };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || mirror.unmount()));
        drop(log);
        match r {
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
    /// What changed while the peer could not ack: in memory (not crash-safe, kept after unmount)
    /// or the durable log (released by unmount, so that it can be reopened: None then).
    dirty: Mutex<Option<Dirty>>,
    hub: Arc<EventHub>,
    /// Status when unmount() was called, answered afterwards.
    last_status: Mutex<Option<MirrorStatus>>,
    last_reintegration: Mutex<Option<ReintegrationStatus>>,
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
            Some(p) => Some(PeerTarget::parse(p)?),
        };
        Ok(AsyncTask::new(MountTask {
            dir: PathBuf::from(opts.dir),
            peer,
            fail_mode,
            threads: threads as usize,
            dirty_log: match opts.dirty_log {
                None => None,
                Some(d) => Some((PathBuf::from(d.dir), zone_bytes_arg(d.zone_bytes)?)),
            },
            dirty: None,
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
    pub fn dirty_paths(&self) -> Result<Vec<String>> {
        Ok(self.dirty()?.paths())
    }

    /// The dirty log's entries, sorted by path (mounted with a dirty log only).
    #[napi(catch_unwind)]
    pub fn dirty_entries(&self) -> Result<Vec<MirrorDirtyEntryJs>> {
        Ok(self.dirty()?.log()?.log().entries().iter().map(entry_js).collect())
    }

    /// Bytes still to copy, with sizes from lstat of `<dir>/<path>` (through the mount while
    /// mounted, the plain directory after unmount).
    #[napi(catch_unwind)]
    pub fn dirty_bytes(&self) -> Result<f64> {
        Ok(self.dirty()?.log()?.dirty_bytes_under(Path::new(&self.dir)) as f64)
    }

    /// The same off the JS thread (a large dirty set means many lstat calls).
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn dirty_bytes_async(&self) -> Result<AsyncTask<DirtyBytesTask>> {
        Ok(AsyncTask::new(DirtyBytesTask { log: Arc::clone(self.dirty()?.log()?), dir: PathBuf::from(&self.dir) }))
    }

    #[napi(catch_unwind)]
    pub fn dirty_trusted(&self) -> Result<bool> {
        Ok(self.dirty()?.log()?.log().is_trustworthy())
    }

    /// The dirty log's health and failure counters; null when mounted without a dirty log or
    /// after unmount() (the log is closed then).
    #[napi(catch_unwind)]
    pub fn dirty_log_status(&self) -> Option<MirrorDirtyLogStatusJs> {
        match lock(&self.dirty).as_ref() {
            Some(Dirty::Log(l)) => Some(dirty_log_status_js(l.log())),
            _ => None,
        }
    }

    /// Forgets every entry durably and trusts the log from now on, off the JS thread.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn clear_dirty(&self) -> Result<AsyncTask<ClearDirtyTask>> {
        Ok(AsyncTask::new(ClearDirtyTask { log: Arc::clone(self.dirty()?.log()?) }))
    }

    /// Opens (creating it if needed) the dirty log in `dir` without mounting, off the JS thread.
    #[napi(catch_unwind, ts_return_type = "Promise<MirrorDirtyLog>")]
    pub fn open_dirty_log(dir: String, zone_bytes: f64) -> Result<AsyncTask<OpenDirtyLogTask>> {
        Ok(AsyncTask::new(OpenDirtyLogTask {
            dir: PathBuf::from(dir),
            zone_bytes: zone_bytes_arg(zone_bytes)?,
            opened: None,
        }))
    }

    /// Brings the peer up to date while the application writes, then mirrors synchronously
    /// again; off the JS thread. Rejects with CROFT_ERR_MIRROR_REINTEGRATION (the mount stays
    /// alone, its dirty log intact).
    #[napi(catch_unwind, ts_return_type = "Promise<MirrorReintegrationStatusJs>")]
    pub fn reintegrate(&self, opts: MirrorReintegrateOptionsJs) -> Result<AsyncTask<ReintegrateTask>> {
        let freeze = match opts.freeze_below_bytes {
            None => FREEZE_BELOW_BYTES_DEFAULT,
            Some(b) if b.is_finite() && b >= 0.0 => b as u64,
            Some(b) => return Err(invalid(format!("freezeBelowBytes must be a non-negative number, got {b}"))),
        };
        let peer = PeerTarget::parse(opts.peer)?;
        let handle = self.handle()?;
        let o = ReintegrateOptions { full: opts.full, freeze_below_bytes: freeze, ..Default::default() };
        Ok(AsyncTask::new(ReintegrateTask { handle, peer, opts: o, out: None }))
    }

    /// Progress of the current (or last) reintegration; cheap.
    #[napi(catch_unwind)]
    pub fn reintegration_status(&self) -> MirrorReintegrationStatusJs {
        let st = match lock(&self.slot).as_ref() {
            Some(m) => m.reintegration_status(),
            None => lock(&self.last_reintegration).clone().unwrap_or_default(),
        };
        reint_js(&st)
    }

    /// Stops a running reintegration (it rejects; the mount stays alone); no-op otherwise.
    #[napi(catch_unwind)]
    pub fn abort_reintegration(&self, reason: String) -> Result<()> {
        self.with_mirror(|m| m.abort_reintegration(&reason))
    }

    /// Compares both trees over a query-only session, off the JS thread. Rejects with
    /// CROFT_ERR_MIRROR_VERIFY (not mirrored, peer unreachable).
    #[napi(catch_unwind, ts_return_type = "Promise<MirrorVerifyReportJs>")]
    pub fn verify(&self, peer: MirrorPeerOptions) -> Result<AsyncTask<VerifyTask>> {
        Ok(AsyncTask::new(VerifyTask { handle: self.handle()?, peer: PeerTarget::parse(peer)?, out: None }))
    }

    fn handle(&self) -> Result<MirrorHandle> {
        match lock(&self.slot).as_ref() {
            Some(m) => Ok(m.handle()),
            None => Err(Error::new(Status::GenericFailure, format!("the mirror over {} is unmounted", self.dir))),
        }
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
    /// lazily and the promise rejects with CROFT_ERR_MIRROR_UNMOUNT. A dirty log is closed once
    /// the mirror is gone (its lock released: `openDirtyLog` can then read it).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn unmount(&self) -> AsyncTask<UnmountTask> {
        let mirror = lock(&self.slot).take();
        if let Some(m) = &mirror {
            *lock(&self.last_status) = Some(m.status());
            *lock(&self.last_reintegration) = Some(m.reintegration_status());
            m.abort_reintegration("unmounting");
        }
        self.hub.set(None);
        let mut dirty = lock(&self.dirty);
        let log = match dirty.as_ref() {
            Some(Dirty::Log(_)) => dirty.take(),
            _ => None,
        };
        AsyncTask::new(UnmountTask { mirror, log, code: "" })
    }

    fn dirty(&self) -> Result<Dirty> {
        lock(&self.dirty).clone().ok_or_else(|| {
            Error::new(
                Status::GenericFailure,
                format!(
                    "the dirty log of the mirror over {} was closed by unmount(): reopen it with openDirtyLog()",
                    self.dir
                ),
            )
        })
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

/// What `mirrorQuarantineCopy` did.
#[napi(object)]
pub struct MirrorQuarantineResultJs {
    /// Files and symlinks copied.
    pub copied: u32,
    /// "<path>: <error>" for each path that could not be copied (the others were).
    pub failed: Vec<String>,
}

pub struct QuarantineTask {
    dir: PathBuf,
    paths: Vec<String>,
    dest: PathBuf,
}

impl Task for QuarantineTask {
    type Output = MirrorQuarantineResultJs;
    type JsValue = MirrorQuarantineResultJs;

    fn compute(&mut self) -> Result<MirrorQuarantineResultJs> {
        let run = || -> std::result::Result<MirrorQuarantineResultJs, String> {
            let held = croft_mirror::HeldDir::open(&self.dir)
                .map_err(|e| format!("cannot open {} for the quarantine: {e}", self.dir.display()))?;
            let mut out = MirrorQuarantineResultJs { copied: 0, failed: Vec::new() };
            for p in &self.paths {
                match croft_mirror::sync::quarantine_entry(&held, Path::new(p), &self.dest) {
                    Ok(true) => out.copied += 1,
                    Ok(false) => {}
                    Err(e) => out.failed.push(format!("{p}: {e}")),
                }
            }
            Ok(out)
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(Error::new(Status::GenericFailure, msg)),
            Err(_) => Err(panicked("copying to the quarantine")),
        }
    }

    fn resolve(&mut self, _env: Env, output: MirrorQuarantineResultJs) -> Result<MirrorQuarantineResultJs> {
        Ok(output)
    }
}

/// Copies the files and symlinks at `paths` (relative to `dir`, not mounted) into
/// `<dest>/<path>`, off the JS thread: never through a symlink in `dir` (openat2 beneath it),
/// directories created 0700, file modes kept without set-id bits (issue 8).
#[napi(catch_unwind, ts_return_type = "Promise<MirrorQuarantineResultJs>")]
pub fn mirror_quarantine_copy(dir: String, paths: Vec<String>, dest: String) -> AsyncTask<QuarantineTask> {
    AsyncTask::new(QuarantineTask { dir: PathBuf::from(dir), paths, dest: PathBuf::from(dest) })
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
    /// This node's own dirty log (it was primary before): a reintegration into this replica
    /// copies its entries too and clears it when done.
    pub dirty_log: Option<MirrorDirtyLogOptions>,
    /// The IP addresses the primary may connect from (the peer node's addresses); a connection
    /// from any other is closed at once and counted. Absent or empty: any.
    pub allowed_peers: Option<Vec<String>>,
}

#[napi(object)]
pub struct MirrorReplicaStatusJs {
    pub sessions: i64,
    pub refused: i64,
    pub applied_ops: i64,
    pub acked_seq: i64,
    pub connected: bool,
    pub last_error: Option<String>,
    pub reintegrations: i64,
    pub bytes_received: i64,
    /// Sessions ended because a record failed authentication (tampered, forged, replayed).
    pub tampered: i64,
    /// Connections closed at once: not from the peer's addresses.
    pub rejected_peers: i64,
    /// Connections closed at once: the session cap was reached.
    pub rejected_busy: i64,
    /// Failed accepts (each followed by a back-off).
    pub accept_errors: i64,
    /// Applying sessions shut down because a newer one of the primary took over.
    pub superseded: i64,
    /// Connections being served now.
    pub active_sessions: i64,
}

fn replica_status_js(s: &ReplicaStatus) -> MirrorReplicaStatusJs {
    MirrorReplicaStatusJs {
        sessions: s.sessions as i64,
        refused: s.refused as i64,
        applied_ops: s.applied_ops as i64,
        acked_seq: s.acked_seq as i64,
        connected: s.connected,
        last_error: s.last_error.clone(),
        reintegrations: s.reintegrations as i64,
        bytes_received: s.bytes_received as i64,
        tampered: s.tampered as i64,
        rejected_peers: s.rejected_peers as i64,
        rejected_busy: s.rejected_busy as i64,
        accept_errors: s.accept_errors as i64,
        superseded: s.superseded as i64,
        active_sessions: s.active_sessions as i64,
    }
}

/// The peer's side: applies the primary's changes in place to `dir` (no mount) and acks them.
#[napi]
pub struct MirrorReplica {
    inner: Mutex<Option<Replica>>,
    /// Holds the log's flock while the replica runs.
    log: Mutex<Option<LockedLog>>,
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
        let log = match &opts.dirty_log {
            None => None,
            Some(d) => Some(
                LockedLog::open(Path::new(&d.dir), zone_bytes_arg(d.zone_bytes)?).map_err(|e| e.to_string())
                    .map_err(|m| coded_error(&env, DIRTY_LOG_CODE, m))?,
            ),
        };
        let mut allowed_peers = Vec::new();
        for a in opts.allowed_peers.iter().flatten() {
            allowed_peers.push(
                a.parse::<IpAddr>()
                    .map_err(|_| invalid(format!("allowedPeers must hold IP addresses, got {a:?}")))?,
            );
        }
        let mut config = ReplicaConfig::new(PathBuf::from(&opts.dir), listen, opts.key.to_vec());
        config.dirty_log = log.as_ref().map(|l| Arc::clone(l.log()));
        config.allowed_peers = allowed_peers;
        match Replica::start(config) {
            Ok(r) => Ok(MirrorReplica {
                port: r.local_addr().port(),
                inner: Mutex::new(Some(r)),
                log: Mutex::new(log),
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
        lock(&self.log).take();
    }
}

// ---------------------------------------------------------------------------------------------
// Reintegration and verify

const REINTEGRATION_CODE: &str = "CROFT_ERR_MIRROR_REINTEGRATION";
const VERIFY_CODE: &str = "CROFT_ERR_MIRROR_VERIFY";

#[napi(object)]
pub struct MirrorReintegrateOptionsJs {
    pub peer: MirrorPeerOptions,
    pub full: bool,
    pub freeze_below_bytes: Option<f64>,
}

#[napi(object)]
pub struct MirrorReintegrationStatusJs {
    pub running: bool,
    /// "idle" | "scan" | "copy" | "final" | "done" | "failed".
    pub phase: String,
    pub full: bool,
    pub bytes_to_go: f64,
    pub bytes_copied: f64,
    pub bytes_sent: f64,
    pub bytes_skipped: f64,
    pub entries_to_go: f64,
    pub entries_done: f64,
    pub passes: u32,
    pub rate_bytes_per_sec: f64,
    pub started_at_ms: Option<f64>,
    pub finished_at_ms: Option<f64>,
    pub error: Option<String>,
}

fn reint_js(s: &ReintegrationStatus) -> MirrorReintegrationStatusJs {
    MirrorReintegrationStatusJs {
        running: s.running,
        phase: s.phase.name().into(),
        full: s.full,
        bytes_to_go: s.bytes_to_go as f64,
        bytes_copied: s.bytes_copied as f64,
        bytes_sent: s.bytes_sent as f64,
        bytes_skipped: s.bytes_skipped as f64,
        entries_to_go: s.entries_to_go as f64,
        entries_done: s.entries_done as f64,
        passes: s.passes,
        rate_bytes_per_sec: s.rate_bytes_per_sec,
        started_at_ms: s.started_at_ms.map(|v| v as f64),
        finished_at_ms: s.finished_at_ms.map(|v| v as f64),
        error: s.error.clone(),
    }
}

pub struct ReintegrateTask {
    handle: MirrorHandle,
    peer: PeerTarget,
    opts: ReintegrateOptions,
    out: Option<ReintegrationStatus>,
}

impl Task for ReintegrateTask {
    type Output = ();
    type JsValue = MirrorReintegrationStatusJs;

    // libuv pool: connects, copies, freezes, switches (may take long: one pool thread).
    fn compute(&mut self) -> Result<()> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let peer = self.peer.resolve().map_err(|(_, m)| m)?;
            self.handle.reintegrate(peer, self.opts.clone())
        }));
        match r {
            Ok(Ok(st)) => {
                self.out = Some(st);
                Ok(())
            }
            Ok(Err(m)) => Err(Error::new(Status::GenericFailure, format!("reintegration failed: {m}"))),
            Err(_) => Err(panicked("the reintegration")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<MirrorReintegrationStatusJs> {
        Ok(reint_js(self.out.as_ref().ok_or_else(|| panicked("the reintegration"))?))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<MirrorReintegrationStatusJs> {
        Err(coded_error(&env, REINTEGRATION_CODE, err.reason.clone()))
    }
}

#[napi(object)]
pub struct MirrorDifferenceJs {
    pub path: String,
    pub what: String,
}

#[napi(object)]
pub struct MirrorVerifyReportJs {
    pub identical: bool,
    pub entries_compared: f64,
    pub bytes_compared: f64,
    /// The first 1000.
    pub differences: Vec<MirrorDifferenceJs>,
    pub differences_total: f64,
}

fn verify_js(r: &VerifyReport) -> MirrorVerifyReportJs {
    MirrorVerifyReportJs {
        identical: r.identical,
        entries_compared: r.entries_compared as f64,
        bytes_compared: r.bytes_compared as f64,
        differences: r
            .differences
            .iter()
            .map(|(p, w)| MirrorDifferenceJs { path: p.to_string_lossy().into_owned(), what: w.clone() })
            .collect(),
        differences_total: r.differences_total as f64,
    }
}

pub struct VerifyTask {
    handle: MirrorHandle,
    peer: PeerTarget,
    out: Option<VerifyReport>,
}

impl Task for VerifyTask {
    type Output = ();
    type JsValue = MirrorVerifyReportJs;

    fn compute(&mut self) -> Result<()> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let peer = self.peer.resolve().map_err(|(_, m)| m)?;
            self.handle.verify(peer)
        }));
        match r {
            Ok(Ok(rep)) => {
                self.out = Some(rep);
                Ok(())
            }
            Ok(Err(m)) => Err(Error::new(Status::GenericFailure, format!("verify failed: {m}"))),
            Err(_) => Err(panicked("verify")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<MirrorVerifyReportJs> {
        Ok(verify_js(self.out.as_ref().ok_or_else(|| panicked("verify"))?))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<MirrorVerifyReportJs> {
        Err(coded_error(&env, VERIFY_CODE, err.reason.clone()))
    }
}
