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

use crate::link::{self, PeerConfig, Recent, Replicator};
use crate::op::{Op, TO_END};
use crate::sync::{self, EntryInfo};
use crate::sys::{self, HeldDir};
use crate::wire::{self, Frame, HandshakeError, Query, Sealed};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsStr;
use std::io::{BufReader, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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
}

impl Default for ReintegrateOptions {
    fn default() -> Self {
        ReintegrateOptions {
            full: false,
            freeze_below_bytes: FREEZE_BELOW_BYTES_DEFAULT,
            passes_max: PASSES_MAX_DEFAULT,
            zone_bytes: None,
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

/// What to copy of one path: the entry itself, and byte ranges `[start, end)` (end `u64::MAX`:
/// to the end of the file).
#[derive(Debug, Clone, Default)]
struct Item {
    ranges: Vec<(u64, u64)>,
}

impl Item {
    fn whole() -> Item {
        Item { ranges: vec![(0, u64::MAX)] }
    }
    fn add(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let end = if len == TO_END { u64::MAX } else { offset.saturating_add(len) };
        self.ranges.push((offset, end));
    }
    fn normalize(&mut self) {
        self.ranges.sort();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (a, b) in self.ranges.drain(..) {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        self.ranges = out;
    }
    fn is_whole(&self) -> bool {
        self.ranges.iter().any(|&(a, b)| a == 0 && b == u64::MAX)
    }
    fn bytes(&self, size: u64) -> u64 {
        self.ranges.iter().map(|&(a, b)| b.min(size).saturating_sub(a)).sum()
    }
}

type Work = BTreeMap<PathBuf, Item>;

fn plain(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

fn work_from_recent(recent: Recent) -> Work {
    let mut w = Work::new();
    for (path, extents) in recent {
        let item = w.entry(path).or_default();
        for (o, l) in extents {
            item.add(o, l);
        }
    }
    w
}

fn add_entries(w: &mut Work, entries: &[crate::tracker::DirtyEntry]) {
    for e in entries {
        let item = w.entry(e.path.clone()).or_default();
        for &(o, l) in &e.zones {
            item.add(o, l);
        }
    }
}

/// A connection error as the reintegration reports it.
fn connect(peer: &PeerConfig) -> Result<Sealed, String> {
    link::connect(peer).map_err(|e| match e {
        HandshakeError::Io(e) => format!("cannot reach the target at {}: {e}", peer.addr),
        HandshakeError::Refused(m) => format!("the target at {} refused the session: {m}", peer.addr),
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

    fn check_abort(&self) -> Result<(), String> {
        match self.abort.locked().as_ref() {
            Some(r) => Err(format!("aborted: {r}")),
            None => Ok(()),
        }
    }

    fn update(&self, f: impl FnOnce(&mut ReintegrationStatus)) {
        f(&mut self.status.locked())
    }

    pub(crate) fn reintegrate(&self, peer: &PeerConfig, opts: &ReintegrateOptions) -> Result<ReintegrationStatus, String> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err("a reintegration is already running".into());
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
                st.error = Some(e.clone());
                drop(st);
                self.repl.abort_catchup(e);
                st = self.status.locked();
            }
        }
        let out = st.clone();
        drop(st);
        self.busy.store(false, Ordering::SeqCst);
        r.map(|()| out)
    }

    fn run(&self, peer: &PeerConfig, opts: &ReintegrateOptions, started: Instant) -> Result<(), String> {
        let log = self.repl.dirty_log();
        if !opts.full && log.is_none() {
            return Err("this mount has no dirty log: only a full sync can reintegrate it".into());
        }
        let zone = opts.zone_bytes.or(log.map(|l| l.zone_bytes())).unwrap_or(SUM_ZONE_BYTES_DEFAULT);
        let stream = connect(peer)?;
        // Recording starts before the stream can carry anything: no change escapes both the
        // first pass and the recent set.
        self.repl.start_recording();
        self.repl.attach(stream, peer.ack_level, peer.ack_timeout_ms)?;
        self.check_abort()?;
        let mut ctx = Ctx { inodes: HashMap::new(), since_wait: 0, zone, started, ahead: Ahead::default() };

        // Pass 1.
        if opts.full {
            self.update(|s| s.phase = ReintegrationPhase::Copy);
            self.full_walk(&mut ctx)?;
        } else {
            let mut work = Work::new();
            if let Some(log) = log {
                add_entries(&mut work, &log.entries());
            }
            let body = self.repl.query(&Query::DirtyEntries, QUERY_TIMEOUT)?;
            if let Some((_trusted, theirs)) = sync::decode_entries(&body)? {
                if let Some(bad) = theirs.iter().find(|e| !e.path.as_os_str().is_empty() && !plain(&e.path)) {
                    return Err(format!("the target's dirty log lists a path outside the directory: {:?}", bad.path));
                }
                add_entries(&mut work, &theirs);
            }
            // What was recorded meanwhile is in the log too.
            let _ = self.repl.take_recent();
            self.update(|s| s.phase = ReintegrationPhase::Copy);
            self.copy_work(&mut ctx, work, false)?;
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
            log.clear().map_err(|e| format!("clearing the dirty log: {e}"))?;
        }
        self.repl.go_live()?;
        drop(guard);
        self.update(|s| s.passes = passes + 1);
        Ok(())
    }

    /// File bytes `work` still has to copy (ranges clipped to the current sizes).
    fn estimate(&self, work: &mut Work) -> u64 {
        let mut total = 0;
        for (p, item) in work.iter_mut() {
            item.normalize();
            if let Ok(st) = self.dir.lstat(p) {
                if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                    total += item.bytes(st.st_size as u64);
                }
            }
        }
        total
    }

    fn lock(&self, frozen: bool) -> Option<MutexGuard<'_, ()>> {
        (!frozen).then(|| self.order.locked())
    }

    fn send(&self, ctx: &mut Ctx, ops: &[Op]) -> Result<(), String> {
        let mut data = 0;
        for op in ops {
            if let Op::Write { data: d, .. } = op {
                data += d.len() as u64;
            }
        }
        let last = self.repl.catchup_send(ops)?;
        ctx.since_wait += data + 64 * ops.len() as u64;
        if data > 0 {
            let rate_elapsed = ctx.started.elapsed().as_secs_f64().max(1e-3);
            self.update(|s| {
                s.bytes_copied += data;
                s.bytes_to_go = s.bytes_to_go.saturating_sub(data);
                s.rate_bytes_per_sec = s.bytes_copied as f64 / rate_elapsed;
            });
        }
        if ctx.since_wait >= WINDOW_BYTES {
            ctx.since_wait = 0;
            self.repl.catchup_wait(last)?;
        }
        Ok(())
    }

    fn copy_work(&self, ctx: &mut Ctx, mut work: Work, frozen: bool) -> Result<(), String> {
        let to_go = self.estimate(&mut work);
        self.update(|s| {
            s.bytes_to_go = to_go;
            s.entries_to_go = work.len() as u64;
        });
        // Sorted: a directory comes before what it holds.
        for (path, item) in work {
            self.check_abort()?;
            if !path.as_os_str().is_empty() && !plain(&path) {
                continue;
            }
            self.sync_entry(ctx, &path, &item, frozen)?;
            self.update(|s| {
                s.entries_done += 1;
                s.entries_to_go = s.entries_to_go.saturating_sub(1);
            });
        }
        Ok(())
    }

    /// Makes the target's `path` what it is here now, copying the ranges of `item`.
    fn sync_entry(&self, ctx: &mut Ctx, path: &Path, item: &Item, frozen: bool) -> Result<(), String> {
        let io = |what: &str, e: std::io::Error| format!("{what} {path:?}: {e}");
        let guard = self.lock(frozen);
        let Some(info) = sync::read_info(&self.dir, path).map_err(|e| io("reading", e))? else {
            if !path.as_os_str().is_empty() {
                self.send(ctx, &[Op::RemoveTree { path: path.to_path_buf() }])?;
            }
            return Ok(());
        };
        match info.kind() {
            libc::S_IFDIR => {
                let whole = item.is_whole();
                let children = if whole {
                    let names: Vec<Vec<u8>> = self
                        .dir
                        .list_dir(path)
                        .map_err(|e| io("listing", e))?
                        .into_iter()
                        .map(|(n, _, _)| n.as_bytes().to_vec())
                        .collect();
                    Some(names)
                } else {
                    None
                };
                self.send(ctx, &[Op::SyncDir { path: path.to_path_buf(), meta: info.meta(), children: children.clone() }])?;
                drop(guard);
                // Renamed or replaced: everything under it may differ.
                for name in children.unwrap_or_default() {
                    self.sync_entry(ctx, &path.join(OsStr::from_bytes(&name)), &Item::whole(), frozen)?;
                }
                Ok(())
            }
            libc::S_IFREG => {
                let mut linked = false;
                // Synced already under this very name (a directory's copy reached it, or an
                // earlier pass): the target's file is this inode, perhaps linked since to other
                // names; recreating it would cut those links.
                let mut known = false;
                if info.nlink > 1 {
                    match ctx.inodes.get(&info.ino) {
                        Some(first) if first != path => {
                            self.send(ctx, &[Op::LinkReplace { from: first.clone(), to: path.to_path_buf() }])?;
                            linked = true;
                        }
                        Some(_) => known = true,
                        None => {
                            ctx.inodes.insert(info.ino, path.to_path_buf());
                        }
                    }
                }
                if !linked {
                    let fresh = item.is_whole() && !known;
                    self.send(ctx, &[Op::SyncFile { path: path.to_path_buf(), size: info.size, fresh }])?;
                }
                let fd = self.dir.open_at(path, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(|e| io("opening", e))?;
                drop(guard);
                for &(a, b) in &item.ranges {
                    let mut off = a;
                    while off < b.min(info.size) {
                        self.check_abort()?;
                        let len = (b.min(info.size) - off).min(CHUNK_BYTES);
                        let guard = self.lock(frozen);
                        let mut buf = vec![0u8; len as usize];
                        let n = sys::pread(fd.as_raw_fd(), &mut buf, off).map_err(|e| io("reading", e))?;
                        if n == 0 {
                            break; // shrank meanwhile: the truncate is in the recent set
                        }
                        buf.truncate(n);
                        self.send(ctx, &[Op::Write { path: path.to_path_buf(), offset: off, data: buf }])?;
                        drop(guard);
                        off += n as u64;
                    }
                }
                let _guard = self.lock(frozen);
                if let Some(now) = sync::read_info(&self.dir, path).map_err(|e| io("reading", e))? {
                    if now.kind() == libc::S_IFREG {
                        self.send(ctx, &[Op::SyncMeta { path: path.to_path_buf(), meta: now.meta() }])?;
                    }
                }
                Ok(())
            }
            libc::S_IFLNK => self.send(
                ctx,
                &[Op::SyncSymlink {
                    path: path.to_path_buf(),
                    target: PathBuf::from(OsStr::from_bytes(&info.target)),
                    meta: info.meta(),
                }],
            ),
            _ => self.send(
                ctx,
                &[Op::SyncNode { path: path.to_path_buf(), mode: info.mode, rdev: info.rdev, meta: info.meta() }],
            ),
        }
    }

    // --- full sync ----------------------------------------------------------------------------

    fn list_remote(&self, ctx: &mut Ctx, path: &Path) -> Result<Vec<EntryInfo>, String> {
        let decode = |body: Vec<u8>| {
            sync::decode_infos(&body).map_err(|e| format!("listing {path:?} on the target: {e}"))
        };
        let (body, early) = self.ask(ctx, Ask::List(path.to_path_buf()))?;
        let infos = decode(body)?;
        // Asked ahead, the answer misses the operations sent since. Only a name linked
        // elsewhere (a shared inode) can have been changed by them: then ask again, in order.
        if early && infos.iter().any(|i| i.kind() != libc::S_IFDIR && i.nlink > 1) {
            return decode(self.repl.query(&Query::ListDir { path: path.to_path_buf() }, QUERY_TIMEOUT)?);
        }
        Ok(infos)
    }

    /// The answer to `ask`: the one asked ahead if there is one (true), else asked now.
    fn ask(&self, ctx: &mut Ctx, ask: Ask) -> Result<(Vec<u8>, bool), String> {
        // After a listing the walk of that directory asks ahead (its files' checksums are
        // needed first: before the listings further on, the target answers in order).
        let refill = matches!(ask, Ask::Sums(_));
        let ahead = &mut ctx.ahead;
        let r = match ahead.inflight.remove(&ask) {
            Some((id, bytes)) => {
                ahead.sum_bytes -= bytes;
                (self.repl.query_wait(id, QUERY_TIMEOUT)?, true)
            }
            None => {
                // Not asked yet: it is next in the walk, so the first still to ask.
                if let Some(f) = ahead.frames.last_mut() {
                    if f.front().is_some_and(|(a, _)| *a == ask) {
                        f.pop_front();
                    }
                }
                let q = ask.query(ctx.zone);
                (self.repl.query(&q, QUERY_TIMEOUT)?, false)
            }
        };
        if refill {
            self.ask_ahead(ctx)?;
        }
        Ok(r)
    }

    /// Sends the queries the walk will need soonest, up to the window: the target answers
    /// them while this side reads its own tree, instead of one round trip at a time.
    fn ask_ahead(&self, ctx: &mut Ctx) -> Result<(), String> {
        let zone = ctx.zone;
        let ahead = &mut ctx.ahead;
        // The innermost directory's entries come first in the walk.
        for f in (0..ahead.frames.len()).rev() {
            while let Some((ask, bytes)) = ahead.frames[f].front() {
                if ahead.inflight.len() >= AHEAD_QUERIES_MAX {
                    return Ok(());
                }
                if *bytes > 0 && ahead.sum_bytes > 0 && ahead.sum_bytes + bytes > AHEAD_SUM_BYTES_MAX {
                    return Ok(());
                }
                let (ask, bytes) = (ask.clone(), *bytes);
                ahead.frames[f].pop_front();
                let id = self.repl.query_send(&ask.query(zone))?;
                ahead.sum_bytes += bytes;
                ahead.inflight.insert(ask, (id, bytes));
            }
        }
        Ok(())
    }

    fn full_walk(&self, ctx: &mut Ctx) -> Result<(), String> {
        let root = {
            let _g = self.order.locked();
            sync::read_info(&self.dir, Path::new("")).map_err(|e| e.to_string())?.ok_or("the directory is gone")?
        };
        self.send(ctx, &[Op::SyncDir { path: PathBuf::new(), meta: root.meta(), children: None }])?;
        self.full_dir(ctx, Path::new(""), true)?;
        let _g = self.order.locked();
        if let Some(root) = sync::read_info(&self.dir, Path::new("")).map_err(|e| e.to_string())? {
            self.send(ctx, &[Op::SyncMeta { path: PathBuf::new(), meta: root.meta() }])?;
        }
        Ok(())
    }

    fn full_dir(&self, ctx: &mut Ctx, path: &Path, remote_exists: bool) -> Result<(), String> {
        self.check_abort()?;
        let local = {
            let _g = self.order.locked();
            sync::list_infos(&self.dir, path).map_err(|e| format!("listing {path:?}: {e}"))?
        };
        let remote: BTreeMap<Vec<u8>, EntryInfo> = if remote_exists {
            self.list_remote(ctx, path)?.into_iter().map(|i| (i.name.clone(), i)).collect()
        } else {
            BTreeMap::new()
        };
        // What the walk of this directory will ask, in its order: the listings of the
        // directories there too, and the checksums of the files that differ in size or mtime.
        // Only what the operations sent meanwhile cannot change (see `Ahead`).
        let mut todo = VecDeque::new();
        for li in &local {
            let Some(r) = remote.get(&li.name) else { continue };
            let child = path.join(OsStr::from_bytes(&li.name));
            match li.kind() {
                libc::S_IFDIR if r.kind() == libc::S_IFDIR => todo.push_back((Ask::List(child), 0)),
                libc::S_IFREG
                    if r.kind() == libc::S_IFREG
                        && li.nlink == 1
                        && r.nlink == 1
                        && !(r.size == li.size && r.mtime == li.mtime) =>
                {
                    todo.push_back((Ask::Sums(child), r.size.max(1)))
                }
                _ => {}
            }
        }
        ctx.ahead.frames.push(todo);
        let r = self.full_dir_entries(ctx, path, &local, &remote);
        ctx.ahead.frames.pop();
        r
    }

    fn full_dir_entries(
        &self,
        ctx: &mut Ctx,
        path: &Path,
        local: &[EntryInfo],
        remote: &BTreeMap<Vec<u8>, EntryInfo>,
    ) -> Result<(), String> {
        self.ask_ahead(ctx)?;
        let names: BTreeSet<&[u8]> = local.iter().map(|i| i.name.as_slice()).collect();
        for name in remote.keys() {
            if !names.contains(name.as_slice()) {
                self.send(ctx, &[Op::RemoveTree { path: path.join(OsStr::from_bytes(name)) }])?;
            }
        }
        self.update(|s| s.entries_to_go += local.len() as u64);
        for li in local {
            let child = path.join(OsStr::from_bytes(&li.name));
            let r = remote.get(&li.name);
            let same_kind = r.is_some_and(|r| r.kind() == li.kind());
            let meta_same = r.is_some_and(|r| same_meta(li, r));
            match li.kind() {
                libc::S_IFDIR => {
                    if !same_kind || !meta_same {
                        self.send(ctx, &[Op::SyncDir { path: child.clone(), meta: li.meta(), children: None }])?;
                    }
                    self.full_dir(ctx, &child, same_kind)?;
                    if !meta_same {
                        // Times again: the children's changes came after.
                        let _g = self.order.locked();
                        if let Ok(Some(now)) = sync::read_info(&self.dir, &child) {
                            self.send(ctx, &[Op::SyncMeta { path: child.clone(), meta: now.meta() }])?;
                        }
                    }
                }
                libc::S_IFREG => self.full_file(ctx, &child, li, r)?,
                libc::S_IFLNK => {
                    if !(same_kind && meta_same && r.is_some_and(|r| r.target == li.target)) {
                        self.send(
                            ctx,
                            &[Op::SyncSymlink {
                                path: child.clone(),
                                target: PathBuf::from(OsStr::from_bytes(&li.target)),
                                meta: li.meta(),
                            }],
                        )?;
                    }
                }
                _ => {
                    if !(same_kind && meta_same && r.is_some_and(|r| r.rdev == li.rdev)) {
                        self.send(ctx, &[Op::SyncNode { path: child.clone(), mode: li.mode, rdev: li.rdev, meta: li.meta() }])?;
                    }
                }
            }
            self.update(|s| {
                s.entries_done += 1;
                s.entries_to_go = s.entries_to_go.saturating_sub(1);
            });
        }
        Ok(())
    }

    fn full_file(&self, ctx: &mut Ctx, path: &Path, li: &EntryInfo, r: Option<&EntryInfo>) -> Result<(), String> {
        let io = |what: &str, e: std::io::Error| format!("{what} {path:?}: {e}");
        if li.nlink > 1 {
            match ctx.inodes.get(&li.ino) {
                Some(first) => {
                    // Another name of a file already synced: the target links it the same way.
                    return self.send(ctx, &[Op::LinkReplace { from: first.clone(), to: path.to_path_buf() }]);
                }
                None => {
                    ctx.inodes.insert(li.ino, path.to_path_buf());
                }
            }
        }
        let remote_reg = r.filter(|r| r.kind() == libc::S_IFREG);
        if let Some(r) = remote_reg {
            if r.size == li.size && r.mtime == li.mtime && (r.nlink == 1 || li.nlink > 1) {
                if !same_meta(li, r) {
                    self.send(ctx, &[Op::SyncMeta { path: path.to_path_buf(), meta: li.meta() }])?;
                }
                self.update(|s| s.bytes_skipped += li.size);
                return Ok(());
            }
        }
        // Linked elsewhere there but not here: a new inode, so the other names keep their data.
        let fresh = match remote_reg {
            None => true,
            Some(r) => r.nlink > 1 && li.nlink == 1,
        };
        let theirs = match (fresh, remote_reg) {
            (false, Some(_)) => {
                // Asked ahead only for a file with one name on both sides: nothing sent
                // meanwhile can have changed it.
                let (body, _) = self.ask(ctx, Ask::Sums(path.to_path_buf()))?;
                sync::decode_sums(&body).map_err(|e| format!("checksums of {path:?} on the target: {e}"))?.1
            }
            _ => Vec::new(),
        };
        let fd = {
            let _g = self.order.locked();
            let fd = self.dir.open_at(path, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(|e| io("opening", e))?;
            let size = sys::fstat(fd.as_raw_fd()).map_err(|e| io("reading", e))?.st_size as u64;
            self.send(ctx, &[Op::SyncFile { path: path.to_path_buf(), size, fresh }])?;
            fd
        };
        let mut off = 0u64;
        let mut zone_index = 0usize;
        loop {
            self.check_abort()?;
            let _g = self.order.locked();
            let mut buf = vec![0u8; ctx.zone as usize];
            let n = sys::pread(fd.as_raw_fd(), &mut buf, off).map_err(|e| io("reading", e))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            let differs = match theirs.get(zone_index) {
                Some(s) => *s != sync::sum(&buf),
                // Beyond their end, or a new file: zeros are already there (ftruncate).
                None => buf.iter().any(|b| *b != 0),
            };
            if differs {
                self.send(ctx, &[Op::Write { path: path.to_path_buf(), offset: off, data: buf }])?;
            } else {
                self.update(|s| s.bytes_skipped += n as u64);
            }
            off += n as u64;
            zone_index += 1;
        }
        let _g = self.order.locked();
        if let Ok(Some(now)) = sync::read_info(&self.dir, path) {
            if now.kind() == libc::S_IFREG {
                self.send(ctx, &[Op::SyncMeta { path: path.to_path_buf(), meta: now.meta() }])?;
            }
        }
        Ok(())
    }

    // --- verify -------------------------------------------------------------------------------

    pub(crate) fn verify(&self, peer: &PeerConfig, zone_bytes: u64) -> Result<VerifyReport, String> {
        let mut client = QueryClient::connect(peer)?;
        let mut report = VerifyReport::default();
        let diff = |report: &mut VerifyReport, p: &Path, what: String| {
            report.differences_total += 1;
            if report.differences.len() < VERIFY_DIFFERENCES_MAX {
                report.differences.push((p.to_path_buf(), what));
            }
        };
        let mut stack = vec![PathBuf::new()];
        while let Some(d) = stack.pop() {
            let (local, remote) = {
                let _g = self.order.locked();
                self.settled()?;
                let local = sync::list_infos(&self.dir, &d).map_err(|e| format!("listing {d:?}: {e}"))?;
                let remote = sync::decode_infos(&client.query(&Query::ListDir { path: d.clone() })?)
                    .map_err(|e| format!("listing {d:?} on the peer: {e}"))?;
                (local, remote)
            };
            let remote: BTreeMap<Vec<u8>, EntryInfo> = remote.into_iter().map(|i| (i.name.clone(), i)).collect();
            let names: BTreeSet<&[u8]> = local.iter().map(|i| i.name.as_slice()).collect();
            for name in remote.keys() {
                if !names.contains(name.as_slice()) {
                    diff(&mut report, &d.join(OsStr::from_bytes(name)), "only on the peer".into());
                }
            }
            for li in &local {
                let p = d.join(OsStr::from_bytes(&li.name));
                report.entries_compared += 1;
                let Some(r) = remote.get(&li.name) else {
                    diff(&mut report, &p, "missing on the peer".into());
                    continue;
                };
                if let Some(what) = meta_difference(li, r) {
                    diff(&mut report, &p, what);
                    continue;
                }
                match li.kind() {
                    libc::S_IFDIR => stack.push(p),
                    libc::S_IFREG => {
                        let _g = self.order.locked();
                        self.settled()?;
                        let mine = sync::checksums(&self.dir, &p, zone_bytes);
                        let theirs = sync::decode_sums(&client.query(&Query::Checksums { path: p.clone(), zone_bytes })?);
                        match (mine, theirs) {
                            (Ok((sa, a)), Ok((sb, b))) => {
                                report.bytes_compared += sa;
                                if sa != sb {
                                    diff(&mut report, &p, format!("size {sa} here, {sb} on the peer"));
                                } else if let Some(i) = (0..a.len()).find(|&i| a.get(i) != b.get(i)) {
                                    diff(&mut report, &p, format!("content differs from byte {}", i as u64 * zone_bytes));
                                }
                            }
                            (Err(e), _) => diff(&mut report, &p, format!("cannot checksum here: {e}")),
                            (_, Err(e)) => diff(&mut report, &p, format!("cannot checksum on the peer: {e}")),
                        }
                    }
                    _ => {}
                }
            }
        }
        report.identical = report.differences_total == 0;
        Ok(report)
    }

    /// The caller holds the order lock: waits until the peer acknowledged everything sent.
    fn settled(&self) -> Result<(), String> {
        if self.repl.all_acked() {
            Ok(())
        } else {
            Err("the mirror is not connected to its peer (alone, or reintegrating): nothing to verify".into())
        }
    }
}

struct Ctx {
    /// Inode here → the first path synced with it (hard links).
    inodes: HashMap<u64, PathBuf>,
    since_wait: u64,
    zone: u64,
    started: Instant,
    ahead: Ahead,
}

/// A question of the full sync's walk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ask {
    List(PathBuf),
    Sums(PathBuf),
}

impl Ask {
    fn query(&self, zone_bytes: u64) -> Query {
        match self {
            Ask::List(path) => Query::ListDir { path: path.clone() },
            Ask::Sums(path) => Query::Checksums { path: path.clone(), zone_bytes },
        }
    }
}

/// The full sync's queries asked ahead of its walk. The target answers a query after the
/// operations sent before it, so one asked ahead misses those sent between it and the time
/// the walk needs it; the walk asks ahead only what they cannot change: the listing of a
/// directory that exists on both sides (names under it are touched only by the walk of that
/// directory; a name linked elsewhere could change through another name, so such a listing
/// is asked again in order) and the checksums of a file with one name on both sides.
#[derive(Default)]
struct Ahead {
    /// Per directory being walked, outermost first: what its walk will ask, in order.
    frames: Vec<VecDeque<(Ask, u64)>>,
    /// Asked and not taken yet: the query's id and the file bytes it checksums.
    inflight: HashMap<Ask, (u64, u64)>,
    /// File bytes of the checksum queries in `inflight`.
    sum_bytes: u64,
}

fn same_meta(a: &EntryInfo, b: &EntryInfo) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && (a.kind() == libc::S_IFLNK || a.xattrs == b.xattrs)
}

/// What verify reports for one entry (times are not compared: a running mirror's replica sets
/// its own directory times).
fn meta_difference(a: &EntryInfo, b: &EntryInfo) -> Option<String> {
    if a.kind() != b.kind() {
        return Some(format!("type {:o} here, {:o} on the peer", a.kind(), b.kind()));
    }
    if a.kind() == libc::S_IFREG && a.size != b.size {
        return Some(format!("size {} here, {} on the peer", a.size, b.size));
    }
    if a.mode != b.mode {
        return Some(format!("mode {:o} here, {:o} on the peer", a.mode & 0o7777, b.mode & 0o7777));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        return Some(format!("owner {}:{} here, {}:{} on the peer", a.uid, a.gid, b.uid, b.gid));
    }
    if a.target != b.target {
        return Some("symlink target differs".into());
    }
    if a.rdev != b.rdev {
        return Some("device number differs".into());
    }
    if a.xattrs != b.xattrs {
        return Some("xattrs differ".into());
    }
    None
}

/// A query-only session (verify): one question at a time.
struct QueryClient {
    stream: Sealed,
    reader: BufReader<Sealed>,
    next: u64,
}

impl QueryClient {
    fn connect(peer: &PeerConfig) -> Result<QueryClient, String> {
        let stream = connect(peer)?;
        let _ = stream.set_read_timeout(Some(QUERY_TIMEOUT));
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(QueryClient { stream, reader, next: 1 })
    }

    fn query(&mut self, q: &Query) -> Result<Vec<u8>, String> {
        let id = self.next;
        self.next += 1;
        self.stream.write_all(&wire::query_frame(id, q)).map_err(|e| format!("sending a query to the peer: {e}"))?;
        loop {
            match wire::read_frame(&mut self.reader) {
                Ok(Some(Frame::Reply { id: rid, body })) if rid == id => return Ok(body),
                Ok(Some(_)) => continue,
                Ok(None) => return Err("the peer closed the verify session".into()),
                Err(e) => return Err(format!("reading from the peer: {e}")),
            }
        }
    }
}

impl Drop for QueryClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
