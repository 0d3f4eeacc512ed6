//! The FUSE filesystem mounted over the replicated directory: a passthrough to the held directory
//! underneath in which every change is applied locally, sent to the peer, and answered only once
//! the peer acknowledged it (or the fail mode handled its loss).
//!
//! Ordering: a change is applied locally and handed to the replicator under one lock (`order`),
//! so sequence numbers follow local application order; the wait for the ack happens outside it,
//! so several application threads can have changes in flight. Every request gets exactly one
//! reply: each handler ends in exactly one `reply.*` call on every path.
//!
//! Not supported, with a clear error: POSIX/BSD locks are not forwarded (the kernel keeps them
//! local to this node, which is right while one node runs the application: getlk/setlk answer
//! ENOSYS if asked), copy_file_range (ENOSYS: the kernel falls back to read/write, which are
//! replicated), ioctl (ENOTTY), bmap and poll (ENOSYS), RENAME_WHITEOUT (EINVAL).

//!
//! Files by concern: this one holds the filesystem's state and the path every change takes
//! (apply locally, hand to the replicator, wait for the ack); [`reply`] the one way a request is
//! answered; [`attr`] the conversions between `stat` and FUSE's attributes; [`names`] the
//! namespace operations (entries created, removed, renamed, linked); [`data`] open files (read,
//! write, fsync, fallocate); [`meta`] attributes and xattrs; [`dir`] directory listings;
//! [`filesystem`] the `fuser::Filesystem` table, which only routes each request to one of those.

mod attr;
mod data;
mod dir;
mod filesystem;
mod meta;
mod names;
mod reply;
mod tuning;

use crate::link::{AckedOp, Replicator, SyncMode};
use crate::apply;
use crate::op::Op;
use crate::sys::{self, HeldDir};
use crate::table::Table;
use attr::attr;
use fuser::{Errno, FileAttr, FileHandle, Generation, INodeNo, Request};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use crate::locks::Locked;

/// Attribute and entry cache time: see [`tuning`] (nothing but this filesystem changes the
/// directory underneath while it is mounted, so the kernel's cache stays right).
fn ttl() -> Duration {
    tuning::tuning().ttl
}
const GEN: Generation = Generation(0);

enum HandleKind {
    /// `writable`: opened for writing (its close is a sync point under `SyncMode::OnSync`).
    File { fd: OwnedFd, sync: bool, datasync_only: bool, writable: bool },
    /// A directory listing taken at opendir: readdir offsets index into it.
    Dir { entries: Vec<(OsString, u64, u32)> },
}

struct Handle {
    node: u64,
    kind: HandleKind,
}

pub(crate) struct MirrorFs {
    dir: Arc<HeldDir>,
    table: Mutex<Table>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    /// Held while a change is applied locally and handed to the replicator (see module doc).
    /// Shared with the mirror: reintegration and verify take it to stop changes for a moment.
    order: Arc<Mutex<()>>,
    repl: Arc<Replicator>,
    /// The kernel's writeback cache is on (set at init): it may read through a descriptor opened
    /// write-only, so those are opened read-write underneath.
    writeback: bool,
    /// Extended attributes served (MirrorConfig::xattrs); false: every xattr request is ENOSYS,
    /// which the kernel remembers (EOPNOTSUPP to the application, no more requests).
    pub(crate) xattrs: bool,
}

fn errno(e: io::Error) -> Errno {
    Errno::from_i32(sys::errno_of(&e))
}

/// The dirty log could not record a change (a full disk, say): the change is not applied and
/// the application gets EIO, whatever the log's own error was (issue 8, finding 11). The log
/// logs and counts the failure itself.
fn unrecorded(_e: io::Error) -> Errno {
    Errno::EIO
}

impl MirrorFs {
    pub(crate) fn new(dir: Arc<HeldDir>, repl: Arc<Replicator>, order: Arc<Mutex<()>>) -> io::Result<MirrorFs> {
        let root = dir.lstat(Path::new(""))?;
        Ok(MirrorFs {
            dir,
            table: Mutex::new(Table::new(root.st_ino)),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            order,
            repl,
            writeback: false,
            xattrs: true,
        })
    }

    fn path(&self, node: INodeNo) -> Result<PathBuf, Errno> {
        self.table.locked().path(node.0).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        if name.as_bytes().contains(&b'/') || name == "." || name == ".." {
            return Err(Errno::EINVAL);
        }
        Ok(self.path(parent)?.join(name))
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Handle>, Errno> {
        self.handles.locked().get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn file_fd(h: &Handle) -> Result<i32, Errno> {
        match &h.kind {
            HandleKind::File { fd, .. } => Ok(fd.as_raw_fd()),
            HandleKind::Dir { .. } => Err(Errno::EISDIR),
        }
    }

    fn add_handle(&self, node: u64, kind: HandleKind) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.locked().insert(fh, Arc::new(Handle { node, kind }));
        FileHandle(fh)
    }

    /// Looks `path` up (counting a kernel lookup) and returns its attributes.
    fn lookup_path(&self, path: &Path) -> Result<FileAttr, Errno> {
        let mut t = self.table.locked();
        let st = self.dir.lstat(path).map_err(errno)?;
        let id = t.lookup(path, st.st_ino, st.st_mode & libc::S_IFMT);
        Ok(attr(id, &st))
    }

    /// Owner of a new entry: the caller, with the group of a set-group-ID parent (as the kernel
    /// does for local filesystems: inode_init_owner). Returns also whether the parent is setgid.
    fn owner(&self, req: &Request, parent: &Path) -> Result<(u32, u32, bool), Errno> {
        let pst = self.dir.lstat(parent).map_err(errno)?;
        let sgid = pst.st_mode & libc::S_ISGID != 0;
        Ok((req.uid(), if sgid { pst.st_gid } else { req.gid() }, sgid))
    }

    /// Hands the locally applied `ops` to the replicator, releases the order lock and waits for
    /// the acknowledgement: always under `SyncMode::EveryChange`, under `OnSync` only when the
    /// ops make data durable (an `Fsync`, as a write on an O_SYNC/O_DSYNC descriptor carries).
    /// `ops` empty: nothing changed, nothing to wait for.
    fn commit(&self, guard: MutexGuard<'_, ()>, ops: &[Op]) -> Result<AckedOp, Errno> {
        if ops.is_empty() {
            drop(guard);
            return Ok(AckedOp::unnamed());
        }
        let ticket = self.repl.replicate(ops);
        drop(guard);
        let sync_point = ops.iter().any(|op| matches!(op, Op::Fsync { .. }));
        // Err: fenced (FailMode::Fence), or closing while blocked (FailMode::Block): applied
        // locally, never acknowledged.
        self.repl.settle(ticket, sync_point).map_err(|()| Errno::EIO)
    }

    fn on_sync(&self) -> bool {
        self.repl.mode() == SyncMode::OnSync
    }

    /// Applies a path-based operation locally (same code as the replica) and commits it.
    fn apply_commit(&self, op: Op, after: impl FnOnce(&mut Table)) -> Result<AckedOp, Errno> {
        let guard = self.order.locked();
        self.repl.before_apply(std::slice::from_ref(&op)).map_err(unrecorded)?;
        apply::apply(&self.dir, &op).map_err(errno)?;
        after(&mut self.table.locked());
        self.commit(guard, std::slice::from_ref(&op))
    }
}
