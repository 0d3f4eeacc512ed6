//! Replicated operations: what changed, by path relative to the replicated directory, as the
//! primary applied it, and their binary form (see [`crate::codec`]). Applying one is
//! [`crate::apply`]'s job.

use crate::codec::{Dec, Enc};
use crate::sys::{self, SetTime};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `len` of a dirty extent that runs to the end of the file.
pub const TO_END: u64 = u64::MAX;

/// One change to the replicated tree. Paths are relative to the replicated directory, never
/// empty except for the directory itself (chmod/chown/utimens/xattr/fsync of the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Write { path: PathBuf, offset: u64, data: Vec<u8> },
    Truncate { path: PathBuf, size: u64 },
    Fallocate { path: PathBuf, mode: i32, offset: u64, len: u64 },
    /// A new empty regular file with exactly this mode and owner.
    Create { path: PathBuf, mode: u32, uid: u32, gid: u32 },
    Mknod { path: PathBuf, mode: u32, rdev: u64, uid: u32, gid: u32 },
    Mkdir { path: PathBuf, mode: u32, uid: u32, gid: u32 },
    Symlink { path: PathBuf, target: PathBuf, uid: u32, gid: u32 },
    Link { from: PathBuf, to: PathBuf },
    Unlink { path: PathBuf },
    Rmdir { path: PathBuf },
    /// renameat2 with `RENAME_NOREPLACE` / `RENAME_EXCHANGE` (or 0).
    Rename { from: PathBuf, to: PathBuf, flags: u32 },
    Chmod { path: PathBuf, mode: u32 },
    Chown { path: PathBuf, uid: Option<u32>, gid: Option<u32> },
    Utimens { path: PathBuf, atime: SetTime, mtime: SetTime },
    SetXattr { path: PathBuf, name: Vec<u8>, value: Vec<u8>, flags: i32 },
    RemoveXattr { path: PathBuf, name: Vec<u8> },
    /// fsync (or fdatasync) of a file or a directory: the peer does the same before it acks.
    Fsync { path: PathBuf, datasync: bool },
    // --- reintegration: idempotent, they state the result rather than the change ------------
    /// Removes `path` and everything under it; nothing there is fine.
    RemoveTree { path: PathBuf },
    /// `path` is a directory (another kind there is replaced) with this metadata; with
    /// `children`, anything else in it is removed.
    SyncDir { path: PathBuf, meta: Meta, children: Option<Vec<Vec<u8>>> },
    /// `path` is a regular file of `size` bytes (another kind there is replaced); `fresh`: a new
    /// inode (the old one may be shared by hard links that must not see the new data).
    SyncFile { path: PathBuf, size: u64, fresh: bool },
    /// Owner, mode, xattrs (exactly these), then times: the last step of an entry.
    SyncMeta { path: PathBuf, meta: Meta },
    /// `path` is a symlink to `target` (recreated if it points elsewhere or is another kind).
    SyncSymlink { path: PathBuf, target: PathBuf, meta: Meta },
    /// `path` is a device, fifo or socket node of `mode` (with `S_IF*`) and `rdev`.
    SyncNode { path: PathBuf, mode: u32, rdev: u64, meta: Meta },
    /// `to` becomes another name of `from` (whatever was at `to` is removed first).
    LinkReplace { from: PathBuf, to: PathBuf },
}

/// The metadata reintegration sets on an entry, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits (0o7777); ignored on symlinks.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `None`: leave the xattrs alone (symlinks); `Some`: exactly these.
    pub xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    pub atime: Option<(i64, i64)>,
    pub mtime: Option<(i64, i64)>,
}

