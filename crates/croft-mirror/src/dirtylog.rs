//! The durable dirty log: what changed while the mirror ran ALONE, zone by zone, so that
//! reintegration copies only that — even after a crash of the primary itself.
//!
//! In memory: per path, a set of dirty zones (merged runs of zone indexes, a compressed bitmap),
//! whether the entry itself changed (metadata, created, removed, renamed) and the offset from
//! which the file is dirty to its end (truncate, rename, link).
//!
//! On disk, in its own directory (say `/var/lib/croft/mirror/<module>`):
//! - `dirty.snap`: the whole state at some generation, written atomically (temp file, fsync,
//!   rename, fsync of the directory);
//! - `dirty.log`: the records appended since that snapshot, each `[len u32][crc32c u32][payload]`,
//!   made durable with fdatasync before [`DirtyTracker::mark`] returns.
//!
//! Why it stays cheap: a mark whose zones are already durable is answered from memory (a
//! workload rewriting the same zones pays one fdatasync per zone, once), and concurrent marks
//! from several FUSE threads share one fdatasync (group commit: the first waiter becomes the
//! leader and writes and syncs everything queued so far; the others wait for it). See the
//! classic group commit of database logs, e.g. PostgreSQL's `XLogFlush` / `commit_delay`.
//!
//! Replay stops at the first record whose length or CRC is wrong: a torn tail was never
//! acknowledged, since every acknowledged record was followed by an fdatasync that covered all
//! bytes before it. Every open compacts the replayed state into a fresh snapshot and an empty
//! log of the next generation, so a torn tail never sits in front of new records.
//!
//! Trust: a log is trustworthy once [`DirtyLog::clear`] recorded a known-equal baseline (after a
//! full sync or a reintegration). A directory without a log (first start, lost disk) or a corrupt
//! snapshot makes it untrustworthy until the next `clear`: the caller then does a full sync.
//!
//! Failures (a full disk, an I/O error; issue 8, finding 11): a mark whose record cannot be made
//! durable FAILS ([`DirtyTracker::mark`] returns the error, the FUSE layer answers EIO and does
//! not apply the change). So every change ever applied has a durable record, and a failure never
//! has to make the log untrustworthy: the log stays complete by refusing what it cannot record.
//! After a failure the log file's tail is unknown (torn record, unsynced bytes) and the snapshot
//! may be newer than the log (a compaction that stopped half way, whose older log a reopen
//! ignores), so nothing is appended to that file again: the log is *failing* until a compaction
//! writes the whole state (a superset of every durable record) into a fresh snapshot and log.
//! While failing, every mark tries that repair (at most every [`REPAIR_EVERY`]; in between it
//! fails at once), so the log heals by itself once space is back. Failures and refused marks are
//! counted in [`DirtyLogStats`] and logged when the log starts and stops failing.

pub use crate::tracker::DirtyEntry;
use crate::tracker::{ActivityLog, DirtyTracker};
use crate::op::TO_END;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use crate::locks::{waited, Locked};

/// Smallest zone: below it the bitmap and the log grow for little saving in bytes copied.
pub const ZONE_BYTES_MIN: u64 = 64 << 10;
/// Largest zone: beyond it a 4 KiB random write costs too much to copy back (DESIGN.md).
pub const ZONE_BYTES_MAX: u64 = 1 << 20;
/// The log is compacted into a snapshot beyond this size (or the last snapshot's size if
/// larger): replay at open stays short, and compaction never runs in a loop for a big state.
pub const COMPACT_AFTER_BYTES_DEFAULT: u64 = 4 << 20;

const SNAP_NAME: &str = "dirty.snap";
const LOG_NAME: &str = "dirty.log";
const SNAP_MAGIC: &[u8; 8] = b"CROFTDS1";
const LOG_MAGIC: &[u8; 8] = b"CROFTDL1";
const SNAP_HEADER_BYTES: usize = 8 + 8 + 8 + 8 + 8 + 4;
const LOG_HEADER_BYTES: usize = 8 + 8 + 8 + 4;
const SNAP_TRUSTED: u64 = 1;
/// kind u8, a u64, b u64, then the path's bytes.
const PAYLOAD_FIXED_BYTES: usize = 1 + 8 + 8;
/// A record longer than this is garbage (paths are at most PATH_MAX = 4096 bytes on Linux).
const PAYLOAD_BYTES_MAX: usize = PAYLOAD_FIXED_BYTES + 64 * 1024;

