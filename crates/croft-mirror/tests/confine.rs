//! Issue 8, finding 1: nothing the mirror does on behalf of the wire, the application or
//! reintegration reaches outside the replicated directory, whatever symlinks anyone planted in it.
//! Each test has a canary tree outside the replicated directory and asserts it is exactly as before.
mod common;
use common::random_ops::Rng;
use common::*;
use croft_mirror::apply::apply;
use croft_mirror::{AckLevel, FailMode, HeldDir, Op, SetTime};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A replicated directory `r` and, next to it, an `outside` directory owned by root that must
/// never change (a file, a subdirectory, an xattr).
struct Scene {
    _t: TempDir,
    r: PathBuf,
    outside: PathBuf,
}

impl Scene {
    fn new(tag: &str) -> Scene {
        let t = TempDir::new(tag);
        let r = t.path().join("r");
        let outside = t.path().join("outside");
        fs::create_dir_all(&r).unwrap();
        fs::create_dir_all(outside.join("sub/deeper")).unwrap();
        fs::write(outside.join("f"), b"outside file").unwrap();
        fs::write(outside.join("sub/g"), b"outside g").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(set_xattr(&outside.join("f"), "user.canary", b"1", 0), 0);
        Scene { _t: t, r, outside }
    }

    fn snap(&self) -> BTreeMap<PathBuf, Entry> {
        snapshot(&self.outside, &|_| true)
    }
}

fn ops_under(p: &str) -> Vec<Op> {
    let j = |n: &str| PathBuf::from(format!("{p}/{n}"));
    let meta = croft_mirror::op::Meta { mode: 0o4755, uid: 0, gid: 0, xattrs: Some(vec![]), atime: Some((1, 0)), mtime: Some((1, 0)) };
    vec![
        Op::Create { path: j("x"), mode: 0o4755, uid: 0, gid: 0 },
        Op::Write { path: j("f"), offset: 0, data: b"pwned".to_vec() },
        Op::Truncate { path: j("f"), size: 0 },
        Op::Fallocate { path: j("f"), mode: 0, offset: 0, len: 1 << 20 },
        Op::Mknod { path: j("node"), mode: libc::S_IFIFO | 0o666, rdev: 0, uid: 0, gid: 0 },
        Op::Mkdir { path: j("d"), mode: 0o777, uid: 0, gid: 0 },
        Op::Symlink { path: j("s"), target: "/etc/passwd".into(), uid: 0, gid: 0 },
        Op::Link { from: j("f"), to: "stolen".into() },
        Op::Link { from: "inside".into(), to: j("planted") },
        Op::Unlink { path: j("f") },
        Op::Rmdir { path: j("sub/deeper") },
        Op::Rename { from: j("f"), to: "moved".into(), flags: 0 },
        Op::Rename { from: "inside".into(), to: j("planted"), flags: 0 },
        Op::Rename { from: "inside".into(), to: j("f"), flags: libc::RENAME_EXCHANGE },
        Op::Chmod { path: j("f"), mode: 0o6777 },
        Op::Chown { path: j("f"), uid: Some(1234), gid: Some(1234) },
        Op::Utimens { path: j("f"), atime: SetTime::At { sec: 5, nsec: 0 }, mtime: SetTime::At { sec: 5, nsec: 0 } },
        Op::SetXattr { path: j("f"), name: b"user.x".to_vec(), value: b"v".to_vec(), flags: 0 },
        Op::RemoveXattr { path: j("f"), name: b"user.canary".to_vec() },
        Op::Fsync { path: j("f"), datasync: false },
        Op::RemoveTree { path: j("sub") },
        Op::SyncDir { path: j("sub"), meta: meta.clone(), children: Some(vec![]) },
        Op::SyncDir { path: j("new"), meta: meta.clone(), children: None },
        Op::SyncFile { path: j("f"), size: 0, fresh: false },
        Op::SyncFile { path: j("f"), size: 3, fresh: true },
        Op::SyncMeta { path: j("f"), meta: meta.clone() },
        Op::SyncSymlink { path: j("f"), target: "x".into(), meta: meta.clone() },
        Op::SyncNode { path: j("f"), mode: libc::S_IFIFO | 0o600, rdev: 0, meta: meta.clone() },
        Op::LinkReplace { from: "inside".into(), to: j("f") },
        Op::LinkReplace { from: j("f"), to: "inside2".into() },
    ]
}