impl Op {
    /// The extents this operation changes, for the dirty log: `(path, offset, len)`; `len == 0`
    /// means the entry itself (existence, metadata) changed, `len == TO_END` to the end of file.
    pub fn dirty_extents(&self) -> Vec<(PathBuf, u64, u64)> {
        match self {
            Op::Write { path, offset, data } => vec![(path.clone(), *offset, data.len() as u64)],
            Op::Truncate { path, size } => vec![(path.clone(), *size, TO_END)],
            Op::Fallocate { path, offset, len, .. } => vec![(path.clone(), *offset, *len)],
            // A new inode: whatever the peer has under that name must be replaced whole.
            Op::Create { path, .. } => vec![(path.clone(), 0, TO_END)],
            Op::Mknod { path, .. }
            | Op::Mkdir { path, .. }
            | Op::Symlink { path, .. }
            | Op::Unlink { path }
            | Op::Rmdir { path }
            | Op::Chmod { path, .. }
            | Op::Chown { path, .. }
            | Op::Utimens { path, .. }
            | Op::SetXattr { path, .. }
            | Op::RemoveXattr { path, .. } => vec![(path.clone(), 0, 0)],
            Op::Link { from, to } => vec![(from.clone(), 0, 0), (to.clone(), 0, TO_END)],
            // What now lives at `to` (and at `from` after an exchange) must be copied whole.
            Op::Rename { from, to, .. } => vec![(from.clone(), 0, TO_END), (to.clone(), 0, TO_END)],
            Op::Fsync { .. } => vec![],
            Op::RemoveTree { path }
            | Op::SyncDir { path, .. }
            | Op::SyncFile { path, .. }
            | Op::SyncMeta { path, .. }
            | Op::SyncSymlink { path, .. }
            | Op::SyncNode { path, .. } => vec![(path.clone(), 0, TO_END)],
            Op::LinkReplace { to, .. } => vec![(to.clone(), 0, TO_END)],
        }
    }

    /// The path whose file (or directory) the peer fsyncs for the `durable` ack level, and
    /// whether it is the parent directory that must be synced (namespace changes).
    pub fn sync_targets(&self) -> Vec<PathBuf> {
        fn parent(p: &Path) -> PathBuf {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        }
        match self {
            Op::Write { path, .. }
            | Op::Truncate { path, .. }
            | Op::Fallocate { path, .. }
            | Op::Chmod { path, .. }
            | Op::Chown { path, .. }
            | Op::Utimens { path, .. }
            | Op::SetXattr { path, .. }
            | Op::RemoveXattr { path, .. }
            | Op::Fsync { path, .. } => vec![path.clone()],
            Op::Create { path, .. } | Op::Mknod { path, .. } | Op::Mkdir { path, .. } => {
                vec![path.clone(), parent(path)]
            }
            Op::Symlink { path, .. } | Op::Unlink { path } | Op::Rmdir { path } => vec![parent(path)],
            Op::Link { to, .. } => vec![parent(to)],
            Op::Rename { from, to, .. } => vec![parent(from), parent(to)],
            Op::SyncDir { path, .. }
            | Op::SyncFile { path, .. }
            | Op::SyncMeta { path, .. }
            | Op::SyncSymlink { path, .. }
            | Op::SyncNode { path, .. } => vec![path.clone(), parent(path)],
            Op::RemoveTree { path } => vec![parent(path)],
            Op::LinkReplace { to, .. } => vec![parent(to)],
        }
    }

