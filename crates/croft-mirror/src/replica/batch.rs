//! Applying a batch: each operation in sequence order (a gap or a failure is refused with a
//! nack), each file or directory it touched fsync'd once at `durable`, then one cumulative ack.

use super::{Shared, DESCRIBE_CHARS_MAX, FD_CACHE_MAX};
use crate::apply;
use crate::locks::Locked;
use crate::op::Op;
use crate::sys::{self, HeldDir};
use crate::wire::{self, AckLevel, Sealed};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(super) fn apply_batch(
    shared: &Shared,
    cache: &mut FdCache,
    writer: &mut Sealed,
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
        let mut moved = false;
        for p in &to_sync {
            if let Err(e) = cache.sync(&shared.dir, p) {
                // A path removed, or whose parent was renamed or replaced, later in the same
                // batch no longer names what was written: its data may live elsewhere now, so
                // the whole filesystem is synced once below. Anything else is fatal.
                if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) {
                    moved = true;
                } else {
                    let m = format!("fsync of {p:?} failed: {e}");
                    let _ = writer.write_all(&wire::nack_frame(last, sys::errno_of(&e), &m));
                    return Err(m);
                }
            }
        }
        if moved {
            if let Err(e) = sync_all(&shared.dir) {
                let m = format!("syncfs of the replicated directory failed: {e}");
                let _ = writer.write_all(&wire::nack_frame(last, sys::errno_of(&e), &m));
                return Err(m);
            }
        }
        {
            let mut st = shared.status.locked();
            st.applied_ops += batch.len() as u64;
            st.acked_seq = last;
        }
        writer
            .write_all(&wire::ack_frame(last))
            .map_err(|e| format!("sending an ack: {e}"))?;
    }
    Ok(())
}

/// syncfs(2) of the filesystem that holds the replicated directory.
fn sync_all(dir: &HeldDir) -> io::Result<()> {
    let fd = dir.open_at(Path::new(""), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    // SAFETY: syncfs on a descriptor this function owns.
    if unsafe { libc::syncfs(fd.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn describe(op: &Op) -> String {
    let s = format!("{op:?}");
    // Do not put a whole write's data in a message.
    match op {
        Op::Write { path, offset, data } => {
            truncate_chars(&format!("Write {{ path: {path:?}, offset: {offset}, len: {} }}", data.len()), DESCRIBE_CHARS_MAX)
        }
        _ => truncate_chars(&s, DESCRIBE_CHARS_MAX),
    }
}

/// At most `max` characters of `s` (never cut inside one), with an ellipsis when cut.
pub(super) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Open descriptors for data operations, dropped whenever the namespace changes (a cached path
/// could then name another file).
#[derive(Default)]
pub(super) struct FdCache {
    fds: HashMap<PathBuf, OwnedFd>,
}

impl FdCache {
    pub(super) fn clear(&mut self) {
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

    pub(super) fn apply(&mut self, dir: &HeldDir, op: &Op) -> io::Result<()> {
        match op {
            Op::Write { path, offset, data } => sys::pwrite_all(self.fd(dir, path)?.as_raw_fd(), data, *offset),
            Op::Truncate { path, size } => sys::ftruncate(self.fd(dir, path)?.as_raw_fd(), *size),
            Op::Fallocate { path, mode, offset, len } => {
                sys::fallocate(self.fd(dir, path)?.as_raw_fd(), *mode, *offset, *len)
            }
            Op::Fsync { path, datasync } => match self.fds.get(path.as_path()) {
                Some(fd) => sys::fsync(fd.as_raw_fd(), *datasync),
                None => apply::sync_path(dir, path, *datasync),
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
                apply::apply(dir, op)
            }
            _ => apply::apply(dir, op),
        }
    }

    pub(super) fn sync(&mut self, dir: &HeldDir, path: &Path) -> io::Result<()> {
        match self.fds.get(path) {
            Some(fd) => sys::fsync(fd.as_raw_fd(), false),
            None => apply::sync_path(dir, path, false),
        }
    }
}