#[test]
fn finding_1_ops_through_a_symlinked_directory_are_refused() {
    let s = Scene::new("f1a");
    fs::write(s.r.join("inside"), b"in").unwrap();
    // The local user's move: a directory of the replicated tree becomes a symlink out of it,
    // absolute or relative, at the top or deeper.
    symlink(&s.outside, s.r.join("uploads")).unwrap();
    fs::create_dir(s.r.join("deep")).unwrap();
    symlink("../../outside", s.r.join("deep/rel")).unwrap();
    let before = s.snap();
    let dir = HeldDir::open(&s.r).unwrap();
    for prefix in ["uploads", "deep/rel"] {
        for op in ops_under(prefix) {
            let r = apply(&dir, &op);
            // RemoveTree states a result: nothing at a path under a symlink is "absent", fine.
            assert!(r.is_err() || matches!(op, Op::RemoveTree { .. }), "{op:?} through {prefix} succeeded");
            assert_eq!(s.snap(), before, "{op:?} changed the outside directory");
        }
    }
    assert!(!s.r.join("stolen").exists() && !s.r.join("moved").exists());
    assert_eq!(fs::read(s.r.join("inside")).unwrap(), b"in");
}

#[test]
fn finding_1_a_final_symlink_is_acted_upon_itself_never_followed() {
    let s = Scene::new("f1final");
    symlink(s.outside.join("f"), s.r.join("lf")).unwrap();
    symlink(&s.outside, s.r.join("ld")).unwrap();
    let before = s.snap();
    let dir = HeldDir::open(&s.r).unwrap();
    // Data, mode and xattrs of a symlink are refused (Linux has no such thing for a link).
    for op in [
        Op::Write { path: "lf".into(), offset: 0, data: b"pwned".to_vec() },
        Op::Truncate { path: "lf".into(), size: 0 },
        Op::Chmod { path: "lf".into(), mode: 0o4777 },
        Op::SetXattr { path: "lf".into(), name: b"user.x".to_vec(), value: b"v".to_vec(), flags: 0 },
        Op::RemoveXattr { path: "lf".into(), name: b"user.canary".to_vec() },
        Op::Create { path: "lf".into(), mode: 0o644, uid: 0, gid: 0 },
    ] {
        assert!(apply(&dir, &op).is_err(), "{op:?} succeeded");
        assert_eq!(s.snap(), before, "{op:?} changed the outside directory");
    }
    // Owner and times change on the link itself; fsync syncs its directory.
    for op in [
        Op::Chown { path: "lf".into(), uid: Some(4321), gid: Some(4321) },
        Op::Utimens { path: "lf".into(), atime: SetTime::At { sec: 7, nsec: 0 }, mtime: SetTime::At { sec: 7, nsec: 0 } },
        Op::Fsync { path: "lf".into(), datasync: false },
    ] {
        apply(&dir, &op).unwrap_or_else(|e| panic!("{op:?}: {e}"));
        assert_eq!(s.snap(), before, "{op:?} changed the outside directory");
    }
    assert_eq!(fs::symlink_metadata(s.r.join("lf")).unwrap().uid(), 4321);
    // Reintegration's idempotent ops replace the link, never what it points to.
    let meta = croft_mirror::op::Meta { mode: 0o600, uid: 0, gid: 0, xattrs: Some(vec![]), atime: None, mtime: None };
    apply(&dir, &Op::SyncDir { path: "ld".into(), meta: meta.clone(), children: Some(vec![]) }).unwrap();
    assert!(fs::symlink_metadata(s.r.join("ld")).unwrap().is_dir());
    apply(&dir, &Op::SyncFile { path: "lf".into(), size: 4, fresh: false }).unwrap();
    assert!(fs::symlink_metadata(s.r.join("lf")).unwrap().is_file());
    symlink(&s.outside, s.r.join("ld2")).unwrap();
    apply(&dir, &Op::RemoveTree { path: "ld2".into() }).unwrap();
    assert!(fs::symlink_metadata(s.r.join("ld2")).is_err());
    assert_eq!(s.snap(), before);
}

