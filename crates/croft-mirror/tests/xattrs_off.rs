//! A mirror mounted with `xattrs: false` (MirrorConfig::xattrs): every extended-attribute call
//! through the mount is refused with EOPNOTSUPP, as on a filesystem without them, and nothing
//! else changes: files, folders and renames still reach the replica.
mod common;
use common::*;
use croft_mirror::{AckLevel, DirtyPaths, Mirror, MirrorConfig};
use std::ffi::CString;
use std::fs;
use std::sync::Arc;

#[test]
fn with_xattrs_off_every_xattr_call_is_refused_and_the_rest_replicates() {
    let primary = TempDir::new("xattrs-off-p");
    let secondary = TempDir::new("xattrs-off-s");
    let r = replica(secondary.path());
    let mut config = MirrorConfig::new(primary.path(), Some(peer(r.local_addr(), AckLevel::Received)));
    config.xattrs = false;
    let mirror = Mirror::mount(config, Arc::new(DirtyPaths::new()), None).unwrap_or_else(|e| panic!("{}: {e}", e.code()));
    let mut guard = MountGuard(Some(mirror), primary.path().to_path_buf());
    let d = primary.path();
    fs::create_dir(d.join("dir")).unwrap();
    fs::write(d.join("dir/f"), b"data").unwrap();
    let f = d.join("dir/f");
    let (c, n) = (cpath(&f), CString::new("user.croft").unwrap());
    assert_eq!(set_xattr(&f, "user.croft", b"1", 0), libc::EOPNOTSUPP, "setxattr");
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and buffer.
    assert_eq!(check(unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as libc::c_int), libc::EOPNOTSUPP, "getxattr");
    // SAFETY: valid C string and buffer.
    assert_eq!(check(unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as libc::c_int), libc::EOPNOTSUPP, "listxattr");
    assert_eq!(remove_xattr(&f, "user.croft"), libc::EOPNOTSUPP, "removexattr");
    // Writes (each of which the kernel would otherwise precede with a security.capability request)
    // and the namespace still work and replicate.
    fs::write(d.join("dir/f"), b"data, rewritten").unwrap();
    fs::rename(d.join("dir/f"), d.join("g")).unwrap();
    let mirror = guard.0.take().unwrap();
    if let Err(e) = mirror.unmount() {
        panic!("{}: {e}", e.code());
    }
    assert_eq!(fs::read(secondary.path().join("g")).unwrap(), b"data, rewritten");
    assert_same_trees(primary.path(), secondary.path(), &|_| false);
    // Nothing was set underneath either: the file has no extended attribute at all.
    let g = cpath(&primary.path().join("g"));
    // SAFETY: valid C string, no buffer (size query).
    assert_eq!(unsafe { libc::llistxattr(g.as_ptr(), std::ptr::null_mut(), 0) }, 0);
}