const KIND_ZONES: u8 = 1;
const KIND_TO_END: u8 = 2;
const KIND_ENTRY: u8 = 3;

/// Counters, for tests, metrics and the bench.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyLogStats {
    /// `mark` calls since open.
    pub marks: u64,
    /// Records appended to the log since open (marks not already covered by durable state).
    pub records_logged: u64,
    /// fdatasyncs of the log (group commits) since open.
    pub fdatasyncs: u64,
    /// Snapshots written since open (the one at open included).
    pub compactions: u64,
    /// Size of the log file now (header included).
    pub log_bytes: u64,
    /// Size of the last snapshot.
    pub snapshot_bytes: u64,
    /// Records replayed at open (snapshot and log).
    pub records_loaded: u64,
    /// Bytes at the end of the log ignored at open (a torn record, never acknowledged).
    pub ignored_tail_bytes: u64,
    /// Writes, fdatasyncs, compactions or clears of the log that failed since open.
    pub write_failures: u64,
    /// Marks answered with an error since open (their change was refused: EIO to the application).
    pub marks_refused: u64,
    /// The log cannot record anything now (a failure not yet repaired by a compaction).
    pub failing: bool,
}

/// While the log is failing, a mark tries the repair (a compaction) at most this often; the
/// marks in between fail at once instead of each writing a snapshot onto a full disk.
pub const REPAIR_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirtyLogOptions {
    /// 64 KiB ..= 1 MiB, a power of two.
    pub zone_bytes: u64,
    pub compact_after_bytes: u64,
}

impl DirtyLogOptions {
    pub fn new(zone_bytes: u64) -> DirtyLogOptions {
        DirtyLogOptions { zone_bytes, compact_after_bytes: COMPACT_AFTER_BYTES_DEFAULT }
    }
}

/// What one mark adds, in zones of the log's size (or bytes for `ToEnd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rec {
    /// Zones `first..=last`.
    Zones { first: u64, last: u64 },
    /// Bytes from `offset` to the end of the file, and the entry itself.
    ToEnd { offset: u64 },
    Entry,
}

impl Rec {
    fn from_extent(offset: u64, len: u64, zone_bytes: u64) -> Rec {
        match len {
            0 => Rec::Entry,
            TO_END => Rec::ToEnd { offset },
            _ => {
                let end = offset.saturating_add(len - 1);
                Rec::Zones { first: offset / zone_bytes, last: end / zone_bytes }
            }
        }
    }

