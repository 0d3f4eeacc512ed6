//! The FUSE filesystem mounted over the replicated directory: a passthrough to the held directory
//! underneath in which every change is applied locally, sent to the peer, and answered only once
//! the peer acknowledged it (or the fail mode handled its loss).
//!
//! Ordering: a change is applied locally and handed to the replicator under one lock (`order`),
//! so sequence numbers follow local application order; the wait for the ack happens outside it,
//! so several application threads can have changes in flight. Every request gets exactly one
//! reply: each handler ends in exactly one `reply.*` call on every path.
//!
//! Not supported, with a clear error: POSIX/BSD locks are not forwarded (the kernel keeps them
//! local to this node, which is right while one node runs the application: getlk/setlk answer
//! ENOSYS if asked), copy_file_range (ENOSYS: the kernel falls back to read/write, which are
//! replicated), ioctl (ENOTTY), bmap and poll (ENOSYS), RENAME_WHITEOUT (EINVAL).

use crate::link::{AckedOp, Replicator};
use crate::apply;
use crate::op::Op;
use crate::sys::{self, HeldDir, SetTime};
use crate::table::{self, Table};
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents, PollFlags,
    PollNotifier, RenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use crate::locks::Locked;

/// Attribute and entry cache time. Nothing but this filesystem changes the directory underneath
/// while it is mounted, so the kernel's cache stays right; 1 s bounds the damage if someone does.
const TTL: Duration = Duration::from_secs(1);
const GEN: Generation = Generation(0);

enum HandleKind {
    File { fd: OwnedFd, sync: bool, datasync_only: bool },
    /// A directory listing taken at opendir: readdir offsets index into it.
    Dir { entries: Vec<(OsString, u64, u32)> },
}

struct Handle {
    node: u64,
    kind: HandleKind,
}

pub(crate) struct MirrorFs {
    dir: Arc<HeldDir>,
    table: Mutex<Table>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    /// Held while a change is applied locally and handed to the replicator (see module doc).
    /// Shared with the mirror: reintegration and verify take it to stop changes for a moment.
    order: Arc<Mutex<()>>,
    repl: Arc<Replicator>,
}

fn errno(e: io::Error) -> Errno {
    Errno::from_i32(sys::errno_of(&e))
}

/// The dirty log could not record a change (a full disk, say): the change is not applied and
/// the application gets EIO, whatever the log's own error was (issue 8, finding 11). The log
/// logs and counts the failure itself.
fn unrecorded(_e: io::Error) -> Errno {
    Errno::EIO
}

fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn set_time(t: Option<TimeOrNow>) -> SetTime {
    let st = match t {
        None => return SetTime::Omit,
        Some(TimeOrNow::Now) => SystemTime::now(),
        Some(TimeOrNow::SpecificTime(t)) => t,
    };
    match st.duration_since(UNIX_EPOCH) {
        Ok(d) => SetTime::At { sec: d.as_secs() as i64, nsec: d.subsec_nanos() as i64 },
        Err(e) => {
            let d = e.duration();
            // Before 1970: floor to whole seconds below, nanoseconds above.
            let (mut sec, mut nsec) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
            if nsec < 0 {
                sec -= 1;
                nsec += 1_000_000_000;
            }
            SetTime::At { sec, nsec }
        }
    }
}

