//! Rough throughput: the same small workloads on a plain directory, through the mount without a
//! peer (passthrough cost), and mirrored to a replica on loopback at both ack levels.
//! `cargo run --release -p croft-mirror --example throughput` (root, /dev/fuse).
use croft_mirror::{AckLevel, DirtyPaths, FailMode, Mirror, MirrorConfig, PeerConfig, Replica, ReplicaConfig};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn run(label: &str, d: &Path) {
    let n = 5000;
    let mut f = File::create(d.join("seq")).unwrap();
    let buf = vec![1u8; 4096];
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&buf).unwrap();
    }
    let seq = n as f64 / t.elapsed().as_secs_f64();
    let big = vec![2u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..64 {
        f.write_all(&big).unwrap();
    }
    f.sync_all().unwrap();
    let mib = 64.0 / t.elapsed().as_secs_f64();
    let g = OpenOptions::new().write(true).open(d.join("seq")).unwrap();
    let t = Instant::now();
    for i in 0..300u64 {
        g.write_all_at(&buf, (i * 7919 % 5000) * 4096).unwrap();
        g.sync_data().unwrap();
    }
    let rnd = 300.0 / t.elapsed().as_secs_f64();
    fs::create_dir(d.join("many")).unwrap();
    let t = Instant::now();
    for i in 0..2000 {
        fs::write(d.join(format!("many/{i}")), b"small").unwrap();
    }
    let small = 2000.0 / t.elapsed().as_secs_f64();
    println!(
        "{label:<28} 4KiB writes {seq:>8.0}/s   1MiB writes {mib:>6.0} MiB/s   4KiB write+fdatasync {rnd:>6.0}/s   small files {small:>6.0}/s"
    );
}

fn main() {
    let base = std::env::temp_dir().join(format!("croft-mirror-bench-{}", std::process::id()));
    let dirs = ["direct", "passthrough", "received", "durable", "replica-r", "replica-d", "received-log", "durable-log", "replica-rl", "replica-dl", "state-r", "state-d"]
        .map(|s| base.join(s));
    for d in &dirs {
        fs::create_dir_all(d).unwrap();
    }
    run("direct (ext4)", &dirs[0]);
    let m = Mirror::mount(MirrorConfig::new(&dirs[1], None), Arc::new(DirtyPaths::new()), None).unwrap();
    run("mount, no peer", &dirs[1]);
    m.unmount().unwrap();
    for (i, level) in [(2, AckLevel::Received), (3, AckLevel::Durable)] {
        let r = Replica::start(ReplicaConfig { dir: dirs[i + 2].clone(), listen: "127.0.0.1:0".parse().unwrap(), key: b"k".to_vec(), dirty_log: None })
            .unwrap();
        let mut p = PeerConfig::new(r.local_addr(), b"k".to_vec());
        p.ack_level = level;
        let mut c = MirrorConfig::new(&dirs[i], Some(p));
        c.fail_mode = FailMode::Alone;
        let m = Mirror::mount(c, Arc::new(DirtyPaths::new()), None).unwrap();
        run(&format!("mirrored, loopback, {level:?}"), &dirs[i]);
        assert!(m.status().link.connected);
        m.unmount().unwrap();
        r.stop();
    }
    // The same with the durable dirty log as an activity log (marked before each change, cleared
    // every few seconds once acked): the cost of crash-safe reintegration.
    for (i, level) in [(6, AckLevel::Received), (7, AckLevel::Durable)] {
        let r = Replica::start(ReplicaConfig::new(dirs[i + 2].clone(), "127.0.0.1:0".parse().unwrap(), b"k".to_vec())).unwrap();
        let mut p = PeerConfig::new(r.local_addr(), b"k".to_vec());
        p.ack_level = level;
        let mut c = MirrorConfig::new(&dirs[i], Some(p));
        c.fail_mode = FailMode::Alone;
        let log = Arc::new(croft_mirror::DirtyLog::open(&dirs[i + 4], 64 << 10).unwrap());
        log.clear().unwrap();
        let m = Mirror::mount(c, log.clone(), None).unwrap();
        run(&format!("mirrored+log, {level:?}"), &dirs[i]);
        assert!(m.status().link.connected);
        let st = log.stats();
        println!("{:<28} dirty log: {} marks, {} records, {} fdatasyncs", "", st.marks, st.records_logged, st.fdatasyncs);
        m.unmount().unwrap();
        r.stop();
    }
    let _ = fs::remove_dir_all(&base);
}
