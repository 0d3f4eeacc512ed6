//! Namespace operations: entries looked up, created, removed, renamed and linked. Each change
//! goes the one way of the module doc (applied locally under `order`, replicated, acknowledged).

use super::{errno, unrecorded, HandleKind, MirrorFs};
use crate::apply;
use crate::link::AckedOp;
use crate::locks::Locked;
use crate::op::Op;
use crate::sys;
use fuser::{Errno, FileAttr, FileHandle, INodeNo, Request};
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::path::Path;

impl MirrorFs {
    pub(super) fn do_lookup(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        self.child(parent, name).and_then(|p| self.lookup_path(&p))
    }

    pub(super) fn do_mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<(FileAttr, AckedOp), Errno> {
        let path = self.child(parent, name)?;
        let (uid, gid, _) = self.owner(req, &self.path(parent)?)?;
        let mode = (mode & libc::S_IFMT) | (mode & 0o7777 & !umask);
        let proof = self.apply_commit(Op::Mknod { path: path.clone(), mode, rdev: rdev as u64, uid, gid }, |_| {})?;
        Ok((self.lookup_path(&path)?, proof))
    }

    pub(super) fn do_mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32) -> Result<(FileAttr, AckedOp), Errno> {
        let path = self.child(parent, name)?;
        let (uid, gid, sgid) = self.owner(req, &self.path(parent)?)?;
        // A directory under a set-group-ID directory inherits the bit (inode_init_owner).
        let mode = (mode & 0o7777 & !umask) | if sgid { libc::S_ISGID } else { 0 };
        let proof = self.apply_commit(Op::Mkdir { path: path.clone(), mode, uid, gid }, |_| {})?;
        Ok((self.lookup_path(&path)?, proof))
    }

    pub(super) fn do_unlink(&self, parent: INodeNo, name: &OsStr) -> Result<AckedOp, Errno> {
        let path = self.child(parent, name)?;
        let st = self.dir.lstat(&path).map_err(errno)?;
        let died = st.st_nlink <= 1;
        self.apply_commit(Op::Unlink { path: path.clone() }, |t| t.removed(&path, died))
    }

    pub(super) fn do_rmdir(&self, parent: INodeNo, name: &OsStr) -> Result<AckedOp, Errno> {
        let path = self.child(parent, name)?;
        self.apply_commit(Op::Rmdir { path: path.clone() }, |t| t.removed(&path, true))
    }

    pub(super) fn do_symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path) -> Result<(FileAttr, AckedOp), Errno> {
        let path = self.child(parent, link_name)?;
        let (uid, gid, _) = self.owner(req, &self.path(parent)?)?;
        let op = Op::Symlink { path: path.clone(), target: target.to_path_buf(), uid, gid };
        let proof = self.apply_commit(op, |_| {})?;
        Ok((self.lookup_path(&path)?, proof))
    }

    pub(super) fn do_link(&self, ino: INodeNo, newparent: INodeNo, newname: &OsStr) -> Result<(FileAttr, AckedOp), Errno> {
        let from = self.path(ino)?;
        let to = self.child(newparent, newname)?;
        let op = Op::Link { from, to: to.clone() };
        self.repl.check_crossing(&op).map_err(errno)?;
        let proof = self.apply_commit(op, |t| t.linked(ino.0, &to))?;
        Ok((self.lookup_path(&to)?, proof))
    }

    pub(super) fn do_create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, FileHandle, AckedOp), Errno> {
        let path = self.child(parent, name)?;
        let parent_path = self.path(parent)?;
        let (uid, gid, _) = self.owner(req, &parent_path)?;
        let mode = mode & 0o7777 & !umask;
        let oflags = self.backing(flags);
        let guard = self.order.locked();
        // Marks the whole file (a new inode, or truncated): covers both outcomes below.
        self.repl.before_apply(&[Op::Create { path: path.clone(), mode, uid, gid }]).map_err(unrecorded)?;
        let (fd, ops) = match apply::create_file(&self.dir, &path, mode, uid, gid, oflags) {
            Ok(fd) => (fd, vec![Op::Create { path: path.clone(), mode, uid, gid }]),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags & libc::O_EXCL == 0 => {
                let fd = self.dir.open_at(&path, oflags, 0).map_err(errno)?;
                if flags & libc::O_TRUNC != 0 {
                    sys::ftruncate(fd.as_raw_fd(), 0).map_err(errno)?;
                    (fd, vec![Op::Truncate { path: path.clone(), size: 0 }])
                } else {
                    (fd, vec![])
                }
            }
            Err(e) => return Err(errno(e)),
        };
        let proof = self.commit(guard, &ops)?;
        let a = self.lookup_path(&path)?;
        let sync = flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        let datasync_only = flags & libc::O_SYNC != libc::O_SYNC;
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let fh = self.add_handle(a.ino.0, HandleKind::File { fd, sync, datasync_only, writable });
        Ok((a, fh, proof))
    }

    pub(super) fn do_rename(&self, parent: INodeNo, name: &OsStr, newparent: INodeNo, newname: &OsStr, flags: u32) -> Result<AckedOp, Errno> {
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 {
            return Err(Errno::EINVAL);
        }
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let guard = self.order.locked();
        let to_died = match self.dir.lstat(&to) {
            Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR || st.st_nlink <= 1,
            Err(_) => false,
        };
        let op = Op::Rename { from: from.clone(), to: to.clone(), flags };
        self.repl.check_crossing(&op).map_err(errno)?;
        self.repl.before_apply(std::slice::from_ref(&op)).map_err(unrecorded)?;
        apply::apply(&self.dir, &op).map_err(errno)?;
        self.table.locked().renamed(&from, &to, exchange, to_died);
        self.commit(guard, &[op])
    }
}
