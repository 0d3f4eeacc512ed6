//! Rough throughput: the replication stream alone (sealed and, for comparison, the same frames in
//! plaintext as protocol version 1 sent them), then the same small workloads on a plain
//! directory, through the mount without a peer (passthrough cost), and mirrored to a replica on
//! loopback at both ack levels.
//! `cargo run --release -p croft-mirror --example throughput` (root, /dev/fuse);
//! `... --example throughput -- wire` for the stream figures only.
use croft_mirror::wire::{self, Frame};
use croft_mirror::{AckLevel, DirtyPaths, FailMode, Mirror, MirrorConfig, Op, PeerConfig, Replica, ReplicaConfig};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const WIRE_MIB: u64 = 2048;

/// `WIRE_MIB` MiB of 1 MiB write frames from one thread to another over loopback TCP, decoded on
/// arrival; `sealed`: through the Noise session, else plaintext frames on the socket.
fn stream_mib_s(sealed: bool) -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let reader = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut n = 0u64;
        let count = |f: Option<Frame>| matches!(f, Some(Frame::Op { .. }));
        if sealed {
            let (s, _) = wire::handshake_replica(s, b"k", deadline).unwrap();
            let mut r = &s;
            while count(wire::read_frame(&mut r).unwrap()) {
                n += 1;
            }
        } else {
            let mut r = BufReader::with_capacity(1 << 20, s);
            while count(wire::read_frame(&mut r).unwrap()) {
                n += 1;
            }
        }
        n
    });
    let s = TcpStream::connect(addr).unwrap();
    let op = Op::Write { path: "f".into(), offset: 0, data: vec![5u8; 1 << 20] };
    let mut frames = Vec::new();
    let t = Instant::now();
    if sealed {
        let s = wire::handshake_primary(s, b"k", AckLevel::Received, Instant::now() + Duration::from_secs(5)).unwrap();
        for seq in 1..=WIRE_MIB {
            frames.clear();
            wire::encode_op_frame(&mut frames, seq, &op);
            (&s).write_all(&frames).unwrap();
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
    } else {
        let mut s = s;
        for seq in 1..=WIRE_MIB {
            frames.clear();
            wire::encode_op_frame(&mut frames, seq, &op);
            s.write_all(&frames).unwrap();
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    assert_eq!(reader.join().unwrap(), WIRE_MIB);
    WIRE_MIB as f64 / t.elapsed().as_secs_f64()
}

/// `WIRE_MIB` MiB of 1 MiB writes to a real replica (into one file of `dir`), pipelined, until
/// the last one is acknowledged.
fn replica_mib_s(dir: &Path) -> f64 {
    fs::write(dir.join("f"), b"").unwrap();
    let r = Replica::start(ReplicaConfig::new(dir, "127.0.0.1:0".parse().unwrap(), b"k".to_vec())).unwrap();
    let s = TcpStream::connect(r.local_addr()).unwrap();
    let s = wire::handshake_primary(s, b"k", AckLevel::Received, Instant::now() + Duration::from_secs(5)).unwrap();
    let acks = {
        let s = s.clone();
        thread::spawn(move || {
            let mut r = &s;
            loop {
                match wire::read_frame(&mut r).unwrap() {
                    Some(Frame::Ack { seq }) if seq == WIRE_MIB => return,
                    Some(Frame::Ack { .. }) => {}
                    other => panic!("{other:?}"),
                }
            }
        })
    };
    let data = vec![6u8; 1 << 20];
    let mut frames = Vec::new();
    let t = Instant::now();
    for seq in 1..=WIRE_MIB {
        // 64 MiB file rewritten in a loop: the page cache, not the disk, is measured.
        let op = Op::Write { path: "f".into(), offset: ((seq - 1) % 64) << 20, data: data.clone() };
        frames.clear();
        wire::encode_op_frame(&mut frames, seq, &op);
        (&s).write_all(&frames).unwrap();
    }
    acks.join().unwrap();
    let mib_s = WIRE_MIB as f64 / t.elapsed().as_secs_f64();
    drop(s);
    r.stop();
    mib_s
}

fn wire_figures(base: &Path) {
    let dir = base.join("wire-replica");
    fs::create_dir_all(&dir).unwrap();
    let plain = stream_mib_s(false);
    let sealed = stream_mib_s(true);
    println!("stream, 1 MiB write frames over loopback: plaintext (v1) {plain:>6.0} MiB/s   sealed ({}) {sealed:>6.0} MiB/s", wire::NOISE_PARAMS);
    println!("to a replica (sealed, applied, acked):     {:>6.0} MiB/s", replica_mib_s(&dir));
}

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
    wire_figures(&base);
    if std::env::args().nth(1).as_deref() == Some("wire") {
        let _ = fs::remove_dir_all(&base);
        return;
    }
    run("direct (ext4)", &dirs[0]);
    let m = Mirror::mount(MirrorConfig::new(&dirs[1], None), Arc::new(DirtyPaths::new()), None).unwrap();
    run("mount, no peer", &dirs[1]);
    m.unmount().unwrap();
    for (i, level) in [(2, AckLevel::Received), (3, AckLevel::Durable)] {
        let r = Replica::start(ReplicaConfig { dir: dirs[i + 2].clone(), listen: "127.0.0.1:0".parse().unwrap(), key: b"k".to_vec(), dirty_log: None, allowed_peers: Vec::new(), protocol: Default::default() })
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
