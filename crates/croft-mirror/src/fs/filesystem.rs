//! The `fuser::Filesystem` table: each request is routed to the handler of its concern and
//! answered once through [`answer`]; the operations croft does not support answer their errno
//! here (see the module doc).

use super::attr::attr;
use super::reply::{answer, created, entry, ok, open_flags, written};
use super::{errno, ttl, tuning::tuning, MirrorFs, GEN};
use crate::locks::Locked;
use crate::sys;
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents, PollFlags, PollNotifier, RenameFlags, ReplyAttr,
    ReplyBmap, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::time::SystemTime;

impl Filesystem for MirrorFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // READDIRPLUS saves a lookup round trip per entry; without it readdir + lookup work too.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        let t = tuning();
        if t.parallel_dirops {
            let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        }
        // The kernel holds written pages until writeback, fsync or close: the on-sync contract
        // (see tuning.rs). Without the capability, writes go through as in every-change.
        if self.on_sync() && t.writeback {
            self.writeback = config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE).is_ok();
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.handles.locked().clear();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        answer(reply, self.do_lookup(parent, name), |reply, a| reply.entry(&ttl(), &a, GEN));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.table.locked().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.do_getattr(ino, fh);
        answer(reply, r, |reply, st| reply.attr(&ttl(), &attr(ino.0, &st)));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        answer(reply, self.do_setattr(ino, mode, uid, gid, size, atime, mtime, fh), |reply, a| reply.attr(&ttl(), &a));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        answer(reply, self.path(ino).and_then(|p| self.dir.readlink(&p).map_err(errno)), |reply, t| reply.data(&t));
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let r = self.do_mknod(req, parent, name, mode, umask, rdev);
        answer(reply, r, |reply, (a, proof)| entry(reply, &a, proof));
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let r = self.do_mkdir(req, parent, name, mode, umask);
        answer(reply, r, |reply, (a, proof)| entry(reply, &a, proof));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.do_unlink(parent, name);
        answer(reply, r, ok);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.do_rmdir(parent, name);
        answer(reply, r, ok);
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let r = self.do_symlink(req, parent, link_name, target);
        answer(reply, r, |reply, (a, proof)| entry(reply, &a, proof));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        answer(reply, self.do_rename(parent, name, newparent, newname, flags.bits()), ok);
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let r = self.do_link(ino, newparent, newname);
        answer(reply, r, |reply, (a, proof)| entry(reply, &a, proof));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = self.do_open(ino, flags);
        answer(reply, r, |reply, fh| reply.opened(fh, open_flags()));
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.do_read(fh, offset, size);
        answer(reply, r, |reply, buf| reply.data(&buf));
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        answer(reply, self.do_write(fh, offset, data), |reply, proof| written(reply, data.len() as u32, proof));
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        answer(reply, self.do_flush(fh), ok);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles.locked().remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let r = self
            .handle(fh)
            .and_then(|h| Self::file_fd(&h).map(|fd| (h, fd)))
            .and_then(|(h, fd)| self.do_fsync(h.node, fd, datasync));
        answer(reply, r, ok);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let flags = if tuning().cache_dir { FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
        answer(reply, self.do_opendir(ino), |reply, fh| reply.opened(fh, flags));
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let r = self.do_readdir(ino, fh, offset, &mut reply);
        answer(reply, r, |reply, ()| reply.ok());
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let r = self.do_readdirplus(ino, fh, offset, &mut reply);
        answer(reply, r, |reply, ()| reply.ok());
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.handles.locked().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let r = self.do_fsyncdir(ino, datasync);
        answer(reply, r, ok);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        answer(reply, self.dir.statvfs().map_err(errno), |reply, s| {
            reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            )
        });
    }

    fn setxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, value: &[u8], flags: i32, position: u32, reply: ReplyEmpty) {
        if !self.xattrs {
            reply.error(Errno::ENOSYS);
            return;
        }
        let r = self.do_setxattr(ino, name, value, flags, position);
        answer(reply, r, ok);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if !self.xattrs || !tuning().getxattr {
            reply.error(Errno::ENOSYS);
            return;
        }
        let r = self.do_getxattr(ino, name, size);
        answer(reply, r, |reply, (len, data)| if size == 0 { reply.size(len as u32) } else { reply.data(&data) });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if !self.xattrs {
            reply.error(Errno::ENOSYS);
            return;
        }
        let r = self.do_listxattr(ino, size);
        answer(reply, r, |reply, (len, data)| if size == 0 { reply.size(len as u32) } else { reply.data(&data) });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if !self.xattrs {
            reply.error(Errno::ENOSYS);
            return;
        }
        answer(reply, self.do_removexattr(ino, name), ok);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        answer(reply, self.do_access(req, ino, mask), |reply, ()| reply.ok());
    }

    fn create(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, flags: i32, reply: ReplyCreate) {
        answer(reply, self.do_create(req, parent, name, mode, umask, flags), |reply, (a, fh, proof)| created(reply, &a, fh, proof));
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn bmap(&self, _req: &Request, _ino: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(Errno::ENOSYS);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn fallocate(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, length: u64, mode: i32, reply: ReplyEmpty) {
        let r = self.do_fallocate(fh, offset, length, mode);
        answer(reply, r, ok);
    }

    fn lseek(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        answer(reply, self.handle(fh).and_then(|h| Self::file_fd(&h)).and_then(|fd| sys::lseek(fd, offset, whence).map_err(errno)), |reply, o| reply.offset(o));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // The kernel then copies with read and write, which are replicated.
        reply.error(Errno::ENOSYS);
    }
}
