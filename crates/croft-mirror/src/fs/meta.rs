//! Attributes and extended attributes: getattr, setattr, access, xattrs. setattr's steps
//! (chmod, chown, truncate, utimens) are each applied and replicated as they succeed.

use super::attr::{attr, set_time};
use super::{errno, unrecorded, HandleKind, MirrorFs};
use crate::apply;
use crate::link::AckedOp;
use crate::locks::Locked;
use crate::op::Op;
use crate::sys;
use fuser::{AccessFlags, Errno, FileAttr, FileHandle, INodeNo, Request, TimeOrNow};
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

impl MirrorFs {
    /// The attributes through an open file's descriptor if there is one (it reaches a file
    /// unlinked while open), else by path.
    pub(super) fn do_getattr(&self, ino: INodeNo, fh: Option<FileHandle>) -> Result<libc::stat, Errno> {
        if let Some(fh) = fh {
            if let Ok(h) = self.handle(fh) {
                if let HandleKind::File { fd, .. } = &h.kind {
                    return sys::fstat(fd.as_raw_fd()).map_err(errno);
                }
            }
        }
        self.dir.lstat(&self.path(ino)?).map_err(errno)
    }

    pub(super) fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        let path = self.table.locked().path(ino.0);
        let Some(path) = path else {
            // Unlinked while open: only the open descriptor reaches it, and nothing replicates.
            let h = self.handle(fh.ok_or(Errno::ENOENT)?)?;
            let fd = Self::file_fd(&h)?;
            if let Some(size) = size {
                sys::ftruncate(fd, size).map_err(errno)?;
            }
            if let Some(mode) = mode {
                sys::fchmod(fd, mode & 0o7777).map_err(errno)?;
            }
            return Ok(attr(ino.0, &sys::fstat(fd).map_err(errno)?));
        };
        let guard = self.order.locked();
        let mut ops = Vec::new();
        let mut failed = None;
        let mut step = |op: Op| -> bool {
            if let Err(e) = self.repl.before_apply(std::slice::from_ref(&op)) {
                failed = Some(unrecorded(e));
                return false;
            }
            let r = match &op {
                Op::Truncate { path, size } => self
                    .dir
                    .open_at(path, libc::O_WRONLY, 0)
                    .and_then(|fd| sys::ftruncate(fd.as_raw_fd(), *size)),
                Op::Chmod { path, .. } if self.dir.lstat(path).map(|s| s.st_mode & libc::S_IFMT) .ok() == Some(libc::S_IFLNK) => {
                    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
                }
                _ => apply::apply(&self.dir, &op),
            };
            match r {
                Ok(()) => {
                    ops.push(op);
                    true
                }
                Err(e) => {
                    failed = Some(errno(e));
                    false
                }
            }
        };
        let _ = (|| {
            if let Some(mode) = mode {
                if !step(Op::Chmod { path: path.clone(), mode: mode & 0o7777 }) {
                    return;
                }
            }
            if uid.is_some() || gid.is_some() {
                if !step(Op::Chown { path: path.clone(), uid, gid }) {
                    return;
                }
            }
            if let Some(size) = size {
                if !step(Op::Truncate { path: path.clone(), size }) {
                    return;
                }
            }
            if atime.is_some() || mtime.is_some() {
                step(Op::Utimens { path: path.clone(), atime: set_time(atime), mtime: set_time(mtime) });
            }
        })();
        // What was applied is replicated even when a later step failed.
        let _proof = self.commit(guard, &ops)?;
        if let Some(e) = failed {
            return Err(e);
        }
        let st = self.dir.lstat(&path).map_err(errno)?;
        Ok(attr(ino.0, &st))
    }

    pub(super) fn do_access(&self, req: &Request, ino: INodeNo, mask: AccessFlags) -> Result<(), Errno> {
        let st = self.path(ino).and_then(|p| self.dir.lstat(&p).map_err(errno))?;
        if permits(&st, req.uid(), req.gid(), mask.bits()) { Ok(()) } else { Err(Errno::EACCES) }
    }

    pub(super) fn do_setxattr(&self, ino: INodeNo, name: &OsStr, value: &[u8], flags: i32, position: u32) -> Result<AckedOp, Errno> {
        if position != 0 {
            return Err(Errno::EINVAL);
        }
        let path = self.path(ino)?;
        let op = Op::SetXattr { path, name: name.as_bytes().to_vec(), value: value.to_vec(), flags };
        self.apply_commit(op, |_| {})
    }

    /// `size` 0 asks for the value's length only; the answer carries both.
    pub(super) fn do_getxattr(&self, ino: INodeNo, name: &OsStr, size: u32) -> Result<(usize, Vec<u8>), Errno> {
        self.path(ino).and_then(|p| self.dir.get_xattr(&p, name, size as usize).map_err(errno))
    }

    pub(super) fn do_listxattr(&self, ino: INodeNo, size: u32) -> Result<(usize, Vec<u8>), Errno> {
        self.path(ino).and_then(|p| self.dir.list_xattr(&p, size as usize).map_err(errno))
    }

    pub(super) fn do_removexattr(&self, ino: INodeNo, name: &OsStr) -> Result<AckedOp, Errno> {
        self.path(ino)
            .and_then(|path| self.apply_commit(Op::RemoveXattr { path, name: name.as_bytes().to_vec() }, |_| {}))
    }
}

/// access(2) for the caller from the mode bits (owner, group, other; root may read and write
/// anything and execute what has an x bit). Supplementary groups are not known here: with
/// `default_permissions` (how croft mounts) the kernel checks before this is ever called.
fn permits(st: &libc::stat, uid: u32, gid: u32, mask: i32) -> bool {
    let mode = st.st_mode;
    if uid == 0 {
        return mask & libc::X_OK == 0 || mode & 0o111 != 0 || mode & libc::S_IFMT == libc::S_IFDIR;
    }
    let bits = if st.st_uid == uid {
        (mode >> 6) & 7
    } else if st.st_gid == gid {
        (mode >> 3) & 7
    } else {
        mode & 7
    } as i32;
    bits & mask == mask
}
