//! The durable dirty log: what it records (zone math), that a mark is durable when it returns
//! (drop = crash, torn last record), what it costs (re-marks, group commit), compaction, clear,
//! trust, and the log as the tracker of a real FUSE mount running alone.
mod common;
use common::*;
use croft_mirror::{DirtyEntry, DirtyLog, DirtyLogOptions, DirtyTracker, FailMode, Mirror, MirrorConfig, TO_END};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const K64: u64 = 64 * 1024;
const M1: u64 = 1024 * 1024;

fn entry(path: &str, zones: &[(u64, u64)], entry_changed: bool, to_end_from: Option<u64>) -> DirtyEntry {
    DirtyEntry { path: PathBuf::from(path), zones: zones.to_vec(), entry_changed, to_end_from }
}

fn log_file(dir: &Path) -> PathBuf {
    dir.join("dirty.log")
}

/// A trusted, empty log (as after a completed reintegration).
fn cleared(dir: &Path, zone_bytes: u64) -> DirtyLog {
    let log = DirtyLog::open(dir, zone_bytes).unwrap();
    log.clear().unwrap();
    log
}

#[test]
fn zone_math_at_64_kib_and_1_mib() {
    for z in [K64, M1] {
        let dir = TempDir::new("dl-zones");
        let log = cleared(dir.path(), z);
        log.mark(Path::new("a"), 0, 1).unwrap(); // zone 0
        log.mark(Path::new("a"), z - 1, 2).unwrap(); // zones 0 and 1: runs merge
        log.mark(Path::new("a"), 5 * z + 10, 3 * z).unwrap(); // 5z+10 ..= 8z+9: zones 5..=8
        log.mark(Path::new("a"), 10 * z, z).unwrap(); // exactly zone 10
        log.mark(Path::new("a"), 9 * z, 1).unwrap(); // zone 9 joins 5..=8 and 10
        log.mark(Path::new("b"), 3 * z + 7, 1).unwrap(); // zone 3
        log.mark(Path::new("b"), 20 * z + 7, TO_END).unwrap(); // truncated to 20z+7: zones 20.. to the end
        log.mark(Path::new("b"), 21 * z, 5).unwrap(); // inside the to-end range
        log.mark(Path::new("c"), 0, 0).unwrap(); // the entry only
        log.mark(Path::new(""), 0, 0).unwrap(); // the replicated directory itself
        let want = vec![
            entry("", &[], true, None),
            entry("a", &[(0, 2 * z), (5 * z, 6 * z)], false, None),
            entry("b", &[(3 * z, z), (20 * z, TO_END)], true, Some(20 * z + 7)),
            entry("c", &[], true, None),
        ];
        assert_eq!(log.entries(), want, "zone {z}");
        // Progress: the ranges clipped to the current sizes; a gone file has nothing to copy.
        let sizes = |p: &Path| match p.to_str().unwrap() {
            "a" => Some(6 * z), // zones 0,1 and 5 (8 z .. 11 z is past the end)
            "b" => Some(22 * z + 1),
            _ => None,
        };
        assert_eq!(log.dirty_bytes(sizes), 2 * z + z + z + (2 * z + 1), "zone {z}");
        // A lower truncate moves the to-end start down and swallows the runs above it.
        log.mark(Path::new("b"), 2 * z, TO_END).unwrap();
        assert_eq!(log.entries()[2], entry("b", &[(2 * z, TO_END)], true, Some(2 * z)));
        // A mark that would overflow u64 is to the end of the address space, not a panic.
        log.mark(Path::new("d"), u64::MAX - 3, 10).unwrap();
        assert_eq!(log.entries()[4].zones, vec![((u64::MAX / z) * z, z)]);
    }
}

#[test]
fn marks_survive_a_drop_without_clear() {
    let dir = TempDir::new("dl-crash");
    let log = cleared(dir.path(), K64);
    log.mark(Path::new("db/base/1"), 3 * K64 + 100, 4096).unwrap();
    log.mark(Path::new("db/base/1"), 7 * K64, 2 * K64).unwrap();
    log.mark(Path::new("db/new"), 0, 0).unwrap();
    log.mark(Path::new("db/old"), 0, TO_END).unwrap();
    let before = log.entries();
    assert_eq!(before.len(), 3);
    drop(log); // every mark returned, so every record is durable: a drop is as good as a crash
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    assert_eq!(log.entries(), before);
    assert!(log.is_trustworthy());
    assert_eq!(log.stats().ignored_tail_bytes, 0);
    // And once more, through the snapshot the reopen wrote.
    drop(log);
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    assert_eq!(log.entries(), before);
}