/// The listing, xattr and namespace calls of the held directory (used by the FUSE side, the
/// replica's queries, reintegration and verify) refuse a path through a symlink.
#[test]
fn finding_1_listings_xattrs_and_namespace_calls_through_symlinks_are_refused() {
    let s = Scene::new("f1c");
    fs::create_dir(s.r.join("real")).unwrap();
    fs::write(s.r.join("real/in"), b"in").unwrap();
    symlink(&s.outside, s.r.join("uploads")).unwrap();
    let before = s.snap();
    let dir = HeldDir::open(&s.r).unwrap();
    let p = |x: &str| PathBuf::from(x);
    assert!(dir.list_dir(&p("uploads")).is_err());
    assert!(dir.list_dir(&p("uploads/sub")).is_err());
    assert!(dir.list_xattr(&p("uploads/f"), 0).is_err());
    assert!(dir.get_xattr(&p("uploads/f"), OsStr::new("user.canary"), 0).is_err());
    assert!(dir.set_xattr(&p("uploads/f"), OsStr::new("user.x"), b"v", 0).is_err());
    assert!(dir.remove_xattr(&p("uploads/f"), OsStr::new("user.canary")).is_err());
    assert!(dir.lstat(&p("uploads/f")).is_err());
    assert!(dir.readlink(&p("uploads/sub")).is_err());
    assert!(dir.open_at(&p("uploads/f"), libc::O_RDONLY, 0).is_err());
    // Nothing lies under a symlink in this tree: "absent", and the outside is left alone.
    dir.remove_tree(&p("uploads/sub")).unwrap();
    assert!(s.outside.join("sub/deeper").is_dir());
    assert!(dir.rename(&p("uploads/f"), &p("real/f"), 0).is_err());
    assert!(dir.rename(&p("real/in"), &p("uploads/in"), 0).is_err());
    assert!(dir.link(&p("uploads/f"), &p("real/f2")).is_err());
    assert!(dir.link(&p("real/in"), &p("uploads/in")).is_err());
    assert!(dir.chown(&p("uploads/f"), Some(99), Some(99)).is_err());
    assert!(dir.chmod(&p("uploads/f"), 0o4777).is_err());
    assert!(dir.chmod(&p("uploads"), 0o777).is_err());
    assert!(dir.utimens(&p("uploads/f"), SetTime::At { sec: 1, nsec: 0 }, SetTime::Omit).is_err());
    assert!(dir.mkdir(&p("uploads/new"), 0o777).is_err());
    assert!(dir.mknod(&p("uploads/new"), libc::S_IFIFO | 0o666, 0).is_err());
    assert!(dir.symlink(Path::new("x"), &p("uploads/new")).is_err());
    assert!(dir.unlink(&p("uploads/f")).is_err());
    assert!(dir.rmdir(&p("uploads/sub/deeper")).is_err());
    // The text check: no way up, no absolute path, no empty component, no NUL.
    for bad in ["..", "../outside", "real/../../outside", "/tmp", "real//in", "real/./in", "real/"] {
        assert_eq!(dir.lstat(&p(bad)).unwrap_err().raw_os_error(), Some(libc::EINVAL), "{bad}");
        assert!(dir.list_dir(&p(bad)).is_err(), "{bad}");
    }
    // The calls still work inside, on the directory itself too.
    assert_eq!(dir.list_dir(&p("real")).unwrap().len(), 1);
    assert_eq!(dir.set_xattr(&p(""), OsStr::new("user.root"), b"r", 0).map_err(|e| e.to_string()), Ok(()));
    assert_eq!(dir.get_xattr(&p(""), OsStr::new("user.root"), 16).unwrap().1, b"r");
    dir.chmod(&p(""), 0o751).unwrap();
    assert_eq!(fs::metadata(&s.r).unwrap().mode() & 0o7777, 0o751);
    dir.utimens(&p(""), SetTime::Omit, SetTime::At { sec: 99, nsec: 0 }).unwrap();
    assert_eq!(fs::metadata(&s.r).unwrap().mtime(), 99);
    assert_eq!(s.snap(), before);
}

