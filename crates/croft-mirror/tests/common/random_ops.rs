//! A seeded random workload of every replicated operation on a directory (the mount of a
//! mirror, or a primary's replicated directory in the lab: examples/workload.rs), shared by the
//! workload test and the example.
use super::*;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Rng(pub u64);
impl Rng {
    // splitmix64
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

pub const KINDS: [&str; 21] = [
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

pub fn data(rng: &mut Rng, len: usize) -> Vec<u8> {
    let b = rng.next() as u8;
    (0..len).map(|i| b.wrapping_add((i / 7) as u8)).collect()
}

/// Runs random operations on `d` until `target` of them succeeded; returns the successes per kind
/// and the attempts. Files kept open for writing are closed before it returns.
pub fn run_random_ops(d: &Path, rng: &mut Rng, target: u64) -> (BTreeMap<&'static str, u64>, u64) {
    let mut rng = rng;
    let d = d.to_path_buf();
    let mut ok: BTreeMap<&'static str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
    let mut open: Vec<(PathBuf, File)> = Vec::new();
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
    (ok, attempts)
}

/// Sets explicit, distinct mtimes on every entry under `d` (not `d` itself), so that mtimes can be
/// compared too.
pub fn set_all_mtimes(d: &Path) {
    let d = d.to_path_buf();
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
}
