//! Applying an [`Op`]: the one place that turns an operation into `*at()` calls under the held
//! directory. The primary (FUSE layer, for what it does not apply through open descriptors) and
//! the replica call the same functions ([`apply`], [`create_file`], [`sync_path`]), so an
//! operation leaves the same result on both (same mode bits, owners, explicit times).
//!
//! Directory times: an entry created or removed by a reintegration operation would change its
//! parent's mtime on the replica only; the replica puts the parent's times back, so a directory
//! synced before its children keeps the primary's times (rsync sets directory times last for the
//! same reason).

use crate::op::{Meta, Op};
use crate::sync::{fmt_of, read_xattrs};
use crate::sys::{self, HeldDir, SetTime};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new(""))
}

/// Sets the owner, then the exact mode: the process umask must not shape replicated modes, and a
/// chown clears set-id bits (chown(2)), so the mode goes last.
fn own_and_mode(dir: &HeldDir, path: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<()> {
    dir.chown(path, Some(uid), Some(gid))?;
    dir.chmod(path, mode & 0o7777)
}

/// Creates a new regular file (`O_EXCL`) with exactly `mode` and the owner, and returns it open
/// with `flags` (the access mode of the caller).
pub(crate) fn create_file(dir: &HeldDir, path: &Path, mode: u32, uid: u32, gid: u32, flags: i32) -> io::Result<OwnedFd> {
    let fd = dir.open_at(path, flags | libc::O_CREAT | libc::O_EXCL, mode & 0o7777)?;
    sys::fchown(fd.as_raw_fd(), uid, gid)?;
    sys::fchmod(fd.as_raw_fd(), mode & 0o7777)?;
    Ok(fd)
}

/// Applies a path-based operation to `dir`. Data operations open the file for the call; the
/// primary applies those through its open descriptors instead (see the FUSE layer), and the
/// replica through its descriptor cache, but the results are the same. Nothing outside `dir` is
/// ever reached: a path through a symlink fails (ELOOP), see [`HeldDir`].
pub fn apply(dir: &HeldDir, op: &Op) -> io::Result<()> {
    match op {
        Op::Write { path, offset, data } => {
            let fd = dir.open_at(path, libc::O_WRONLY, 0)?;
            sys::pwrite_all(fd.as_raw_fd(), data, *offset)
        }
        Op::Truncate { path, size } => {
            let fd = dir.open_at(path, libc::O_WRONLY, 0)?;
            sys::ftruncate(fd.as_raw_fd(), *size)
        }
        Op::Fallocate { path, mode, offset, len } => {
            let fd = dir.open_at(path, libc::O_WRONLY, 0)?;
            sys::fallocate(fd.as_raw_fd(), *mode, *offset, *len)
        }
        Op::Create { path, mode, uid, gid } => create_file(dir, path, *mode, *uid, *gid, libc::O_WRONLY).map(drop),
        Op::Mknod { path, mode, rdev, uid, gid } => {
            dir.mknod(path, *mode, *rdev)?;
            own_and_mode(dir, path, *mode, *uid, *gid)
        }
        Op::Mkdir { path, mode, uid, gid } => {
            dir.mkdir(path, *mode & 0o7777)?;
            own_and_mode(dir, path, *mode, *uid, *gid)
        }
        Op::Symlink { path, target, uid, gid } => {
            dir.symlink(target, path)?;
            dir.chown(path, Some(*uid), Some(*gid))
        }
        Op::Link { from, to } => dir.link(from, to),
        Op::Unlink { path } => dir.unlink(path),
        Op::Rmdir { path } => dir.rmdir(path),
        Op::Rename { from, to, flags } => dir.rename(from, to, *flags),
        Op::Chmod { path, mode } => dir.chmod(path, *mode & 0o7777),
        Op::Chown { path, uid, gid } => dir.chown(path, *uid, *gid),
        Op::Utimens { path, atime, mtime } => dir.utimens(path, *atime, *mtime),
        Op::SetXattr { path, name, value, flags } => {
            dir.set_xattr(path, OsStr::from_bytes(name), value, *flags)
        }
        Op::RemoveXattr { path, name } => dir.remove_xattr(path, OsStr::from_bytes(name)),
        Op::Fsync { path, datasync } => sync_path(dir, path, *datasync),
        // Reintegration's operations: each states a result and is idempotent (applying it twice
        // leaves the same result).
        Op::RemoveTree { path } => keeping_parent_times(dir, path, || remove_tree(dir, path)),
        Op::SyncDir { path, meta, children } => {
            if !path.as_os_str().is_empty() {
                match dir.lstat(path) {
                    Ok(st) if fmt_of(&st) == libc::S_IFDIR => {}
                    other => keeping_parent_times(dir, path, || {
                        if other.is_ok() {
                            remove_tree(dir, path)?;
                        }
                        dir.mkdir(path, 0o700)
                    })?,
                }
            }
            if let Some(children) = children {
                for (name, _, _) in dir.list_dir(path)? {
                    if !children.iter().any(|c| c.as_slice() == name.as_bytes()) {
                        remove_tree(dir, &path.join(name))?;
                    }
                }
            }
            set_meta(dir, path, meta)
        }
        Op::SyncFile { path, size, fresh } => {
            let fd = match dir.lstat(path) {
                Ok(st) if fmt_of(&st) == libc::S_IFREG && !fresh => dir.open_at(path, libc::O_WRONLY, 0)?,
                other => keeping_parent_times(dir, path, || {
                    if other.is_ok() {
                        remove_tree(dir, path)?;
                    }
                    dir.open_at(path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)
                })?,
            };
            if sys::fstat(fd.as_raw_fd())?.st_size as u64 != *size {
                sys::ftruncate(fd.as_raw_fd(), *size)?;
            }
            Ok(())
        }
        Op::SyncMeta { path, meta } => set_meta(dir, path, meta),
        Op::SyncSymlink { path, target, meta } => {
            let same = match dir.lstat(path) {
                Ok(st) if fmt_of(&st) == libc::S_IFLNK => dir.readlink(path)? == target.as_os_str().as_bytes(),
                _ => false,
            };
            if !same {
                keeping_parent_times(dir, path, || {
                    remove_tree(dir, path)?;
                    dir.symlink(target, path)
                })?;
            }
            set_meta(dir, path, &Meta { xattrs: None, ..meta.clone() })
        }
        Op::SyncNode { path, mode, rdev, meta } => {
            let same = match dir.lstat(path) {
                Ok(st) => fmt_of(&st) == mode & libc::S_IFMT && st.st_rdev == *rdev,
                Err(_) => false,
            };
            if !same {
                keeping_parent_times(dir, path, || {
                    remove_tree(dir, path)?;
                    dir.mknod(path, (mode & libc::S_IFMT) | 0o600, *rdev)
                })?;
            }
            set_meta(dir, path, meta)
        }
        Op::LinkReplace { from, to } => {
            if let (Ok(a), Ok(b)) = (dir.lstat(from), dir.lstat(to)) {
                if a.st_ino == b.st_ino && a.st_dev == b.st_dev {
                    return Ok(());
                }
            }
            keeping_parent_times(dir, to, || {
                remove_tree(dir, to)?;
                dir.link(from, to)
            })
        }
    }
}

/// fsync of a file or directory by path (a directory is opened read-only, fsync(2) allows it).
pub(crate) fn sync_path(dir: &HeldDir, path: &Path, datasync: bool) -> io::Result<()> {
    let st = dir.lstat(path)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        // A symlink cannot be opened; its parent directory holds it.
        return sync_path(dir, path.parent().unwrap_or(Path::new("")), datasync);
    }
    let flags = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        libc::O_RDONLY | libc::O_DIRECTORY
    } else if st.st_mode & libc::S_IFMT == libc::S_IFREG {
        libc::O_RDONLY
    } else {
        // Devices, fifos, sockets: their metadata lives in the parent's filesystem journal.
        return sync_path(dir, path.parent().unwrap_or(Path::new("")), datasync);
    };
    let fd = dir.open_at(path, flags | libc::O_NONBLOCK, 0)?;
    sys::fsync(fd.as_raw_fd(), datasync)
}

