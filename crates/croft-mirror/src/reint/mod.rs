//! Reintegration (the target catches up while the application keeps writing), full sync and
//! verify, on the primary's side.
//!
//! Reintegration attaches a new authenticated stream to the replicator (which keeps recording
//! the application's changes as dirty meanwhile) and copies, pass after pass, what differs:
//! pass 1 what the dirty logs list (both sides') or, in a full sync, what a walk of both trees
//! finds different; every later pass what changed during the previous one (remembered in memory
//! as well as in the durable log). When little remains, it freezes: holds the order lock (no
//! change can start), waits until no change is between its local application and its mark,
//! copies the rest, waits for the target's ack of everything, tells the target it is done,
//! clears the dirty log and hands the stream to the replicator: from then on every change is
//! mirrored synchronously again. If anything fails the mount stays alone and the durable log
//! still lists everything (it is cleared only at the very end).
//!
//! Reading a zone and sending it happens under the order lock, so on the stream a zone's copy is
//! ordered with the changes around it.
//!
//! The module's parts: [`passes`] (what to copy, pass by pass, and the copy of one entry),
//! [`full_sync`] (the walk of both trees and its queries asked ahead), [`verify`] (the
//! comparison of both trees), [`query`] (a query-only session) and this file
//! (options, status, the pass loop).

mod error;
mod full_sync;
mod pace;
mod passes;
mod query;
mod verify;

pub use error::ReintError;
use full_sync::Ahead;
use passes::{add_entries, plain, work_from_recent, Work};
use crate::link::{self, PeerConfig, Replicator};
use crate::sync;
use crate::sys::HeldDir;
use crate::wire::{HandshakeError, Query, Sealed};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use crate::locks::Locked;

/// Freeze when fewer bytes than this remain (DESIGN: the freeze must be short).
pub const FREEZE_BELOW_BYTES_DEFAULT: u64 = 4 << 20;
/// Passes before freezing whatever remains: a writer faster than the link never converges.
pub const PASSES_MAX_DEFAULT: u32 = 8;
/// Bytes read and sent per write operation (and per order-lock hold).
const CHUNK_BYTES: u64 = 1 << 20;
/// Unacknowledged bytes at most on the reintegration stream before it waits for the target.
const WINDOW_BYTES: u64 = 32 << 20;
/// Zone of the checksums of a full sync without a dirty log.
pub const SUM_ZONE_BYTES_DEFAULT: u64 = 128 << 10;
/// A query may checksum a big file on the target.
const QUERY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the freeze waits for changes still between their application and their mark.
const UNRESOLVED_WAIT: Duration = Duration::from_secs(10);
/// Queries a full sync keeps in flight ahead of its walk at most.
const AHEAD_QUERIES_MAX: usize = 128;
/// File bytes whose checksums the target may be asked ahead at most (one file beyond this is
/// asked ahead only alone).
const AHEAD_SUM_BYTES_MAX: u64 = 64 << 20;
/// Differences a verify report lists at most (all are counted).
pub const VERIFY_DIFFERENCES_MAX: usize = 1000;

#[derive(Debug, Clone)]
pub struct ReintegrateOptions {
    /// Compare whole trees instead of copying what the dirty logs list.
    pub full: bool,
    pub freeze_below_bytes: u64,
    pub passes_max: u32,
    /// Checksum zone of a full sync (default: the dirty log's zone, else 128 KiB).
    pub zone_bytes: Option<u64>,
    /// Cap on the file data copied, in bytes per second (None: as fast as the link goes).
    /// Not applied while frozen: what remains then is below `freeze_below_bytes`.
    pub max_bytes_per_s: Option<u64>,
}

