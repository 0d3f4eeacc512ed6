//! Open files: open, read, write, fsync, fallocate. A write goes the one way of the module doc;
//! a file unlinked while open is reached through its descriptor only, and nothing replicates.

use super::{errno, unrecorded, HandleKind, MirrorFs};
use crate::link::AckedOp;
use crate::locks::Locked;
use crate::op::Op;
use crate::sys;
use fuser::{Errno, FileHandle, INodeNo, OpenFlags};
use std::os::fd::AsRawFd;

/// Open flags kept on the descriptor underneath. O_APPEND is dropped because the kernel already
/// turned it into an offset (pwrite on an O_APPEND descriptor would ignore that offset); O_DIRECT
/// because FUSE's buffers are not aligned; creation flags because the file exists by now.
pub(super) fn backing_flags(flags: i32) -> i32 {
    flags & (libc::O_ACCMODE | libc::O_SYNC | libc::O_DSYNC | libc::O_NOATIME)
}

impl MirrorFs {
    /// [`backing_flags`], read-write instead of write-only under the writeback cache: the kernel
    /// then reads pages through any descriptor of the file (to fill a partly written page).
    pub(super) fn backing(&self, flags: i32) -> i32 {
        let f = backing_flags(flags);
        if self.writeback && f & libc::O_ACCMODE == libc::O_WRONLY {
            (f & !libc::O_ACCMODE) | libc::O_RDWR
        } else {
            f
        }
    }

    pub(super) fn do_open(&self, ino: INodeNo, flags: OpenFlags) -> Result<FileHandle, Errno> {
        let path = self.path(ino)?;
        let fd = self.dir.open_at(&path, self.backing(flags.0), 0).map_err(errno)?;
        if flags.0 & libc::O_TRUNC != 0 && flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            // Only with atomic_o_trunc, which croft does not ask for; handled all the same.
            let guard = self.order.locked();
            let op = Op::Truncate { path, size: 0 };
            self.repl.before_apply(std::slice::from_ref(&op)).map_err(unrecorded)?;
            sys::ftruncate(fd.as_raw_fd(), 0).map_err(errno)?;
            let _proof = self.commit(guard, &[op])?;
        }
        let sync = flags.0 & (libc::O_SYNC | libc::O_DSYNC) != 0;
        let datasync_only = flags.0 & libc::O_SYNC != libc::O_SYNC;
        let writable = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        Ok(self.add_handle(ino.0, HandleKind::File { fd, sync, datasync_only, writable }))
    }

    pub(super) fn do_read(&self, fh: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let h = self.handle(fh)?;
        let fd = Self::file_fd(&h)?;
        let mut buf = vec![0u8; size as usize];
        let n = sys::pread(fd, &mut buf, offset).map_err(errno)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub(super) fn do_write(&self, fh: FileHandle, offset: u64, data: &[u8]) -> Result<AckedOp, Errno> {
        let h = self.handle(fh)?;
        let HandleKind::File { fd, sync, datasync_only, .. } = &h.kind else { return Err(Errno::EISDIR) };
        let guard = self.order.locked();
        let Some(path) = self.table.locked().path(h.node) else {
            sys::pwrite_all(fd.as_raw_fd(), data, offset).map_err(errno)?;
            return Ok(AckedOp::unnamed());
        };
        let mut ops = vec![Op::Write { path: path.clone(), offset, data: data.to_vec() }];
        self.repl.before_apply(&ops).map_err(unrecorded)?;
        sys::pwrite_all(fd.as_raw_fd(), data, offset).map_err(errno)?;
        if *sync {
            // O_SYNC/O_DSYNC: durable here (the descriptor has the flag) and on the peer.
            ops.push(Op::Fsync { path, datasync: *datasync_only });
        }
        self.commit(guard, &ops)
    }

    /// close(2). Under `EveryChange` every change through this file was acknowledged before its
    /// call returned; wait for anything other threads still have in flight, so close is a
    /// barrier too. Under `OnSync` the close of a file opened for writing is a sync point
    /// (close-to-open, as NFS): the kernel has written its cached pages back before this
    /// request, and it returns once everything sent before is acknowledged. The close of a
    /// read-only descriptor makes nothing durable and does not wait.
    pub(super) fn do_flush(&self, fh: FileHandle) -> Result<AckedOp, Errno> {
        if self.on_sync() {
            let h = self.handle(fh)?;
            if matches!(h.kind, HandleKind::File { writable: false, .. }) {
                return Ok(AckedOp::unnamed());
            }
        }
        self.repl.wait(self.repl.barrier()).map_err(|()| Errno::EIO)
    }

    pub(super) fn do_fsync(&self, node: u64, fd: i32, datasync: bool) -> Result<AckedOp, Errno> {
        if self.on_sync() {
            // The peer's fsync overlaps the local one: the Fsync op is sequenced first (after
            // every change already handed over, which is what it must cover), then the local
            // fsync runs while it travels, then the ack is awaited. Both must succeed.
            let guard = self.order.locked();
            let path = self.table.locked().path(node);
            let ticket = path.map(|path| self.repl.replicate(&[Op::Fsync { path, datasync }]));
            drop(guard);
            let local = sys::fsync(fd, datasync).map_err(errno);
            let acked = match ticket {
                Some(t) => self.repl.settle(t, true).map_err(|()| Errno::EIO),
                None => Ok(AckedOp::unnamed()),
            };
            local?;
            return acked;
        }
        // The local fsync does not need the order lock (it changes nothing); the Fsync op is
        // sequenced after every change already handed over, which is what it must cover.
        sys::fsync(fd, datasync).map_err(errno)?;
        let guard = self.order.locked();
        let Some(path) = self.table.locked().path(node) else {
            return Ok(AckedOp::unnamed());
        };
        self.commit(guard, &[Op::Fsync { path, datasync }])
    }

    pub(super) fn do_fallocate(&self, fh: FileHandle, offset: u64, length: u64, mode: i32) -> Result<AckedOp, Errno> {
        let h = self.handle(fh)?;
        let fd = Self::file_fd(&h)?;
        let guard = self.order.locked();
        let Some(path) = self.table.locked().path(h.node) else {
            sys::fallocate(fd, mode, offset, length).map_err(errno)?;
            return Ok(AckedOp::unnamed());
        };
        let op = Op::Fallocate { path, mode, offset, len: length };
        self.repl.before_apply(std::slice::from_ref(&op)).map_err(unrecorded)?;
        sys::fallocate(fd, mode, offset, length).map_err(errno)?;
        self.commit(guard, &[op])
    }
}