    /// The same dirt in zones of another size (covering at least the same bytes).
    fn rezone(self, from_bytes: u64, to_bytes: u64) -> Rec {
        match self {
            Rec::Zones { first, last } if from_bytes != to_bytes => {
                let start = first.saturating_mul(from_bytes);
                let end = last.saturating_add(1).saturating_mul(from_bytes).saturating_sub(1);
                Rec::Zones { first: start / to_bytes, last: end / to_bytes }
            }
            r => r,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct FileDirt {
    /// Runs of dirty zones: first -> last (inclusive), disjoint and not adjacent.
    zones: BTreeMap<u64, u64>,
    to_end_from: Option<u64>,
    entry: bool,
}

impl FileDirt {
    fn covers(&self, rec: Rec, zone_bytes: u64) -> bool {
        match rec {
            Rec::Entry => self.entry,
            Rec::ToEnd { offset } => self.to_end_from.is_some_and(|t| t <= offset),
            Rec::Zones { first, last } => {
                self.to_end_from.is_some_and(|t| t / zone_bytes <= first)
                    || self.zones.range(..=first).next_back().is_some_and(|(_, &e)| e >= last)
            }
        }
    }

    fn apply(&mut self, rec: Rec, zone_bytes: u64) {
        match rec {
            Rec::Entry => self.entry = true,
            Rec::ToEnd { offset } => {
                self.entry = true;
                let t = self.to_end_from.map_or(offset, |t| t.min(offset));
                self.to_end_from = Some(t);
                // Runs wholly inside the to-end range are implied by it.
                let tz = t / zone_bytes;
                let beyond: Vec<u64> = self.zones.range(tz..).map(|(&s, _)| s).collect();
                for s in beyond {
                    self.zones.remove(&s);
                }
            }
            Rec::Zones { mut first, mut last } => {
                if let Some((&s, &e)) = self.zones.range(..=first).next_back() {
                    if e.saturating_add(1) >= first {
                        first = s;
                        last = last.max(e);
                        self.zones.remove(&s);
                    }
                }
                while let Some((&s, &e)) = self.zones.range(first..).next() {
                    if s > last.saturating_add(1) {
                        break;
                    }
                    last = last.max(e);
                    self.zones.remove(&s);
                }
                self.zones.insert(first, last);
            }
        }
    }

    /// The records that rebuild this state (for a snapshot).
    fn records(&self) -> Vec<Rec> {
        let mut out = Vec::with_capacity(self.zones.len() + 2);
        if self.entry && self.to_end_from.is_none() {
            out.push(Rec::Entry);
        }
        if let Some(offset) = self.to_end_from {
            out.push(Rec::ToEnd { offset });
        }
        out.extend(self.zones.iter().map(|(&first, &last)| Rec::Zones { first, last }));
        out
    }

    fn ranges(&self, zone_bytes: u64) -> Vec<(u64, u64)> {
        let tz = self.to_end_from.map(|t| t / zone_bytes);
        let mut out = Vec::with_capacity(self.zones.len() + 1);
        let mut to_end_start = tz;
        for (&first, &last) in &self.zones {
            if let Some(tz) = tz {
                if first >= tz {
                    break;
                }
                if last.saturating_add(1) >= tz {
                    to_end_start = Some(first);
                    break;
                }
            }
            let len = (last - first).saturating_add(1).saturating_mul(zone_bytes);
            out.push((first.saturating_mul(zone_bytes), len));
        }
        if let Some(z) = to_end_start {
            out.push((z.saturating_mul(zone_bytes), TO_END));
        }
        out
    }
}

struct State {
    files: HashMap<PathBuf, FileDirt>,
    /// Encoded records not yet written to the log.
    pending: Vec<u8>,
    /// Records handed in (pending included), handled by a leader (written or failed) and
    /// durable, counted since open. Durability is a prefix: after a failure nothing is durable
    /// again until a compaction wrote the whole state, which makes every record before it durable.
    appended_lsn: u64,
    processed_lsn: u64,
    durable_lsn: u64,
    /// A thread is writing and syncing (the group commit's leader, a compaction or `clear`).
    leading: bool,
    trusted: bool,
    /// The last failure since open (kept after a repair, for the status).
    failed: Option<String>,
    /// Failing: nothing may be appended to the current log file (see the module doc).
    broken: bool,
    /// While failing: no repair before this.
    repair_at: Option<std::time::Instant>,
    generation: u64,
    stats: DirtyLogStats,
}

/// The durable [`DirtyTracker`]. Share it as `Arc<DirtyLog>`.
pub struct DirtyLog {
    dir: PathBuf,
    zone_bytes: u64,
    compact_after_bytes: u64,
    state: Mutex<State>,
    cv: Condvar,
    /// The log file, opened for appending; used only by the thread that leads.
    log: Mutex<File>,
}

impl std::fmt::Debug for DirtyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirtyLog").field("dir", &self.dir).field("zone_bytes", &self.zone_bytes).finish()
    }
}

impl DirtyLog {
    /// Opens (or creates) the dirty log in `dir`, replays it and compacts it.
    pub fn open(dir: &Path, zone_bytes: u64) -> io::Result<DirtyLog> {
        DirtyLog::open_with(dir, DirtyLogOptions::new(zone_bytes))
    }

