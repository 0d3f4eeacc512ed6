//! Issue 8, finding 11: the dirty log on a full (real, small tmpfs) filesystem and after a
//! compaction that stopped half way. A change whose record cannot be made durable must fail
//! (EIO through the mount) instead of succeeding untracked; the failure is counted and shown;
//! a log that says it is trusted holds every change that was allowed to happen.
mod common;
use common::*;
use croft_mirror::{DirtyLog, DirtyTracker, FailMode, Mirror, MirrorConfig, REPAIR_EVERY};
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const K64: u64 = 64 * 1024;

/// A tmpfs of `bytes` mounted on a fresh directory, unmounted (lazily) on drop even when the
/// test panics.
struct SmallFs {
    dir: TempDir,
}

impl SmallFs {
    fn new(tag: &str, bytes: u64) -> SmallFs {
        let dir = TempDir::new(tag);
        let (src, target, kind) = (CString::new("croft-test").unwrap(), cpath(dir.path()), CString::new("tmpfs").unwrap());
        let opts = CString::new(format!("size={bytes},mode=0700")).unwrap();
        // SAFETY: valid C strings.
        let r = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), kind.as_ptr(), 0, opts.as_ptr().cast()) };
        assert_eq!(r, 0, "mount tmpfs on {:?}: {}", dir.path(), std::io::Error::last_os_error());
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with one file until ENOSPC; returns its path.
    fn fill(&self) -> PathBuf {
        let p = self.path().join("filler");
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&p).unwrap();
        let chunk = vec![0x55u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {p:?}: {e}"),
            }
        }
        p
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let c = cpath(self.dir.path());
        // SAFETY: a valid C string; detaching whatever is still open in it.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn long_name(i: usize) -> PathBuf {
    PathBuf::from(format!("dir/{i:05}-{}", "x".repeat(2000)))
}

#[test]
fn finding_11_on_a_full_disk_marks_fail_are_counted_and_the_log_stays_complete() {
    let small = SmallFs::new("f11-full", 256 << 10);
    let logdir = small.path().join("log");
    let log = DirtyLog::open(&logdir, K64).unwrap();
    log.clear().unwrap();
    assert!(log.is_trustworthy());
    let filler = small.fill();
    // Records of ~2 KiB: the log's last page fills after a few, then appends hit ENOSPC.
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let p = long_name(i);
        match log.mark(&p, 0, 0) {
            Ok(()) => ok.push(p),
            Err(e) => {
                assert!(e.to_string().contains("cannot record"), "{e}");
                refused.push(p);
                if refused.len() == 3 {
                    break;
                }
            }
        }
    }
    assert!(!refused.is_empty(), "no mark failed on a full filesystem: {} marks succeeded", ok.len());
    let stats = log.stats();
    assert!(stats.failing && log.is_failing());
    assert!(stats.write_failures >= 1, "{stats:?}");
    assert_eq!(stats.marks_refused, refused.len() as u64, "{stats:?}");
    assert!(log.last_error().unwrap_or_default().contains("No space"), "{:?}", log.last_error());
    // A refusal is not a loss of trust: the refused changes never happened.
    assert!(log.is_trustworthy());
    // A mark already recorded before the disk filled up fails too while the log is failing
    // (its state in memory holds records that never became durable).
    if let Some(first) = ok.first() {
        assert!(log.mark(first, 0, 0).is_err());
    }

    // Space comes back: after REPAIR_EVERY the next mark repairs the log (a compaction).
    fs::remove_file(&filler).unwrap();
    std::thread::sleep(REPAIR_EVERY + std::time::Duration::from_millis(20));
    log.mark(Path::new("after"), 0, 0).unwrap();
    assert!(!log.is_failing());
    let stats = log.stats();
    assert!(!stats.failing && stats.compactions >= 2, "{stats:?}");
    log.mark(Path::new("after2"), K64, 1).unwrap();

    // Every mark that returned Ok is durable: a drop is a crash.
    drop(log);
    let log = DirtyLog::open(&logdir, K64).unwrap();
    let have: Vec<PathBuf> = log.entries().into_iter().map(|e| e.path).collect();
    for p in ok.iter().chain([PathBuf::from("after"), PathBuf::from("after2")].iter()) {
        assert!(have.contains(p), "{p:?} was acknowledged and is not in the reopened log");
    }
    assert!(log.is_trustworthy());
}

