//! Confinement (see the module doc): every path is resolved by the kernel with openat2(2)
//! beneath the held descriptor, never following a symlink; the namespace calls get the parent
//! opened that way and one final name; xattr and chmod calls go through /proc/self/fd.

use super::{einval, HeldDir};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
pub(super) fn openat2(dirfd: RawFd, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
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
pub(super) fn c_path(path: &Path) -> io::Result<CString> {
    let b = check_path(path)?;
    CString::new(if b.is_empty() { &b"."[..] } else { b }).map_err(|_| einval())
}

/// `path` split into its parent and its final name; `None` for the held directory itself.
pub(super) fn split(path: &Path) -> io::Result<Option<(&[u8], CString)>> {
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
pub(super) enum Parent<'a> {
    Held(&'a OwnedFd),
    Opened(OwnedFd),
}

impl Parent<'_> {
    pub(super) fn raw(&self) -> RawFd {
        match self {
            Parent::Held(fd) => fd.as_raw_fd(),
            Parent::Opened(fd) => fd.as_raw_fd(),
        }
    }
}

pub(super) fn proc_fd(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number")
}

/// `/proc/self/fd/<parent>/<name>`: see the module doc for why this reaches `name` in that
/// directory and never follows it with the l*xattr calls.
pub(super) fn proc_child(parent: RawFd, name: &CStr) -> CString {
    let mut b = format!("/proc/self/fd/{parent}/").into_bytes();
    b.extend_from_slice(name.to_bytes());
    CString::new(b).expect("names hold no NUL")
}

impl HeldDir {
    /// The parent of a split path, opened beneath (the held descriptor itself at the top).
    /// A symlink among its components is ENOTDIR: in this tree the symlink is the entry, and
    /// nothing lies "under" it (as for a regular file in the way).
    pub(super) fn parent(&self, parent: &[u8]) -> io::Result<Parent<'_>> {
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
    pub(super) fn entry(&self, path: &Path) -> io::Result<(Parent<'_>, CString)> {
        let (parent, name) = split(path)?.ok_or_else(einval)?;
        Ok((self.parent(parent)?, name))
    }
}