/// The local user of the SECOND: without any key, the owner of the replica's directory turns
/// `uploads/` into a symlink to a root-owned directory; the primary's next `uploads/x` must not
/// be written there by the (root) replica. The replica refuses it (a nack: the peer is lost and
/// reintegration will compare the trees), and nothing appears in the target directory.
#[test]
fn finding_1_local_user_swaps_a_replica_directory_for_a_symlink() {
    let primary = TempDir::new("f1b-p");
    let secondary = TempDir::new("f1b-s");
    let root_owned = TempDir::new("f1b-root");
    fs::set_permissions(root_owned.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root_owned.path().join("keep"), b"root's").unwrap();
    let before = snapshot(root_owned.path(), &|_| true);
    let r = replica(secondary.path());
    let m = Mounted::mount(primary.path(), Some(peer(r.local_addr(), AckLevel::Received)), FailMode::Alone);
    fs::create_dir(primary.path().join("uploads")).unwrap();
    fs::write(primary.path().join("uploads/first"), b"1").unwrap();
    assert!(m.mirror().status().link.connected);
    assert_eq!(fs::read(secondary.path().join("uploads/first")).unwrap(), b"1");
    // The unprivileged owner of the SECOND's directory: rename and symlink, no key needed.
    fs::rename(secondary.path().join("uploads"), secondary.path().join("uploads.away")).unwrap();
    symlink(root_owned.path(), secondary.path().join("uploads")).unwrap();
    // The application on the primary carries on: mode 4755 as an attacker would hope for.
    let target = primary.path().join("uploads/x");
    fs::write(&target, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(primary.path().join("uploads/d")).unwrap();
    let status = m.mirror().status();
    assert!(!status.link.connected, "the replica applied a change through a symlink");
    let why = status.link.lost_reason.unwrap_or_default();
    assert!(why.contains("could not apply"), "lost for another reason: {why}");
    assert!(status.link.alone_ops >= 1);
    assert_eq!(snapshot(root_owned.path(), &|_| true), before, "something was written outside the replica");
    assert!(m.dirty.paths().contains(&PathBuf::from("uploads/x")));
    m.unmount();
    drop(r);
}

/// The same swap under the primary's held directory (reachable only by root, or through another
/// mount namespace): the FUSE side resolves its stale path beneath the held directory too, so
/// a descriptor the application opened before the swap does not redirect anything outside.
#[test]
fn finding_1_primary_fuse_side_swap_does_not_redirect_writes() {
    let s = Scene::new("f1d");
    let before = s.snap();
    // A way to the directory underneath the mount, taken before mounting.
    let under = fs::File::open(&s.r).unwrap();
    let under_path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&under)));
    let m = Mounted::mount(&s.r, None, FailMode::Alone);
    fs::create_dir(s.r.join("uploads")).unwrap();
    fs::write(s.r.join("uploads/a"), b"a").unwrap();
    let held = fs::File::open(s.r.join("uploads")).unwrap();
    let dfd = std::os::fd::AsRawFd::as_raw_fd(&held);
    fs::rename(under_path.join("uploads"), under_path.join("uploads.real")).unwrap();
    symlink(&s.outside, under_path.join("uploads")).unwrap();
    let x = CString::new("x").unwrap();
    let sub = CString::new("sub").unwrap();
    let f = CString::new("f").unwrap();
    // SAFETY: valid C strings; the results are checked.
    let fd = unsafe { libc::openat(dfd, x.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_EXCL, 0o4755) };
    assert!(fd < 0, "created a file through the swapped directory");
    assert_ne!(check(unsafe { libc::mkdirat(dfd, x.as_ptr(), 0o777) }), 0);
    assert_ne!(check(unsafe { libc::unlinkat(dfd, f.as_ptr(), 0) }), 0);
    assert_ne!(check(unsafe { libc::unlinkat(dfd, sub.as_ptr(), libc::AT_REMOVEDIR) }), 0);
    assert_ne!(check(unsafe { libc::fchmod(dfd, 0o777) }), 0);
    let name = CString::new("user.x").unwrap();
    assert_ne!(check(unsafe { libc::fsetxattr(dfd, name.as_ptr(), b"v".as_ptr().cast(), 1, 0) }), 0);
    let fw = unsafe { libc::openat(dfd, f.as_ptr(), libc::O_WRONLY | libc::O_TRUNC) };
    assert!(fw < 0, "opened an outside file for writing");
    drop(held);
    assert_eq!(s.snap(), before, "the FUSE side wrote outside its directory");
    m.unmount();
    assert_eq!(fs::read(s.r.join("uploads.real/a")).unwrap(), b"a");
}

// --- randomized ------------------------------------------------------------------------------

fn name(rng: &mut Rng) -> Vec<u8> {
    match rng.below(14) {
        0 => b"..".to_vec(),
        1 => b".".to_vec(),
        2 => Vec::new(),
        3 => "é".repeat(127).into_bytes(),                     // 254 bytes of UTF-8
        4 => "日本語".repeat(1 + rng.below(40) as usize).into_bytes(), // up to 360 bytes: too long
        5 => b"n\0ul".to_vec(),
        6 | 7 => b"evil".to_vec(),
        8 => b"rel".to_vec(),
        _ => vec![b'a' + rng.below(4) as u8],
    }
}