/// A compaction whose snapshot was written but whose new log could not be: the old log (of the
/// previous generation) is what a reopen ignores, so appending to it would lose records while
/// the snapshot says trusted (the old code then tried to remove the snapshot, best effort; if
/// that failed too, a trusted log missed records). Now nothing is appended to that file again:
/// marks fail until a compaction succeeds, and a reopen holds every acknowledged mark.
#[test]
fn finding_11_a_compaction_that_stops_half_way_never_hides_records() {
    let dir = TempDir::new("f11-half");
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    log.clear().unwrap();
    log.mark(Path::new("a"), 0, 1).unwrap();
    // The new log's temp file cannot be created (a directory in its way); the snapshot's can.
    let block = dir.path().join("dirty.log.tmp");
    fs::create_dir(&block).unwrap();
    assert!(log.compact().is_err());
    assert!(log.is_failing());
    // The snapshot of the next generation is on disk, the log is still the old one.
    let e = log.mark(Path::new("b"), 0, 1).unwrap_err();
    assert!(e.to_string().contains("dirty.log.tmp") || e.to_string().contains("directory"), "{e}");
    std::thread::sleep(REPAIR_EVERY + std::time::Duration::from_millis(20));
    assert!(log.mark(Path::new("c"), 0, 1).is_err(), "the repair cannot succeed while blocked");
    assert!(log.stats().write_failures >= 2);
    assert!(log.stats().marks_refused >= 2);
    // Crash now: whatever the reopen says trusted must hold every acknowledged mark.
    drop(log);
    fs::remove_dir(&block).unwrap();
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    let have: Vec<PathBuf> = log.entries().into_iter().map(|e| e.path).collect();
    assert!(have.contains(&PathBuf::from("a")), "{have:?}");
    assert!(log.is_trustworthy());
    // And the log works again.
    log.mark(Path::new("d"), 0, 1).unwrap();
    drop(log);
    let log = DirtyLog::open(dir.path(), K64).unwrap();
    assert!(log.entries().iter().any(|e| e.path == Path::new("d")));
}


/// Through a real mount running alone: with the log's filesystem full, the application's write
/// fails with EIO and is not applied (while the log is failing, every change does); once space
/// is back, writes succeed again, and the log holds every accepted write.
#[test]
fn finding_11_a_write_whose_record_cannot_be_durable_fails_with_eio() {
    let data = TempDir::new("f11-data");
    let small = SmallFs::new("f11-mntlog", 256 << 10);
    let logdir = small.path().join("log");
    let log = Arc::new(DirtyLog::open(&logdir, K64).unwrap());
    log.clear().unwrap();
    fs::write(data.path().join("f"), vec![0u8; 1 << 20]).unwrap();
    let mut config = MirrorConfig::new(data.path(), None);
    config.fail_mode = FailMode::Alone;
    let mirror = Mirror::mount(config, log.clone(), None).unwrap_or_else(|e| panic!("{}: {e}", e.code()));
    let mut m = MountGuard(Some(mirror), data.path().to_path_buf());
    let f = fs::OpenOptions::new().read(true).write(true).open(data.path().join("f")).unwrap();
    f.write_all_at(&[1u8; 10], 0).unwrap(); // zone 0 recorded
    let filler = small.fill();
    // New records until one cannot be written: files with long names, each a new entry.
    let mut refused = None;
    for i in 0..200 {
        let name = format!("{i:03}-{}", "y".repeat(200));
        match fs::write(data.path().join(&name), b"new") {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
                refused = Some(name);
                break;
            }
        }
    }
    let refused = refused.expect("no write failed with the dirty log's filesystem full");
    assert!(!data.path().join(&refused).exists() || fs::read(data.path().join(&refused)).unwrap().is_empty());
    // A data write to a zone not recorded yet: EIO, and not applied.
    let e = f.write_all_at(&[2u8; 10], 5 * K64).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    let mut buf = [9u8; 10];
    f.read_exact_at(&mut buf, 5 * K64).unwrap();
    assert_eq!(buf, [0u8; 10], "the refused write was applied");
    let stats = log.stats();
    assert!(stats.failing && stats.write_failures >= 1 && stats.marks_refused >= 2, "{stats:?}");
    // Space back: writes succeed again and are recorded.
    fs::remove_file(&filler).unwrap();
    std::thread::sleep(REPAIR_EVERY + std::time::Duration::from_millis(20));
    f.write_all_at(&[3u8; 10], 7 * K64).unwrap();
    assert!(!log.is_failing());
    drop(f);
    let mirror = m.0.take().unwrap();
    if let Err(e) = mirror.unmount() {
        panic!("{}: {e}", e.code());
    }
    drop(m);
    drop(log);
    let log = DirtyLog::open(&logdir, K64).unwrap();
    let f_entry = log.entries().into_iter().find(|e| e.path == Path::new("f")).expect("f is dirty");
    assert!(f_entry.zones.contains(&(0, K64)) && f_entry.zones.contains(&(7 * K64, K64)), "{f_entry:?}");
    assert!(log.is_trustworthy());
}
