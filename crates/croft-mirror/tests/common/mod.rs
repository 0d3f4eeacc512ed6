//! Helpers of the mirror's integration tests: temporary directories that clean up, a mounted
//! mirror that is always unmounted (even when the test panics), and a tree snapshot that
//! compares everything the mirror must replicate.
#![allow(dead_code)]

pub mod random_ops;

use croft_mirror::{AckLevel, DirtyPaths, FailMode, Mirror, MirrorConfig, PeerConfig, Replica, ReplicaConfig};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const KEY: &[u8] = b"croft test cluster key";

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("croft-mirror-test-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        croft_mirror::lazy_unmount(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A mounted mirror that is unmounted on drop, with `fusermount3 -u -z` as the last resort.
pub struct Mounted {
    pub mirror: Option<Mirror>,
    pub dir: PathBuf,
    pub dirty: Arc<DirtyPaths>,
}

impl Mounted {
    pub fn mount(dir: &Path, peer: Option<PeerConfig>, fail_mode: FailMode) -> Mounted {
        let dirty = Arc::new(DirtyPaths::new());
        let mut config = MirrorConfig::new(dir, peer);
        config.fail_mode = fail_mode;
        let mirror = Mirror::mount(config, dirty.clone(), None).unwrap_or_else(|e| panic!("{}: {e}", e.code()));
        Mounted { mirror: Some(mirror), dir: dir.to_path_buf(), dirty }
    }

    pub fn mirror(&self) -> &Mirror {
        self.mirror.as_ref().unwrap()
    }

    /// Unmounts cleanly: the test fails if the mount is busy.
    pub fn unmount(mut self) {
        let m = self.mirror.take().unwrap();
        if let Err(e) = m.unmount() {
            panic!("{}: {e}", e.code());
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        drop(self.mirror.take());
        croft_mirror::lazy_unmount(&self.dir);
    }
}

/// A mirror mounted by the test itself (its own tracker), unmounted on drop even when the test panics.
pub struct MountGuard(pub Option<Mirror>, pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        drop(self.0.take());
        croft_mirror::lazy_unmount(&self.1);
    }
}

pub fn peer(addr: std::net::SocketAddr, level: AckLevel) -> PeerConfig {
    let mut p = PeerConfig::new(addr, KEY.to_vec());
    p.ack_level = level;
    p.ack_timeout_ms = 10_000;
    p
}

pub fn replica(dir: &Path) -> Replica {
    Replica::start(ReplicaConfig { dir: dir.to_path_buf(), listen: "127.0.0.1:0".parse().unwrap(), key: KEY.to_vec(), dirty_log: None, allowed_peers: Vec::new(), protocol: Default::default() })
        .unwrap()
}

/// Everything the mirror replicates about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub content: Option<Vec<u8>>,
    pub target: Option<PathBuf>,
    pub rdev: u64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The other names of the same inode (hard links), sorted.
    pub links: Vec<PathBuf>,
    pub mtime: Option<(i64, i64)>,
}

fn xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    // SAFETY: buffer writable for its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {p:?}: {}", std::io::Error::last_os_error());
    for name in names[..n as usize].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: buffer writable for its length.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(len >= 0);
        v.truncate(len as usize);
        out.insert(name.to_vec(), v);
    }
    out
}

/// Snapshot of a tree (read directly, not through a mount). `with_mtime`: paths whose mtime
/// must match (those set explicitly).
pub fn snapshot(root: &Path, with_mtime: &dyn Fn(&Path) -> bool) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut by_ino: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = if rel.as_os_str().is_empty() { root.to_path_buf() } else { root.join(&rel) };
        let md = fs::symlink_metadata(&full).unwrap();
        let kind = md.mode() & libc::S_IFMT;
        if kind == libc::S_IFDIR {
            for e in fs::read_dir(&full).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
        if kind != libc::S_IFDIR {
            by_ino.entry(md.ino()).or_default().push(rel.clone());
        }
        let content = (kind == libc::S_IFREG).then(|| fs::read(&full).unwrap());
        let target = (kind == libc::S_IFLNK).then(|| fs::read_link(&full).unwrap());
        out.insert(
            rel.clone(),
            Entry {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                // A directory's size is the filesystem's business.
                size: if kind == libc::S_IFDIR { 0 } else { md.size() },
                content,
                target,
                rdev: md.rdev(),
                xattrs: if kind == libc::S_IFLNK { BTreeMap::new() } else { xattrs(&full) },
                links: vec![],
                mtime: with_mtime(&rel).then(|| (md.mtime(), md.mtime_nsec())),
            },
        );
    }
    for paths in by_ino.values() {
        let mut sorted = paths.clone();
        sorted.sort();
        for p in paths {
            out.get_mut(p).unwrap().links = sorted.clone();
        }
    }
    out
}