/// Runs `f`, then puts back the times `path`'s parent had before (see the module doc).
fn keeping_parent_times<T>(dir: &HeldDir, path: &Path, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let before = dir.lstat(parent(path)).ok();
    let r = f();
    if let Some(st) = before {
        let _ = dir.utimens(
            parent(path),
            SetTime::At { sec: st.st_atime, nsec: st.st_atime_nsec },
            SetTime::At { sec: st.st_mtime, nsec: st.st_mtime_nsec },
        );
    }
    r
}

/// Removes `path` and everything under it; absent is fine. Never the directory itself. Walks by
/// descriptors and never follows a symlink ([`HeldDir::remove_tree`]).
pub(crate) fn remove_tree(dir: &HeldDir, path: &Path) -> io::Result<()> {
    dir.remove_tree(path)
}

fn set_meta(dir: &HeldDir, path: &Path, meta: &Meta) -> io::Result<()> {
    let st = dir.lstat(path)?;
    let link = fmt_of(&st) == libc::S_IFLNK;
    if st.st_uid != meta.uid || st.st_gid != meta.gid {
        dir.chown(path, Some(meta.uid), Some(meta.gid))?;
    }
    // After chown, which clears set-id bits.
    if !link {
        dir.chmod(path, meta.mode & 0o7777)?;
    }
    if let (Some(want), false) = (&meta.xattrs, link) {
        let have = read_xattrs(dir, path)?;
        for (n, _) in &have {
            if !want.iter().any(|(w, _)| w == n) {
                match dir.remove_xattr(path, OsStr::from_bytes(n)) {
                    Err(e) if e.raw_os_error() != Some(libc::ENODATA) => return Err(e),
                    _ => {}
                }
            }
        }
        for (n, v) in want {
            if !have.iter().any(|(h, hv)| h == n && hv == v) {
                dir.set_xattr(path, OsStr::from_bytes(n), v, 0)?;
            }
        }
    }
    let t = |x: Option<(i64, i64)>| x.map_or(SetTime::Omit, |(sec, nsec)| SetTime::At { sec, nsec });
    if meta.atime.is_some() || meta.mtime.is_some() {
        dir.utimens(path, t(meta.atime), t(meta.mtime))?;
    }
    Ok(())
}
