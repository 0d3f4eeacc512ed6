//! A [`DirtyLog`] with its single-writer policy: the log directory is held under an exclusive
//! flock(2) on `<dir>/dirty.lock` for as long as the log is open, by a mount or by a reader
//! after a crash, so a second opener (this process or another) fails instead of corrupting it.
//! Also the bytes a dirty log still has to copy, clipped to the files' sizes now.

use crate::dirtylog::DirtyLog;
use crate::sys::HeldDir;
use crate::tracker::{ActivityLog, DirtyTracker};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lock file in a dirty log's directory.
pub const DIRTY_LOCK_NAME: &str = "dirty.lock";

/// Why a dirty log could not be opened.
#[derive(Debug)]
pub enum OpenLogError {
    /// Another opener holds the directory's lock.
    Busy { dir: PathBuf },
    /// Creating the directory, the lock file, or reading the log failed.
    Io { dir: PathBuf, source: io::Error },
}

impl fmt::Display for OpenLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenLogError::Busy { dir } => write!(
                f,
                "cannot open the dirty log in {}: it is already open (by a mount or another reader, here or in another process)",
                dir.display()
            ),
            OpenLogError::Io { dir, source } => write!(f, "cannot open the dirty log in {}: {source}", dir.display()),
        }
    }
}

impl std::error::Error for OpenLogError {}

/// A `DirtyLog` with the flock that makes this opener its only writer; used as a mount's
/// tracker, so the lock lives as long as the mirror may still mark.
pub struct LockedLog {
    log: Arc<DirtyLog>,
    /// Held open: closing it releases the flock.
    _lock: File,
}

impl fmt::Debug for LockedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedLog").field("dir", &self.log.dir()).finish()
    }
}

impl LockedLog {
    /// Creates `dir` if needed, takes its lock (never waits) and opens the log. Blocking
    /// (directory creation, flock, replay, a snapshot with fsyncs): not for an event loop thread.
    pub fn open(dir: &Path, zone_bytes: u64) -> Result<LockedLog, OpenLogError> {
        let io_err = |source| OpenLogError::Io { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(DIRTY_LOCK_NAME))
            .map_err(io_err)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(OpenLogError::Busy { dir: dir.to_path_buf() });
            }
            return Err(io_err(e));
        }
        let log = Arc::new(DirtyLog::open(dir, zone_bytes).map_err(io_err)?);
        Ok(LockedLog { log, _lock: lock })
    }

    pub fn log(&self) -> &Arc<DirtyLog> {
        &self.log
    }

    /// Bytes still to copy, clipped to the sizes of the files under `data_dir` now. The sizes
    /// are lstat'ed before the log's lock is taken: `data_dir` may be a mount served by this
    /// process, whose FUSE threads take that lock in `mark`. Regular files count their size;
    /// anything else (gone, directory, symlink, device) counts 0: reintegration recreates or
    /// removes it as an entry.
    pub fn dirty_bytes_under(&self, data_dir: &Path) -> u64 {
        // Through the directory held open: a symlink in the (unmounted) tree is never followed.
        let held = HeldDir::open(data_dir).ok();
        let sizes: HashMap<PathBuf, u64> = self
            .log
            .entries()
            .into_iter()
            .map(|e| {
                let size = held
                    .as_ref()
                    .and_then(|h| h.lstat(&e.path).ok())
                    .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
                    .map_or(0, |st| st.st_size as u64);
                (e.path, size)
            })
            .collect();
        self.log.dirty_bytes(|p| sizes.get(p).copied())
    }
}

impl DirtyTracker for LockedLog {
    fn mark(&self, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        self.log.mark(path, offset, len)
    }

    fn activity_log(&self) -> Option<&dyn ActivityLog> {
        Some(&*self.log)
    }
}
