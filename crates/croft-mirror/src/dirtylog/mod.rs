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
//!
//! Files by concern: this one holds the public face (options, stats, open, clear, compact, the
//! tracker); [`zones`] a path's dirty state; [`group_commit`] how marks become durable together
//! and how the log fails and heals; [`files`] the snapshot and log formats and their replay.

mod files;
mod group_commit;
mod zones;

pub use crate::tracker::DirtyEntry;
use crate::tracker::{ActivityLog, DirtyTracker};
use crate::op::TO_END;
use files::{encode_record, load, write_snapshot_and_log, LOG_HEADER_BYTES};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use crate::locks::Locked;
use zones::{FileDirt, Rec};

/// Smallest zone: below it the bitmap and the log grow for little saving in bytes copied.
pub const ZONE_BYTES_MIN: u64 = 64 << 10;
/// Largest zone: beyond it a 4 KiB random write costs too much to copy back (DESIGN.md).
pub const ZONE_BYTES_MAX: u64 = 1 << 20;
/// The log is compacted into a snapshot beyond this size (or the last snapshot's size if
/// larger): replay at open stays short, and compaction never runs in a loop for a big state.
pub const COMPACT_AFTER_BYTES_DEFAULT: u64 = 4 << 20;

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

