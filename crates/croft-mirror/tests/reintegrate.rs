//! Reintegration, full sync and verify against a real mount and a replica on loopback: the
//! target holds the old tree, the primary ran alone with a durable dirty log, and after the
//! reintegration both trees are compared exactly and changes are mirrored synchronously again.
//! Replay a random workload with `CROFT_SEED=<seed printed>`.
mod common;
use common::random_ops::{data, run_random_ops, set_all_mtimes, Rng};
use common::*;
use croft_mirror::{
    AckLevel, DirtyLog, DirtyTracker, FailMode, Mirror, MirrorConfig, ReintegrateOptions, ReintegrationPhase, Replica,
    ReplicaConfig,
};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const K64: u64 = 64 << 10;

fn seed_from_env() -> u64 {
    let seed = std::env::var("CROFT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("CROFT_SEED={seed}");
    eprintln!("CROFT_SEED={seed}");
    seed
}

/// A mount with a durable dirty log, unmounted on drop.
struct Alone {
    mirror: Option<Mirror>,
    dir: PathBuf,
    log: Arc<DirtyLog>,
}

impl Alone {
    fn mount(dir: &Path, state: &Path, zone: u64) -> Alone {
        let log = Arc::new(DirtyLog::open(state, zone).unwrap());
        log.clear().unwrap();
        let mut config = MirrorConfig::new(dir, None);
        config.fail_mode = FailMode::Alone;
        let mirror = Mirror::mount(config, log.clone() as Arc<dyn DirtyTracker>, None)
            .unwrap_or_else(|e| panic!("{}: {e}", e.code()));
        Alone { mirror: Some(mirror), dir: dir.to_path_buf(), log }
    }
    fn m(&self) -> &Mirror {
        self.mirror.as_ref().unwrap()
    }
    fn unmount(mut self) {
        if let Err(e) = self.mirror.take().unwrap().unmount() {
            panic!("{}: {e}", e.code());
        }
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        drop(self.mirror.take());
        croft_mirror::lazy_unmount(&self.dir);
    }
}

fn opts(full: bool) -> ReintegrateOptions {
    ReintegrateOptions { full, ..Default::default() }
}






fn seed_trees(dirs: &[&Path]) {
    seed(dirs);
    for d in dirs {
        for i in 0..3 {
            fs::create_dir_all(d.join(format!("n{i}"))).unwrap();
            fs::write(d.join(format!("n{i}/n{}", i + 2)), vec![i as u8 + 1; 300_000]).unwrap();
        }
        fs::write(d.join("n4"), vec![9u8; 700_000]).unwrap();
    }
}

fn not_root(p: &Path) -> bool {
    !p.as_os_str().is_empty()
}

#[test]
fn alone_random_workload_then_reintegration_leaves_identical_trees_and_mirrors_again() {
    let seed = seed_from_env();
    let mut rng = Rng(seed);
    let primary = TempDir::new("ri-p");
    let target = TempDir::new("ri-t");
    let state = TempDir::new("ri-state");
    seed_trees(&[primary.path(), target.path()]);
    let a = Alone::mount(primary.path(), state.path(), K64);
    run_random_ops(primary.path(), &mut rng, 1500);
    set_all_mtimes(primary.path());
    assert!(!a.log.is_empty());
    let r = replica(target.path());
    let st = a.m().reintegrate(peer(r.local_addr(), AckLevel::Received), opts(false)).unwrap_or_else(|e| panic!("{e}"));
    println!("{st:?}");
    assert_eq!(st.phase, ReintegrationPhase::Done);
    assert!(st.bytes_copied > 0 && st.entries_done > 0);
    assert!(a.log.is_empty(), "the log is cleared at the end");
    let link = a.m().status().link;
    assert!(link.connected && link.lost_reason.is_none(), "{link:?}");
    // Mirrored synchronously again: the replica has the change when the call returns.
    fs::write(primary.path().join("after"), b"mirrored again").unwrap();
    assert_eq!(fs::read(target.path().join("after")).unwrap(), b"mirrored again");
    assert_eq!(r.status().reintegrations, 1);
    a.unmount();
    let n = assert_same_trees(primary.path(), target.path(), &|p| not_root(p) && p != Path::new("after"));
    println!("{n} entries identical");
}

/// Found by the random workload (seeds 3, 7, 9, 36): a directory renamed into place is copied
/// whole, names under it in directory order; a name the log also lists whole was then copied
/// again as a new file, cutting it from the names linked to it on the target. Whichever name of
/// a pair the directory lists first, one of the 8 pairs has it in the other order than the log.
#[test]
fn hard_links_inside_a_directory_copied_whole_stay_linked() {
    use std::os::unix::fs::MetadataExt;
    let primary = TempDir::new("rl-p");
    let target = TempDir::new("rl-t");
    let state = TempDir::new("rl-state");
    seed_trees(&[primary.path(), target.path()]);
    let a = Alone::mount(primary.path(), state.path(), K64);
    let p = primary.path();
    fs::remove_file(p.join("n4")).unwrap();
    fs::create_dir(p.join("n9")).unwrap();
    fs::rename(p.join("n9"), p.join("n4")).unwrap();
    for i in 0..8 {
        fs::write(p.join(format!("n4/p{i}a")), vec![i as u8; 100_000]).unwrap();
        fs::hard_link(p.join(format!("n4/p{i}a")), p.join(format!("n4/p{i}b"))).unwrap();
    }
    let r = replica(target.path());
    let st = a.m().reintegrate(peer(r.local_addr(), AckLevel::Received), opts(false)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.phase, ReintegrationPhase::Done);
    a.unmount();
    let t = target.path();
    for i in 0..8 {
        let ino = |rel: String| fs::metadata(t.join(rel)).unwrap().ino();
        assert_eq!(ino(format!("n4/p{i}a")), ino(format!("n4/p{i}b")), "n4/p{i}a and n4/p{i}b are one file on the target");
    }
    assert_same_trees(p, t, &|_| false);
}

#[test]
fn reintegration_while_a_writer_keeps_writing_converges() {
    let primary = TempDir::new("rw-p");
    let target = TempDir::new("rw-t");
    let state = TempDir::new("rw-state");
    seed_trees(&[primary.path(), target.path()]);
    let a = Alone::mount(primary.path(), state.path(), K64);
    // A lot to copy: 24 MiB of new data.
    let big = primary.path().join("big");
    let f = OpenOptions::new().write(true).create(true).truncate(true).open(&big).unwrap();
    for i in 0..24u64 {
        f.write_all_at(&vec![i as u8; 1 << 20], i << 20).unwrap();
    }
    drop(f);
    let r = replica(target.path());
    let stop = Arc::new(AtomicBool::new(false));
    let d = primary.path().to_path_buf();
    let s = Arc::clone(&stop);
    let writer = std::thread::spawn(move || {
        let mut rng = Rng(42);
        let mut n = 0u64;
        while !s.load(Ordering::SeqCst) {
            let f = OpenOptions::new().write(true).open(d.join("big")).unwrap();
            f.write_all_at(&data(&mut rng, 4096), rng.below(24 << 20)).unwrap();
            if n % 50 == 0 {
                fs::write(d.join(format!("n{}/w{}", n % 3, n % 7)), data(&mut rng, 10_000)).unwrap();
            }
            n += 1;
        }
        n
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut o = opts(false);
    o.freeze_below_bytes = 256 << 10;
    let t0 = Instant::now();
    let st = a.m().reintegrate(peer(r.local_addr(), AckLevel::Received), o);
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300)); // mirrored writes now
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    let st = st.unwrap_or_else(|e| panic!("{e}"));
    println!("{writes} writes meanwhile; {took:?}; {st:?}");
    assert_eq!(st.phase, ReintegrationPhase::Done);
    assert!(st.passes >= 2, "{st:?}");
    assert!(a.m().status().link.connected);
    a.unmount();
    assert_same_trees(primary.path(), target.path(), &|_| false);
}

#[test]
fn scattered_4k_writes_copy_little_more_than_their_dirty_zones() {
    let primary = TempDir::new("rz-p");
    let target = TempDir::new("rz-t");
    let state = TempDir::new("rz-state");
    for d in [primary.path(), target.path()] {
        let f = fs::File::create(d.join("big")).unwrap();
        for i in 0..64u64 {
            f.write_all_at(&vec![(i % 251) as u8; 1 << 20], i << 20).unwrap();
        }
    }
    let a = Alone::mount(primary.path(), state.path(), K64);
    let mut rng = Rng(7);
    let f = OpenOptions::new().write(true).open(primary.path().join("big")).unwrap();
    for _ in 0..300 {
        f.write_all_at(&data(&mut rng, 4096), rng.below((64 << 20) - 4096)).unwrap();
    }
    drop(f);
    let sizes = |p: &Path| fs::metadata(primary.path().join(p)).ok().map(|m| m.len());
    let dirty = a.log.dirty_bytes(sizes);
    let r = replica(target.path());
    let st = a.m().reintegrate(peer(r.local_addr(), AckLevel::Received), opts(false)).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "300 scattered 4 KiB writes: dirty zones {dirty} bytes, copied {} bytes ({:.3}x), {} bytes on the wire",
        st.bytes_copied,
        st.bytes_copied as f64 / dirty as f64,
        st.bytes_sent
    );
    assert!(dirty > 0);
    assert!(st.bytes_copied >= 300 * 4096 / 2);
    assert!(st.bytes_copied as f64 <= 1.2 * dirty as f64, "copied {} for {dirty} dirty", st.bytes_copied);
    a.unmount();
    assert_same_trees(primary.path(), target.path(), &|p| not_root(p));
}

