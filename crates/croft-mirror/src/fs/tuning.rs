//! How the mount uses the kernel's FUSE caches. The defaults are what bench/mirror measured to
//! pay (bench/mirror/REPORT.md, section 5): the writeback cache (+40-50 % on 4 KiB writes synced
//! at the end, the same elsewhere), keep_cache (random 4 KiB reads of a file written before:
//! 11x), cache_dir (a walk of 20,000 files: +28 %); a longer ttl and parallel_dirops changed
//! nothing measurable and stay at the kernel's behaviour. `CROFT_MIRROR_TUNING` (comma-separated `key=value`, read once
//! per process) overrides them for a benchmark's side-by-side runs: `writeback=0|1`,
//! `keep_cache=0|1`, `cache_dir=0|1`, `ttl_ms=N`, `parallel_dirops=0|1`, `getxattr=0|1`. Unknown keys or
//! values are logged and ignored.
//!
//! `getxattr=0` (measurement only, never a default): GETXATTR answers ENOSYS, which makes the kernel
//! stop asking (and every getxattr through the mount fail with EOPNOTSUPP). FUSE clears SB_NOSEC,
//! so before each write the kernel asks the server for `security.capability` (to drop file
//! capabilities on write): one round trip per write() however small, which this switch removes.
//!
//! Why caching is safe here: while the mirror is mounted, nothing but this mount changes the
//! directory underneath (the replica does not run on a node that mounts, reintegration and verify
//! only read it, the quarantine copies from it), so the kernel's pages, entries and attributes
//! stay right. The writeback cache is used in `SyncMode::OnSync` only: it holds written pages in
//! the kernel until writeback, fsync or close (the contract of that mode); under `EveryChange`
//! every write must reach the peer before it returns.

use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tuning {
    /// FUSE_WRITEBACK_CACHE (on-sync mounts only).
    pub(crate) writeback: bool,
    /// FOPEN_KEEP_CACHE on every open: the page cache survives close and reopen.
    pub(crate) keep_cache: bool,
    /// FOPEN_CACHE_DIR (and KEEP_CACHE) on every opendir: the kernel keeps directory listings.
    pub(crate) cache_dir: bool,
    /// Entry and attribute cache time.
    pub(crate) ttl: Duration,
    /// FUSE_PARALLEL_DIROPS: lookups and readdirs of one directory need not be serialized.
    pub(crate) parallel_dirops: bool,
    /// GETXATTR answered (false: ENOSYS, the kernel stops asking).
    pub(crate) getxattr: bool,
}

const DEFAULT: Tuning = Tuning { writeback: true, keep_cache: true, cache_dir: true, ttl: Duration::from_secs(1), parallel_dirops: false, getxattr: true };

pub(crate) fn tuning() -> Tuning {
    static T: OnceLock<Tuning> = OnceLock::new();
    *T.get_or_init(|| parse(std::env::var("CROFT_MIRROR_TUNING").ok().as_deref().unwrap_or("")))
}

fn parse(s: &str) -> Tuning {
    let mut t = DEFAULT;
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        let flag = match v {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        };
        match (k, flag) {
            ("writeback", Some(b)) => t.writeback = b,
            ("keep_cache", Some(b)) => t.keep_cache = b,
            ("cache_dir", Some(b)) => t.cache_dir = b,
            ("parallel_dirops", Some(b)) => t.parallel_dirops = b,
            ("getxattr", Some(b)) => t.getxattr = b,
            ("ttl_ms", _) if v.parse::<u64>().is_ok_and(|ms| ms <= 3_600_000) => {
                t.ttl = Duration::from_millis(v.parse().unwrap_or(1000))
            }
            _ => log::warn!("CROFT_MIRROR_TUNING: ignoring {item:?}"),
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_garbage_is_ignored() {
        assert_eq!(parse(""), DEFAULT);
        let t = parse("writeback=0, keep_cache=0,cache_dir=0,ttl_ms=60000,parallel_dirops=0,getxattr=0");
        assert_eq!(t, Tuning { writeback: false, keep_cache: false, cache_dir: false, ttl: Duration::from_secs(60), parallel_dirops: false, getxattr: false });
        assert_eq!(parse("writeback=yes,ttl_ms=-1,ttl_ms=99999999999,nonsense"), DEFAULT);
    }
}
