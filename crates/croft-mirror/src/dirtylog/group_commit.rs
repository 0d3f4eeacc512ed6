//! The group commit: concurrent marks share one fdatasync (the first waiter leads: it writes
//! and syncs everything queued so far, or compacts, or repairs a failing log; the others wait),
//! and the failing / repaired transitions (see the module doc).

use super::files::{write_snapshot_and_log, LOG_HEADER_BYTES};
use super::{DirtyLog, State, REPAIR_EVERY};
use crate::locks::{waited, Locked};
use std::io::{self, Write};
use std::sync::MutexGuard;

impl DirtyLog {
    pub(super) fn lead_exclusively(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.locked();
        while st.leading {
            st = waited(self.cv.wait(st));
        }
        st.leading = true;
        st
    }

    /// The leader is done with records up to `end`: durable if `ok`, failed otherwise.
    pub(super) fn finish_leading(&self, st: &mut State, end: u64, ok: bool) {
        st.processed_lsn = st.processed_lsn.max(end);
        if ok {
            st.durable_lsn = st.durable_lsn.max(end);
        }
        st.leading = false;
        self.cv.notify_all();
    }

    /// Returns once record `target` is durable, leading a group commit if nobody is; the error
    /// when the group that held it failed.
    pub(super) fn wait_durable<'a>(&'a self, mut st: MutexGuard<'a, State>, target: u64) -> io::Result<()> {
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
    pub(super) fn compact_leading<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
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
    pub(super) fn fail(&self, st: &mut State, what: &str) {
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
    pub(super) fn repaired(&self, st: &mut State) {
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
