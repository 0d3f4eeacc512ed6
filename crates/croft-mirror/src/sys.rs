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

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
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

/// No symlink in any component, nothing above the starting directory, no magic link.
const RESOLVE: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_SYMLINKS;

/// `struct open_how` of linux/openat2.h (libc's is non-exhaustive, so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2) with [`RESOLVE`]. EAGAIN (a concurrent rename seen while checking `..`, which our
/// paths never contain) and EINTR are retried a few times.
fn openat2(dirfd: RawFd, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let creates = flags & (libc::O_CREAT | libc::O_TMPFILE) != 0;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u32 as u64,
        // openat2 refuses a mode without O_CREAT/O_TMPFILE.
        mode: if creates { u64::from(mode & 0o7777) } else { 0 },
        resolve: RESOLVE,
    };
    let mut tries = 0;
    loop {
        // SAFETY: path is a valid C string, how a valid open_how of the size passed.
        let fd = unsafe {
            libc::syscall(libc::SYS_openat2, dirfd, path.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>())
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor owned by us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) if tries < 16 => tries += 1,
            _ => return Err(e),
        }
    }
}

/// Checks `path` as text: plain names separated by single slashes (the empty path is the held
/// directory). Returns its bytes.
pub(crate) fn check_path(path: &Path) -> io::Result<&[u8]> {
    let b = path.as_os_str().as_bytes();
    if b.is_empty() {
        return Ok(b);
    }
    if b.len() >= libc::PATH_MAX as usize || b.contains(&0) {
        return Err(einval());
    }
    for name in b.split(|c| *c == b'/') {
        if name.is_empty() || name == b"." || name == b".." {
            return Err(einval());
        }
    }
    Ok(b)
}

/// `path` (checked) as a C string for openat2: the empty path is ".".
fn c_path(path: &Path) -> io::Result<CString> {
    let b = check_path(path)?;
    CString::new(if b.is_empty() { &b"."[..] } else { b }).map_err(|_| einval())
}

/// `path` split into its parent and its final name; `None` for the held directory itself.
fn split(path: &Path) -> io::Result<Option<(&[u8], CString)>> {
    let b = check_path(path)?;
    if b.is_empty() {
        return Ok(None);
    }
    let (parent, name) = match b.iter().rposition(|c| *c == b'/') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (&b[..0], b),
    };
    Ok(Some((parent, CString::new(name).map_err(|_| einval())?)))
}

/// A descriptor of a parent directory: the held one (borrowed) or one opened beneath it.
enum Parent<'a> {
    Held(&'a OwnedFd),
    Opened(OwnedFd),
}

impl Parent<'_> {
    fn raw(&self) -> RawFd {
        match self {
            Parent::Held(fd) => fd.as_raw_fd(),
            Parent::Opened(fd) => fd.as_raw_fd(),
        }
    }
}

fn proc_fd(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number")
}

/// `/proc/self/fd/<parent>/<name>`: see the module doc for why this reaches `name` in that
/// directory and never follows it with the l*xattr calls.
fn proc_child(parent: RawFd, name: &CStr) -> CString {
    let mut b = format!("/proc/self/fd/{parent}/").into_bytes();
    b.extend_from_slice(name.to_bytes());
    CString::new(b).expect("names hold no NUL")
}

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

    /// The parent of a split path, opened beneath (the held descriptor itself at the top).
    /// A symlink among its components is ENOTDIR: in this tree the symlink is the entry, and
    /// nothing lies "under" it (as for a regular file in the way).
    fn parent(&self, parent: &[u8]) -> io::Result<Parent<'_>> {
        if parent.is_empty() {
            return Ok(Parent::Held(&self.fd));
        }
        let c = CString::new(parent).map_err(|_| einval())?;
        match openat2(self.raw(), &c, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(fd) => Ok(Parent::Opened(fd)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            Err(e) => Err(e),
        }
    }

    /// Parent descriptor and final name of `path`; EINVAL for the held directory itself (the
    /// namespace calls never apply to it).
    fn entry(&self, path: &Path) -> io::Result<(Parent<'_>, CString)> {
        let (parent, name) = split(path)?.ok_or_else(einval)?;
        Ok((self.parent(parent)?, name))
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

    /// Runs an xattr call on `path` through /proc (see the module doc): `follow` is false for
    /// an entry in a directory (l*xattr), true for the held directory itself.
    fn with_xattr_path<T>(&self, path: &Path, f: impl FnOnce(&CStr, bool) -> io::Result<T>) -> io::Result<T> {
        match split(path)? {
            None => f(&proc_fd(self.raw()), true),
            Some((parent, name)) => {
                let p = self.parent(parent)?;
                f(&proc_child(p.raw(), &name), false)
            }
        }
    }

    pub fn set_xattr(&self, path: &Path, name: &OsStr, value: &[u8], flags: i32) -> io::Result<()> {
        let n = c_name(name)?;
        self.with_xattr_path(path, |p, follow| {
            // SAFETY: valid C strings, value readable for its length.
            cvt(unsafe {
                if follow {
                    libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags)
                } else {
                    libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags)
                }
            })
            .map(drop)
        })
    }

    /// lgetxattr(2); with `size == 0` it returns the value's size and an empty vector.
    pub fn get_xattr(&self, path: &Path, name: &OsStr, size: usize) -> io::Result<(usize, Vec<u8>)> {
        let n = c_name(name)?;
        let mut buf = vec![0u8; size];
        let len = self.with_xattr_path(path, |p, follow| {
            // SAFETY: buf is writable for `size` bytes (size 0 asks for the size).
            cvt_size(unsafe {
                if follow {
                    libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size)
                } else {
                    libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size)
                }
            })
        })?;
        buf.truncate(if size == 0 { 0 } else { len });
        Ok((len, buf))
    }

    /// llistxattr(2): NUL-separated names; with `size == 0` only the size.
    pub fn list_xattr(&self, path: &Path, size: usize) -> io::Result<(usize, Vec<u8>)> {
        let mut buf = vec![0u8; size];
        let len = self.with_xattr_path(path, |p, follow| {
            // SAFETY: buf is writable for `size` bytes.
            cvt_size(unsafe {
                if follow {
                    libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), size)
                } else {
                    libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), size)
                }
            })
        })?;
        buf.truncate(if size == 0 { 0 } else { len });
        Ok((len, buf))
    }

    pub fn remove_xattr(&self, path: &Path, name: &OsStr) -> io::Result<()> {
        let n = c_name(name)?;
        self.with_xattr_path(path, |p, follow| {
            // SAFETY: valid C strings.
            cvt(unsafe {
                if follow {
                    libc::removexattr(p.as_ptr(), n.as_ptr())
                } else {
                    libc::lremovexattr(p.as_ptr(), n.as_ptr())
                }
            })
            .map(drop)
        })
    }

    pub fn statvfs(&self) -> io::Result<libc::statvfs> {
        // SAFETY: zeroed statvfs is a valid out-buffer; fstatvfs accepts O_PATH descriptors.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        cvt(unsafe { libc::fstatvfs(self.raw(), &mut st) })?;
        Ok(st)
    }

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

/// The errno of an I/O error, EIO when it has none.
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}