    pub fn open_with(dir: &Path, options: DirtyLogOptions) -> io::Result<DirtyLog> {
        let zone_bytes = options.zone_bytes;
        if !(ZONE_BYTES_MIN..=ZONE_BYTES_MAX).contains(&zone_bytes) || !zone_bytes.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("dirty log zone size {zone_bytes} must be a power of two from 64 KiB to 1 MiB"),
            ));
        }
        fs::create_dir_all(dir)?;
        let loaded = load(dir, zone_bytes)?;
        let generation = loaded.generation + 1;
        let (snapshot_bytes, log) = write_snapshot_and_log(dir, zone_bytes, generation, loaded.trusted, &loaded.files)?;
        let stats = DirtyLogStats {
            compactions: 1,
            log_bytes: LOG_HEADER_BYTES as u64,
            snapshot_bytes,
            records_loaded: loaded.records,
            ignored_tail_bytes: loaded.ignored_tail_bytes,
            ..DirtyLogStats::default()
        };
        Ok(DirtyLog {
            dir: dir.to_path_buf(),
            zone_bytes,
            compact_after_bytes: options.compact_after_bytes,
            state: Mutex::new(State {
                files: loaded.files,
                pending: Vec::new(),
                appended_lsn: 0,
                processed_lsn: 0,
                durable_lsn: 0,
                leading: false,
                trusted: loaded.trusted,
                failed: None,
                broken: false,
                repair_at: None,
                generation,
                stats,
            }),
            cv: Condvar::new(),
            log: Mutex::new(log),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn zone_bytes(&self) -> u64 {
        self.zone_bytes
    }

    /// False when the log may miss changes (no log before this start, a corrupt snapshot):
    /// reintegration must then compare whole trees. True again after `clear`. A failed write
    /// does not change it: the change it would have recorded was refused.
    pub fn is_trustworthy(&self) -> bool {
        self.state.locked().trusted
    }

    /// The last write, fdatasync, compaction or clear error since open, if any.
    pub fn last_error(&self) -> Option<String> {
        self.state.locked().failed.clone()
    }

    /// True while marks fail: a failure not yet repaired (see the module doc).
    pub fn is_failing(&self) -> bool {
        self.state.locked().broken
    }

    pub fn is_empty(&self) -> bool {
        self.state.locked().files.is_empty()
    }

    pub fn stats(&self) -> DirtyLogStats {
        let st = self.state.locked();
        DirtyLogStats { failing: st.broken, ..st.stats.clone() }
    }

    /// Every dirty path, sorted by path.
    pub fn entries(&self) -> Vec<DirtyEntry> {
        let st = self.state.locked();
        let mut out: Vec<DirtyEntry> = st
            .files
            .iter()
            .map(|(path, d)| DirtyEntry {
                path: path.clone(),
                zones: d.ranges(self.zone_bytes),
                entry_changed: d.entry,
                to_end_from: d.to_end_from,
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Bytes still to copy: the dirty ranges clipped to each file's current size (`sizes`
    /// answers `None` for a path that no longer exists: nothing to copy, only to remove).
    pub fn dirty_bytes(&self, sizes: impl Fn(&Path) -> Option<u64>) -> u64 {
        let st = self.state.locked();
        let mut total = 0u64;
        for (path, d) in &st.files {
            let Some(size) = sizes(path) else { continue };
            for (start, len) in d.ranges(self.zone_bytes) {
                let end = if len == TO_END { size } else { start.saturating_add(len).min(size) };
                total = total.saturating_add(end.saturating_sub(start));
            }
        }
        total
    }

    /// Forgets everything, durably, and trusts the log from now on: call it once reintegration
    /// (or a full sync) made the peer equal to this side. Marks that return before `clear` are
    /// forgotten with the rest.
    pub fn clear(&self) -> io::Result<()> {
        let mut st = self.lead_exclusively();
        st.files.clear();
        st.pending.clear();
        let end = st.appended_lsn;
        let generation = st.generation + 1;
        drop(st);
        let r = write_snapshot_and_log(&self.dir, self.zone_bytes, generation, true, &HashMap::new());
        let mut st = self.state.locked();
        let out = match r {
            Ok((snapshot_bytes, file)) => {
                *self.log.locked() = file;
                st.generation = generation;
                st.trusted = true;
                self.repaired(&mut st);
                st.stats.compactions += 1;
                st.stats.snapshot_bytes = snapshot_bytes;
                st.stats.log_bytes = LOG_HEADER_BYTES as u64;
                Ok(())
            }
            Err(e) => {
                // The old state (a superset) or the new empty snapshot with a stale log is on
                // disk: failing until a compaction rewrites both.
                self.fail(&mut st, &format!("clearing the dirty log: {e}"));
                Err(e)
            }
        };
        let ok = out.is_ok();
        self.finish_leading(&mut st, end, ok);
        out
    }

    /// Writes the current state into a new snapshot and starts an empty log (normally done by
    /// `mark` when the log grows past its bound).
    pub fn compact(&self) -> io::Result<()> {
        let st = self.lead_exclusively();
        let end = st.appended_lsn;
        let mut st = self.compact_leading(st);
        let ok = !st.broken;
        self.finish_leading(&mut st, end, ok);
        if ok {
            Ok(())
        } else {
            Err(io::Error::other(st.failed.clone().unwrap_or_default()))
        }
    }

    fn lead_exclusively(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.locked();
        while st.leading {
            st = waited(self.cv.wait(st));
        }
        st.leading = true;
        st
    }

    /// The leader is done with records up to `end`: durable if `ok`, failed otherwise.
    fn finish_leading(&self, st: &mut State, end: u64, ok: bool) {
        st.processed_lsn = st.processed_lsn.max(end);
        if ok {
            st.durable_lsn = st.durable_lsn.max(end);
        }
        st.leading = false;
        self.cv.notify_all();
    }

    /// Returns once record `target` is durable, leading a group commit if nobody is; the error
    /// when the group that held it failed.
    fn wait_durable<'a>(&'a self, mut st: MutexGuard<'a, State>, target: u64) -> io::Result<()> {
        loop {
            if st.durable_lsn >= target {
                return Ok(());
            }
            if st.processed_lsn >= target {
                st.stats.marks_refused += 1;
                let why = st.failed.clone().unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::Other,
                    format!("the dirty log in {} cannot record this change: {why}", self.dir.display()),
                ));
            }
            if st.leading {
                st = waited(self.cv.wait(st));
                continue;
            }
            st.leading = true;
            let end = st.appended_lsn;
            let bound = self.compact_after_bytes.max(st.stats.snapshot_bytes);
            st = if st.broken {
                if st.repair_at.is_some_and(|t| std::time::Instant::now() < t) {
                    st.pending.clear();
                    st
                } else {
                    // The repair: the whole state (these records included) in a new snapshot.
                    self.compact_leading(st)
                }
            } else if st.stats.log_bytes + st.pending.len() as u64 > bound {
                self.compact_leading(st)
            } else {
                self.append_leading(st)
            };
            let ok = !st.broken;
            self.finish_leading(&mut st, end, ok);
        }
    }

    /// The leader's group commit: writes every pending record and fdatasyncs once.
    fn append_leading<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let buf = std::mem::take(&mut st.pending);
        drop(st);
        let r = {
            let mut f = self.log.locked();
            f.write_all(&buf).and_then(|()| f.sync_data())
        };
        let mut st = self.state.locked();
        match r {
            Ok(()) => {
                st.stats.log_bytes += buf.len() as u64;
                st.stats.fdatasyncs += 1;
                if st.pending.capacity() == 0 && buf.capacity() <= 1 << 20 {
                    // Reuse the allocation for the next group.
                    let mut buf = buf;
                    buf.clear();
                    st.pending = buf;
                }
            }
            Err(e) => self.fail(&mut st, &format!("appending to the dirty log: {e}")),
        }
        st
    }

    /// Compaction while leading: the state (pending records included) becomes a snapshot of the
    /// next generation, with an empty log.
    fn compact_leading<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let files = st.files.clone();
        st.pending.clear();
        let generation = st.generation + 1;
        let trusted = st.trusted;
        drop(st);
        let r = write_snapshot_and_log(&self.dir, self.zone_bytes, generation, trusted, &files);
        let mut st = self.state.locked();
        match r {
            Ok((snapshot_bytes, file)) => {
                *self.log.locked() = file;
                st.generation = generation;
                st.stats.compactions += 1;
                st.stats.snapshot_bytes = snapshot_bytes;
                st.stats.log_bytes = LOG_HEADER_BYTES as u64;
                self.repaired(&mut st);
            }
            Err(e) => self.fail(&mut st, &format!("compacting the dirty log: {e}")),
        }
        st
    }

    /// A write, sync, compaction or clear failed: the records of this group are not durable
    /// (their marks fail, their changes are refused) and the log file may be torn or stale, so
    /// the log is failing until a compaction succeeds (see the module doc). Trust is untouched:
    /// no applied change lacks its record. Logged once when the log starts failing.
    fn fail(&self, st: &mut State, what: &str) {
        if !st.broken {
            log::error!(
                "dirty log {}: {what}; changes the log cannot record fail with EIO until it can write again",
                self.dir.display()
            );
        }
        st.failed = Some(what.to_string());
        st.broken = true;
        st.repair_at = Some(std::time::Instant::now() + REPAIR_EVERY);
        st.stats.write_failures += 1;
        st.pending.clear();
    }

    /// A compaction or clear wrote the whole state: the log records again.
    fn repaired(&self, st: &mut State) {
        if st.broken {
            log::warn!(
                "dirty log {}: writing again after {} failure(s), {} change(s) refused",
                self.dir.display(),
                st.stats.write_failures,
                st.stats.marks_refused
            );
        }
        st.broken = false;
        st.repair_at = None;
    }
}

