//! A held directory and the system calls that reach the real files through it, never outside it.
//!
//! The directory is opened with `O_PATH|O_DIRECTORY` before FUSE is mounted over the same path, so
//! the descriptor keeps pointing at the directory underneath the mount (openat(2): a descriptor
//! names an inode, not a path). Every path here is relative to that descriptor; the empty path is
//! the directory itself.
//!
//! Confinement (issue 8, finding 1). Someone who can write inside the directory (the unprivileged
//! owner of a replicated directory, or anything running as its files' owners) may replace any
//! directory in it by a symlink at any moment; a path's text says nothing about where it leads.
//! So the kernel resolves every path, in one step, with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS`: no symlink is followed in any
//! component, nothing resolves above the held directory, no `/proc` magic link is crossed. A final
//! symlink is opened itself (`O_PATH|O_NOFOLLOW`) where an operation concerns the link.
//!
//! The calls with no openat2 form (mkdirat, mknodat, symlinkat, linkat, unlinkat, renameat2,
//! fchownat, utimensat, readlinkat, fstatat) get the PARENT opened that way (`O_PATH|O_DIRECTORY`)
//! and a single final name, which they never follow (they act on the name itself, or take
//! `AT_SYMLINK_NOFOLLOW`). Two calls need more care:
//! - chmod: fchmodat(2) always follows a final symlink (no flag before Linux 6.6), so the entry is
//!   opened `O_PATH|O_NOFOLLOW`, refused if it is a symlink (its type cannot change under an open
//!   descriptor), and changed through `/proc/self/fd/<that fd>`: a magic link to exactly that
//!   inode, resolved from our own descriptor table (the same technique as glibc's lchmod).
//! - xattrs have no `*at()` form: `l*xattr("/proc/self/fd/<parent fd>/<name>")`. The magic link is
//!   our own parent descriptor (resolved beneath, above), and the l-variants never follow the
//!   final name, so a symlink swapped in there is acted upon itself (Linux refuses user xattrs on
//!   symlinks), never followed. Opening the entry itself and using f*xattr would be as sound for
//!   files and directories, but opening a fifo blocks and opening a device has side effects.
//!   For the directory itself: the following variant on `/proc/self/fd/<held fd>`.
//! Listings read a directory descriptor opened beneath (O_RDONLY|O_DIRECTORY), never a path.
//!
//! Every path is also checked as text (no `..`, `.`, empty component, leading `/`, NUL): the
//! kernel's refusal is the guarantee, the text check makes a bad path a clear EINVAL early.
//! A kernel without openat2 (before Linux 5.6) is refused at [`HeldDir::open`].
//!
//! Files by concern: this one holds the held directory and its namespace calls; [`resolve`] the
//! confinement (openat2 beneath the held descriptor, the text check, parents and /proc paths);
//! [`xattr`] the xattr calls through /proc; [`tree`] listings and the removal of a tree by
//! descriptors; [`fd`] the calls on an open descriptor.

mod fd;
mod resolve;
mod tree;
mod xattr;

pub use fd::{errno_of, fallocate, fchmod, fchown, fstat, fsync, ftruncate, lseek, pread, pwrite_all};
pub(crate) use resolve::check_path;
use resolve::{c_path, openat2, proc_fd, split};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| einval())
}

/// The directory both sides hold: on the primary, the directory under the FUSE mount; on the
/// replica, the replicated directory itself.
#[derive(Debug)]
pub struct HeldDir {
    fd: OwnedFd,
}

