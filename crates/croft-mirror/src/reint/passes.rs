//! Reintegration's passes: what to copy (from the dirty logs, from what changed during a
//! pass), and the copy of one entry under the order lock.

use super::{Core, Ctx, ReintError, ReintegrationPhase, CHUNK_BYTES, WINDOW_BYTES};
use crate::link::Recent;
use crate::op::{Op, TO_END};
use crate::sync;
use crate::sys::{self};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::MutexGuard;
use crate::locks::Locked;

/// What to copy of one path: the entry itself, and byte ranges `[start, end)` (end `u64::MAX`:
/// to the end of the file).
#[derive(Debug, Clone, Default)]
pub(super) struct Item {
    pub(super) ranges: Vec<(u64, u64)>,
}

impl Item {
    pub(super) fn whole() -> Item {
        Item { ranges: vec![(0, u64::MAX)] }
    }
    pub(super) fn add(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let end = if len == TO_END { u64::MAX } else { offset.saturating_add(len) };
        self.ranges.push((offset, end));
    }
    pub(super) fn normalize(&mut self) {
        self.ranges.sort();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (a, b) in self.ranges.drain(..) {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        self.ranges = out;
    }
    pub(super) fn is_whole(&self) -> bool {
        self.ranges.iter().any(|&(a, b)| a == 0 && b == u64::MAX)
    }
    pub(super) fn bytes(&self, size: u64) -> u64 {
        self.ranges.iter().map(|&(a, b)| b.min(size).saturating_sub(a)).sum()
    }
}

pub(super) type Work = BTreeMap<PathBuf, Item>;

pub(super) fn plain(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

pub(super) fn work_from_recent(recent: Recent) -> Work {
    let mut w = Work::new();
    for (path, extents) in recent {
        let item = w.entry(path).or_default();
        for (o, l) in extents {
            item.add(o, l);
        }
    }
    w
}

pub(super) fn add_entries(w: &mut Work, entries: &[crate::tracker::DirtyEntry]) {
    for e in entries {
        let item = w.entry(e.path.clone()).or_default();
        for &(o, l) in &e.zones {
            item.add(o, l);
        }
    }
}

impl Core {
    /// File bytes `work` still has to copy (ranges clipped to the current sizes).
    pub(super) fn estimate(&self, work: &mut Work) -> u64 {
        let mut total = 0;
        for (p, item) in work.iter_mut() {
            item.normalize();
            if let Ok(st) = self.dir.lstat(p) {
                if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                    total += item.bytes(st.st_size as u64);
                }
            }
        }
        total
    }

    pub(super) fn lock(&self, frozen: bool) -> Option<MutexGuard<'_, ()>> {
        (!frozen).then(|| self.order.locked())
    }

    pub(super) fn send(&self, ctx: &mut Ctx, ops: &[Op]) -> Result<(), ReintError> {
        let mut data = 0;
        for op in ops {
            if let Op::Write { data: d, .. } = op {
                data += d.len() as u64;
            }
        }
        let last = self.repl.catchup_send(ops)?;
        ctx.since_wait += data + 64 * ops.len() as u64;
        if data > 0 {
            let rate_elapsed = ctx.started.elapsed().as_secs_f64().max(1e-3);
            self.update(|s| {
                s.bytes_copied += data;
                s.bytes_to_go = s.bytes_to_go.saturating_sub(data);
                s.rate_bytes_per_sec = s.bytes_copied as f64 / rate_elapsed;
            });
        }
        if ctx.since_wait >= WINDOW_BYTES {
            ctx.since_wait = 0;
            self.repl.catchup_wait(last)?;
        }
        Ok(())
    }

    pub(super) fn copy_work(&self, ctx: &mut Ctx, mut work: Work, frozen: bool) -> Result<(), ReintError> {
        let to_go = self.estimate(&mut work);
        self.update(|s| {
            s.bytes_to_go = to_go;
            s.entries_to_go = work.len() as u64;
            // The copy begins with what it has to copy: never "copy" with nothing to go yet.
            if s.phase == ReintegrationPhase::Scan {
                s.phase = ReintegrationPhase::Copy;
            }
        });
        // Sorted: a directory comes before what it holds.
        for (path, item) in work {
            self.check_abort()?;
            if !path.as_os_str().is_empty() && !plain(&path) {
                continue;
            }
            if self.repl.exclude.covers(&path) {
                continue; // stays local (and the target keeps its own)
            }
            self.sync_entry(ctx, &path, &item, frozen)?;
            self.update(|s| {
                s.entries_done += 1;
                s.entries_to_go = s.entries_to_go.saturating_sub(1);
            });
        }
        Ok(())
    }