fn path(rng: &mut Rng) -> PathBuf {
    let depth = match rng.below(20) {
        0 => 200 + rng.below(1800) as usize,
        1..=3 => 0,
        _ => 1 + rng.below(5) as usize,
    };
    let mut b: Vec<u8> = Vec::new();
    if rng.below(40) == 0 {
        b.push(b'/');
    }
    for i in 0..depth {
        if i > 0 {
            b.push(b'/');
        }
        if depth > 100 {
            b.push(b'a' + rng.below(2) as u8);
        } else {
            b.extend(name(rng));
        }
    }
    PathBuf::from(OsStr::from_bytes(&b))
}

fn meta(rng: &mut Rng) -> croft_mirror::op::Meta {
    croft_mirror::op::Meta {
        mode: (rng.next() as u32) & 0o7777,
        uid: rng.pick(&[0, 1000, 65534]),
        gid: rng.pick(&[0, 1000]),
        xattrs: if rng.below(2) == 0 { None } else { Some(vec![(b"user.r".to_vec(), vec![rng.below(256) as u8])]) },
        atime: Some((rng.below(1 << 31) as i64, 0)),
        mtime: if rng.below(2) == 0 { None } else { Some((rng.below(1 << 31) as i64, 5)) },
    }
}

fn random_op(rng: &mut Rng, outside: &Path) -> Op {
    let p = path(rng);
    // Where a planted symlink points: out of the directory, never above the test's own dir.
    let tgt = match rng.below(4) {
        0 => outside.to_path_buf(),
        1 => outside.join("f"),
        2 => PathBuf::from("../outside"),
        _ => PathBuf::from("../../outside/sub"),
    };
    let data_len = rng.pick(&[0usize, 1, 100, 70_000]);
    match rng.below(24) {
        0 => Op::Write { path: p, offset: rng.below(1 << 20), data: vec![0xAA; data_len] },
        1 => Op::Truncate { path: p, size: rng.below(1 << 20) },
        2 => Op::Fallocate { path: p, mode: 0, offset: rng.below(4096), len: 1 + rng.below(1 << 16) },
        3 => Op::Create { path: p, mode: 0o4777, uid: 0, gid: 0 },
        4 => Op::Mknod { path: p, mode: libc::S_IFIFO | 0o666, rdev: 0, uid: 0, gid: 0 },
        5 => Op::Mkdir { path: p, mode: 0o777, uid: 0, gid: 0 },
        6 => Op::Symlink { path: p, target: tgt, uid: 0, gid: 0 },
        7 => Op::Link { from: p, to: path(rng) },
        8 => Op::Unlink { path: p },
        9 => Op::Rmdir { path: p },
        10 => Op::Rename { from: p, to: path(rng), flags: rng.pick(&[0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE]) },
        11 => Op::Chmod { path: p, mode: 0o6777 },
        12 => Op::Chown { path: p, uid: Some(4242), gid: Some(4242) },
        13 => Op::Utimens { path: p, atime: SetTime::At { sec: 3, nsec: 0 }, mtime: SetTime::At { sec: 3, nsec: 0 } },
        14 => Op::SetXattr { path: p, name: b"user.fuzz".to_vec(), value: vec![1, 2, 3], flags: 0 },
        15 => Op::RemoveXattr { path: p, name: b"user.canary".to_vec() },
        16 => Op::Fsync { path: p, datasync: rng.below(2) == 0 },
        17 => Op::RemoveTree { path: p },
        18 => {
            let children = if rng.below(2) == 0 { None } else { Some(vec![b"a".to_vec()]) };
            Op::SyncDir { path: p, meta: meta(rng), children }
        }
        19 => Op::SyncFile { path: p, size: rng.below(1 << 16), fresh: rng.below(2) == 0 },
        20 => Op::SyncMeta { path: p, meta: meta(rng) },
        21 => Op::SyncSymlink { path: p, target: tgt, meta: meta(rng) },
        22 => Op::SyncNode { path: p, mode: libc::S_IFIFO | 0o644, rdev: 0, meta: meta(rng) },
        _ => Op::LinkReplace { from: p, to: path(rng) },
    }
}

