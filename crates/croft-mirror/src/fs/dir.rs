//! Directory listings: a listing is taken at opendir and readdir offsets index into it.

use super::attr::{attr, file_type};
use super::{errno, ttl, HandleKind, MirrorFs, GEN};
use crate::link::AckedOp;
use crate::locks::Locked;
use crate::table;
use fuser::{Errno, FileAttr, FileHandle, INodeNo, ReplyDirectory, ReplyDirectoryPlus};
use std::ffi::OsString;
use std::os::fd::AsRawFd;

impl MirrorFs {
    pub(super) fn do_opendir(&self, ino: INodeNo) -> Result<FileHandle, Errno> {
        let entries = self.path(ino).and_then(|p| self.dir.list_dir(&p).map_err(errno))?;
        Ok(self.add_handle(ino.0, HandleKind::Dir { entries: listing(entries) }))
    }

    pub(super) fn do_readdir(&self, ino: INodeNo, fh: FileHandle, offset: u64, reply: &mut ReplyDirectory) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        let HandleKind::Dir { entries } = &h.kind else { return Err(Errno::ENOTDIR) };
        let dir_path = self.path(ino).unwrap_or_default();
        for (i, (name, real, kind)) in entries.iter().enumerate().skip(offset as usize) {
            // d_ino: the node id when the kernel knows the entry (it is st_ino through the mount),
            // else the real inode number (only informational in getdents).
            let d_ino = match i {
                0 => ino.0,
                1 => table::ROOT,
                _ => self.table.locked().node_at(&dir_path.join(name)).unwrap_or(*real),
            };
            if reply.add(INodeNo(d_ino), i as u64 + 1, file_type(*kind), name) {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn do_readdirplus(&self, ino: INodeNo, fh: FileHandle, offset: u64, reply: &mut ReplyDirectoryPlus) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        let HandleKind::Dir { entries } = &h.kind else { return Err(Errno::ENOTDIR) };
        let dir_path = self.path(ino)?;
        for (i, (name, _real, _kind)) in entries.iter().enumerate().skip(offset as usize) {
            let next = i as u64 + 1;
            if name == "." || name == ".." {
                // The kernel takes no lookup for these (fuse_direntplus_link).
                let a = FileAttr { ino: INodeNo(if name == "." { ino.0 } else { table::ROOT }), ..attr(0, &dummy_dir_stat()) };
                if reply.add(a.ino, next, name, &ttl(), &a, GEN) {
                    break;
                }
                continue;
            }
            let path = dir_path.join(name);
            let a = match self.lookup_path(&path) {
                Ok(a) => a,
                Err(_) => continue, // removed since opendir
            };
            if reply.add(a.ino, next, name, &ttl(), &a, GEN) {
                // Not added: the kernel will not count this lookup.
                self.table.locked().forget(a.ino.0, 1);
                break;
            }
        }
        Ok(())
    }

    pub(super) fn do_fsyncdir(&self, ino: INodeNo, datasync: bool) -> Result<AckedOp, Errno> {
        let path = self.path(ino)?;
        let fd = self.dir.open_at(&path, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(errno)?;
        self.do_fsync(ino.0, fd.as_raw_fd(), datasync)
    }
}

fn dummy_dir_stat() -> libc::stat {
    // SAFETY: an all-zero stat is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_mode = libc::S_IFDIR;
    st
}

fn listing(entries: Vec<(OsString, u64, u32)>) -> Vec<(OsString, u64, u32)> {
    let mut all = vec![(OsString::from("."), 0, libc::S_IFDIR), (OsString::from(".."), 0, libc::S_IFDIR)];
    all.extend(entries);
    all
}