#[test]
fn a_torn_last_record_is_ignored_and_the_log_goes_on() {
    let dir = TempDir::new("dl-torn");
    let log = cleared(dir.path(), K64);
    log.mark(Path::new("a"), 0, 1).unwrap();
    log.mark(Path::new("b"), K64, 1).unwrap();
    let two = log.entries();
    log.mark(Path::new("c"), 2 * K64, 1).unwrap();
    drop(log);
    // The last record torn: its tail never reached the disk (so it was never acknowledged).
    let f = OpenOptions::new().write(true).open(log_file(dir.path())).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 3).unwrap();
    drop(f);
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    assert_eq!(log.entries(), two, "the torn record was replayed or the good ones lost");
    assert!(log.stats().ignored_tail_bytes > 0);
    assert!(log.is_trustworthy());
    // New records after the reopen are not hidden behind the torn one.
    log.mark(Path::new("d"), 0, 0).unwrap();
    drop(log);
    // A whole record whose CRC does not match (garbage after the last good record).
    let f = OpenOptions::new().append(true).open(log_file(dir.path())).unwrap();
    let mut garbage = vec![30u8, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    garbage.extend([1u8; 30]);
    f.write_all_at(&garbage, f.metadata().unwrap().len()).unwrap();
    drop(f);
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    let paths: Vec<PathBuf> = log.entries().into_iter().map(|e| e.path).collect();
    assert_eq!(paths, vec![PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("d")]);
    assert_eq!(log.stats().ignored_tail_bytes, garbage.len() as u64);
}

#[test]
fn re_marking_durable_zones_neither_grows_the_log_nor_syncs() {
    let dir = TempDir::new("dl-remark");
    let log = cleared(dir.path(), K64);
    for i in 0..16 {
        log.mark(Path::new("hot"), i * K64, 100).unwrap();
    }
    log.mark(Path::new("hot"), 0, 0).unwrap();
    log.mark(Path::new("trunc"), 5000, TO_END).unwrap();
    let stats = log.stats();
    let size = fs::metadata(log_file(dir.path())).unwrap().len();
    assert_eq!(stats.log_bytes, size);
    for round in 0..1000u64 {
        let i = round % 16;
        log.mark(Path::new("hot"), i * K64 + round % 1000, 4096.min(K64 - round % 1000)).unwrap();
        log.mark(Path::new("hot"), 0, 0).unwrap();
        log.mark(Path::new("trunc"), 5000 + round, TO_END).unwrap();
        log.mark(Path::new("trunc"), 100 * K64, 4096).unwrap();
    }
    let after = log.stats();
    assert_eq!(after.marks, stats.marks + 4000);
    assert_eq!(after.records_logged, stats.records_logged, "a covered mark was logged again");
    assert_eq!(after.fdatasyncs, stats.fdatasyncs, "a covered mark paid an fdatasync");
    assert_eq!(fs::metadata(log_file(dir.path())).unwrap().len(), size);
    // A mark that is not covered is still logged.
    log.mark(Path::new("hot"), 16 * K64, 1).unwrap();
    assert_eq!(log.stats().records_logged, stats.records_logged + 1);
    assert!(fs::metadata(log_file(dir.path())).unwrap().len() > size);
}