impl DirtyTracker for DirtyLog {
    fn mark(&self, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        let rec = Rec::from_extent(offset, len, self.zone_bytes);
        let mut st = self.state.locked();
        st.stats.marks += 1;
        // While failing, the state in memory holds records that never became durable: nothing
        // counts as covered until a repair wrote it all.
        let covered = !st.broken && st.files.get(path).is_some_and(|d| d.covers(rec, self.zone_bytes));
        if !covered {
            st.files.entry(path.to_path_buf()).or_default().apply(rec, self.zone_bytes);
            encode_record(&mut st.pending, path, rec);
            st.appended_lsn += 1;
            st.stats.records_logged += 1;
        }
        // Covered: already durable unless a leader is still syncing it, so wait for whatever
        // was handed in so far (nothing to wait for in the common case).
        let target = st.appended_lsn;
        self.wait_durable(st, target)
    }

    fn activity_log(&self) -> Option<&dyn ActivityLog> {
        Some(self)
    }
}

impl ActivityLog for DirtyLog {
    fn zone_bytes(&self) -> u64 {
        DirtyLog::zone_bytes(self)
    }
    fn is_empty(&self) -> bool {
        DirtyLog::is_empty(self)
    }
    fn entries(&self) -> Vec<DirtyEntry> {
        DirtyLog::entries(self)
    }
    fn clear(&self) -> io::Result<()> {
        DirtyLog::clear(self)
    }
}

