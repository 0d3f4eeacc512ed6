//! The replication stream: authentication, waiting for acks, and what happens without them.
mod common;
use common::*;
use croft_mirror::wire;
use croft_mirror::{AckLevel, FailMode, Mirror, MirrorConfig, Op, PeerConfig};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn is_mounted(dir: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(dir.to_str().unwrap()))
}

#[test]
fn a_client_with_the_wrong_key_is_refused_and_nothing_is_mounted() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let bad = PeerConfig::new(r.local_addr(), b"not the cluster key".to_vec());
    let err = Mirror::mount(MirrorConfig::new(primary.path(), Some(bad)), Arc::new(croft_mirror::DirtyPaths::new()), None)
        .err()
        .expect("a mirror with the wrong key mounted");
    assert_eq!(err.code(), "CROFT_ERR_MIRROR_PEER_AUTH", "{err}");
    assert!(!is_mounted(primary.path()));
    // The replica saw a refused handshake.
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.status().refused < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(r.status().refused, 1);
    assert_eq!(r.status().sessions, 0);
}

#[test]
fn operations_sent_without_the_handshake_are_never_applied() {
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let mut s = TcpStream::connect(r.local_addr()).unwrap();
    // A well-formed operation frame where the handshake should be.
    let op = Op::Create { path: "intruder".into(), mode: 0o644, uid: 0, gid: 0 };
    let frame = wire::op_frame(1, &op);
    let _ = s.write_all(&[frame.clone(), frame].concat());
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf); // the replica closes the connection
    assert!(!secondary.path().join("intruder").exists());
    assert_eq!(r.status().refused, 1);
    assert_eq!(r.status().applied_ops, 0);
    // And a client that holds the key still gets in afterwards.
    let primary = TempDir::new("p");
    let m = Mounted::mount(primary.path(), Some(peer(r.local_addr(), AckLevel::Received)), FailMode::Alone);
    fs::write(primary.path().join("ok"), b"1").unwrap();
    m.unmount();
    assert_eq!(fs::read(secondary.path().join("ok")).unwrap(), b"1");
}

#[test]
fn a_write_returns_only_after_the_replica_acknowledged_it() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let delay = Duration::from_millis(200);
    let proxy = delaying_proxy(r.local_addr(), delay);
    let m = Mounted::mount(primary.path(), Some(peer(proxy, AckLevel::Received)), FailMode::Alone);
    let mut f = fs::File::create(primary.path().join("f")).unwrap();
    for i in 0..3 {
        let t0 = Instant::now();
        f.write_all(&[i as u8; 4096]).unwrap();
        let took = t0.elapsed();
        assert!(took >= delay, "write {i} returned after {took:?}, before the delayed ack");
        // The replica has the data by the time the write returned.
        assert_eq!(fs::metadata(secondary.path().join("f")).unwrap().len(), 4096 * (i + 1));
    }
    let t0 = Instant::now();
    f.sync_all().unwrap();
    assert!(t0.elapsed() >= delay, "fsync returned after {:?}", t0.elapsed());
    drop(f);
    assert!(m.mirror().status().link.connected);
    m.unmount();
}

#[test]
fn without_an_ack_in_time_alone_records_the_change_as_dirty() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let proxy = delaying_proxy(r.local_addr(), Duration::from_millis(1500));
    let mut p = peer(proxy, AckLevel::Received);
    p.ack_timeout_ms = 300;
    p.connect_timeout_ms = 5000;
    let m = Mounted::mount(primary.path(), Some(p), FailMode::Alone);
    let t0 = Instant::now();
    fs::write(primary.path().join("late"), b"data").unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1400), "took {took:?}");
    let st = m.mirror().status();
    assert!(!st.link.connected);
    assert!(st.link.lost_reason.as_deref().unwrap().contains("no acknowledgement within 300 ms"), "{st:?}");
    // Further changes do not wait at all.
    let t0 = Instant::now();
    fs::write(primary.path().join("later"), b"more").unwrap();
    assert!(t0.elapsed() < Duration::from_millis(200));
    let dirty = m.dirty.paths();
    assert!(dirty.contains(&"late".into()) && dirty.contains(&"later".into()), "{dirty:?}");
    assert!(m.mirror().status().link.alone_ops >= 2);
    m.unmount();
    assert_eq!(fs::read(primary.path().join("late")).unwrap(), b"data");
}