    // --- codec: tag byte, then fields little-endian, byte strings as u32 length + bytes ---------

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Enc(out);
        match self {
            Op::Write { path, offset, data } => {
                e.u8(1);
                e.path(path);
                e.u64(*offset);
                e.bytes(data);
            }
            Op::Truncate { path, size } => {
                e.u8(2);
                e.path(path);
                e.u64(*size);
            }
            Op::Fallocate { path, mode, offset, len } => {
                e.u8(3);
                e.path(path);
                e.u32(*mode as u32);
                e.u64(*offset);
                e.u64(*len);
            }
            Op::Create { path, mode, uid, gid } => {
                e.u8(4);
                e.path(path);
                e.u32(*mode);
                e.u32(*uid);
                e.u32(*gid);
            }
            Op::Mknod { path, mode, rdev, uid, gid } => {
                e.u8(5);
                e.path(path);
                e.u32(*mode);
                e.u64(*rdev);
                e.u32(*uid);
                e.u32(*gid);
            }
            Op::Mkdir { path, mode, uid, gid } => {
                e.u8(6);
                e.path(path);
                e.u32(*mode);
                e.u32(*uid);
                e.u32(*gid);
            }
            Op::Symlink { path, target, uid, gid } => {
                e.u8(7);
                e.path(path);
                e.path(target);
                e.u32(*uid);
                e.u32(*gid);
            }
            Op::Link { from, to } => {
                e.u8(8);
                e.path(from);
                e.path(to);
            }
            Op::Unlink { path } => {
                e.u8(9);
                e.path(path);
            }
            Op::Rmdir { path } => {
                e.u8(10);
                e.path(path);
            }
            Op::Rename { from, to, flags } => {
                e.u8(11);
                e.path(from);
                e.path(to);
                e.u32(*flags);
            }
            Op::Chmod { path, mode } => {
                e.u8(12);
                e.path(path);
                e.u32(*mode);
            }
            Op::Chown { path, uid, gid } => {
                e.u8(13);
                e.path(path);
                e.opt_u32(*uid);
                e.opt_u32(*gid);
            }
            Op::Utimens { path, atime, mtime } => {
                e.u8(14);
                e.path(path);
                e.time(*atime);
                e.time(*mtime);
            }
            Op::SetXattr { path, name, value, flags } => {
                e.u8(15);
                e.path(path);
                e.bytes(name);
                e.bytes(value);
                e.u32(*flags as u32);
            }
            Op::RemoveXattr { path, name } => {
                e.u8(16);
                e.path(path);
                e.bytes(name);
            }
            Op::Fsync { path, datasync } => {
                e.u8(17);
                e.path(path);
                e.u8(u8::from(*datasync));
            }
            Op::RemoveTree { path } => {
                e.u8(18);
                e.path(path);
            }
            Op::SyncDir { path, meta, children } => {
                e.u8(19);
                e.path(path);
                meta.encode(&mut e);
                match children {
                    None => e.u8(0),
                    Some(c) => {
                        e.u8(1);
                        e.u32(c.len() as u32);
                        for n in c {
                            e.bytes(n);
                        }
                    }
                }
            }
            Op::SyncFile { path, size, fresh } => {
                e.u8(20);
                e.path(path);
                e.u64(*size);
                e.u8(u8::from(*fresh));
            }
            Op::SyncMeta { path, meta } => {
                e.u8(21);
                e.path(path);
                meta.encode(&mut e);
            }
            Op::SyncSymlink { path, target, meta } => {
                e.u8(22);
                e.path(path);
                e.path(target);
                meta.encode(&mut e);
            }
            Op::SyncNode { path, mode, rdev, meta } => {
                e.u8(23);
                e.path(path);
                e.u32(*mode);
                e.u64(*rdev);
                meta.encode(&mut e);
            }
            Op::LinkReplace { from, to } => {
                e.u8(24);
                e.path(from);
                e.path(to);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Op, String> {
        let mut d = Dec { buf, pos: 0 };
        let op = match d.u8()? {
            1 => Op::Write { path: d.path()?, offset: d.u64()?, data: d.bytes()? },
            2 => Op::Truncate { path: d.path()?, size: d.u64()? },
            3 => Op::Fallocate { path: d.path()?, mode: d.u32()? as i32, offset: d.u64()?, len: d.u64()? },
            4 => Op::Create { path: d.path()?, mode: d.u32()?, uid: d.u32()?, gid: d.u32()? },
            5 => Op::Mknod {
                path: d.path()?,
                mode: d.u32()?,
                rdev: d.u64()?,
                uid: d.u32()?,
                gid: d.u32()?,
            },
            6 => Op::Mkdir { path: d.path()?, mode: d.u32()?, uid: d.u32()?, gid: d.u32()? },
            7 => Op::Symlink { path: d.path()?, target: d.path()?, uid: d.u32()?, gid: d.u32()? },
            8 => Op::Link { from: d.path()?, to: d.path()? },
            9 => Op::Unlink { path: d.path()? },
            10 => Op::Rmdir { path: d.path()? },
            11 => Op::Rename { from: d.path()?, to: d.path()?, flags: d.u32()? },
            12 => Op::Chmod { path: d.path()?, mode: d.u32()? },
            13 => Op::Chown { path: d.path()?, uid: d.opt_u32()?, gid: d.opt_u32()? },
            14 => Op::Utimens { path: d.path()?, atime: d.time()?, mtime: d.time()? },
            15 => Op::SetXattr {
                path: d.path()?,
                name: d.bytes()?,
                value: d.bytes()?,
                flags: d.u32()? as i32,
            },
            16 => Op::RemoveXattr { path: d.path()?, name: d.bytes()? },
            17 => Op::Fsync { path: d.path()?, datasync: d.u8()? != 0 },
            18 => Op::RemoveTree { path: d.path()? },
            19 => {
                let path = d.path()?;
                let meta = Meta::decode(&mut d)?;
                let children = match d.u8()? {
                    0 => None,
                    _ => {
                        let n = d.u32()? as usize;
                        let mut c = Vec::with_capacity(n.min(1 << 16));
                        for _ in 0..n {
                            c.push(d.bytes()?);
                        }
                        Some(c)
                    }
                };
                Op::SyncDir { path, meta, children }
            }
            20 => Op::SyncFile { path: d.path()?, size: d.u64()?, fresh: d.u8()? != 0 },
            21 => Op::SyncMeta { path: d.path()?, meta: Meta::decode(&mut d)? },
            22 => Op::SyncSymlink { path: d.path()?, target: d.path()?, meta: Meta::decode(&mut d)? },
            23 => Op::SyncNode { path: d.path()?, mode: d.u32()?, rdev: d.u64()?, meta: Meta::decode(&mut d)? },
            24 => Op::LinkReplace { from: d.path()?, to: d.path()? },
            t => return Err(format!("unknown operation tag {t}")),
        };
        if d.pos != buf.len() {
            return Err(format!("{} trailing bytes after operation", buf.len() - d.pos));
        }
        for p in op.paths() {
            check_relative(p)?;
        }
        if let Op::Symlink { target, .. } | Op::SyncSymlink { target, .. } = &op {
            if target.as_os_str().is_empty() || target.as_os_str().as_bytes().contains(&0) {
                return Err("symlink target is empty or holds NUL".into());
            }
        }
        if let Op::SyncDir { children: Some(c), .. } = &op {
            for n in c {
                if n.is_empty() || n.contains(&b'/') || n == b"." || n == b".." {
                    return Err(format!("child name {:?} is not a plain name", String::from_utf8_lossy(n)));
                }
            }
        }
        Ok(op)
    }

    /// The paths the operation names: [path], or [from, to] for a link or rename.
    pub(crate) fn paths(&self) -> Vec<&Path> {
        match self {
            Op::Link { from, to } | Op::Rename { from, to, .. } | Op::LinkReplace { from, to } => vec![from, to],
            Op::Write { path, .. }
            | Op::Truncate { path, .. }
            | Op::Fallocate { path, .. }
            | Op::Create { path, .. }
            | Op::Mknod { path, .. }
            | Op::Mkdir { path, .. }
            | Op::Symlink { path, .. }
            | Op::Unlink { path }
            | Op::Rmdir { path }
            | Op::Chmod { path, .. }
            | Op::Chown { path, .. }
            | Op::Utimens { path, .. }
            | Op::SetXattr { path, .. }
            | Op::RemoveXattr { path, .. }
            | Op::Fsync { path, .. }
            | Op::RemoveTree { path }
            | Op::SyncDir { path, .. }
            | Op::SyncFile { path, .. }
            | Op::SyncMeta { path, .. }
            | Op::SyncSymlink { path, .. }
            | Op::SyncNode { path, .. } => vec![path],
        }
    }
}

/// A replica must never be led outside its directory by a path from the wire. The guarantee is
/// the kernel's (every path is resolved beneath the held directory with no symlink followed, see
/// `sys`); this text check refuses what can never be a path built from names, with a clear error:
/// an absolute path, `..` or `.`, an empty component (`a//b`, a trailing `/`), NUL, over PATH_MAX.
fn check_relative(p: &Path) -> Result<(), String> {
    sys::check_path(p).map(drop).map_err(|_| {
        let shown: String = String::from_utf8_lossy(p.as_os_str().as_bytes()).chars().take(200).collect();
        format!("path {shown:?} is not a plain relative path")
    })
}

/// The wire form of [`Meta`] (inside `SyncDir`/`SyncMeta`/`SyncSymlink`/`SyncNode`).
impl Meta {
    pub(crate) fn encode(&self, e: &mut Enc) {
        let m = self;
        e.u32(m.mode);
        e.u32(m.uid);
        e.u32(m.gid);
        match &m.xattrs {
            None => e.u8(0),
            Some(x) => {
                e.u8(1);
                e.u32(x.len() as u32);
                for (n, v) in x {
                    e.bytes(n);
                    e.bytes(v);
                }
            }
        }
        for t in [m.atime, m.mtime] {
            match t {
                None => e.u8(0),
                Some((sec, nsec)) => {
                    e.u8(1);
                    e.u64(sec as u64);
                    e.u64(nsec as u64);
                }
            }
        }
    }
    pub(crate) fn decode(d: &mut Dec) -> Result<Meta, String> {
        let (mode, uid, gid) = (d.u32()?, d.u32()?, d.u32()?);
        let xattrs = match d.u8()? {
            0 => None,
            _ => {
                let n = d.u32()? as usize;
                let mut x = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    x.push((d.bytes()?, d.bytes()?));
                }
                Some(x)
            }
        };
        let mut times = [None, None];
        for t in &mut times {
            if d.u8()? != 0 {
                *t = Some((d.u64()? as i64, d.u64()? as i64));
            }
        }
        Ok(Meta { mode, uid, gid, xattrs, atime: times[0], mtime: times[1] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips() {
        let ops = vec![
            Op::Write { path: "a/b".into(), offset: 7, data: vec![1, 2, 3] },
            Op::Truncate { path: "a".into(), size: 9 },
            Op::Fallocate { path: "a".into(), mode: 3, offset: 1, len: 2 },
            Op::Create { path: "c".into(), mode: 0o100644, uid: 1, gid: 2 },
            Op::Mknod { path: "f".into(), mode: 0o10644, rdev: 0, uid: 1, gid: 2 },
            Op::Mkdir { path: "d".into(), mode: 0o755, uid: 0, gid: 0 },
            Op::Symlink { path: "s".into(), target: "../x/y".into(), uid: 3, gid: 4 },
            Op::Link { from: "a".into(), to: "b".into() },
            Op::Unlink { path: "a".into() },
            Op::Rmdir { path: "d".into() },
            Op::Rename { from: "a".into(), to: "b".into(), flags: 2 },
            Op::Chmod { path: "".into(), mode: 0o700 },
            Op::Chown { path: "a".into(), uid: None, gid: Some(5) },
            Op::Utimens { path: "a".into(), atime: SetTime::Omit, mtime: SetTime::At { sec: -5, nsec: 7 } },
            Op::SetXattr { path: "a".into(), name: b"user.x".to_vec(), value: vec![0, 1], flags: 1 },
            Op::RemoveXattr { path: "a".into(), name: b"user.x".to_vec() },
            Op::Fsync { path: "a".into(), datasync: true },
        ];
        for op in ops {
            let mut buf = Vec::new();
            op.encode(&mut buf);
            assert_eq!(Op::decode(&buf).unwrap(), op);
            assert!(Op::decode(&buf[..buf.len() - 1]).is_err());
        }
    }

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "./a", "a/./b", "a//b", "a/", "a/\0b", ".", ".."] {
            let mut buf = Vec::new();
            Op::Unlink { path: bad.into() }.encode(&mut buf);
            assert!(Op::decode(&buf).is_err(), "{bad} accepted");
        }
    }
}