#[test]
fn the_targets_own_log_is_copied_back_over() {
    let primary = TempDir::new("rt-p");
    let target = TempDir::new("rt-t");
    let state = TempDir::new("rt-state");
    let tstate = TempDir::new("rt-tstate");
    for d in [primary.path(), target.path()] {
        fs::write(d.join("t"), vec![1u8; 1 << 20]).unwrap();
        fs::write(d.join("u"), vec![2u8; 100]).unwrap();
    }
    // The target was primary, wrote then crashed: its log holds what it changed.
    let tlog = Arc::new(DirtyLog::open(tstate.path(), K64).unwrap());
    tlog.clear().unwrap();
    tlog.mark(Path::new("t"), 5 * K64 + 10, 100).unwrap();
    fs::OpenOptions::new().write(true).open(target.path().join("t")).unwrap().write_all_at(&[9u8; 100], 5 * K64 + 10).unwrap();
    tlog.mark(Path::new("only-target"), 0, 0).unwrap();
    fs::write(target.path().join("only-target"), b"written by the old primary").unwrap();
    let r = Replica::start(ReplicaConfig {
        dir: target.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        key: KEY.to_vec(),
        dirty_log: Some(tlog.clone()),
        allowed_peers: Vec::new(),
        protocol: Default::default(),
    })
    .unwrap();
    let a = Alone::mount(primary.path(), state.path(), K64);
    fs::write(primary.path().join("u"), b"changed here").unwrap();
    let st = a.m().reintegrate(peer(r.local_addr(), AckLevel::Durable), opts(false)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.phase, ReintegrationPhase::Done);
    // Only the zone the target touched, and u.
    assert!(st.bytes_copied <= K64 + 100, "{st:?}");
    assert!(tlog.is_empty(), "the target's log is cleared when the reintegration is done");
    assert_eq!(r.status().reintegrations, 1);
    a.unmount();
    assert!(!target.path().join("only-target").exists());
    assert_same_trees(primary.path(), target.path(), &|_| false);
}

