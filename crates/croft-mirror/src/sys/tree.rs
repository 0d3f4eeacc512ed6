//! Listings (a directory read through a descriptor opened beneath) and the removal of a tree
//! walking by descriptors, never by path.

use super::{c_name, cvt, HeldDir};
use super::resolve::openat2;
use std::ffi::{CStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

fn file_kind(t: u8) -> u32 {
    match t {
        libc::DT_DIR => libc::S_IFDIR,
        libc::DT_LNK => libc::S_IFLNK,
        libc::DT_BLK => libc::S_IFBLK,
        libc::DT_CHR => libc::S_IFCHR,
        libc::DT_FIFO => libc::S_IFIFO,
        libc::DT_SOCK => libc::S_IFSOCK,
        libc::DT_REG => libc::S_IFREG,
        _ => 0,
    }
}

/// The entries of an open directory (without "." and ".."): name, inode, `S_IF*` type from the
/// entry (0 when the filesystem does not say: the caller stats it). Takes the descriptor over.
fn read_dir_fd(fd: OwnedFd) -> io::Result<Vec<(OsString, u64, u32)>> {
    // SAFETY: fd is an open directory; fdopendir takes ownership of it (closedir closes it).
    let dirp = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    struct Closer(*mut libc::DIR);
    impl Drop for Closer {
        fn drop(&mut self) {
            // SAFETY: opened by fdopendir above, closed once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let dirp = Closer(dirp);
    let mut out = Vec::new();
    loop {
        // SAFETY: errno is thread-local; readdir64 on a valid DIR.
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(dirp.0) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(0) | None => Ok(out),
                _ => Err(e),
            };
        }
        // SAFETY: a valid dirent64 until the next readdir64 on this stream.
        let ent = unsafe { &*ent };
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr(ent.d_name.as_ptr()) }.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push((OsString::from_vec(name.to_vec()), ent.d_ino, file_kind(ent.d_type)));
    }
}

impl HeldDir {
    /// The entries of directory `path` (without "." and ".."): name, inode, `S_IF*` type from the
    /// directory entry (d_type; an lstat where the filesystem does not give it).
    pub fn list_dir(&self, path: &Path) -> io::Result<Vec<(OsString, u64, u32)>> {
        let fd = self.open_at(path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let dfd = fd.as_raw_fd();
        let dup = cvt(unsafe { libc::fcntl(dfd, libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: a fresh descriptor owned by us (fdopendir consumes `fd`, this one stats).
        let stat_fd = unsafe { OwnedFd::from_raw_fd(dup) };
        let mut entries = read_dir_fd(fd)?;
        for (name, _, kind) in entries.iter_mut() {
            if *kind == 0 {
                let c = c_name(name)?;
                // SAFETY: zeroed stat is a valid out-buffer; c is one name.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                if cvt(unsafe { libc::fstatat(stat_fd.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }).is_ok() {
                    *kind = st.st_mode & libc::S_IFMT;
                } else {
                    *kind = libc::S_IFREG;
                }
            }
        }
        Ok(entries)
    }

    /// Removes `path` and everything under it, walking by descriptors: each directory is opened
    /// beneath its parent's descriptor by one name with `O_NOFOLLOW`, so a symlink anywhere in
    /// the tree is removed itself, never followed. Absent is fine. Never the directory itself.
    pub fn remove_tree(&self, path: &Path) -> io::Result<()> {
        let (p, name) = match self.entry(path) {
            Ok(x) => x,
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_entry(p.raw(), &name, 0)
    }
}


/// Nothing there: no such entry, or a parent that is not a directory any more.
fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// Deeper than this the tree is not removed (each level holds a descriptor; paths of the
/// mirror are at most PATH_MAX = 4096 bytes, so at most 2048 levels).
const REMOVE_DEPTH_MAX: usize = 2048;

/// Removes `name` in directory `parent` and, if it is a directory, everything under it.
fn remove_entry(parent: RawFd, name: &CStr, depth: usize) -> io::Result<()> {
    let ignore_gone = |r: io::Result<libc::c_int>| match r {
        Err(e) if !is_gone(&e) => Err(e),
        _ => Ok(()),
    };
    // SAFETY: zeroed stat is a valid out-buffer; name is one name.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    match cvt(unsafe { libc::fstatat(parent, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
        Ok(_) => {}
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        // SAFETY: name is a valid C string.
        return ignore_gone(cvt(unsafe { libc::unlinkat(parent, name.as_ptr(), 0) }));
    }
    if depth >= REMOVE_DEPTH_MAX {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    // One name, resolved beneath `parent` without following anything: a directory swapped for
    // a symlink since the fstatat gives ELOOP/ENOTDIR here.
    let dir = match openat2(parent, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let dup = cvt(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: a fresh descriptor owned by us.
    let walk = unsafe { OwnedFd::from_raw_fd(dup) };
    for (child, _, _) in read_dir_fd(dir)? {
        remove_entry(walk.as_raw_fd(), &c_name(&child)?, depth + 1)?;
    }
    drop(walk);
    // SAFETY: name is a valid C string.
    ignore_gone(cvt(unsafe { libc::unlinkat(parent, name.as_ptr(), libc::AT_REMOVEDIR) }))
}