    /// Makes the target's `path` what it is here now, copying the ranges of `item`.
    pub(super) fn sync_entry(&self, ctx: &mut Ctx, path: &Path, item: &Item, frozen: bool) -> Result<(), ReintError> {
        let guard = self.lock(frozen);
        let Some(info) = sync::read_info(&self.dir, path).map_err(ReintError::local("reading", path))? else {
            if !path.as_os_str().is_empty() {
                self.send(ctx, &[Op::RemoveTree { path: path.to_path_buf() }])?;
            }
            return Ok(());
        };
        match info.kind() {
            libc::S_IFDIR => {
                let whole = item.is_whole();
                let children = if whole {
                    let names: Vec<Vec<u8>> = self
                        .dir
                        .list_dir(path)
                        .map_err(ReintError::local("listing", path))?
                        .into_iter()
                        .map(|(n, _, _)| n.as_bytes().to_vec())
                        .collect();
                    Some(names)
                } else {
                    None
                };
                // The excluded names here are kept on the target whatever they are there.
                let keep = children.clone().map(|mut c| {
                    c.extend(self.repl.exclude.names_in(path));
                    c
                });
                self.send(ctx, &[Op::SyncDir { path: path.to_path_buf(), meta: info.meta(), children: keep }])?;
                drop(guard);
                // Renamed or replaced: everything under it may differ.
                for name in children.unwrap_or_default() {
                    let child = path.join(OsStr::from_bytes(&name));
                    if !self.repl.exclude.covers(&child) {
                        self.sync_entry(ctx, &child, &Item::whole(), frozen)?;
                    }
                }
                Ok(())
            }
            libc::S_IFREG => {
                let mut linked = false;
                // Synced already under this very name (a directory's copy reached it, or an
                // earlier pass): the target's file is this inode, perhaps linked since to other
                // names; recreating it would cut those links.
                let mut known = false;
                if info.nlink > 1 {
                    match ctx.inodes.get(&info.ino) {
                        Some(first) if first != path => {
                            self.send(ctx, &[Op::LinkReplace { from: first.clone(), to: path.to_path_buf() }])?;
                            linked = true;
                        }
                        Some(_) => known = true,
                        None => {
                            ctx.inodes.insert(info.ino, path.to_path_buf());
                        }
                    }
                }
                if !linked {
                    let fresh = item.is_whole() && !known;
                    self.send(ctx, &[Op::SyncFile { path: path.to_path_buf(), size: info.size, fresh }])?;
                }
                let fd = self.dir.open_at(path, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(ReintError::local("opening", path))?;
                drop(guard);
                for &(a, b) in &item.ranges {
                    let mut off = a;
                    while off < b.min(info.size) {
                        self.check_abort()?;
                        let len = (b.min(info.size) - off).min(CHUNK_BYTES);
                        // Paid before it is read and sent (outside the order lock): N bytes
                        // take at least N / cap, and the rate shown never runs ahead of it.
                        if !frozen {
                            ctx.pace.pay(len, || self.check_abort())?;
                        }
                        let guard = self.lock(frozen);
                        let mut buf = vec![0u8; len as usize];
                        let n = sys::pread(fd.as_raw_fd(), &mut buf, off).map_err(ReintError::local("reading", path))?;
                        if n == 0 {
                            break; // shrank meanwhile: the truncate is in the recent set
                        }
                        buf.truncate(n);
                        self.send(ctx, &[Op::Write { path: path.to_path_buf(), offset: off, data: buf }])?;
                        drop(guard);
                        off += n as u64;
                    }
                }
                let _guard = self.lock(frozen);
                if let Some(now) = sync::read_info(&self.dir, path).map_err(ReintError::local("reading", path))? {
                    if now.kind() == libc::S_IFREG {
                        self.send(ctx, &[Op::SyncMeta { path: path.to_path_buf(), meta: now.meta() }])?;
                    }
                }
                Ok(())
            }
            libc::S_IFLNK => self.send(
                ctx,
                &[Op::SyncSymlink {
                    path: path.to_path_buf(),
                    target: PathBuf::from(OsStr::from_bytes(&info.target)),
                    meta: info.meta(),
                }],
            ),
            _ => self.send(
                ctx,
                &[Op::SyncNode { path: path.to_path_buf(), mode: info.mode, rdev: info.rdev, meta: info.meta() }],
            ),
        }
    }

}