#[test]
fn concurrent_marks_are_all_durable_and_share_fdatasyncs() {
    let dir = TempDir::new("dl-group");
    let log = Arc::new(cleared(dir.path(), K64));
    const THREADS: u64 = 8;
    const MARKS: u64 = 100;
    let t0 = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..MARKS {
                    // Every thread in its own file, and all of them in one shared file.
                    log.mark(Path::new(&format!("t{t}")), 2 * i * K64, 1).unwrap();
                    log.mark(Path::new("shared"), 2 * (i * THREADS + t) * K64 + 5, 10).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let took = t0.elapsed();
    let stats = log.stats();
    let marks = THREADS * MARKS * 2;
    assert_eq!(stats.records_logged, marks);
    assert!(stats.fdatasyncs < marks, "no group commit: {} fdatasyncs for {marks} marks", stats.fdatasyncs);
    println!(
        "group commit: {marks} first-touch marks from {THREADS} threads in {took:?} ({:.0} marks/s), {} fdatasyncs ({:.1} marks per fdatasync)",
        marks as f64 / took.as_secs_f64(),
        stats.fdatasyncs,
        marks as f64 / stats.fdatasyncs as f64
    );
    drop(log);
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    let entries = log.entries();
    assert_eq!(entries.len(), THREADS as usize + 1);
    for e in &entries {
        let n = if e.path == Path::new("shared") { THREADS * MARKS } else { MARKS };
        let want: Vec<(u64, u64)> = (0..n).map(|i| (2 * i * K64, K64)).collect();
        assert_eq!(e.zones, want, "{:?}", e.path);
    }
}

#[test]
fn compaction_keeps_every_entry() {
    let dir = TempDir::new("dl-compact");
    let log = DirtyLog::open_with(dir.path(), DirtyLogOptions { zone_bytes: K64, compact_after_bytes: 8192 }).unwrap();
    log.clear().unwrap();
    let compactions = log.stats().compactions;
    for i in 0..1200u64 {
        let path = format!("dir{}/file{}", i % 50 % 7, i % 50);
        log.mark(Path::new(&path), 2 * i * K64, 1).unwrap();
        if i % 11 == 0 {
            log.mark(Path::new(&path), 0, 0).unwrap();
        }
        if i % 97 == 0 {
            log.mark(Path::new(&format!("gone{i}")), 0, TO_END).unwrap();
        }
    }
    let stats = log.stats();
    assert!(stats.compactions >= compactions + 3, "{stats:?}");
    // The bound holds: the log never grows past the larger of the bound and the last snapshot
    // (so that a big state is not rewritten for every few records) by more than one group.
    let bound = stats.snapshot_bytes.max(8192);
    assert!(fs::metadata(log_file(dir.path())).unwrap().len() <= bound + 4096, "{stats:?}");
    let before = log.entries();
    assert_eq!(before.iter().filter(|e| e.path.to_str().unwrap().starts_with("dir")).count(), 50);
    assert_eq!(before.iter().map(|e| e.zones.len()).sum::<usize>(), 1200 + 13);
    drop(log);
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    assert_eq!(log.entries(), before);
    assert!(log.is_trustworthy());
    // An explicit compaction too.
    log.compact().unwrap();
    drop(log);
    assert_eq!(DirtyLog::open(dir.path(), K64).unwrap().entries(), before);
}

#[test]
fn clear_empties_it_durably() {
    let dir = TempDir::new("dl-clear");
    let log = cleared(dir.path(), K64);
    log.mark(Path::new("a"), 0, 10).unwrap();
    log.mark(Path::new("b"), 0, 0).unwrap();
    assert!(!log.is_empty());
    log.clear().unwrap();
    assert!(log.is_empty());
    assert_eq!(log.entries(), vec![]);
    drop(log);
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    assert!(log.is_empty(), "{:?}", log.entries());
    assert!(log.is_trustworthy());
    // Marks after a clear are recorded again (the in-memory set was cleared too).
    log.mark(Path::new("a"), 0, 10).unwrap();
    drop(log);
    assert_eq!(DirtyLog::open(dir.path(), K64).unwrap().entries(), vec![entry("a", &[(0, K64)], false, None)]);
}

#[test]
fn trust_needs_a_baseline_and_survives_only_an_intact_log() {
    // No log at all (first start, or the directory was lost): not trustworthy, even after a
    // reopen, until a clear records the baseline.
    let dir = TempDir::new("dl-trust");
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    assert!(!log.is_trustworthy());
    log.mark(Path::new("a"), 0, 1).unwrap();
    drop(log);
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    assert!(!log.is_trustworthy());
    assert_eq!(log.entries().len(), 1, "marks of an untrusted log are still kept");
    log.clear().unwrap();
    assert!(log.is_trustworthy());
    log.mark(Path::new("b"), 0, 1).unwrap();
    drop(log);
    assert!(DirtyLog::open(dir.path(), K64).unwrap().is_trustworthy());
    // A damaged snapshot: untrusted.
    let snap = dir.path().join("dirty.snap");
    let mut bytes = fs::read(&snap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&snap, &bytes).unwrap();
    assert!(!DirtyLog::open(dir.path(), K64).unwrap().is_trustworthy());
    // The whole directory gone: untrusted.
    fs::remove_dir_all(dir.path()).unwrap();
    assert!(!DirtyLog::open(dir.path(), K64).unwrap().is_trustworthy());
}

#[test]
fn a_new_zone_size_keeps_the_same_bytes_dirty() {
    let dir = TempDir::new("dl-rezone");
    let log = cleared(dir.path(), K64);
    log.mark(Path::new("f"), 17 * K64 + 3, 1).unwrap(); // bytes in the second MiB
    log.mark(Path::new("f"), 40 * K64, 2 * K64).unwrap(); // 2.5 MiB ..= 2.625 MiB
    drop(log);
    let log = DirtyLog::open(dir.path(), M1).unwrap();
    assert_eq!(log.entries(), vec![entry("f", &[(M1, 2 * M1)], false, None)]);
    assert!(log.is_trustworthy());
    assert!(DirtyLog::open(dir.path(), 100_000).is_err(), "not a power of two");
    assert!(DirtyLog::open(dir.path(), 2 * M1).is_err(), "above 1 MiB");
    assert!(DirtyLog::open(dir.path(), 32 * 1024).is_err(), "below 64 KiB");
}

#[test]
fn throughput_first_touch_and_re_touch() {
    let dir = TempDir::new("dl-speed");
    let log = cleared(dir.path(), K64);
    let n = 200u64;
    let t0 = Instant::now();
    for i in 0..n {
        log.mark(Path::new("f"), 2 * i * K64, 4096).unwrap();
    }
    let first = t0.elapsed();
    let m = 200_000u64;
    let t0 = Instant::now();
    for i in 0..m {
        log.mark(Path::new("f"), 2 * (i % n) * K64 + 8, 4096).unwrap();
    }
    let re = t0.elapsed();
    assert_eq!(log.stats().fdatasyncs, n);
    println!(
        "dirty log, one thread: first touch {:.0} marks/s ({:.2} ms each, one fdatasync), re-touch {:.0} marks/s ({:.0} ns each, no I/O)",
        n as f64 / first.as_secs_f64(),
        first.as_secs_f64() * 1000.0 / n as f64,
        m as f64 / re.as_secs_f64(),
        re.as_nanos() as f64 / m as f64
    );
}


#[test]
fn a_mount_running_alone_records_exactly_the_zones_written() {
    let data = TempDir::new("dl-mnt");
    let state = TempDir::new("dl-state"); // never under the mount: the log's own writes would loop
    let log = Arc::new(cleared(state.path(), K64));
    let mut config = MirrorConfig::new(data.path(), None);
    config.fail_mode = FailMode::Alone;
    let mirror = Mirror::mount(config, log.clone(), None).unwrap_or_else(|e| panic!("{}: {e}", e.code()));
    let mut m = MountGuard(Some(mirror), data.path().to_path_buf());
    fs::write(data.path().join("f"), b"").unwrap();
    // Zones of an existing file (a file created here is dirty whole: a new inode).
    log.clear().unwrap();
    let f = fs::OpenOptions::new().write(true).open(data.path().join("f")).unwrap();
    f.write_all_at(&[1u8; 10], 0).unwrap(); // zone 0
    f.write_all_at(&[2u8; 100], 200 * 1024).unwrap(); // zone 3
    f.write_all_at(&[3u8; 20], 5 * M1 - 10).unwrap(); // zones 79 and 80
    f.write_all_at(&[4u8; 4096], 4096).unwrap(); // zone 0 again: already durable
    f.sync_all().unwrap();
    drop(f);
    fs::create_dir(data.path().join("d")).unwrap();
    fs::File::create(data.path().join("d/x")).unwrap();
    fs::rename(data.path().join("d/x"), data.path().join("y")).unwrap();
    let want = vec![
        entry("d", &[], true, None),
        entry("d/x", &[(0, TO_END)], true, Some(0)),
        entry("f", &[(0, K64), (3 * K64, K64), (79 * K64, 2 * K64)], false, None),
        entry("y", &[(0, TO_END)], true, Some(0)),
    ];
    assert_eq!(log.entries(), want);
    assert!(m.0.as_ref().unwrap().status().link.alone_ops >= 8);
    let size = |p: &Path| fs::metadata(data.path().join(p)).ok().map(|md| md.len());
    // f: zone 0 + zone 3 + zones 79-80 clipped at 5 MiB + 10; y: empty.
    assert_eq!(log.dirty_bytes(size), 2 * K64 + (5 * M1 + 10 - 79 * K64));
    let mirror = m.0.take().unwrap();
    if let Err(e) = mirror.unmount() {
        panic!("{}: {e}", e.code());
    }
    drop(m);
    // Durable through the mount too: a fresh open of the state directory sees the same.
    drop(log);
    assert_eq!(DirtyLog::open(state.path(), K64).unwrap().entries(), want);
}
