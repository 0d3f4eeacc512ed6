//! Dirty tracking: what changed while the peer could not acknowledge it. The link marks through
//! [`DirtyTracker`]; a tracker that keeps a durable record exposes it as an [`ActivityLog`] (the
//! dirty log, [`crate::DirtyLog`], is one); [`DirtyPaths`] is the in-memory one. It depends on nothing
//! else of the crate but its lock helper.

use crate::locks::Locked;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One dirty path, as reintegration needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyEntry {
    /// Relative to the replicated directory (empty: the directory itself).
    pub path: PathBuf,
    /// Dirty byte ranges `(start, len)`, zone-aligned, merged, sorted; the last one has
    /// `len == TO_END` when the file is dirty to its end.
    pub zones: Vec<(u64, u64)>,
    /// The entry itself changed: metadata, created, removed, renamed (from or to), linked,
    /// truncated. Reintegration looks at what is there now: copies it, or removes it on the peer.
    pub entry_changed: bool,
    /// The lowest byte offset from which the file was dirty to its end: a truncate to this
    /// size, or 0 when the whole file may be another one (rename, link).
    pub to_end_from: Option<u64>,
}

/// Records what changed while the peer could not acknowledge it, so that reintegration copies
/// only that. `mark` is called on the FUSE thread before the application's call returns; an
/// implementation that must be durable (the dirty log) makes the record durable before it returns.
pub trait DirtyTracker: Send + Sync {
    /// `len == 0`: the entry `path` itself changed (created, removed, metadata);
    /// otherwise bytes `[offset, offset + len)` of it, `len == op::TO_END` meaning to the end.
    /// `Err`: the record could not be made durable; the application's call then fails (EIO)
    /// and, with an activity log, the change is not applied (issue 8, finding 11).
    fn mark(&self, path: &Path, offset: u64, len: u64) -> io::Result<()>;

    /// The durable log behind this tracker, if any. With one, every change is marked BEFORE it
    /// is applied locally, in every mode (an activity log, as DRBD's): after a crash of this node
    /// the log lists every zone that may differ from the peer, including changes applied here
    /// and never acknowledged. Reintegration reads it and clears it at the end.
    fn activity_log(&self) -> Option<&dyn ActivityLog> {
        None
    }
}

/// What the link, the mount and reintegration need of a durable dirty log
/// ([`crate::DirtyLog`] is the implementation).
pub trait ActivityLog: Send + Sync {
    /// The zone size its byte ranges are aligned to.
    fn zone_bytes(&self) -> u64;
    /// Nothing is dirty.
    fn is_empty(&self) -> bool;
    /// What is dirty, one entry per path.
    fn entries(&self) -> Vec<DirtyEntry>;
    /// Forgets everything, durably (the peer holds all of it).
    fn clear(&self) -> io::Result<()>;
}

/// An in-memory [`DirtyTracker`]: the set of paths touched while alone (not crash-safe).
#[derive(Debug, Default)]
pub struct DirtyPaths {
    paths: Mutex<std::collections::BTreeSet<PathBuf>>,
}

impl DirtyPaths {
    pub fn new() -> DirtyPaths {
        DirtyPaths::default()
    }
    pub fn paths(&self) -> Vec<PathBuf> {
        self.paths.locked().iter().cloned().collect()
    }
}

impl DirtyTracker for DirtyPaths {
    fn mark(&self, path: &Path, _offset: u64, _len: u64) -> io::Result<()> {
        self.paths.locked().insert(path.to_path_buf());
        Ok(())
    }
}
