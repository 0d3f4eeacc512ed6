//! A held directory and the `*at()` system calls that reach the real files through it.
//!
//! The directory is opened with `O_PATH|O_DIRECTORY` before FUSE is mounted over the same path, so
//! the descriptor keeps pointing at the directory underneath the mount (openat(2): a descriptor
//! names an inode, not a path). Every path here is relative to that descriptor; the empty path is
//! the directory itself. No path ever contains `..` (they are built by joining names the kernel
//! looked up), and the final component is never followed when it is a symlink.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An explicit time or "leave unchanged", as utimensat(2) takes them. `Now` is resolved to an
/// explicit time before an operation is replicated, so both sides store the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Omit,
    At { sec: i64, nsec: i64 },
}

impl SetTime {
    fn timespec(self) -> libc::timespec {
        match self {
            SetTime::Omit => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            SetTime::At { sec, nsec } => libc::timespec {
                tv_sec: sec,
                tv_nsec: nsec,
            },
        }
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `path` as a C string for an `*at()` call: the empty path is ".".
fn c_rel(path: &Path) -> io::Result<CString> {
    let bytes = path.as_os_str().as_bytes();
    let bytes = if bytes.is_empty() { b"." } else { bytes };
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The directory both sides hold: on the primary, the directory under the FUSE mount; on the
/// replica, the replicated directory itself.
#[derive(Debug)]
pub struct HeldDir {
    fd: OwnedFd,
    /// `/proc/self/fd/<fd>`: the xattr calls have no `*at()` form, but this magic link resolves to
    /// the held directory (proc(5)), so `<it>/<path>` reaches the real file even under the mount.
    proc_path: PathBuf,
}

impl HeldDir {
    /// Opens `path` with `O_PATH|O_DIRECTORY`. Call it before mounting anything over `path`.
    pub fn open(path: &Path) -> io::Result<HeldDir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: c is a valid C string.
        let fd = cvt(unsafe {
            libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        })?;
        // SAFETY: fd is fresh and owned by us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        Ok(HeldDir { fd, proc_path })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn proc_c(&self, path: &Path) -> io::Result<CString> {
        let full = if path.as_os_str().is_empty() {
            self.proc_path.clone()
        } else {
            self.proc_path.join(path)
        };
        CString::new(full.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// lstat of `path` (the final symlink is not followed).
    pub fn lstat(&self, path: &Path) -> io::Result<libc::stat> {
        let c = c_rel(path)?;
        // SAFETY: zeroed stat is a valid out-buffer; c is a valid C string.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        cvt(unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
        Ok(st)
    }

    /// openat(2) with `O_NOFOLLOW|O_CLOEXEC` added.
    pub fn open_at(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        let c = c_rel(path)?;
        // SAFETY: c is a valid C string.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        })?;
        // SAFETY: fd is fresh and owned by us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        let c = c_rel(path)?;
        // SAFETY: c is a valid C string.
        cvt(unsafe { libc::mkdirat(self.raw(), c.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    pub fn mknod(&self, path: &Path, mode: u32, rdev: u64) -> io::Result<()> {
        let c = c_rel(path)?;
        // SAFETY: c is a valid C string.
        cvt(unsafe { libc::mknodat(self.raw(), c.as_ptr(), mode as libc::mode_t, rdev) }).map(drop)
    }

    pub fn symlink(&self, target: &Path, path: &Path) -> io::Result<()> {
        let t = c_name(target.as_os_str())?;
        let c = c_rel(path)?;
        // SAFETY: both are valid C strings.
        cvt(unsafe { libc::symlinkat(t.as_ptr(), self.raw(), c.as_ptr()) }).map(drop)
    }

    pub fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let f = c_rel(from)?;
        let t = c_rel(to)?;
        // SAFETY: both are valid C strings. Flags 0: a symlink is linked itself, not followed.
        cvt(unsafe { libc::linkat(self.raw(), f.as_ptr(), self.raw(), t.as_ptr(), 0) }).map(drop)
    }

    pub fn unlink(&self, path: &Path) -> io::Result<()> {
        let c = c_rel(path)?;
        // SAFETY: c is a valid C string.
        cvt(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), 0) }).map(drop)
    }

    pub fn rmdir(&self, path: &Path) -> io::Result<()> {
        let c = c_rel(path)?;
        // SAFETY: c is a valid C string.
        cvt(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
    }

    /// renameat2(2) with its flags (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
    pub fn rename(&self, from: &Path, to: &Path, flags: u32) -> io::Result<()> {
        let f = c_rel(from)?;
        let t = c_rel(to)?;
        // SAFETY: both are valid C strings; renameat2 takes (int, char*, int, char*, unsigned).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                self.raw(),
                f.as_ptr(),
                self.raw(),
                t.as_ptr(),
                flags as libc::c_uint,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// fchmodat(2). Linux cannot change a symlink's mode: the caller checks the type first.
    pub fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        let c = c_rel(path)?;
        // SAFETY: c is a valid C string.
        cvt(unsafe { libc::fchmodat(self.raw(), c.as_ptr(), mode as libc::mode_t, 0) }).map(drop)
    }

    /// fchownat(2) without following a final symlink; `None` leaves that id unchanged.
    pub fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let c = c_rel(path)?;
        let uid = uid.unwrap_or(u32::MAX);
        let gid = gid.unwrap_or(u32::MAX);
        // SAFETY: c is a valid C string; -1 (u32::MAX) means "unchanged" (chown(2)).
        cvt(unsafe {
            libc::fchownat(self.raw(), c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
        })
        .map(drop)
    }

    pub fn utimens(&self, path: &Path, atime: SetTime, mtime: SetTime) -> io::Result<()> {
        let c = c_rel(path)?;
        let times = [atime.timespec(), mtime.timespec()];
        // SAFETY: c is a valid C string, times has two entries.
        cvt(unsafe {
            libc::utimensat(self.raw(), c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
        })
        .map(drop)
    }

    pub fn readlink(&self, path: &Path) -> io::Result<Vec<u8>> {
        let c = c_rel(path)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: buf is writable for its length.
        let n = cvt_size(unsafe {
            libc::readlinkat(self.raw(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        })?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn set_xattr(&self, path: &Path, name: &OsStr, value: &[u8], flags: i32) -> io::Result<()> {
        let p = self.proc_c(path)?;
        let n = c_name(name)?;
        // SAFETY: valid C strings, value readable for its length.
        cvt(unsafe {
            libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags)
        })
        .map(drop)
    }

    /// lgetxattr(2); with `size == 0` it returns the value's size and an empty vector.
    pub fn get_xattr(&self, path: &Path, name: &OsStr, size: usize) -> io::Result<(usize, Vec<u8>)> {
        let p = self.proc_c(path)?;
        let n = c_name(name)?;
        let mut buf = vec![0u8; size];
        // SAFETY: buf is writable for `size` bytes (a null pointer with size 0 asks for the size).
        let len = cvt_size(unsafe {
            libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size)
        })?;
        buf.truncate(if size == 0 { 0 } else { len });
        Ok((len, buf))
    }

    /// llistxattr(2): NUL-separated names; with `size == 0` only the size.
    pub fn list_xattr(&self, path: &Path, size: usize) -> io::Result<(usize, Vec<u8>)> {
        let p = self.proc_c(path)?;
        let mut buf = vec![0u8; size];
        // SAFETY: buf is writable for `size` bytes.
        let len = cvt_size(unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), size) })?;
        buf.truncate(if size == 0 { 0 } else { len });
        Ok((len, buf))
    }

    pub fn remove_xattr(&self, path: &Path, name: &OsStr) -> io::Result<()> {
        let p = self.proc_c(path)?;
        let n = c_name(name)?;
        // SAFETY: valid C strings.
        cvt(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) }).map(drop)
    }

    pub fn statvfs(&self) -> io::Result<libc::statvfs> {
        // SAFETY: zeroed statvfs is a valid out-buffer; fstatvfs accepts O_PATH descriptors.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        cvt(unsafe { libc::fstatvfs(self.raw(), &mut st) })?;
        Ok(st)
    }

    /// The entries of directory `path` (without "." and ".."): name, inode, `S_IF*` type from the
    /// directory entry (d_type, no extra stat).
    pub fn list_dir(&self, path: &Path) -> io::Result<Vec<(std::ffi::OsString, u64, u32)>> {
        use std::os::unix::fs::{DirEntryExt, FileTypeExt};
        let full = if path.as_os_str().is_empty() {
            self.proc_path.clone()
        } else {
            self.proc_path.join(path)
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(full)? {
            let entry = entry?;
            let t = entry.file_type()?;
            let kind = if t.is_dir() {
                libc::S_IFDIR
            } else if t.is_symlink() {
                libc::S_IFLNK
            } else if t.is_block_device() {
                libc::S_IFBLK
            } else if t.is_char_device() {
                libc::S_IFCHR
            } else if t.is_fifo() {
                libc::S_IFIFO
            } else if t.is_socket() {
                libc::S_IFSOCK
            } else {
                libc::S_IFREG
            };
            out.push((entry.file_name(), entry.ino(), kind));
        }
        Ok(out)
    }
}

// --- descriptor-based calls -------------------------------------------------------------------

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn pread(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the slice is writable from `done` to its end.
        let n = unsafe {
            libc::pread(
                fd,
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        match cvt_size(n) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

pub fn pwrite_all(fd: RawFd, data: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        // SAFETY: the slice is readable from `done` to its end.
        let n = unsafe {
            libc::pwrite(
                fd,
                data[done..].as_ptr().cast(),
                data.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        match cvt_size(n) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn ftruncate(fd: RawFd, size: u64) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::ftruncate(fd, size as libc::off_t) }).map(drop)
}

pub fn fallocate(fd: RawFd, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fallocate(fd, mode, offset as libc::off_t, len as libc::off_t) }).map(drop)
}

pub fn fsync(fd: RawFd, datasync: bool) -> io::Result<()> {
    // SAFETY: plain syscalls.
    cvt(unsafe {
        if datasync {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    })
    .map(drop)
}

pub fn lseek(fd: RawFd, offset: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: plain syscall.
    let r = unsafe { libc::lseek(fd, offset as libc::off_t, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i64)
    }
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fchmod(fd, mode as libc::mode_t) }).map(drop)
}

/// Fills `buf` with random bytes from the kernel (getrandom(2)).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the slice is writable from `done`.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        match cvt_size(n) {
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The errno of an I/O error, EIO when it has none.
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}