#[test]
fn full_sync_of_diverged_trees_copies_only_the_differing_zones() {
    let primary = TempDir::new("rf-p");
    let target = TempDir::new("rf-t");
    let zone = 128u64 << 10;
    for d in [primary.path(), target.path()] {
        fs::create_dir_all(d.join("sub/deeper")).unwrap();
        let f = fs::File::create(d.join("big")).unwrap();
        for i in 0..16u64 {
            f.write_all_at(&vec![(i * 3) as u8; 1 << 20], i << 20).unwrap();
        }
        fs::write(d.join("sub/same"), vec![5u8; 200_000]).unwrap();
        fs::write(d.join("sub/touched"), vec![6u8; 300_000]).unwrap();
        fs::write(d.join("sub/deeper/x"), b"x").unwrap();
    }
    // Diverge: 3 zones of big, a file only on each side, a mode, an mtime with equal contents,
    // a symlink, and hard links that the target has as two files.
    let f = OpenOptions::new().write(true).open(primary.path().join("big")).unwrap();
    for z in [1u64, 40, 100] {
        f.write_all_at(b"diverged", z * zone + 17).unwrap();
    }
    drop(f);
    // Same size, other mtime (written within one timestamp tick, they could look equal).
    assert_eq!(set_mtime(&primary.path().join("big"), 1_700_000_000, 0), 0);
    fs::write(primary.path().join("sub/new"), vec![7u8; 5000]).unwrap();
    fs::write(target.path().join("sub/extra"), b"only there").unwrap();
    fs::create_dir_all(target.path().join("gone/deep")).unwrap();
    fs::write(target.path().join("gone/deep/f"), b"only there").unwrap();
    fs::set_permissions(primary.path().join("sub/same"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(set_mtime(&target.path().join("sub/touched"), 1_500_000_000, 0), 0);
    std::os::unix::fs::symlink("big", primary.path().join("lnk")).unwrap();
    fs::write(primary.path().join("h1"), b"linked").unwrap();
    fs::hard_link(primary.path().join("h1"), primary.path().join("h2")).unwrap();
    fs::write(target.path().join("h1"), b"linked").unwrap();
    fs::write(target.path().join("h2"), b"linked").unwrap();

    let mut config = MirrorConfig::new(primary.path(), None);
    config.fail_mode = FailMode::Alone;
    let mut m = Mounted::mount(primary.path(), None, FailMode::Alone);
    drop(config);
    let r = replica(target.path());
    let mut o = opts(true);
    o.zone_bytes = Some(zone);
    let st = m.mirror().reintegrate(peer(r.local_addr(), AckLevel::Received), o).unwrap_or_else(|e| panic!("{e}"));
    println!("full sync: {st:?}");
    // 3 zones of big + the new file + the linked file's bytes at most (sub/touched compares
    // equal by checksum even though its mtime differs).
    let want = 3 * zone + 5000;
    assert!(st.bytes_copied >= 3 * zone && st.bytes_copied <= want + 6, "copied {} want ~{want}", st.bytes_copied);
    assert!(st.bytes_skipped >= 16 << 20, "{st:?}");
    // Verify on the running mirror.
    let report = m.mirror().verify(peer(r.local_addr(), AckLevel::Received)).unwrap();
    assert!(report.identical, "{report:?}");
    m.mirror.take().unwrap().unmount().unwrap();
    assert_same_trees(primary.path(), target.path(), &|p| not_root(p));
}

#[test]
fn verify_finds_a_changed_byte_and_a_full_sync_repairs_it() {
    let primary = TempDir::new("rv-p");
    let target = TempDir::new("rv-t");
    let r = replica(target.path());
    let m = Mounted::mount(primary.path(), Some(peer(r.local_addr(), AckLevel::Received)), FailMode::Alone);
    fs::create_dir(primary.path().join("d")).unwrap();
    fs::write(primary.path().join("d/f"), vec![3u8; 1 << 20]).unwrap();
    fs::write(primary.path().join("g"), b"small").unwrap();
    let p = peer(r.local_addr(), AckLevel::Received);
    let report = m.mirror().verify(p.clone()).unwrap();
    assert!(report.identical, "{report:?}");
    assert_eq!(report.entries_compared, 3);
    assert_eq!(report.bytes_compared, (1 << 20) + 5);
    // A byte changed behind the mirror's back, on the replica.
    OpenOptions::new().write(true).open(target.path().join("d/f")).unwrap().write_all_at(b"X", 700_000).unwrap();
    fs::write(target.path().join("stray"), b"?").unwrap();
    let report = m.mirror().verify(p.clone()).unwrap();
    println!("{report:?}");
    assert!(!report.identical);
    assert_eq!(report.differences_total, 2);
    assert!(report.differences.iter().any(|(p, w)| p == Path::new("d/f") && w.contains("content")), "{report:?}");
    assert!(report.differences.iter().any(|(p, _)| p == Path::new("stray")));
    // Repair: alone, then a full sync.
    m.mirror().drop_peer("test: repair");
    let st = m.mirror().reintegrate(p.clone(), opts(true)).unwrap_or_else(|e| panic!("{e}"));
    assert!(st.bytes_copied <= 128 << 10, "{st:?}");
    let report = m.mirror().verify(p).unwrap();
    assert!(report.identical, "{report:?}");
    m.unmount();
}

#[test]
fn a_broken_stream_leaves_the_mount_alone_with_its_log() {
    let primary = TempDir::new("rb-p");
    let target = TempDir::new("rb-t");
    let state = TempDir::new("rb-state");
    let a = Alone::mount(primary.path(), state.path(), K64);
    fs::write(primary.path().join("f"), vec![1u8; 3 << 20]).unwrap();
    let before = a.log.entries();
    // Wrong key: refused.
    let r = replica(target.path());
    let mut bad = peer(r.local_addr(), AckLevel::Received);
    bad.key = b"another key".to_vec();
    assert!(a.m().reintegrate(bad, opts(false)).is_err());
    // Aborted midway (acks come back late through a delaying relay, so it is still running).
    let addr = r.local_addr();
    let slow = delaying_proxy(addr, Duration::from_millis(150));
    let h = a.m().handle();
    let t = std::thread::spawn(move || h.reintegrate(peer(slow, AckLevel::Durable), opts(false)));
    std::thread::sleep(Duration::from_millis(250));
    assert!(a.m().reintegration_status().running);
    a.m().abort_reintegration("test");
    let e = t.join().unwrap().unwrap_err();
    assert!(e.to_string().contains("abort"), "{e}");
    let st = a.m().reintegration_status();
    assert_eq!(st.phase, ReintegrationPhase::Failed);
    assert!(!a.m().status().link.connected);
    assert_eq!(a.log.entries(), before, "the log is intact");
    // A later attempt succeeds.
    a.m().reintegrate(peer(addr, AckLevel::Received), opts(false)).unwrap();
    assert!(a.m().status().link.connected);
    a.unmount();
    assert_same_trees(primary.path(), target.path(), &|_| false);
}

#[test]
fn a_full_sync_keeps_its_queries_in_flight_and_stays_exact_across_hard_links() {
    // 200 folders, one in ten with a file whose mtime (and one byte) differs: a full sync
    // asking one question at a time pays a round trip per listing and per file's checksums.
    let primary = TempDir::new("rq-p");
    let target = TempDir::new("rq-t");
    let zone = 64u64 << 10;
    const DIRS: usize = 200;
    for d in [primary.path(), target.path()] {
        for i in 0..DIRS {
            let sub = d.join(format!("d{i:03}"));
            fs::create_dir_all(&sub).unwrap();
            fs::write(sub.join("f"), vec![(i % 251) as u8; 150_000]).unwrap();
            assert_eq!(set_mtime(&sub.join("f"), 1_600_000_000, 0), 0);
            fs::write(sub.join("same"), vec![1u8; 1000]).unwrap();
            assert_eq!(set_mtime(&sub.join("same"), 1_600_000_000, 0), 0);
        }
    }
    const CHANGED: usize = DIRS / 10;
    for i in (0..DIRS).step_by(10) {
        let f = primary.path().join(format!("d{i:03}/f"));
        OpenOptions::new().write(true).open(&f).unwrap().write_all_at(b"!", (i as u64 * 977) % 150_000).unwrap();
        assert_eq!(set_mtime(&f, 1_700_000_000, 0), 0);
    }
    // Hard links across folders: on the target two names the primary has as two files (the
    // walk writes one of them: the other's listing, asked ahead, must be asked again in order),
    // and on the primary two names the target has as two files.
    fs::remove_file(target.path().join("d150/f")).unwrap();
    fs::hard_link(target.path().join("d010/f"), target.path().join("d150/f")).unwrap();
    fs::remove_file(primary.path().join("d160/f")).unwrap();
    fs::hard_link(primary.path().join("d020/f"), primary.path().join("d160/f")).unwrap();
    fs::write(target.path().join("d100/extra"), b"only there").unwrap();

    // A round trip of 2 x 5 ms.
    let slow_ms = 5u64;
    let r = replica(target.path());
    let proxy = latency_proxy(r.local_addr(), Duration::from_millis(slow_ms));
    let m = Mounted::mount(primary.path(), None, FailMode::Alone);
    let mut o = opts(true);
    o.zone_bytes = Some(zone);
    let t0 = Instant::now();
    let st = m.mirror().reintegrate(peer(proxy, AckLevel::Received), o).unwrap_or_else(|e| panic!("{e}"));
    let took = t0.elapsed();
    println!("full sync through a {slow_ms} ms relay: {took:?} {st:?}");
    // One zone per changed file, and two files whole (150,000 bytes each): one that became a
    // new inode there, and d150/f (the same file as d010/f there, after d010/f's write its
    // checksums differ in every zone; only zones that differ are sent).
    let want = (CHANGED as u64) * zone + 2 * 150_000;
    assert!(st.bytes_copied <= want, "copied {} want at most {want}", st.bytes_copied);
    let one_at_a_time = Duration::from_millis((DIRS + CHANGED) as u64 * 2 * slow_ms);
    assert!(took < one_at_a_time / 2, "{took:?}: the queries went one round trip at a time (>= {one_at_a_time:?})");
    m.unmount();
    assert_same_trees(primary.path(), target.path(), &|p| p.ends_with("f") || p.ends_with("same"));
}
