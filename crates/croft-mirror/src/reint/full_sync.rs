//! The full sync: a walk of both trees that copies what differs, with the target's listings
//! and checksums asked ahead of the walk where nothing sent meanwhile can change them.

use super::{Core, ReintError, Ctx, AHEAD_QUERIES_MAX, AHEAD_SUM_BYTES_MAX, QUERY_TIMEOUT};
use crate::op::Op;
use crate::sync::{self, EntryInfo};
use crate::sys::{self};
use crate::wire::Query;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use crate::locks::Locked;

impl Core {
    pub(super) fn list_remote(&self, ctx: &mut Ctx, path: &Path) -> Result<Vec<EntryInfo>, ReintError> {
        let decode = |body: Vec<u8>| {
            sync::decode_infos(&body).map_err(|e| ReintError::Peer(format!("listing {path:?} on the target: {e}")))
        };
        let (body, early) = self.ask(ctx, Ask::List(path.to_path_buf()))?;
        let infos = decode(body)?;
        // Asked ahead, the answer misses the operations sent since. Only a name linked
        // elsewhere (a shared inode) can have been changed by them: then ask again, in order.
        if early && infos.iter().any(|i| i.kind() != libc::S_IFDIR && i.nlink > 1) {
            return decode(self.repl.query(&Query::ListDir { path: path.to_path_buf() }, QUERY_TIMEOUT)?);
        }
        Ok(infos)
    }

    /// The answer to `ask`: the one asked ahead if there is one (true), else asked now.
    pub(super) fn ask(&self, ctx: &mut Ctx, ask: Ask) -> Result<(Vec<u8>, bool), ReintError> {
        // After a listing the walk of that directory asks ahead (its files' checksums are
        // needed first: before the listings further on, the target answers in order).
        let refill = matches!(ask, Ask::Sums(_));
        let ahead = &mut ctx.ahead;
        let r = match ahead.inflight.remove(&ask) {
            Some((id, bytes)) => {
                ahead.sum_bytes -= bytes;
                (self.repl.query_wait(id, QUERY_TIMEOUT)?, true)
            }
            None => {
                // Not asked yet: it is next in the walk, so the first still to ask.
                if let Some(f) = ahead.frames.last_mut() {
                    if f.front().is_some_and(|(a, _)| *a == ask) {
                        f.pop_front();
                    }
                }
                let q = ask.query(ctx.zone);
                (self.repl.query(&q, QUERY_TIMEOUT)?, false)
            }
        };
        if refill {
            self.ask_ahead(ctx)?;
        }
        Ok(r)
    }

    /// Sends the queries the walk will need soonest, up to the window: the target answers
    /// them while this side reads its own tree, instead of one round trip at a time.
    pub(super) fn ask_ahead(&self, ctx: &mut Ctx) -> Result<(), ReintError> {
        let zone = ctx.zone;
        let ahead = &mut ctx.ahead;
        // The innermost directory's entries come first in the walk.
        for f in (0..ahead.frames.len()).rev() {
            while let Some((ask, bytes)) = ahead.frames[f].front() {
                if ahead.inflight.len() >= AHEAD_QUERIES_MAX {
                    return Ok(());
                }
                if *bytes > 0 && ahead.sum_bytes > 0 && ahead.sum_bytes + bytes > AHEAD_SUM_BYTES_MAX {
                    return Ok(());
                }
                let (ask, bytes) = (ask.clone(), *bytes);
                ahead.frames[f].pop_front();
                let id = self.repl.query_send(&ask.query(zone))?;
                ahead.sum_bytes += bytes;
                ahead.inflight.insert(ask, (id, bytes));
            }
        }
        Ok(())
    }

    pub(super) fn full_walk(&self, ctx: &mut Ctx) -> Result<(), ReintError> {
        let root = {
            let _g = self.order.locked();
            sync::read_info(&self.dir, Path::new("")).map_err(ReintError::Io)?.ok_or(ReintError::DirectoryGone)?
        };
        self.send(ctx, &[Op::SyncDir { path: PathBuf::new(), meta: root.meta(), children: None }])?;
        self.full_dir(ctx, Path::new(""), true)?;
        let _g = self.order.locked();
        if let Some(root) = sync::read_info(&self.dir, Path::new("")).map_err(ReintError::Io)? {
            self.send(ctx, &[Op::SyncMeta { path: PathBuf::new(), meta: root.meta() }])?;
        }
        Ok(())
    }

