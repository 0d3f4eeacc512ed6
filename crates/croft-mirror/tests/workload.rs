//! A seeded random workload of every replicated operation through the mount, then the primary's
//! directory and the replica's are compared: contents, sizes, modes, owners, symlink targets,
//! hard-link groups, xattrs, and the mtimes set explicitly at the end.
//! Replay a failure with `CROFT_SEED=<seed printed> cargo test -p croft-mirror --test workload`.
mod common;
use common::random_ops::*;
use common::*;
use croft_mirror::{AckLevel, FailMode, Mirror, MirrorConfig, SyncMode};
use std::fs;
use std::path::Path;

#[test]
fn random_workload_leaves_identical_trees() {
    random_workload(SyncMode::EveryChange);
}

/// The same in the on-sync mode, through the kernel's writeback cache: once unmounted (the kernel
/// writes its pages back, the stream drains), both trees are identical.
#[test]
fn random_workload_on_sync_leaves_identical_trees() {
    random_workload(SyncMode::OnSync);
}

fn random_workload(mode: SyncMode) {
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
    let dirty = std::sync::Arc::new(croft_mirror::DirtyPaths::new());
    let mut config = MirrorConfig::new(primary.path(), Some(peer(r.local_addr(), level)));
    config.mode = mode;
    let mirror = Mirror::mount(config, dirty.clone(), None).unwrap_or_else(|e| panic!("{}: {e}", e.code()));
    let m = Mounted { mirror: Some(mirror), dir: primary.path().to_path_buf(), dirty };
    let d = primary.path().to_path_buf();
    let t0 = std::time::Instant::now();
    let target = 10_000u64;
    let (ok, attempts) = run_random_ops(&d, &mut rng, target);
    let ops_elapsed = t0.elapsed();
    set_all_mtimes(&d);
    println!("{ok:?}");
    println!(
        "{} operations ({attempts} attempted) in {ops_elapsed:?} at {level:?}, {mode:?}: {:.0} attempted/s",
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