/// Panics with the first differences found.
pub fn assert_same_trees(a: &Path, b: &Path, with_mtime: &dyn Fn(&Path) -> bool) -> usize {
    let sa = snapshot(a, with_mtime);
    let sb = snapshot(b, with_mtime);
    let mut diffs = Vec::new();
    for (p, ea) in &sa {
        match sb.get(p) {
            None => diffs.push(format!("{p:?} only on the primary")),
            Some(eb) if ea != eb => {
                let mut ea2 = ea.clone();
                let mut eb2 = eb.clone();
                if ea2.content != eb2.content {
                    diffs.push(format!(
                        "{p:?} contents differ ({} vs {} bytes)",
                        ea2.content.as_ref().map_or(0, Vec::len),
                        eb2.content.as_ref().map_or(0, Vec::len)
                    ));
                    ea2.content = None;
                    eb2.content = None;
                }
                if ea2 != eb2 {
                    diffs.push(format!("{p:?}: primary {ea2:?}\n   replica {eb2:?}"));
                }
            }
            _ => {}
        }
    }
    for p in sb.keys() {
        if !sa.contains_key(p) {
            diffs.push(format!("{p:?} only on the replica"));
        }
    }
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n"));
    sa.len()
}

/// Writes the same starting files into each directory.
pub fn seed(dirs: &[&Path]) {
    for d in dirs {
        fs::create_dir_all(d.join("old/sub")).unwrap();
        fs::write(d.join("old/a.txt"), b"existing file a\n").unwrap();
        fs::write(d.join("old/sub/b.bin"), vec![7u8; 100_000]).unwrap();
        std::os::unix::fs::symlink("a.txt", d.join("old/link")).unwrap();
    }
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// The errno of a libc call's result (0 on success).
pub fn check(ret: libc::c_int) -> i32 {
    if ret < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    } else {
        0
    }
}

pub fn renameat2(from: &Path, to: &Path, flags: u32) -> i32 {
    let (f, t) = (cpath(from), cpath(to));
    // SAFETY: valid C strings.
    let r = unsafe { libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), flags) };
    check(r as libc::c_int)
}

pub fn set_xattr(p: &Path, name: &str, value: &[u8], flags: i32) -> i32 {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: valid C strings and buffer.
    check(unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) })
}

pub fn remove_xattr(p: &Path, name: &str) -> i32 {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: valid C strings.
    check(unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) })
}

pub fn lchown(p: &Path, uid: u32, gid: u32) -> i32 {
    let c = cpath(p);
    // SAFETY: valid C string.
    check(unsafe { libc::lchown(c.as_ptr(), uid, gid) })
}

pub fn set_mtime(p: &Path, sec: i64, nsec: i64) -> i32 {
    let c = cpath(p);
    let t = [libc::timespec { tv_sec: sec - 100, tv_nsec: 0 }, libc::timespec { tv_sec: sec, tv_nsec: nsec }];
    // SAFETY: valid C string, two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), t.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

pub fn fallocate_path(p: &Path, mode: i32, offset: i64, len: i64) -> i32 {
    use std::os::fd::AsRawFd;
    let f = match fs::OpenOptions::new().write(true).open(p) {
        Ok(f) => f,
        Err(e) => return e.raw_os_error().unwrap_or(libc::EIO),
    };
    // SAFETY: valid descriptor.
    check(unsafe { libc::fallocate(f.as_raw_fd(), mode, offset, len) })
}

pub fn mkfifo(p: &Path, mode: u32) -> i32 {
    let c = cpath(p);
    // SAFETY: valid C string.
    check(unsafe { libc::mknod(c.as_ptr(), libc::S_IFIFO | mode, 0) })
}

/// A TCP relay to `target` that holds every chunk going back to the client for `delay` (acks
/// arrive late). Returns its address; it runs until the test process ends.
pub fn delaying_proxy(target: std::net::SocketAddr, delay: std::time::Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(client) = c else { return };
            let Ok(server) = TcpStream::connect(target) else { return };
            let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            let (mut s2, mut c2) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match s2.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    std::thread::sleep(delay);
                    if c2.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

/// A TCP relay to `target` that delivers every chunk, both ways, `delay` after it arrived (a
/// wire latency: chunks in flight overlap). Runs until the test process ends.
pub fn latency_proxy(target: std::net::SocketAddr, delay: std::time::Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    fn pipe(mut from: TcpStream, mut to: TcpStream, delay: std::time::Duration) {
        let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, Vec<u8>)>();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send((std::time::Instant::now() + delay, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        std::thread::spawn(move || {
            for (at, chunk) in rx {
                std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
                if to.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(client) = c else { return };
            let Ok(server) = TcpStream::connect(target) else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), delay);
            pipe(server, client, delay);
        }
    });
    addr
}
