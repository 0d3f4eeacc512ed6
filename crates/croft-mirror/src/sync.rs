//! Reintegration's building blocks shared by both sides: the description of an entry (lstat,
//! symlink target, xattrs) both sides compare, zone checksums, the codecs of the query replies and
//! quarantine. The idempotent operations that state a result are applied by [`crate::apply`].

use crate::tracker::DirtyEntry;
use crate::codec::{Dec, Enc};
use crate::op::Meta;
use crate::sys::{self, HeldDir};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Bytes of one zone checksum: a SHA-256 truncated to 128 bits (collisions by accident are out
/// of reach; SHA-NI makes it run at GB/s, and the crate is already here for the handshake).
pub const SUM_BYTES: usize = 16;
pub type Sum = [u8; SUM_BYTES];

/// Nothing there: no such entry, or a parent that is not a directory any more.
fn is_enoent(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

pub(crate) fn fmt_of(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// The xattrs of `path` (not of symlinks: Linux allows only trusted./security. there and the
/// mirror does not replicate those on links), sorted by name.
pub(crate) fn read_xattrs(dir: &HeldDir, path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let (len, _) = dir.list_xattr(path, 0)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let (_, names) = dir.list_xattr(path, len + 256)?;
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let n = OsStr::from_bytes(name);
        let (vlen, _) = match dir.get_xattr(path, n, 0) {
            Ok(x) => x,
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => return Err(e),
        };
        let (_, v) = dir.get_xattr(path, n, vlen.max(1))?;
        out.push((name.to_vec(), v[..vlen.min(v.len())].to_vec()));
    }
    out.sort();
    Ok(out)
}

// --- entries as both sides see them ------------------------------------------------------------

/// One directory entry with everything reintegration and verify compare.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryInfo {
    pub name: Vec<u8>,
    /// st_mode, with the type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub rdev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    /// Symlink target (empty otherwise).
    pub target: Vec<u8>,
    /// Sorted by name; empty for symlinks.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryInfo {
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn meta(&self) -> Meta {
        Meta {
            mode: self.mode & 0o7777,
            uid: self.uid,
            gid: self.gid,
            xattrs: (self.kind() != libc::S_IFLNK).then(|| self.xattrs.clone()),
            atime: Some(self.atime),
            mtime: Some(self.mtime),
        }
    }
}

pub(crate) fn info_of(dir: &HeldDir, path: &Path, st: &libc::stat) -> io::Result<EntryInfo> {
    let kind = fmt_of(st);
    Ok(EntryInfo {
        name: path.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default(),
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if kind == libc::S_IFDIR { 0 } else { st.st_size as u64 },
        rdev: st.st_rdev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        atime: (st.st_atime, st.st_atime_nsec),
        mtime: (st.st_mtime, st.st_mtime_nsec),
        target: if kind == libc::S_IFLNK { dir.readlink(path)? } else { Vec::new() },
        xattrs: if kind == libc::S_IFLNK { Vec::new() } else { read_xattrs(dir, path)? },
    })
}

/// `Ok(None)`: nothing there.
pub(crate) fn read_info(dir: &HeldDir, path: &Path) -> io::Result<Option<EntryInfo>> {
    match dir.lstat(path) {
        Ok(st) => info_of(dir, path, &st).map(Some),
        Err(e) if is_enoent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The entries of directory `path`, sorted by name (entries removed meanwhile are skipped).
pub(crate) fn list_infos(dir: &HeldDir, path: &Path) -> io::Result<Vec<EntryInfo>> {
    let mut out = Vec::new();
    for (name, _, _) in dir.list_dir(path)? {
        let p = path.join(&name);
        match read_info(dir, &p) {
            Ok(Some(i)) => out.push(i),
            Ok(None) => {}
            Err(e) if is_enoent(&e) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Size and the checksum of each zone of regular file `path`.
pub(crate) fn checksums(dir: &HeldDir, path: &Path, zone_bytes: u64) -> io::Result<(u64, Vec<Sum>)> {
    let fd = dir.open_at(path, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    let st = sys::fstat(fd.as_raw_fd())?;
    if fmt_of(&st) != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let size = st.st_size as u64;
    let zone = zone_bytes.max(4096) as usize;
    let mut buf = vec![0u8; zone];
    let mut sums = Vec::with_capacity((size / zone as u64 + 1) as usize);
    let mut off = 0u64;
    while off < size {
        let want = (size - off).min(zone as u64) as usize;
        let mut got = 0;
        while got < want {
            let n = sys::pread(fd.as_raw_fd(), &mut buf[got..want], off + got as u64)?;
            if n == 0 {
                break; // shrank meanwhile: the rest reads as nothing
            }
            got += n;
        }
        sums.push(sum(&buf[..got]));
        off += zone as u64;
    }
    Ok((size, sums))
}

pub fn sum(data: &[u8]) -> Sum {
    let d = Sha256::digest(data);
    d[..SUM_BYTES].try_into().unwrap()
}

// --- reply codecs ------------------------------------------------------------------------------

/// A reply: status 1 then the payload, or 0, errno, message.
pub(crate) fn reply_err(e: &io::Error) -> Vec<u8> {
    let mut out = vec![0u8];
    let mut enc = Enc(&mut out);
    enc.u32(sys::errno_of(e) as u32);
    enc.bytes(e.to_string().as_bytes());
    out
}

/// Splits a reply into its payload, or the remote error.
pub(crate) fn reply_ok(body: &[u8]) -> Result<Dec<'_>, String> {
    let mut d = Dec { buf: body, pos: 0 };
    match d.u8()? {
        1 => Ok(d),
        _ => {
            let errno = d.u32()?;
            let msg = String::from_utf8_lossy(&d.bytes()?).into_owned();
            Err(format!("{msg} (errno {errno})"))
        }
    }
}

fn encode_info(e: &mut Enc, i: &EntryInfo) {
    e.bytes(&i.name);
    e.u32(i.mode);
    e.u32(i.uid);
    e.u32(i.gid);
    e.u64(i.size);
    e.u64(i.rdev);
    e.u64(i.ino);
    e.u64(i.nlink);
    for (s, n) in [i.atime, i.mtime] {
        e.u64(s as u64);
        e.u64(n as u64);
    }
    e.bytes(&i.target);
    e.u32(i.xattrs.len() as u32);
    for (n, v) in &i.xattrs {
        e.bytes(n);
        e.bytes(v);
    }
}

fn decode_info(d: &mut Dec) -> Result<EntryInfo, String> {
    let mut i = EntryInfo {
        name: d.bytes()?,
        mode: d.u32()?,
        uid: d.u32()?,
        gid: d.u32()?,
        size: d.u64()?,
        rdev: d.u64()?,
        ino: d.u64()?,
        nlink: d.u64()?,
        atime: (d.u64()? as i64, d.u64()? as i64),
        mtime: (d.u64()? as i64, d.u64()? as i64),
        target: d.bytes()?,
        xattrs: Vec::new(),
    };
    let n = d.u32()?;
    for _ in 0..n {
        i.xattrs.push((d.bytes()?, d.bytes()?));
    }
    Ok(i)
}

pub(crate) fn encode_infos(r: io::Result<Vec<EntryInfo>>) -> Vec<u8> {
    match r {
        Err(e) => reply_err(&e),
        Ok(infos) => {
            let mut out = vec![1u8];
            let mut e = Enc(&mut out);
            e.u32(infos.len() as u32);
            for i in &infos {
                encode_info(&mut e, i);
            }
            out
        }
    }
}

pub(crate) fn decode_infos(body: &[u8]) -> Result<Vec<EntryInfo>, String> {
    let mut d = reply_ok(body)?;
    let n = d.u32()?;
    let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
    for _ in 0..n {
        out.push(decode_info(&mut d)?);
    }
    Ok(out)
}

pub(crate) fn encode_sums(r: io::Result<(u64, Vec<Sum>)>) -> Vec<u8> {
    match r {
        Err(e) => reply_err(&e),
        Ok((size, sums)) => {
            let mut out = vec![1u8];
            Enc(&mut out).u64(size);
            Enc(&mut out).u32(sums.len() as u32);
            for s in &sums {
                out.extend_from_slice(s);
            }
            out
        }
    }
}

pub(crate) fn decode_sums(body: &[u8]) -> Result<(u64, Vec<Sum>), String> {
    let mut d = reply_ok(body)?;
    let size = d.u64()?;
    let n = d.u32()?;
    let mut sums = Vec::with_capacity(n as usize);
    for _ in 0..n {
        sums.push(d.take(SUM_BYTES)?.try_into().unwrap());
    }
    Ok((size, sums))
}

/// The target's dirty log: `None` when it has none.
pub(crate) fn encode_entries(log: Option<(bool, Vec<DirtyEntry>)>) -> Vec<u8> {
    let mut out = vec![1u8];
    let mut e = Enc(&mut out);
    match log {
        None => e.u8(0),
        Some((trusted, entries)) => {
            e.u8(1);
            e.u8(u8::from(trusted));
            e.u32(entries.len() as u32);
            for x in &entries {
                e.path(&x.path);
                e.u8(u8::from(x.entry_changed));
                e.u32(x.zones.len() as u32);
                for (a, b) in &x.zones {
                    e.u64(*a);
                    e.u64(*b);
                }
            }
        }
    }
    out
}

pub(crate) fn decode_entries(body: &[u8]) -> Result<Option<(bool, Vec<DirtyEntry>)>, String> {
    let mut d = reply_ok(body)?;
    if d.u8()? == 0 {
        return Ok(None);
    }
    let trusted = d.u8()? != 0;
    let n = d.u32()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let path: PathBuf = d.path()?;
        let entry_changed = d.u8()? != 0;
        let z = d.u32()?;
        let mut zones = Vec::new();
        for _ in 0..z {
            zones.push((d.u64()?, d.u64()?));
        }
        let to_end_from = zones.last().filter(|(_, l)| *l == crate::op::TO_END).map(|(s, _)| *s);
        out.push(DirtyEntry { path, zones, entry_changed, to_end_from });
    }
    Ok(Some((trusted, out)))
}

// --- quarantine -------------------------------------------------------------------------------

/// Copies entry `rel` of `dir` to `dest_root/rel` for the quarantine of what a losing side gives
/// up: a regular file (its bytes, permission bits without set-id/sticky, times) or a symlink (its
/// target, never followed); anything else (gone, a directory, fifo, socket, device) is skipped:
/// `Ok(false)`. The source is reached only through `dir` ([`HeldDir`]: no symlink followed in any
/// component, nothing outside it), so a directory of the unmounted tree swapped for a symlink by
/// its owner cannot make root copy a file from elsewhere into the quarantine (issue 8).
/// Directories created under `dest_root` are 0700 (the copies are root's, readable by root only);
/// an existing destination is an error (nothing is overwritten).
pub fn quarantine_entry(dir: &HeldDir, rel: &Path, dest_root: &Path) -> io::Result<bool> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if rel.as_os_str().is_empty() {
        return Ok(false);
    }
    let st = match dir.lstat(rel) {
        Ok(st) => st,
        Err(e) if is_enoent(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    let kind = fmt_of(&st);
    if kind != libc::S_IFREG && kind != libc::S_IFLNK {
        return Ok(false);
    }
    // rel passed the HeldDir's text check (plain names), so the join stays under dest_root.
    sys::check_path(rel)?;
    let dst = dest_root.join(rel);
    if let Some(parent) = dst.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
    }
    if kind == libc::S_IFLNK {
        let target = dir.readlink(rel)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), &dst)?;
        return Ok(true);
    }
    let src = match dir.open_at(rel, libc::O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) if is_enoent(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    let st = sys::fstat(src.as_raw_fd())?;
    let mut from = std::fs::File::from(src);
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&dst)?;
    io::copy(&mut from, &mut to)?;
    sys::fchmod(to.as_raw_fd(), st.st_mode & 0o777)?;
    let times = [
        libc::timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec },
        libc::timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec },
    ];
    // SAFETY: times has two entries; a valid descriptor.
    if unsafe { libc::futimens(to.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    to.sync_all()?;
    Ok(true)
}

/// What [`quarantine_paths`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct QuarantineReport {
    /// Files and symlinks copied.
    pub copied: u32,
    /// Each path that could not be copied, with the error (the others were copied).
    pub failed: Vec<(PathBuf, String)>,
}

/// The quarantine of a losing side: each of `paths` (relative to the unmounted directory `dir`)
/// copied with [`quarantine_entry`] into `dest_root`; one failure does not stop the others.
/// `Err` only when `dir` cannot be opened.
pub fn quarantine_paths(dir: &Path, paths: &[PathBuf], dest_root: &Path) -> io::Result<QuarantineReport> {
    let held = HeldDir::open(dir)?;
    let mut out = QuarantineReport::default();
    for p in paths {
        match quarantine_entry(&held, p, dest_root) {
            Ok(true) => out.copied += 1,
            Ok(false) => {}
            Err(e) => out.failed.push((p.clone(), e.to_string())),
        }
    }
    Ok(out)
}