impl Default for ReintegrateOptions {
    fn default() -> Self {
        ReintegrateOptions {
            full: false,
            freeze_below_bytes: FREEZE_BELOW_BYTES_DEFAULT,
            passes_max: PASSES_MAX_DEFAULT,
            zone_bytes: None,
            max_bytes_per_s: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReintegrationPhase {
    Idle,
    /// Connecting, reading the logs.
    Scan,
    /// Pre-copy passes while the application writes.
    Copy,
    /// Frozen: the last changes, the acks, the switch.
    Final,
    Done,
    Failed,
}

impl ReintegrationPhase {
    pub fn name(self) -> &'static str {
        match self {
            ReintegrationPhase::Idle => "idle",
            ReintegrationPhase::Scan => "scan",
            ReintegrationPhase::Copy => "copy",
            ReintegrationPhase::Final => "final",
            ReintegrationPhase::Done => "done",
            ReintegrationPhase::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReintegrationStatus {
    pub running: bool,
    pub phase: ReintegrationPhase,
    pub full: bool,
    /// Estimate of the file bytes still to copy in the current pass.
    pub bytes_to_go: u64,
    /// File data sent (write operations' payload).
    pub bytes_copied: u64,
    /// Everything sent on the reintegration's stream (frames).
    pub bytes_sent: u64,
    pub entries_to_go: u64,
    pub entries_done: u64,
    pub passes: u32,
    pub rate_bytes_per_sec: f64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub error: Option<String>,
    /// Data bytes a full sync compared and found equal (not sent).
    pub bytes_skipped: u64,
}

impl Default for ReintegrationStatus {
    fn default() -> Self {
        ReintegrationStatus {
            running: false,
            phase: ReintegrationPhase::Idle,
            full: false,
            bytes_to_go: 0,
            bytes_copied: 0,
            bytes_sent: 0,
            entries_to_go: 0,
            entries_done: 0,
            passes: 0,
            rate_bytes_per_sec: 0.0,
            started_at_ms: None,
            finished_at_ms: None,
            error: None,
            bytes_skipped: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    pub identical: bool,
    pub entries_compared: u64,
    pub bytes_compared: u64,
    /// The first [`VERIFY_DIFFERENCES_MAX`]: (path, what differs).
    pub differences: Vec<(PathBuf, String)>,
    pub differences_total: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the mirror shares with its reintegration and verify threads.
pub(crate) struct Core {
    pub(crate) dir: Arc<HeldDir>,
    pub(crate) order: Arc<Mutex<()>>,
    pub(crate) repl: Arc<Replicator>,
    status: Mutex<ReintegrationStatus>,
    abort: Mutex<Option<String>>,
    busy: AtomicBool,
}


/// A connection error as the reintegration reports it.
fn connect(peer: &PeerConfig) -> Result<Sealed, ReintError> {
    link::connect(peer).map_err(|e| match e {
        HandshakeError::Io(source) => ReintError::Unreachable { addr: peer.addr.to_string(), source },
        HandshakeError::Refused(reason) | HandshakeError::Version(reason) => ReintError::Refused { addr: peer.addr.to_string(), reason },
        e @ HandshakeError::Downgrade(_) => ReintError::Refused { addr: peer.addr.to_string(), reason: e.to_string() },
    })
}


impl Core {
    pub(crate) fn new(dir: Arc<HeldDir>, order: Arc<Mutex<()>>, repl: Arc<Replicator>) -> Core {
        Core {
            dir,
            order,
            repl,
            status: Mutex::new(ReintegrationStatus::default()),
            abort: Mutex::new(None),
            busy: AtomicBool::new(false),
        }
    }

    pub(crate) fn status(&self) -> ReintegrationStatus {
        let mut s = self.status.locked().clone();
        if s.running {
            s.bytes_sent = self.repl.sent().2.saturating_sub(s.bytes_sent);
        }
        s
    }

    pub(crate) fn abort(&self, reason: &str) {
        if self.busy.load(Ordering::SeqCst) {
            *self.abort.locked() = Some(reason.to_string());
            self.repl.abort_catchup(&format!("aborted: {reason}"));
        }
    }

    fn check_abort(&self) -> Result<(), ReintError> {
        match self.abort.locked().as_ref() {
            Some(r) => Err(ReintError::Aborted(r.clone())),
            None => Ok(()),
        }
    }

    fn update(&self, f: impl FnOnce(&mut ReintegrationStatus)) {
        f(&mut self.status.locked())
    }

    pub(crate) fn reintegrate(&self, peer: &PeerConfig, opts: &ReintegrateOptions) -> Result<ReintegrationStatus, ReintError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(ReintError::Busy);
        }
        *self.abort.locked() = None;
        let base_sent = self.repl.sent().2;
        let started = Instant::now();
        *self.status.locked() = ReintegrationStatus {
            running: true,
            phase: ReintegrationPhase::Scan,
            full: opts.full,
            started_at_ms: Some(now_ms()),
            // Holds the stream's byte count at the start while running (see status()).
            bytes_sent: base_sent,
            ..Default::default()
        };
        let r = self.run(peer, opts, started);
        self.repl.stop_recording();
        let sent_now = self.repl.sent().2;
        let mut st = self.status.locked();
        st.running = false;
        st.bytes_sent = sent_now.saturating_sub(base_sent);
        st.finished_at_ms = Some(now_ms());
        st.rate_bytes_per_sec = st.bytes_copied as f64 / started.elapsed().as_secs_f64().max(1e-3);
        match &r {
            Ok(()) => {
                st.phase = ReintegrationPhase::Done;
                st.bytes_to_go = 0;
                st.entries_to_go = 0;
            }
            Err(e) => {
                st.phase = ReintegrationPhase::Failed;
                st.error = Some(e.to_string());
                drop(st);
                self.repl.abort_catchup(&e.to_string());
                st = self.status.locked();
            }
        }
        let out = st.clone();
        drop(st);
        self.busy.store(false, Ordering::SeqCst);
        r.map(|()| out)
    }

    fn run(&self, peer: &PeerConfig, opts: &ReintegrateOptions, started: Instant) -> Result<(), ReintError> {
        let log = self.repl.dirty_log();
        if !opts.full && log.is_none() {
            return Err(ReintError::NoDirtyLog);
        }
        let zone = opts.zone_bytes.or(log.map(|l| l.zone_bytes())).unwrap_or(SUM_ZONE_BYTES_DEFAULT);
        let stream = connect(peer)?;
        // Recording starts before the stream can carry anything: no change escapes both the
        // first pass and the recent set.
        self.repl.start_recording();
        self.repl.attach(stream, peer.ack_level, peer.ack_timeout_ms)?;
        self.check_abort()?;
        let mut ctx = Ctx { inodes: HashMap::new(), since_wait: 0, zone, started, ahead: Ahead::default(), pace: pace::Pace::new(opts.max_bytes_per_s) };

        // Pass 1.
        if opts.full {
            self.update(|s| s.phase = ReintegrationPhase::Copy);
            self.full_walk(&mut ctx)?;
        } else {
            let mut work = Work::new();
            // What was recorded so far is in the log read next, so it is dropped from the recent
            // set now, before that read: whatever is marked after this point stays in the recent
            // set for the next pass. (Dropped after the target's answer, as it once was, a change
            // marked after the read and before the drop reached no pass and was cleared from the
            // log at the end: tests/reint_window.rs, docs/investigations/chaos-divergence.md.)
            let _ = self.repl.take_recent();
            if let Some(log) = log {
                add_entries(&mut work, &log.entries());
            }
            let body = self.repl.query(&Query::DirtyEntries, QUERY_TIMEOUT)?;
            if let Some((_trusted, theirs)) = sync::decode_entries(&body)? {
                if let Some(bad) = theirs.iter().find(|e| !e.path.as_os_str().is_empty() && !plain(&e.path)) {
                    return Err(ReintError::Peer(format!("the target's dirty log lists a path outside the directory: {:?}", bad.path)));
                }
                add_entries(&mut work, &theirs);
            }
            self.copy_work(&mut ctx, work, false)?; // enters Copy with the bytes to go
        }
        self.update(|s| s.passes = 1);

        // Later passes: what changed during the previous one.
        let mut passes = 1u32;
        let mut work = work_from_recent(self.repl.take_recent());
        loop {
            let to_go = self.estimate(&mut work);
            self.update(|s| {
                s.bytes_to_go = to_go;
                s.entries_to_go = work.len() as u64;
            });
            if to_go < opts.freeze_below_bytes || passes >= opts.passes_max.max(1) {
                break;
            }
            self.copy_work(&mut ctx, std::mem::take(&mut work), false)?;
            passes += 1;
            self.update(|s| s.passes = passes);
            work = work_from_recent(self.repl.take_recent());
        }

        // Freeze.
        self.update(|s| s.phase = ReintegrationPhase::Final);
        let guard = self.order.locked();
        self.repl.wait_unresolved(UNRESOLVED_WAIT)?;
        for (p, mut item) in work_from_recent(self.repl.take_recent()) {
            let w = work.entry(p).or_default();
            w.ranges.append(&mut item.ranges);
        }
        self.copy_work(&mut ctx, work, true)?;
        let (last, _, _) = self.repl.sent();
        self.repl.catchup_wait(last)?;
        sync::reply_ok(&self.repl.query(&Query::Done, QUERY_TIMEOUT)?)?;
        if let Some(log) = log {
            log.clear().map_err(ReintError::ClearLog)?;
        }
        self.repl.go_live()?;
        drop(guard);
        self.update(|s| s.passes = passes + 1);
        Ok(())
    }
}

struct Ctx {
    /// Inode here → the first path synced with it (hard links).
    inodes: HashMap<u64, PathBuf>,
    since_wait: u64,
    zone: u64,
    started: Instant,
    ahead: Ahead,
    pace: pace::Pace,
}