impl HeldDir {
    /// Opens `path` with `O_PATH|O_DIRECTORY`. Call it before mounting anything over `path`.
    /// Fails on a kernel without openat2(2) (Linux < 5.6): paths could not be confined.
    pub fn open(path: &Path) -> io::Result<HeldDir> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| einval())?;
        // SAFETY: c is a valid C string.
        let fd = cvt(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
        // SAFETY: fd is fresh and owned by us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        match openat2(fd.as_raw_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "this kernel has no usable openat2(2) ({e}): croft needs Linux 5.6 or later to keep \
                         every replicated path inside {}",
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
        Ok(HeldDir { fd })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// lstat of `path` (the final symlink is not followed).
    pub fn lstat(&self, path: &Path) -> io::Result<libc::stat> {
        // SAFETY: zeroed stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        match split(path)? {
            None => fstat(self.raw()),
            Some((parent, name)) => {
                let p = self.parent(parent)?;
                // SAFETY: name is a valid C string.
                cvt(unsafe { libc::fstatat(p.raw(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
                Ok(st)
            }
        }
    }

    /// Opens `path` beneath the held directory with `O_NOFOLLOW|O_CLOEXEC` added: no symlink is
    /// followed in any component; a final symlink gives ELOOP, or itself with `O_PATH`.
    ///
    /// Anything but `O_PATH` opens only a regular file or a directory (EINVAL otherwise), with
    /// `O_NONBLOCK`: a fifo put where a file was (by the local owner of a replica's directory,
    /// say) must not hang the replica in open(2), nor may a data operation reach a device.
    /// O_NONBLOCK changes nothing for regular files and directories.
    pub fn open_at(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        let c = c_path(path)?;
        let extra = if flags & libc::O_PATH != 0 { libc::O_NOFOLLOW } else { libc::O_NOFOLLOW | libc::O_NONBLOCK };
        let fd = match openat2(self.raw(), &c, flags | extra, mode) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                // A symlink on the way: ENOTDIR when it is a parent, or when a directory was
                // asked for (see `parent`); ELOOP for a final symlink, as with O_NOFOLLOW.
                if flags & libc::O_DIRECTORY != 0 {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                if let Some((parent, _)) = split(path)? {
                    self.parent(parent)?;
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if flags & libc::O_PATH != 0 {
            return Ok(fd);
        }
        match fstat(fd.as_raw_fd())?.st_mode & libc::S_IFMT {
            libc::S_IFREG | libc::S_IFDIR => Ok(fd),
            _ => Err(einval()),
        }
    }

    pub fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        let (p, name) = self.entry(path)?;
        // SAFETY: name is a valid C string.
        cvt(unsafe { libc::mkdirat(p.raw(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    pub fn mknod(&self, path: &Path, mode: u32, rdev: u64) -> io::Result<()> {
        let (p, name) = self.entry(path)?;
        // SAFETY: name is a valid C string.
        cvt(unsafe { libc::mknodat(p.raw(), name.as_ptr(), mode as libc::mode_t, rdev) }).map(drop)
    }

    /// A symlink at `path` to `target` (any text: it is stored, never followed here).
    pub fn symlink(&self, target: &Path, path: &Path) -> io::Result<()> {
        let t = c_name(target.as_os_str())?;
        let (p, name) = self.entry(path)?;
        // SAFETY: both are valid C strings.
        cvt(unsafe { libc::symlinkat(t.as_ptr(), p.raw(), name.as_ptr()) }).map(drop)
    }

    pub fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (fp, f) = self.entry(from)?;
        let (tp, t) = self.entry(to)?;
        // SAFETY: both are valid C strings. Flags 0: a symlink is linked itself, not followed.
        cvt(unsafe { libc::linkat(fp.raw(), f.as_ptr(), tp.raw(), t.as_ptr(), 0) }).map(drop)
    }

    pub fn unlink(&self, path: &Path) -> io::Result<()> {
        let (p, name) = self.entry(path)?;
        // SAFETY: name is a valid C string.
        cvt(unsafe { libc::unlinkat(p.raw(), name.as_ptr(), 0) }).map(drop)
    }

    pub fn rmdir(&self, path: &Path) -> io::Result<()> {
        let (p, name) = self.entry(path)?;
        // SAFETY: name is a valid C string.
        cvt(unsafe { libc::unlinkat(p.raw(), name.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
    }

    /// renameat2(2) with its flags (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
    pub fn rename(&self, from: &Path, to: &Path, flags: u32) -> io::Result<()> {
        let (fp, f) = self.entry(from)?;
        let (tp, t) = self.entry(to)?;
        // SAFETY: both are valid C strings; renameat2 takes (int, char*, int, char*, unsigned).
        let ret = unsafe {
            libc::syscall(libc::SYS_renameat2, fp.raw(), f.as_ptr(), tp.raw(), t.as_ptr(), flags as libc::c_uint)
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The mode of `path`, never of what a symlink points to: EOPNOTSUPP on a symlink (Linux
    /// cannot change a symlink's mode). See the module doc for how.
    pub fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        let opened;
        let fd = if check_path(path)?.is_empty() {
            self.raw()
        } else {
            opened = self.open_at(path, libc::O_PATH, 0)?;
            opened.as_raw_fd()
        };
        if fstat(fd)?.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        let c = proc_fd(fd);
        // SAFETY: c is a valid C string.
        cvt(unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    /// fchownat(2) without following a final symlink; `None` leaves that id unchanged.
    pub fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let uid = uid.unwrap_or(u32::MAX);
        let gid = gid.unwrap_or(u32::MAX);
        // -1 (u32::MAX) means "unchanged" (chown(2)).
        match split(path)? {
            // SAFETY: an empty C string with AT_EMPTY_PATH: the held directory itself.
            None => cvt(unsafe { libc::fchownat(self.raw(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) }).map(drop),
            Some((parent, name)) => {
                let p = self.parent(parent)?;
                // SAFETY: name is a valid C string.
                cvt(unsafe { libc::fchownat(p.raw(), name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
            }
        }
    }

    pub fn utimens(&self, path: &Path, atime: SetTime, mtime: SetTime) -> io::Result<()> {
        let times = [atime.timespec(), mtime.timespec()];
        match split(path)? {
            None => {
                // The magic link to our own held descriptor, followed: the directory itself.
                let c = proc_fd(self.raw());
                // SAFETY: c is a valid C string, times has two entries.
                cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) }).map(drop)
            }
            Some((parent, name)) => {
                let p = self.parent(parent)?;
                // SAFETY: name is a valid C string, times has two entries.
                cvt(unsafe { libc::utimensat(p.raw(), name.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
                    .map(drop)
            }
        }
    }

    pub fn readlink(&self, path: &Path) -> io::Result<Vec<u8>> {
        let (p, name) = self.entry(path)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: buf is writable for its length.
        let n = cvt_size(unsafe { libc::readlinkat(p.raw(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn statvfs(&self) -> io::Result<libc::statvfs> {
        // SAFETY: zeroed statvfs is a valid out-buffer; fstatvfs accepts O_PATH descriptors.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        cvt(unsafe { libc::fstatvfs(self.raw(), &mut st) })?;
        Ok(st)
    }
}
