//! Operations of the mirror (issue 12, part 8): the reintegration's bandwidth cap
//! (`resync_max_bytes_per_s`) and the live stream's counters for metrics (acked operations,
//! the ack latency histogram), against a real mount and a replica on loopback.
mod common;
use common::*;
use croft_mirror::{AckLevel, DirtyLog, DirtyTracker, FailMode, Mirror, MirrorConfig, ReintegrateOptions, ReintegrationPhase, ACK_LATENCY_BOUNDS_US};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const MIB: u64 = 1 << 20;

struct Alone {
    mirror: Option<Mirror>,
    dir: PathBuf,
}

impl Alone {
    fn mount(dir: &Path, state: &Path) -> Alone {
        let log = Arc::new(DirtyLog::open(state, 64 << 10).unwrap());
        log.clear().unwrap();
        let mut config = MirrorConfig::new(dir, None);
        config.fail_mode = FailMode::Alone;
        let mirror = Mirror::mount(config, log as Arc<dyn DirtyTracker>, None).unwrap_or_else(|e| panic!("{}: {e}", e.code()));
        Alone { mirror: Some(mirror), dir: dir.to_path_buf() }
    }
    fn m(&self) -> &Mirror {
        self.mirror.as_ref().unwrap()
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        if let Some(m) = self.mirror.take() {
            let _ = m.unmount();
        }
        croft_mirror::lazy_unmount(&self.dir);
    }
}

/// Writes `mib` MiB while alone, reintegrates with `cap`; returns (seconds, bytes copied).
fn capped_reintegration(tag: &str, mib: u64, cap: Option<u64>, full: bool) -> (f64, u64) {
    let primary = TempDir::new(&format!("{tag}-p"));
    let target = TempDir::new(&format!("{tag}-t"));
    let state = TempDir::new(&format!("{tag}-s"));
    let a = Alone::mount(primary.path(), state.path());
    for i in 0..mib {
        fs::write(primary.path().join(format!("f{i}")), vec![(i % 251) as u8 + 1; MIB as usize]).unwrap();
    }
    let r = replica(target.path());
    let t = Instant::now();
    let st = a
        .m()
        .reintegrate(peer(r.local_addr(), AckLevel::Received), ReintegrateOptions { full, max_bytes_per_s: cap, ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(st.phase, ReintegrationPhase::Done);
    drop(a);
    assert_same_trees(primary.path(), target.path(), &|p| !p.as_os_str().is_empty());
    (secs, st.bytes_copied)
}

#[test]
fn a_capped_reintegration_of_n_mib_takes_at_least_n_over_the_cap() {
    // 12 MiB under a 4 MiB/s cap, no writer meanwhile: pass 1 copies all of it, paced (only the
    // freeze, which copies what changed during the passes, is not): at least 3 s. Uncapped, the
    // same copy is far faster.
    let cap = 4 * MIB;
    let (capped, copied) = capped_reintegration("cap", 12, Some(cap), false);
    let (free, _) = capped_reintegration("nocap", 12, None, false);
    println!("12 MiB dirty: capped at 4 MiB/s {capped:.2} s ({copied} bytes copied), uncapped {free:.2} s");
    assert!(copied >= 12 * MIB);
    assert!(capped >= copied as f64 / cap as f64, "capped {capped:.2} s");
    assert!(capped >= 3.0, "capped {capped:.2} s");
    assert!(free < capped / 2.0, "uncapped {free:.2} s vs capped {capped:.2} s");
}

#[test]
fn a_capped_full_sync_is_paced_too() {
    let cap = 4 * MIB;
    let (capped, copied) = capped_reintegration("capfull", 8, Some(cap), true);
    println!("8 MiB full sync capped at 4 MiB/s: {capped:.2} s ({copied} bytes copied)");
    assert!(copied >= 8 * MIB);
    // The full walk is pass 1 and never frozen: every byte it sends is paced.
    assert!(capped >= copied as f64 / cap as f64, "capped {capped:.2} s");
}

#[test]
fn live_changes_are_counted_and_their_ack_latency_lands_in_fixed_buckets() {
    let primary = TempDir::new("lat-p");
    let target = TempDir::new("lat-t");
    let r = replica(target.path());
    let m = Mounted::mount(primary.path(), Some(peer(r.local_addr(), AckLevel::Received)), FailMode::Alone);
    for i in 0..50 {
        fs::write(primary.path().join(format!("f{i}")), b"x").unwrap();
    }
    let link = m.mirror().status().link;
    println!("{} ops acked, latency {:?}", link.acked_ops, link.ack_latency);
    // Each fs::write is a create and a write.
    assert!(link.acked_ops >= 100, "{link:?}");
    let h = &link.ack_latency;
    assert_eq!(h.cumulative.len(), ACK_LATENCY_BOUNDS_US.len() + 1);
    assert_eq!(*h.cumulative.last().unwrap(), h.count);
    assert!(h.count > 0 && h.count <= link.acked_ops);
    assert!(h.cumulative.windows(2).all(|w| w[0] <= w[1]));
    // Loopback: every ack within the 2 s ack timeout.
    assert_eq!(h.cumulative[ACK_LATENCY_BOUNDS_US.len() - 1], h.count);
    assert!(h.sum_us > 0);
    m.unmount();
}