    pub(super) fn full_dir(&self, ctx: &mut Ctx, path: &Path, remote_exists: bool) -> Result<(), ReintError> {
        self.check_abort()?;
        // Excluded paths are left out on both sides: not copied, and the target keeps its own.
        let kept = |i: &EntryInfo| !self.repl.exclude.covers(&path.join(OsStr::from_bytes(&i.name)));
        let mut local = {
            let _g = self.order.locked();
            sync::list_infos(&self.dir, path).map_err(ReintError::local("listing", path))?
        };
        local.retain(kept);
        let remote: BTreeMap<Vec<u8>, EntryInfo> = if remote_exists {
            self.list_remote(ctx, path)?.into_iter().filter(kept).map(|i| (i.name.clone(), i)).collect()
        } else {
            BTreeMap::new()
        };
        // What the walk of this directory will ask, in its order: the listings of the
        // directories there too, and the checksums of the files that differ in size or mtime.
        // Only what the operations sent meanwhile cannot change (see `Ahead`).
        let mut todo = VecDeque::new();
        for li in &local {
            let Some(r) = remote.get(&li.name) else { continue };
            let child = path.join(OsStr::from_bytes(&li.name));
            match li.kind() {
                libc::S_IFDIR if r.kind() == libc::S_IFDIR => todo.push_back((Ask::List(child), 0)),
                libc::S_IFREG
                    if r.kind() == libc::S_IFREG
                        && li.nlink == 1
                        && r.nlink == 1
                        && !(r.size == li.size && r.mtime == li.mtime) =>
                {
                    todo.push_back((Ask::Sums(child), r.size.max(1)))
                }
                _ => {}
            }
        }
        ctx.ahead.frames.push(todo);
        let r = self.full_dir_entries(ctx, path, &local, &remote);
        ctx.ahead.frames.pop();
        r
    }

    pub(super) fn full_dir_entries(
        &self,
        ctx: &mut Ctx,
        path: &Path,
        local: &[EntryInfo],
        remote: &BTreeMap<Vec<u8>, EntryInfo>,
    ) -> Result<(), ReintError> {
        self.ask_ahead(ctx)?;
        let names: BTreeSet<&[u8]> = local.iter().map(|i| i.name.as_slice()).collect();
        for name in remote.keys() {
            if !names.contains(name.as_slice()) {
                self.send(ctx, &[Op::RemoveTree { path: path.join(OsStr::from_bytes(name)) }])?;
            }
        }
        self.update(|s| s.entries_to_go += local.len() as u64);
        for li in local {
            let child = path.join(OsStr::from_bytes(&li.name));
            let r = remote.get(&li.name);
            let same_kind = r.is_some_and(|r| r.kind() == li.kind());
            let meta_same = r.is_some_and(|r| same_meta(li, r));
            match li.kind() {
                libc::S_IFDIR => {
                    if !same_kind || !meta_same {
                        self.send(ctx, &[Op::SyncDir { path: child.clone(), meta: li.meta(), children: None }])?;
                    }
                    self.full_dir(ctx, &child, same_kind)?;
                    if !meta_same {
                        // Times again: the children's changes came after.
                        let _g = self.order.locked();
                        if let Ok(Some(now)) = sync::read_info(&self.dir, &child) {
                            self.send(ctx, &[Op::SyncMeta { path: child.clone(), meta: now.meta() }])?;
                        }
                    }
                }
                libc::S_IFREG => self.full_file(ctx, &child, li, r)?,
                libc::S_IFLNK => {
                    if !(same_kind && meta_same && r.is_some_and(|r| r.target == li.target)) {
                        self.send(
                            ctx,
                            &[Op::SyncSymlink {
                                path: child.clone(),
                                target: PathBuf::from(OsStr::from_bytes(&li.target)),
                                meta: li.meta(),
                            }],
                        )?;
                    }
                }
                _ => {
                    if !(same_kind && meta_same && r.is_some_and(|r| r.rdev == li.rdev)) {
                        self.send(ctx, &[Op::SyncNode { path: child.clone(), mode: li.mode, rdev: li.rdev, meta: li.meta() }])?;
                    }
                }
            }
            self.update(|s| {
                s.entries_done += 1;
                s.entries_to_go = s.entries_to_go.saturating_sub(1);
            });
        }
        Ok(())
    }