#[test]
fn block_waits_for_the_lost_peer_until_the_caller_chooses_alone() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let mut p = peer(r.local_addr(), AckLevel::Durable);
    p.ack_timeout_ms = 200;
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let dirty = Arc::new(croft_mirror::DirtyPaths::new());
    let mut config = MirrorConfig::new(primary.path(), Some(p));
    config.fail_mode = FailMode::Block;
    let mirror = Mirror::mount(config, dirty.clone(), Some(Arc::new(move |e| ev.lock().unwrap().push(e.clone())))).unwrap();
    let m = Mounted { mirror: Some(mirror), dir: primary.path().to_path_buf(), dirty };
    fs::write(primary.path().join("before"), b"acked").unwrap();
    r.stop();
    let path = primary.path().join("blocked");
    let writer = std::thread::spawn(move || {
        fs::write(path, b"waits").unwrap();
        Instant::now()
    });
    std::thread::sleep(Duration::from_millis(800));
    assert!(!writer.is_finished(), "a change returned under Block with the peer gone");
    assert_eq!(events.lock().unwrap().len(), 1, "{:?}", events.lock().unwrap());
    // The write returns only once the caller chose Alone (compare instants, not durations
    // measured on a thread that may have started late).
    let released = Instant::now();
    m.mirror().set_fail_mode(FailMode::Alone);
    let returned = writer.join().unwrap();
    assert!(returned >= released, "the blocked write returned before set_fail_mode(Alone)");
    assert!(m.dirty.paths().contains(&"blocked".into()), "{:?}", m.dirty.paths());
    assert!(!m.dirty.paths().contains(&"before".into()));
    m.unmount();
    assert_eq!(fs::read(secondary.path().join("before")).unwrap(), b"acked");
}

#[test]
fn without_a_peer_every_change_is_dirty() {
    let primary = TempDir::new("p");
    let m = Mounted::mount(primary.path(), None, FailMode::Alone);
    fs::create_dir(primary.path().join("d")).unwrap();
    fs::write(primary.path().join("d/f"), b"x").unwrap();
    fs::rename(primary.path().join("d/f"), primary.path().join("g")).unwrap();
    let dirty = m.dirty.paths();
    for p in ["d", "d/f", "g"] {
        assert!(dirty.contains(&p.into()), "{p} not dirty: {dirty:?}");
    }
    assert_eq!(m.mirror().status().link.lost_reason.as_deref(), Some("no peer configured"));
    m.unmount();
}

#[test]
fn fence_fails_a_blocked_change_and_every_later_one_with_eio_at_once() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let mut p = peer(r.local_addr(), AckLevel::Received);
    p.ack_timeout_ms = 200;
    let dirty = Arc::new(croft_mirror::DirtyPaths::new());
    let mut config = MirrorConfig::new(primary.path(), Some(p));
    config.fail_mode = FailMode::Block;
    let mirror = Mirror::mount(config, dirty.clone(), None).unwrap();
    let m = Mounted { mirror: Some(mirror), dir: primary.path().to_path_buf(), dirty };
    fs::write(primary.path().join("before"), b"acked").unwrap();
    r.stop();
    // A change waits for the lost peer under Block...
    let path = primary.path().join("blocked");
    let writer = std::thread::spawn(move || fs::write(path, b"waits").map_err(|e| e.raw_os_error()));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!writer.is_finished(), "a change returned under Block with the peer gone");
    // ...until the node is fenced: then it fails with EIO, and so does every later change,
    // without waiting for any timeout.
    m.mirror().set_fail_mode(FailMode::Fence);
    m.mirror().drop_peer("fenced by the test");
    assert_eq!(writer.join().unwrap(), Err(Some(libc::EIO)), "the blocked write failed with EIO");
    let t = Instant::now();
    let later = fs::write(primary.path().join("later"), b"never acknowledged").map_err(|e| e.raw_os_error());
    assert_eq!(later, Err(Some(libc::EIO)));
    assert!(t.elapsed() < Duration::from_millis(150), "the fenced write waited {:?}", t.elapsed());
    // Applied locally before they failed: recorded as dirty, so the quarantine copies them aside.
    let dirty = m.dirty.paths();
    assert!(dirty.contains(&"blocked".into()) && dirty.contains(&"later".into()), "{dirty:?}");
    m.unmount();
    assert_eq!(fs::read(secondary.path().join("before")).unwrap(), b"acked");
}
