//! Extended attributes: no `*at()` form exists, so each call goes through /proc (see the
//! module doc for why this never follows a symlink swapped in).

use super::resolve::{proc_child, proc_fd, split};
use super::{c_name, cvt, cvt_size, HeldDir};
use std::ffi::{CStr, OsStr};
use std::io;
use std::path::Path;

impl HeldDir {
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
}