/// Random operations with random paths (symlinks planted inside pointing out, `..`, `.`, empty
/// components, NUL, absolute paths, long UTF-8 names, very deep paths), decoded as the replica
/// decodes the wire and applied as it applies them: no panic, and the outside tree never
/// changes. Seed: CROFT_FUZZ_SEED, else the clock (printed; a failure names it).
#[test]
fn finding_1_random_ops_never_reach_outside_the_directory() {
    let seed = std::env::var("CROFT_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("finding_1 random ops: seed {seed} (CROFT_FUZZ_SEED={seed} to replay)");
    let s = Scene::new("f1fuzz");
    let before = s.snap();
    let dir = HeldDir::open(&s.r).unwrap();
    let mut rng = Rng(seed);
    let (mut applied, mut refused_by_decode, mut failed) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(4) || i < 2000 {
        i += 1;
        if i % 50 == 1 {
            // Plant symlinks where directories would be, as a local user would (through the held
            // directory: the test's own calls must not follow what the ops built meanwhile).
            for (at, to) in [("evil", s.outside.clone()), ("a/evil", PathBuf::from("../../outside")), ("rel", PathBuf::from("../outside"))] {
                let _ = dir.remove_tree(Path::new(at));
                let _ = dir.symlink(&to, Path::new(at));
            }
            for d in ["a", "b", "a/b"] {
                let _ = dir.mkdir(Path::new(d), 0o755);
            }
        }
        let op = random_op(&mut rng, &s.outside);
        let mut buf = Vec::new();
        op.encode(&mut buf);
        match Op::decode(&buf) {
            Err(_) => refused_by_decode += 1,
            Ok(op) => match apply(&dir, &op) {
                Ok(()) => applied += 1,
                Err(_) => failed += 1,
            },
        }
        if i % 200 == 0 {
            assert_eq!(s.snap(), before, "seed {seed}: the outside directory changed by op {i}: {op:?}");
        }
    }
    assert_eq!(s.snap(), before, "seed {seed}: the outside directory changed");
    eprintln!("{i} ops in {:?}: {applied} applied, {failed} failed, {refused_by_decode} refused at decode", start.elapsed());
    assert!(applied > 50 && refused_by_decode > 50 && failed > 50, "seed {seed}: the mix did not exercise all three outcomes");
}

/// The quarantine (low finding of issue 8): copies of what a losing side gives up keep their
/// modes (without set-id bits) in directories only root can enter, never follow a symlink the
/// owner of the unmounted directory planted, and skip what carries no data (a fifo would block).
#[test]
fn low_finding_quarantine_copies_are_private_and_never_follow_symlinks() {
    use std::os::unix::fs::OpenOptionsExt;
    let s = Scene::new("quar");
    let dest = s.r.parent().unwrap().join("quarantine/stamp");
    fs::create_dir(s.r.join("a")).unwrap();
    fs::OpenOptions::new().write(true).create(true).mode(0o640).open(s.r.join("a/f")).unwrap().write_all_at(b"data", 0).unwrap();
    fs::set_permissions(s.r.join("a/f"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(s.r.join("suid"), b"x").unwrap();
    fs::set_permissions(s.r.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("/etc/passwd", s.r.join("l")).unwrap();
    symlink(&s.outside, s.r.join("evil")).unwrap();
    let fifo = CString::new(s.r.join("p").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let dir = HeldDir::open(&s.r).unwrap();
    let q = |p: &str| croft_mirror::sync::quarantine_entry(&dir, Path::new(p), &dest);
    assert!(q("a/f").unwrap());
    assert!(q("suid").unwrap());
    assert!(q("l").unwrap());
    assert!(!q("evil/f").unwrap(), "copied a file through a symlinked directory");
    assert!(!q("evil/sub/g").unwrap());
    assert!(!q("p").unwrap(), "a fifo is no data");
    assert!(!q("gone").unwrap());
    assert!(q("../outside/f").is_err() || !dest.parent().unwrap().join("outside").exists());
    assert_eq!(fs::read(dest.join("a/f")).unwrap(), b"data");
    assert_eq!(fs::metadata(dest.join("a/f")).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(fs::metadata(dest.join("suid")).unwrap().mode() & 0o7777, 0o755, "set-id bits kept");
    assert_eq!(fs::read_link(dest.join("l")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(fs::metadata(dest.join("a")).unwrap().mode() & 0o777, 0o700);
    assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o777, 0o700);
    assert!(!dest.join("evil").exists() && !dest.join("p").exists());
    assert_eq!(fs::metadata(dest.join("a/f")).unwrap().mtime(), fs::metadata(s.r.join("a/f")).unwrap().mtime());
    // Nothing is overwritten.
    assert!(q("a/f").is_err());
}
