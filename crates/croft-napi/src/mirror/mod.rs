//! Binding of crates/croft-mirror: `MirrorMount` (the FUSE mirror on the node running the
//! application), `MirrorReplica` (the peer's side) and `mirrorLazyUnmount`.
//!
//! By concern: [`mount`] (MirrorMount), [`replica`] (MirrorReplica), [`dirty`] (dirty tracking,
//! MirrorDirtyLog), [`events`] (event hub to JS), [`reint`]
//! (reintegration and verify tasks), [`files`] (lazy unmount, quarantine copy); this file holds
//! the shared conversions and the peer options. Conversions only: the policies (the dirty log's
//! lock, dirty bytes, detaching live mounts at exit, the quarantine walk over many paths) live in
//! croft-mirror.
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

mod dirty;
mod events;
mod files;
mod mount;
mod reint;
mod replica;

use croft_mirror::{
    AckLevel, FailMode, PeerConfig, SyncMode, wire::Protocol,
};
use napi::bindgen_prelude::*;
use napi::JsError;
use napi_derive::napi;
use std::net::ToSocketAddrs;
use std::sync::{Mutex, MutexGuard};

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

fn parse_sync_mode(mode: &str) -> Result<SyncMode> {
    match mode {
        "every-change" => Ok(SyncMode::EveryChange),
        "on-sync" => Ok(SyncMode::OnSync),
        _ => Err(invalid(format!("mode must be 'every-change' or 'on-sync', got {mode:?}"))),
    }
}

fn sync_mode_name(mode: SyncMode) -> String {
    match mode {
        SyncMode::EveryChange => "every-change".into(),
        SyncMode::OnSync => "on-sync".into(),
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
    /// The newest protocol version this node speaks (absent: this build's). Lowered only by
    /// croft's tests (CROFT_TEST_PROTOCOL_VERSION, src/protocol.ts).
    pub protocol: Option<u32>,
}

struct PeerTarget {
    host: String,
    port: u16,
    key: Vec<u8>,
    ack_level: AckLevel,
    ack_timeout_ms: u64,
    connect_timeout_ms: u64,
    protocol: Protocol,
}

/// The versions a node speaks from the binding's `protocol` option (absent: this build's).
pub(super) fn protocol_arg(v: Option<u32>) -> Result<Protocol> {
    match v {
        None => Ok(Protocol::default()),
        Some(v) => Protocol::lowered(u16::try_from(v).unwrap_or(u16::MAX)).map_err(invalid),
    }
}

/// This build's mirror protocol versions and the handshakes refused for their version so far.
#[napi(object)]
pub struct MirrorProtocolJs {
    pub current: u32,
    pub min: u32,
    pub version_refusals: i64,
}

#[napi]
pub fn mirror_protocol() -> MirrorProtocolJs {
    let p = Protocol::default();
    MirrorProtocolJs { current: p.current as u32, min: p.min as u32, version_refusals: croft_mirror::wire::version_refusals() as i64 }
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
            protocol: protocol_arg(p.protocol)?,
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
        c.protocol = self.protocol;
        Ok(c)
    }
}