// --- files -----------------------------------------------------------------------------------

struct Loaded {
    files: HashMap<PathBuf, FileDirt>,
    trusted: bool,
    generation: u64,
    records: u64,
    ignored_tail_bytes: u64,
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the snapshot and the log of the same generation. Never fails on content (a bad file
/// makes the result untrustworthy); fails only when the files cannot be read.
fn load(dir: &Path, zone_bytes: u64) -> io::Result<Loaded> {
    let snap = read_optional(&dir.join(SNAP_NAME))?;
    let log = read_optional(&dir.join(LOG_NAME))?;
    let mut out = Loaded { files: HashMap::new(), trusted: false, generation: 0, records: 0, ignored_tail_bytes: 0 };
    let apply = |out: &mut Loaded, path: PathBuf, rec: Rec, from_zone: u64| {
        out.files.entry(path).or_default().apply(rec.rezone(from_zone, zone_bytes), zone_bytes);
        out.records += 1;
    };
    let Some(snap) = snap else {
        // No snapshot: a first start, a lost directory, or a log that failed and said so.
        if let Some(log) = log {
            if let Some((z, gen)) = parse_log_header(&log) {
                out.generation = gen;
                let (recs, _) = parse_records(&log[LOG_HEADER_BYTES..]);
                for (p, r) in recs {
                    apply(&mut out, p, r, z);
                }
            }
        }
        return Ok(out);
    };
    let Some((snap_zone, generation, flags, count)) = parse_snap_header(&snap) else {
        return Ok(out);
    };
    out.generation = generation;
    let (recs, rest) = parse_records(&snap[SNAP_HEADER_BYTES..]);
    let snap_ok = recs.len() as u64 == count && rest == 0;
    for (p, r) in recs {
        apply(&mut out, p, r, snap_zone);
    }
    let mut log_ok = false;
    if let Some(log) = log {
        if let Some((z, gen)) = parse_log_header(&log) {
            out.generation = out.generation.max(gen);
            if gen == generation {
                let (recs, rest) = parse_records(&log[LOG_HEADER_BYTES..]);
                for (p, r) in recs {
                    apply(&mut out, p, r, z);
                }
                out.ignored_tail_bytes = rest as u64;
                log_ok = true;
            } else {
                // An older log: a compaction wrote the snapshot and stopped before replacing
                // the log, whose records the snapshot holds. A newer one cannot happen.
                log_ok = gen < generation;
            }
        }
    }
    out.trusted = snap_ok && log_ok && flags & SNAP_TRUSTED != 0;
    Ok(out)
}

fn parse_snap_header(b: &[u8]) -> Option<(u64, u64, u64, u64)> {
    if b.len() < SNAP_HEADER_BYTES || &b[..8] != SNAP_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[40..44].try_into().unwrap());
    if crc32c(&b[..40]) != crc {
        return None;
    }
    let z = u64_at(b, 8);
    if !(ZONE_BYTES_MIN..=ZONE_BYTES_MAX).contains(&z) || !z.is_power_of_two() {
        return None;
    }
    Some((z, u64_at(b, 16), u64_at(b, 24), u64_at(b, 32)))
}

fn parse_log_header(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() < LOG_HEADER_BYTES || &b[..8] != LOG_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[24..28].try_into().unwrap());
    if crc32c(&b[..24]) != crc {
        return None;
    }
    let z = u64_at(b, 8);
    if !(ZONE_BYTES_MIN..=ZONE_BYTES_MAX).contains(&z) || !z.is_power_of_two() {
        return None;
    }
    Some((z, u64_at(b, 16)))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The valid records from the start, and how many bytes after them were not (a torn tail).
fn parse_records(mut b: &[u8]) -> (Vec<(PathBuf, Rec)>, usize) {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(b[4..8].try_into().unwrap());
        if !(PAYLOAD_FIXED_BYTES..=PAYLOAD_BYTES_MAX).contains(&len) || b.len() < 8 + len {
            break;
        }
        let p = &b[8..8 + len];
        if crc32c(p) != crc {
            break;
        }
        let (a, bb) = (u64_at(p, 1), u64_at(p, 9));
        let rec = match p[0] {
            KIND_ZONES if a <= bb => Rec::Zones { first: a, last: bb },
            KIND_TO_END => Rec::ToEnd { offset: a },
            KIND_ENTRY => Rec::Entry,
            _ => break,
        };
        out.push((PathBuf::from(OsStr::from_bytes(&p[PAYLOAD_FIXED_BYTES..])), rec));
        b = &b[8 + len..];
    }
    (out, b.len())
}

