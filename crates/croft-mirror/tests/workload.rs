//! A seeded random workload of every replicated operation through the mount, then the primary's
//! directory and the replica's are compared: contents, sizes, modes, owners, symlink targets,
//! hard-link groups, xattrs, and the mtimes set explicitly at the end.
//! Replay a failure with `CROFT_SEED=<seed printed> cargo test -p croft-mirror --test workload`.
mod common;
use common::*;
use croft_mirror::{AckLevel, FailMode};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

struct Rng(u64);
impl Rng {
    // splitmix64
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const KINDS: [&str; 21] = [
    "write", "write-open", "append", "truncate", "fallocate", "create", "mknod", "mkdir", "symlink", "link", "unlink",
    "rmdir", "rename", "rename-noreplace", "rename-exchange", "chmod", "chown", "utimens", "setxattr", "removexattr",
    "fsync",
];

/// Data operations weigh more: they are most of what applications do.
const WEIGHTED: [&str; 8] = ["write", "write", "write-open", "write-open", "append", "create", "link", "truncate"];

fn rel(rng: &mut Rng) -> PathBuf {
    let a = rng.below(6);
    match rng.below(3) {
        0 => PathBuf::from(format!("n{a}")),
        _ => PathBuf::from(format!("n{a}/n{}", rng.below(6))),
    }
}

fn is_regular(p: &Path) -> bool {
    fs::symlink_metadata(p).map(|m| m.file_type().is_file()).unwrap_or(false)
}

/// Opens for writing without ever blocking on a fifo.
fn open_w(p: &Path, append: bool) -> std::io::Result<File> {
    if !is_regular(p) {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    OpenOptions::new().write(!append).append(append).read(true).custom_flags(libc::O_NONBLOCK).open(p)
}

fn data(rng: &mut Rng, len: usize) -> Vec<u8> {
    let b = rng.next() as u8;
    (0..len).map(|i| b.wrapping_add((i / 7) as u8)).collect()
}

#[test]
fn random_workload_leaves_identical_trees() {
    let seed: u64 = std::env::var("CROFT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("CROFT_SEED={seed}");
    eprintln!("CROFT_SEED={seed}");
    let mut rng = Rng(seed);
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    seed_dirs(&[primary.path(), secondary.path()]);
    let r = replica(secondary.path());
    let level = if seed % 2 == 0 { AckLevel::Durable } else { AckLevel::Received };
    let m = Mounted::mount(primary.path(), Some(peer(r.local_addr(), level)), FailMode::Alone);
    let d = primary.path().to_path_buf();
    let mut ok: BTreeMap<&str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
    let mut open: Vec<(PathBuf, File)> = Vec::new();
    let target = 10_000u64;
    let t0 = std::time::Instant::now();
    let mut attempts = 0u64;
    while ok.values().sum::<u64>() < target {
        attempts += 1;
        assert!(attempts < 40 * target, "too few operations succeed: {ok:?}");
        let kind = if rng.below(3) == 0 { rng.pick(&WEIGHTED) } else { rng.pick(&KINDS) };
        let p = d.join(rel(&mut rng));
        let q = d.join(rel(&mut rng));
        let done = match kind {
            "write" => open_w(&p, false)
                .and_then(|f| {
                    let len = 1 + rng.below(32 << 10) as usize;
                    f.write_all_at(&data(&mut rng, len), rng.below(256 << 10))
                })
                .is_ok(),
            "write-open" => {
                if open.len() < 4 && rng.below(2) == 0 {
                    if let Ok(f) = open_w(&p, false) {
                        open.push((p.clone(), f));
                    }
                }
                if open.is_empty() {
                    false
                } else {
                    let i = rng.below(open.len() as u64) as usize;
                    let len = 1 + rng.below(8 << 10) as usize;
                    let r = open[i].1.write_all_at(&data(&mut rng, len), rng.below(128 << 10)).is_ok();
                    if rng.below(4) == 0 {
                        open.swap_remove(i); // close (flush + release)
                    }
                    r
                }
            }
            "append" => {
                let len = 1 + rng.below(5000) as usize;
                let buf = data(&mut rng, len);
                open_w(&p, true).and_then(|mut f| std::io::Write::write_all(&mut f, &buf)).is_ok()
            }
            "truncate" => open_w(&p, false).and_then(|f| f.set_len(rng.below(300 << 10))).is_ok(),
            "fallocate" => open_w(&p, false)
                .map(|f| {
                    let mode = rng.pick(&[0, libc::FALLOC_FL_KEEP_SIZE, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE]);
                    let (off, len) = (rng.below(200 << 10) as i64, 1 + rng.below(100 << 10) as i64);
                    // SAFETY: valid descriptor.
                    unsafe { libc::fallocate(f.as_raw_fd(), mode, off, len) == 0 }
                })
                .unwrap_or(false),
            "create" => OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(rng.pick(&[0o644, 0o600, 0o755, 0o640]))
                .open(&p)
                .is_ok(),
            "mknod" => mkfifo(&p, 0o644) == 0,
            "mkdir" => fs::create_dir(&p).is_ok(),
            "symlink" => std::os::unix::fs::symlink(format!("../t{}", rng.below(100)), &p).is_ok(),
            "link" => is_regular(&p) && fs::hard_link(&p, &q).is_ok(),
            "unlink" => fs::remove_file(&p).is_ok(),
            "rmdir" => fs::remove_dir(&p).is_ok(),
            "rename" => renameat2(&p, &q, 0) == 0,
            "rename-noreplace" => renameat2(&p, &q, libc::RENAME_NOREPLACE) == 0,
            "rename-exchange" => renameat2(&p, &q, libc::RENAME_EXCHANGE) == 0,
            "chmod" => {
                !fs::symlink_metadata(&p).map(|m| m.file_type().is_symlink()).unwrap_or(true)
                    && fs::set_permissions(&p, fs::Permissions::from_mode(rng.pick(&[0o700, 0o755, 0o644, 0o2775, 0o4711, 0o1777])))
                        .is_ok()
            }
            "chown" => lchown(&p, rng.pick(&[0, 1000, 1001]), rng.pick(&[0, 1000, 2000])) == 0,
            "utimens" => set_mtime(&p, 1_000_000_000 + rng.below(1 << 20) as i64, rng.below(1_000_000_000) as i64) == 0,
            "setxattr" => {
                let (name, len) = (format!("user.k{}", rng.below(4)), rng.below(200) as usize);
                let value = data(&mut rng, len);
                !fs::symlink_metadata(&p).map(|m| m.file_type().is_symlink()).unwrap_or(true) && set_xattr(&p, &name, &value, 0) == 0
            }
            "removexattr" => remove_xattr(&p, &format!("user.k{}", rng.below(4))) == 0,
            "fsync" => {
                if !open.is_empty() && rng.below(2) == 0 {
                    let i = rng.below(open.len() as u64) as usize;
                    if rng.below(2) == 0 { open[i].1.sync_all() } else { open[i].1.sync_data() }.is_ok()
                } else if fs::symlink_metadata(&p).map(|m| m.is_dir()).unwrap_or(false) {
                    File::open(&p).and_then(|f| f.sync_all()).is_ok()
                } else {
                    open_w(&p, false).and_then(|f| f.sync_all()).is_ok()
                }
            }
            _ => unreachable!(),
        };
        if done {
            *ok.get_mut(kind).unwrap() += 1;
        }
        // Now and then, list a directory through the mount (readdirplus).
        if rng.below(50) == 0 {
            let _ = fs::read_dir(&d).map(|it| it.count());
        }
    }
    drop(open);
    let ops_elapsed = t0.elapsed();
    // Explicit times on everything, so mtimes are compared too.
    let mut all = Vec::new();
    let mut stack = vec![d.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            all.push(e.path());
        }
    }
    for (i, p) in all.iter().enumerate() {
        assert_eq!(set_mtime(p, 1_600_000_000 + i as i64, 42), 0, "{p:?}");
    }
    println!("{ok:?}");
    println!(
        "{} operations ({attempts} attempted) in {ops_elapsed:?} at {level:?}: {:.0} attempted/s",
        ok.values().sum::<u64>(),
        attempts as f64 / ops_elapsed.as_secs_f64()
    );
    let status = m.mirror().status();
    assert!(status.link.connected, "{:?}", status.link.lost_reason);
    assert!(m.dirty.paths().is_empty());
    m.unmount();
    for (k, n) in &ok {
        assert!(*n >= 5, "operation {k} succeeded only {n} times: {ok:?}");
    }
    let entries = assert_same_trees(primary.path(), secondary.path(), &|p| !p.as_os_str().is_empty());
    println!("{entries} entries identical on both sides; replica applied {} operations", r.status().applied_ops);
}

fn seed_dirs(dirs: &[&Path]) {
    seed(dirs);
    for d in dirs {
        for i in 0..3 {
            fs::create_dir_all(d.join(format!("n{i}"))).unwrap();
            fs::write(d.join(format!("n{i}/n{}", i + 3)), vec![i as u8; 1000 * (i + 1)]).unwrap();
        }
    }
}