fn attr(node: u64, st: &libc::stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(node),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: time(st.st_ctime, st.st_ctime_nsec),
        kind: file_type(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// Open flags kept on the descriptor underneath. O_APPEND is dropped because the kernel already
/// turned it into an offset (pwrite on an O_APPEND descriptor would ignore that offset); O_DIRECT
/// because FUSE's buffers are not aligned; creation flags because the file exists by now.
fn backing_flags(flags: i32) -> i32 {
    flags & (libc::O_ACCMODE | libc::O_SYNC | libc::O_DSYNC | libc::O_NOATIME)
}

/// A FUSE reply that can carry an errno (each fuser reply type has its own `error`).
trait Fails {
    fn fail(self, e: Errno);
}
macro_rules! fails {
    ($($t:ty),*) => { $(impl Fails for $t { fn fail(self, e: Errno) { self.error(e) } })* };
}
fails!(ReplyAttr, ReplyCreate, ReplyData, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr);

/// The one reply of every operation: `ok` with the value on success, the errno otherwise.
fn answer<R: Fails, T>(reply: R, r: Result<T, Errno>, ok: impl FnOnce(R, T)) {
    match r {
        Ok(v) => ok(reply, v),
        Err(e) => reply.fail(e),
    }
}

// Replies that acknowledge a change take the proof that it may be acknowledged.
fn ok(reply: ReplyEmpty, _proof: AckedOp) {
    reply.ok()
}
fn written(reply: ReplyWrite, n: u32, _proof: AckedOp) {
    reply.written(n)
}
fn entry(reply: ReplyEntry, a: &FileAttr, _proof: AckedOp) {
    reply.entry(&TTL, a, GEN)
}
fn created(reply: ReplyCreate, a: &FileAttr, fh: FileHandle, _proof: AckedOp) {
    reply.created(&TTL, a, GEN, fh, FopenFlags::empty())
}

impl MirrorFs {
    pub(crate) fn new(dir: Arc<HeldDir>, repl: Arc<Replicator>, order: Arc<Mutex<()>>) -> io::Result<MirrorFs> {
        let root = dir.lstat(Path::new(""))?;
        Ok(MirrorFs {
            dir,
            table: Mutex::new(Table::new(root.st_ino)),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            order,
            repl,
        })
    }

    fn path(&self, node: INodeNo) -> Result<PathBuf, Errno> {
        self.table.locked().path(node.0).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        if name.as_bytes().contains(&b'/') || name == "." || name == ".." {
            return Err(Errno::EINVAL);
        }
        Ok(self.path(parent)?.join(name))
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Handle>, Errno> {
        self.handles.locked().get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn file_fd(h: &Handle) -> Result<i32, Errno> {
        match &h.kind {
            HandleKind::File { fd, .. } => Ok(fd.as_raw_fd()),
            HandleKind::Dir { .. } => Err(Errno::EISDIR),
        }
    }

    fn add_handle(&self, node: u64, kind: HandleKind) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.locked().insert(fh, Arc::new(Handle { node, kind }));
        FileHandle(fh)
    }

    /// Looks `path` up (counting a kernel lookup) and returns its attributes.
    fn lookup_path(&self, path: &Path) -> Result<FileAttr, Errno> {
        let mut t = self.table.locked();
        let st = self.dir.lstat(path).map_err(errno)?;
        let id = t.lookup(path, st.st_ino, st.st_mode & libc::S_IFMT);
        Ok(attr(id, &st))
    }

    /// Owner of a new entry: the caller, with the group of a set-group-ID parent (as the kernel
    /// does for local filesystems: inode_init_owner). Returns also whether the parent is setgid.
    fn owner(&self, req: &Request, parent: &Path) -> Result<(u32, u32, bool), Errno> {
        let pst = self.dir.lstat(parent).map_err(errno)?;
        let sgid = pst.st_mode & libc::S_ISGID != 0;
        Ok((req.uid(), if sgid { pst.st_gid } else { req.gid() }, sgid))
    }

    /// Hands the locally applied `ops` to the replicator, releases the order lock and waits for
    /// the acknowledgement. `ops` empty: nothing changed, nothing to wait for.
    fn commit(&self, guard: MutexGuard<'_, ()>, ops: &[Op]) -> Result<AckedOp, Errno> {
        if ops.is_empty() {
            drop(guard);
            return Ok(AckedOp::unnamed());
        }
        let ticket = self.repl.replicate(ops);
        drop(guard);
        // Err: fenced (FailMode::Fence), or closing while blocked (FailMode::Block): applied
        // locally, never acknowledged.
        self.repl.wait(ticket).map_err(|()| Errno::EIO)
    }

    /// Applies a path-based operation locally (same code as the replica) and commits it.
    fn apply_commit(&self, op: Op, after: impl FnOnce(&mut Table)) -> Result<AckedOp, Errno> {
        let guard = self.order.locked();
        self.repl.before_apply(std::slice::from_ref(&op)).map_err(unrecorded)?;
        apply::apply(&self.dir, &op).map_err(errno)?;
        after(&mut self.table.locked());
        self.commit(guard, std::slice::from_ref(&op))
    }

    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        let path = self.table.locked().path(ino.0);
        let Some(path) = path else {
            // Unlinked while open: only the open descriptor reaches it, and nothing replicates.
            let h = self.handle(fh.ok_or(Errno::ENOENT)?)?;
            let fd = Self::file_fd(&h)?;
            if let Some(size) = size {
                sys::ftruncate(fd, size).map_err(errno)?;
            }
            if let Some(mode) = mode {
                sys::fchmod(fd, mode & 0o7777).map_err(errno)?;
            }
            return Ok(attr(ino.0, &sys::fstat(fd).map_err(errno)?));
        };
        let guard = self.order.locked();
        let mut ops = Vec::new();
        let mut failed = None;
        let mut step = |op: Op| -> bool {
            if let Err(e) = self.repl.before_apply(std::slice::from_ref(&op)) {
                failed = Some(unrecorded(e));
                return false;
            }
            let r = match &op {
                Op::Truncate { path, size } => self
                    .dir
                    .open_at(path, libc::O_WRONLY, 0)
                    .and_then(|fd| sys::ftruncate(fd.as_raw_fd(), *size)),
                Op::Chmod { path, .. } if self.dir.lstat(path).map(|s| s.st_mode & libc::S_IFMT) .ok() == Some(libc::S_IFLNK) => {
                    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
                }
                _ => apply::apply(&self.dir, &op),
            };
            match r {
                Ok(()) => {
                    ops.push(op);
                    true
                }
                Err(e) => {
                    failed = Some(errno(e));
                    false
                }
            }
        };
        let _ = (|| {
            if let Some(mode) = mode {
                if !step(Op::Chmod { path: path.clone(), mode: mode & 0o7777 }) {
                    return;
                }
            }
            if uid.is_some() || gid.is_some() {
                if !step(Op::Chown { path: path.clone(), uid, gid }) {
                    return;
                }
            }
            if let Some(size) = size {
                if !step(Op::Truncate { path: path.clone(), size }) {
                    return;
                }
            }
            if atime.is_some() || mtime.is_some() {
                step(Op::Utimens { path: path.clone(), atime: set_time(atime), mtime: set_time(mtime) });
            }
        })();
        // What was applied is replicated even when a later step failed.
        let _proof = self.commit(guard, &ops)?;
        if let Some(e) = failed {
            return Err(e);
        }
        let st = self.dir.lstat(&path).map_err(errno)?;
        Ok(attr(ino.0, &st))
    }

    fn do_create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, FileHandle, AckedOp), Errno> {
        let path = self.child(parent, name)?;
        let parent_path = self.path(parent)?;
        let (uid, gid, _) = self.owner(req, &parent_path)?;
        let mode = mode & 0o7777 & !umask;
        let oflags = backing_flags(flags);
        let guard = self.order.locked();
        // Marks the whole file (a new inode, or truncated): covers both outcomes below.
        self.repl.before_apply(&[Op::Create { path: path.clone(), mode, uid, gid }]).map_err(unrecorded)?;
        let (fd, ops) = match apply::create_file(&self.dir, &path, mode, uid, gid, oflags) {
            Ok(fd) => (fd, vec![Op::Create { path: path.clone(), mode, uid, gid }]),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags & libc::O_EXCL == 0 => {
                let fd = self.dir.open_at(&path, oflags, 0).map_err(errno)?;
                if flags & libc::O_TRUNC != 0 {
                    sys::ftruncate(fd.as_raw_fd(), 0).map_err(errno)?;
                    (fd, vec![Op::Truncate { path: path.clone(), size: 0 }])
                } else {
                    (fd, vec![])
                }
            }
            Err(e) => return Err(errno(e)),
        };
        let proof = self.commit(guard, &ops)?;
        let a = self.lookup_path(&path)?;
        let sync = flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        let datasync_only = flags & libc::O_SYNC != libc::O_SYNC;
        let fh = self.add_handle(a.ino.0, HandleKind::File { fd, sync, datasync_only });
        Ok((a, fh, proof))
    }

    fn do_write(&self, fh: FileHandle, offset: u64, data: &[u8]) -> Result<AckedOp, Errno> {
        let h = self.handle(fh)?;
        let HandleKind::File { fd, sync, datasync_only } = &h.kind else { return Err(Errno::EISDIR) };
        let guard = self.order.locked();
        let Some(path) = self.table.locked().path(h.node) else {
            sys::pwrite_all(fd.as_raw_fd(), data, offset).map_err(errno)?;
            return Ok(AckedOp::unnamed());
        };
        let mut ops = vec![Op::Write { path: path.clone(), offset, data: data.to_vec() }];
        self.repl.before_apply(&ops).map_err(unrecorded)?;
        sys::pwrite_all(fd.as_raw_fd(), data, offset).map_err(errno)?;
        if *sync {
            // O_SYNC/O_DSYNC: durable here (the descriptor has the flag) and on the peer.
            ops.push(Op::Fsync { path, datasync: *datasync_only });
        }
        self.commit(guard, &ops)
    }

    fn do_fsync(&self, node: u64, fd: i32, datasync: bool) -> Result<AckedOp, Errno> {
        // The local fsync does not need the order lock (it changes nothing); the Fsync op is
        // sequenced after every change already handed over, which is what it must cover.
        sys::fsync(fd, datasync).map_err(errno)?;
        let guard = self.order.locked();
        let Some(path) = self.table.locked().path(node) else {
            return Ok(AckedOp::unnamed());
        };
        self.commit(guard, &[Op::Fsync { path, datasync }])
    }

    fn do_rename(&self, parent: INodeNo, name: &OsStr, newparent: INodeNo, newname: &OsStr, flags: u32) -> Result<AckedOp, Errno> {
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 {
            return Err(Errno::EINVAL);
        }
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let guard = self.order.locked();
        let to_died = match self.dir.lstat(&to) {
            Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR || st.st_nlink <= 1,
            Err(_) => false,
        };
        let op = Op::Rename { from: from.clone(), to: to.clone(), flags };
        self.repl.before_apply(std::slice::from_ref(&op)).map_err(unrecorded)?;
        apply::apply(&self.dir, &op).map_err(errno)?;
        self.table.locked().renamed(&from, &to, exchange, to_died);
        self.commit(guard, &[op])
    }

    fn do_readdirplus(&self, ino: INodeNo, fh: FileHandle, offset: u64, reply: &mut ReplyDirectoryPlus) -> Result<(), Errno> {
        let h = self.handle(fh)?;
        let HandleKind::Dir { entries } = &h.kind else { return Err(Errno::ENOTDIR) };
        let dir_path = self.path(ino)?;
        for (i, (name, _real, _kind)) in entries.iter().enumerate().skip(offset as usize) {
            let next = i as u64 + 1;
            if name == "." || name == ".." {
                // The kernel takes no lookup for these (fuse_direntplus_link).
                let a = FileAttr { ino: INodeNo(if name == "." { ino.0 } else { table::ROOT }), ..attr(0, &dummy_dir_stat()) };
                if reply.add(a.ino, next, name, &TTL, &a, GEN) {
                    break;
                }
                continue;
            }
            let path = dir_path.join(name);
            let a = match self.lookup_path(&path) {
                Ok(a) => a,
                Err(_) => continue, // removed since opendir
            };
            if reply.add(a.ino, next, name, &TTL, &a, GEN) {
                // Not added: the kernel will not count this lookup.
                self.table.locked().forget(a.ino.0, 1);
                break;
            }
        }
        Ok(())
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

/// access(2) for the caller from the mode bits (owner, group, other; root may read and write
/// anything and execute what has an x bit). Supplementary groups are not known here: with
/// `default_permissions` (how croft mounts) the kernel checks before this is ever called.
fn permits(st: &libc::stat, uid: u32, gid: u32, mask: i32) -> bool {
    let mode = st.st_mode;
    if uid == 0 {
        return mask & libc::X_OK == 0 || mode & 0o111 != 0 || mode & libc::S_IFMT == libc::S_IFDIR;
    }
    let bits = if st.st_uid == uid {
        (mode >> 6) & 7
    } else if st.st_gid == gid {
        (mode >> 3) & 7
    } else {
        mode & 7
    } as i32;
    bits & mask == mask
}

impl Filesystem for MirrorFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // READDIRPLUS saves a lookup round trip per entry; without it readdir + lookup work too.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        Ok(())
    }

    fn destroy(&mut self) {
        self.handles.locked().clear();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        answer(reply, self.child(parent, name).and_then(|p| self.lookup_path(&p)), |reply, a| reply.entry(&TTL, &a, GEN));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.table.locked().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = (|| {
            if let Some(fh) = fh {
                if let Ok(h) = self.handle(fh) {
                    if let HandleKind::File { fd, .. } = &h.kind {
                        return sys::fstat(fd.as_raw_fd()).map_err(errno);
                    }
                }
            }
            self.dir.lstat(&self.path(ino)?).map_err(errno)
        })();
        answer(reply, r, |reply, st| reply.attr(&TTL, &attr(ino.0, &st)));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        answer(reply, self.do_setattr(ino, mode, uid, gid, size, atime, mtime, fh), |reply, a| reply.attr(&TTL, &a));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        answer(reply, self.path(ino).and_then(|p| self.dir.readlink(&p).map_err(errno)), |reply, t| reply.data(&t));
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let r = (|| {
            let path = self.child(parent, name)?;
            let (uid, gid, _) = self.owner(req, &self.path(parent)?)?;
            let mode = (mode & libc::S_IFMT) | (mode & 0o7777 & !umask);
            let proof = self.apply_commit(Op::Mknod { path: path.clone(), mode, rdev: rdev as u64, uid, gid }, |_| {})?;
            Ok((self.lookup_path(&path)?, proof))
        })();
        answer(reply, r, |reply, (a, proof)| entry(reply, &a, proof));
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let r = (|| {
            let path = self.child(parent, name)?;
            let (uid, gid, sgid) = self.owner(req, &self.path(parent)?)?;
            // A directory under a set-group-ID directory inherits the bit (inode_init_owner).
            let mode = (mode & 0o7777 & !umask) | if sgid { libc::S_ISGID } else { 0 };
            let proof = self.apply_commit(Op::Mkdir { path: path.clone(), mode, uid, gid }, |_| {})?;
            Ok((self.lookup_path(&path)?, proof))
        })();
        answer(reply, r, |reply, (a, proof)| entry(reply, &a, proof));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            let path = self.child(parent, name)?;
            let st = self.dir.lstat(&path).map_err(errno)?;
            let died = st.st_nlink <= 1;
            self.apply_commit(Op::Unlink { path: path.clone() }, |t| t.removed(&path, died))
        })();
        answer(reply, r, ok);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            let path = self.child(parent, name)?;
            self.apply_commit(Op::Rmdir { path: path.clone() }, |t| t.removed(&path, true))
        })();
        answer(reply, r, ok);
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let r = (|| {
            let path = self.child(parent, link_name)?;
            let (uid, gid, _) = self.owner(req, &self.path(parent)?)?;
            let op = Op::Symlink { path: path.clone(), target: target.to_path_buf(), uid, gid };
            let proof = self.apply_commit(op, |_| {})?;
            Ok((self.lookup_path(&path)?, proof))
        })();
        answer(reply, r, |reply, (a, proof)| entry(reply, &a, proof));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        answer(reply, self.do_rename(parent, name, newparent, newname, flags.bits()), ok);
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let r = (|| {
            let from = self.path(ino)?;
            let to = self.child(newparent, newname)?;
            let proof = self.apply_commit(Op::Link { from, to: to.clone() }, |t| t.linked(ino.0, &to))?;
            Ok((self.lookup_path(&to)?, proof))
        })();
        answer(reply, r, |reply, (a, proof)| entry(reply, &a, proof));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = (|| {
            let path = self.path(ino)?;
            let fd = self.dir.open_at(&path, backing_flags(flags.0), 0).map_err(errno)?;
            if flags.0 & libc::O_TRUNC != 0 && flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
                // Only with atomic_o_trunc, which croft does not ask for; handled all the same.
                let guard = self.order.locked();
                let op = Op::Truncate { path, size: 0 };
                self.repl.before_apply(std::slice::from_ref(&op)).map_err(unrecorded)?;
                sys::ftruncate(fd.as_raw_fd(), 0).map_err(errno)?;
                let _proof = self.commit(guard, &[op])?;
            }
            let sync = flags.0 & (libc::O_SYNC | libc::O_DSYNC) != 0;
            let datasync_only = flags.0 & libc::O_SYNC != libc::O_SYNC;
            Ok(self.add_handle(ino.0, HandleKind::File { fd, sync, datasync_only }))
        })();
        answer(reply, r, |reply, fh| reply.opened(fh, FopenFlags::empty()));
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = (|| {
            let h = self.handle(fh)?;
            let fd = Self::file_fd(&h)?;
            let mut buf = vec![0u8; size as usize];
            let n = sys::pread(fd, &mut buf, offset).map_err(errno)?;
            buf.truncate(n);
            Ok(buf)
        })();
        answer(reply, r, |reply, buf| reply.data(&buf));
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        answer(reply, self.do_write(fh, offset, data), |reply, proof| written(reply, data.len() as u32, proof));
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close(2): every change through this file was acknowledged before its call returned;
        // wait for anything other threads still have in flight, so close is a barrier too.
        let r = self.repl.wait(self.repl.barrier()).map_err(|()| Errno::EIO);
        answer(reply, r, ok);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles.locked().remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let r = self
            .handle(fh)
            .and_then(|h| Self::file_fd(&h).map(|fd| (h, fd)))
            .and_then(|(h, fd)| self.do_fsync(h.node, fd, datasync));
        answer(reply, r, ok);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = self.path(ino).and_then(|p| self.dir.list_dir(&p).map_err(errno));
        answer(reply, r, |reply, entries| {
            let fh = self.add_handle(ino.0, HandleKind::Dir { entries: listing(entries) });
            reply.opened(fh, FopenFlags::empty())
        });
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let h = match self.handle(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let HandleKind::Dir { entries } = &h.kind else { return reply.error(Errno::ENOTDIR) };
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
        reply.ok();
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let r = self.do_readdirplus(ino, fh, offset, &mut reply);
        answer(reply, r, |reply, ()| reply.ok());
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.handles.locked().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let r = (|| {
            let path = self.path(ino)?;
            let fd = self.dir.open_at(&path, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(errno)?;
            self.do_fsync(ino.0, fd.as_raw_fd(), datasync)
        })();
        answer(reply, r, ok);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        answer(reply, self.dir.statvfs().map_err(errno), |reply, s| {
            reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            )
        });
    }

    fn setxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, value: &[u8], flags: i32, position: u32, reply: ReplyEmpty) {
        let r = (|| {
            if position != 0 {
                return Err(Errno::EINVAL);
            }
            let path = self.path(ino)?;
            let op = Op::SetXattr { path, name: name.as_bytes().to_vec(), value: value.to_vec(), flags };
            self.apply_commit(op, |_| {})
        })();
        answer(reply, r, ok);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = self.path(ino).and_then(|p| self.dir.get_xattr(&p, name, size as usize).map_err(errno));
        answer(reply, r, |reply, (len, data)| if size == 0 { reply.size(len as u32) } else { reply.data(&data) });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = self.path(ino).and_then(|p| self.dir.list_xattr(&p, size as usize).map_err(errno));
        answer(reply, r, |reply, (len, data)| if size == 0 { reply.size(len as u32) } else { reply.data(&data) });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .path(ino)
            .and_then(|path| self.apply_commit(Op::RemoveXattr { path, name: name.as_bytes().to_vec() }, |_| {}));
        answer(reply, r, ok);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let r = self.path(ino).and_then(|p| self.dir.lstat(&p).map_err(errno)).and_then(|st| {
            if permits(&st, req.uid(), req.gid(), mask.bits()) { Ok(()) } else { Err(Errno::EACCES) }
        });
        answer(reply, r, |reply, ()| reply.ok());
    }

    fn create(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, flags: i32, reply: ReplyCreate) {
        answer(reply, self.do_create(req, parent, name, mode, umask, flags), |reply, (a, fh, proof)| created(reply, &a, fh, proof));
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn bmap(&self, _req: &Request, _ino: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(Errno::ENOSYS);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn fallocate(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, length: u64, mode: i32, reply: ReplyEmpty) {
        let r = (|| {
            let h = self.handle(fh)?;
            let fd = Self::file_fd(&h)?;
            let guard = self.order.locked();
            let Some(path) = self.table.locked().path(h.node) else {
                sys::fallocate(fd, mode, offset, length).map_err(errno)?;
                return Ok(AckedOp::unnamed());
            };
            let op = Op::Fallocate { path, mode, offset, len: length };
            self.repl.before_apply(std::slice::from_ref(&op)).map_err(unrecorded)?;
            sys::fallocate(fd, mode, offset, length).map_err(errno)?;
            self.commit(guard, &[op])
        })();
        answer(reply, r, ok);
    }

    fn lseek(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        answer(reply, self.handle(fh).and_then(|h| Self::file_fd(&h)).and_then(|fd| sys::lseek(fd, offset, whence).map_err(errno)), |reply, o| reply.offset(o));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // The kernel then copies with read and write, which are replicated.
        reply.error(Errno::ENOSYS);
    }
}