    pub(super) fn full_file(&self, ctx: &mut Ctx, path: &Path, li: &EntryInfo, r: Option<&EntryInfo>) -> Result<(), ReintError> {
        if li.nlink > 1 {
            match ctx.inodes.get(&li.ino) {
                Some(first) => {
                    // Another name of a file already synced: the target links it the same way.
                    return self.send(ctx, &[Op::LinkReplace { from: first.clone(), to: path.to_path_buf() }]);
                }
                None => {
                    ctx.inodes.insert(li.ino, path.to_path_buf());
                }
            }
        }
        let remote_reg = r.filter(|r| r.kind() == libc::S_IFREG);
        if let Some(r) = remote_reg {
            if r.size == li.size && r.mtime == li.mtime && (r.nlink == 1 || li.nlink > 1) {
                if !same_meta(li, r) {
                    self.send(ctx, &[Op::SyncMeta { path: path.to_path_buf(), meta: li.meta() }])?;
                }
                self.update(|s| s.bytes_skipped += li.size);
                return Ok(());
            }
        }
        // Linked elsewhere there but not here: a new inode, so the other names keep their data.
        let fresh = match remote_reg {
            None => true,
            Some(r) => r.nlink > 1 && li.nlink == 1,
        };
        let theirs = match (fresh, remote_reg) {
            (false, Some(_)) => {
                // Asked ahead only for a file with one name on both sides: nothing sent
                // meanwhile can have changed it.
                let (body, _) = self.ask(ctx, Ask::Sums(path.to_path_buf()))?;
                sync::decode_sums(&body).map_err(|e| ReintError::Peer(format!("checksums of {path:?} on the target: {e}")))?.1
            }
            _ => Vec::new(),
        };
        let fd = {
            let _g = self.order.locked();
            let fd = self.dir.open_at(path, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(ReintError::local("opening", path))?;
            let size = sys::fstat(fd.as_raw_fd()).map_err(ReintError::local("reading", path))?.st_size as u64;
            self.send(ctx, &[Op::SyncFile { path: path.to_path_buf(), size, fresh }])?;
            fd
        };
        let mut off = 0u64;
        let mut zone_index = 0usize;
        loop {
            self.check_abort()?;
            let _g = self.order.locked();
            let mut buf = vec![0u8; ctx.zone as usize];
            let n = sys::pread(fd.as_raw_fd(), &mut buf, off).map_err(ReintError::local("reading", path))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            let differs = match theirs.get(zone_index) {
                Some(s) => *s != sync::sum(&buf),
                // Beyond their end, or a new file: zeros are already there (ftruncate).
                None => buf.iter().any(|b| *b != 0),
            };
            if differs {
                self.send(ctx, &[Op::Write { path: path.to_path_buf(), offset: off, data: buf }])?;
                drop(_g);
                ctx.pace.pay(n as u64, || self.check_abort())?;
            } else {
                self.update(|s| s.bytes_skipped += n as u64);
            }
            off += n as u64;
            zone_index += 1;
        }
        let _g = self.order.locked();
        if let Ok(Some(now)) = sync::read_info(&self.dir, path) {
            if now.kind() == libc::S_IFREG {
                self.send(ctx, &[Op::SyncMeta { path: path.to_path_buf(), meta: now.meta() }])?;
            }
        }
        Ok(())
    }
}

/// A question of the full sync's walk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Ask {
    List(PathBuf),
    Sums(PathBuf),
}

impl Ask {
    pub(super) fn query(&self, zone_bytes: u64) -> Query {
        match self {
            Ask::List(path) => Query::ListDir { path: path.clone() },
            Ask::Sums(path) => Query::Checksums { path: path.clone(), zone_bytes },
        }
    }
}

/// The full sync's queries asked ahead of its walk. The target answers a query after the
/// operations sent before it, so one asked ahead misses those sent between it and the time
/// the walk needs it; the walk asks ahead only what they cannot change: the listing of a
/// directory that exists on both sides (names under it are touched only by the walk of that
/// directory; a name linked elsewhere could change through another name, so such a listing
/// is asked again in order) and the checksums of a file with one name on both sides.
#[derive(Default)]
pub(super) struct Ahead {
    /// Per directory being walked, outermost first: what its walk will ask, in order.
    frames: Vec<VecDeque<(Ask, u64)>>,
    /// Asked and not taken yet: the query's id and the file bytes it checksums.
    inflight: HashMap<Ask, (u64, u64)>,
    /// File bytes of the checksum queries in `inflight`.
    sum_bytes: u64,
}

pub(super) fn same_meta(a: &EntryInfo, b: &EntryInfo) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && (a.kind() == libc::S_IFLNK || a.xattrs == b.xattrs)
}