fn encode_record(out: &mut Vec<u8>, path: &Path, rec: Rec) {
    let name = path.as_os_str().as_bytes();
    assert!(name.len() <= PAYLOAD_BYTES_MAX - PAYLOAD_FIXED_BYTES, "path of {} bytes", name.len());
    let (kind, a, b) = match rec {
        Rec::Zones { first, last } => (KIND_ZONES, first, last),
        Rec::ToEnd { offset } => (KIND_TO_END, offset, 0),
        Rec::Entry => (KIND_ENTRY, 0, 0),
    };
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    out.push(kind);
    out.extend_from_slice(&a.to_le_bytes());
    out.extend_from_slice(&b.to_le_bytes());
    out.extend_from_slice(name);
    let len = out.len() - start - 8;
    let crc = crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically: temp file, fsync, rename, fsync of the directory.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// A snapshot of `files` at `generation`, then an empty log of the same generation, each
/// replaced atomically and in this order (a crash between the two leaves a newer snapshot and
/// an older log, whose records the snapshot holds). Returns the snapshot's size and the new
/// log, open for appending.
fn write_snapshot_and_log(
    dir: &Path,
    zone_bytes: u64,
    generation: u64,
    trusted: bool,
    files: &HashMap<PathBuf, FileDirt>,
) -> io::Result<(u64, File)> {
    let mut body = Vec::new();
    let mut count = 0u64;
    for (path, d) in files {
        for rec in d.records() {
            encode_record(&mut body, path, rec);
            count += 1;
        }
    }
    let mut snap = Vec::with_capacity(SNAP_HEADER_BYTES + body.len());
    snap.extend_from_slice(SNAP_MAGIC);
    snap.extend_from_slice(&zone_bytes.to_le_bytes());
    snap.extend_from_slice(&generation.to_le_bytes());
    snap.extend_from_slice(&(if trusted { SNAP_TRUSTED } else { 0 }).to_le_bytes());
    snap.extend_from_slice(&count.to_le_bytes());
    snap.extend_from_slice(&crc32c(&snap).to_le_bytes());
    snap.extend_from_slice(&body);
    replace_file(dir, SNAP_NAME, &snap)?;

    let mut log = Vec::with_capacity(LOG_HEADER_BYTES);
    log.extend_from_slice(LOG_MAGIC);
    log.extend_from_slice(&zone_bytes.to_le_bytes());
    log.extend_from_slice(&generation.to_le_bytes());
    log.extend_from_slice(&crc32c(&log).to_le_bytes());
    replace_file(dir, LOG_NAME, &log)?;
    let file = OpenOptions::new().append(true).open(dir.join(LOG_NAME))?;
    Ok((snap.len() as u64, file))
}

// --- CRC-32C (Castagnoli), as in iSCSI and ext4 metadata ---------------------------------------

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32C_TABLE: [u32; 256] = crc32c_table();

fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32C_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_check_value() {
        // RFC 3720 B.4 / the "123456789" check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn zone_runs_merge_and_cover() {
        let z = 65536;
        let mut d = FileDirt::default();
        d.apply(Rec::Zones { first: 5, last: 6 }, z);
        d.apply(Rec::Zones { first: 8, last: 8 }, z);
        d.apply(Rec::Zones { first: 7, last: 7 }, z);
        assert_eq!(d.zones.iter().map(|(&a, &b)| (a, b)).collect::<Vec<_>>(), vec![(5, 8)]);
        assert!(d.covers(Rec::Zones { first: 6, last: 8 }, z));
        assert!(!d.covers(Rec::Zones { first: 4, last: 5 }, z));
        d.apply(Rec::Zones { first: 0, last: 1 }, z);
        d.apply(Rec::Zones { first: 1, last: 20 }, z);
        assert_eq!(d.zones.iter().map(|(&a, &b)| (a, b)).collect::<Vec<_>>(), vec![(0, 20)]);
        d.apply(Rec::ToEnd { offset: 3 * z + 5 }, z);
        assert_eq!(d.ranges(z), vec![(0, TO_END)]);
        assert!(d.covers(Rec::Zones { first: 1000, last: 2000 }, z));
        assert!(d.entry);
    }

    #[test]
    fn rezoning_covers_the_same_bytes() {
        let r = Rec::Zones { first: 3, last: 4 }.rezone(65536, 1 << 20);
        assert_eq!(r, Rec::Zones { first: 0, last: 0 });
        let r = Rec::Zones { first: 1, last: 1 }.rezone(1 << 20, 65536);
        assert_eq!(r, Rec::Zones { first: 16, last: 31 });
    }
}
