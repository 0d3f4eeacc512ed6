//! `MirrorMount`: mounting, status, the dirty view of a mount, unmounting.

use super::{THREADS_MAX, coded_error, invalid, lock, panicked, parse_fail_mode, parse_sync_mode, fail_mode_name, sync_mode_name, ack_level_name, MirrorPeerOptions, PeerTarget};
use super::dirty::{ClearDirtyTask, DIRTY_LOG_CODE, Dirty, DirtyBytesTask, MirrorDirtyEntryJs, MirrorDirtyLogStatusJs, OpenDirtyLogTask, dirty_log_status_js, entry_js, zone_bytes_arg};
use super::events::{EventCallback, EventHub};
use croft_mirror::{detach_at_exit, MountSlot as Slot};
use super::reint::{MirrorReintegrateOptionsJs, MirrorReintegrationStatusJs, ReintegrateTask, VerifyTask, reint_js};
use croft_mirror::{
    DirtyPaths, EventSink, LockedLog, FailMode, Mirror, MirrorConfig, SyncMode,
    MirrorError, MirrorEvent, MirrorHandle, MirrorStatus, ReintegrateOptions, ReintegrationStatus, FREEZE_BELOW_BYTES_DEFAULT, THREADS_DEFAULT,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};


#[napi(object)]
pub struct MirrorMountOptions {
    pub dir: String,
    pub peer: Option<MirrorPeerOptions>,
    /// "block" or "alone" (default "alone").
    pub fail_mode: Option<String>,
    /// "every-change" (default) or "on-sync": when the application's calls wait for the peer.
    pub mode: Option<String>,
    pub threads: Option<u32>,
    /// The durable dirty log instead of the in-memory path set.
    pub dirty_log: Option<MirrorDirtyLogOptions>,
    /// Paths relative to `dir` that stay local (not replicated, verified nor reintegrated).
    pub exclude: Option<Vec<String>>,
    /// Extended attributes through the mount (default true; croft_mirror::MirrorConfig::xattrs).
    pub xattrs: Option<bool>,
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
    /// Live changes the peer acknowledged (every stream).
    pub acked_ops: f64,
    /// Ack latency histogram: cumulative counts per bound of `ackLatencyBoundsUs`, then +Inf.
    pub ack_latency_buckets: Vec<f64>,
    pub ack_latency_bounds_us: Vec<f64>,
    pub ack_latency_sum_us: f64,
}

#[napi(object)]
pub struct MirrorStatusJs {
    pub dir: String,
    /// "received" | "durable", absent when mounted without a peer.
    pub ack_level: Option<String>,
    /// "every-change" | "on-sync".
    pub mode: String,
    /// "block" | "alone" | "fence".
    pub fail_mode: String,
    pub link: MirrorLinkStatusJs,
    pub mounted: bool,
}

pub(super) fn status_js(s: &MirrorStatus, mounted: bool) -> MirrorStatusJs {
    MirrorStatusJs {
        dir: s.dir.to_string_lossy().into_owned(),
        ack_level: s.ack_level.map(ack_level_name),
        mode: sync_mode_name(s.mode),
        fail_mode: fail_mode_name(s.fail_mode),
        link: MirrorLinkStatusJs {
            connected: s.link.connected,
            lost_reason: s.link.lost_reason.clone(),
            sent_seq: s.link.sent_seq as i64,
            acked_seq: s.link.acked_seq as i64,
            bytes_sent: s.link.bytes_sent as i64,
            alone_ops: s.link.alone_ops as i64,
            tampered: s.link.tampered as i64,
            acked_ops: s.link.acked_ops as f64,
            ack_latency_buckets: s.link.ack_latency.cumulative.iter().map(|&c| c as f64).collect(),
            ack_latency_bounds_us: croft_mirror::ACK_LATENCY_BOUNDS_US.iter().map(|&b| b as f64).collect(),
            ack_latency_sum_us: s.link.ack_latency.sum_us as f64,
        },
        mounted,
    }
}

pub struct MountTask {
    pub(super) dir: PathBuf,
    pub(super) peer: Option<PeerTarget>,
    pub(super) fail_mode: FailMode,
    pub(super) mode: SyncMode,
    pub(super) threads: usize,
    pub(super) exclude: croft_mirror::Exclude,
    pub(super) xattrs: bool,
    /// Where to open the dirty log (`None`: in-memory paths).
    pub(super) dirty_log: Option<(PathBuf, u64)>,
    /// The tracker, made by compute.
    pub(super) dirty: Option<Dirty>,
    pub(super) hub: Arc<EventHub>,
    /// The MirrorError code of a failed compute, for reject() on the JS thread.
    pub(super) code: &'static str,
}

impl MountTask {
    pub(super) fn mount(&mut self) -> std::result::Result<Mirror, (&'static str, String)> {
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
        config.mode = self.mode;
        config.threads = self.threads;
        config.exclude = self.exclude.clone();
        config.xattrs = self.xattrs;
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
        detach_at_exit(&slot);
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
    pub(super) mirror: Option<Mirror>,
    /// Dropped after the mirror (its last mark done), releasing the log's lock.
    pub(super) log: Option<Dirty>,
    pub(super) code: &'static str,
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
        let mode = parse_sync_mode(opts.mode.as_deref().unwrap_or("every-change"))?;
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
            mode,
            threads: threads as usize,
            exclude: croft_mirror::Exclude::new(opts.exclude.unwrap_or_default().into_iter().map(PathBuf::from).collect()).map_err(invalid)?,
            xattrs: opts.xattrs.unwrap_or(true),
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

    /// Forgets every entry durably and trusts the log from now on, off the JS thread, if the
    /// peer holds all of it (connected, every change sent acknowledged); otherwise keeps the log
    /// (a reintegration clears it when it goes live, the mount's clearer while mirrored).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn clear_dirty(&self) -> Result<AsyncTask<ClearDirtyTask>> {
        Ok(AsyncTask::new(ClearDirtyTask { log: Arc::clone(self.dirty()?.log()?), mirror: Some(self.handle()?) }))
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
        let max_bytes_per_s = match opts.max_bytes_per_s {
            None => None,
            Some(b) if b.is_finite() && b >= 1.0 => Some(b as u64),
            Some(b) => return Err(invalid(format!("maxBytesPerS must be a positive number, got {b}"))),
        };
        let peer = PeerTarget::parse(opts.peer)?;
        let handle = self.handle()?;
        let o = ReintegrateOptions { full: opts.full, freeze_below_bytes: freeze, max_bytes_per_s, ..Default::default() };
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
