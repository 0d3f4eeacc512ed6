//! The "on sync" mode (DESIGN.md, "Replication contracts"): changes stream to the peer without
//! waiting; fsync, fdatasync, O_SYNC/O_DSYNC writes and close wait for everything before them;
//! a peer lost while a sync waits sends the change to the dirty tracker (or the durable dirty
//! log) before the sync returns, never "ok" with neither the ack nor the record.
mod common;
use common::*;
use croft_mirror::{AckLevel, DirtyLog, DirtyPaths, DirtyTracker, FailMode, Mirror, MirrorConfig, PeerConfig, SyncMode};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn mount_on_sync(dir: &Path, peer: Option<PeerConfig>, fail_mode: FailMode, dirty: Arc<dyn DirtyTracker>) -> MountGuard {
    let mut config = MirrorConfig::new(dir, peer);
    config.fail_mode = fail_mode;
    config.mode = SyncMode::OnSync;
    let m = Mirror::mount(config, dirty, None).unwrap_or_else(|e| panic!("{}: {e}", e.code()));
    MountGuard(Some(m), dir.to_path_buf())
}

fn mirror(g: &MountGuard) -> &Mirror {
    g.0.as_ref().unwrap()
}

#[test]
fn writes_stream_without_waiting_and_fsync_waits_for_all_of_them() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let delay = Duration::from_millis(300);
    let proxy = delaying_proxy(r.local_addr(), delay);
    let g = mount_on_sync(primary.path(), Some(peer(proxy, AckLevel::Durable)), FailMode::Alone, Arc::new(DirtyPaths::new()));
    let st = mirror(&g).status();
    assert_eq!((st.mode, st.ack_level), (SyncMode::OnSync, Some(AckLevel::Durable)));
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(primary.path().join("f")).unwrap();
    let t0 = Instant::now();
    for i in 0..20u8 {
        f.write_all(&[i; 4096]).unwrap();
    }
    let wrote = t0.elapsed();
    assert!(wrote < delay, "20 writes took {wrote:?}: they waited for the delayed acks");
    let t1 = Instant::now();
    f.sync_data().unwrap();
    let synced = t1.elapsed();
    assert!(synced >= delay / 2, "fdatasync returned after {synced:?}, before the delayed ack");
    // Everything before the fsync is on the peer, in order, when it returns.
    let got = fs::read(secondary.path().join("f")).unwrap();
    assert_eq!(got.len(), 20 * 4096);
    for i in 0..20usize {
        assert!(got[i * 4096..(i + 1) * 4096].iter().all(|&b| b == i as u8), "block {i} differs on the peer");
    }
    let st = mirror(&g).status();
    assert!(st.link.connected && st.link.acked_seq == st.link.sent_seq, "{st:?}");
    drop(f);
}

#[test]
fn close_is_a_sync_point_and_a_read_only_close_is_not() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let delay = Duration::from_millis(300);
    let proxy = delaying_proxy(r.local_addr(), delay);
    let _g = mount_on_sync(primary.path(), Some(peer(proxy, AckLevel::Received)), FailMode::Alone, Arc::new(DirtyPaths::new()));
    let path = primary.path().join("c");
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(b"made durable by close alone").unwrap();
    let t0 = Instant::now();
    drop(f); // close(2): FLUSH
    let closed = t0.elapsed();
    assert!(closed >= delay / 2, "close returned after {closed:?}, before the delayed ack");
    assert_eq!(fs::read(secondary.path().join("c")).unwrap(), b"made durable by close alone");
    // A reader's close waits for nothing (the read itself is local).
    let mut w = fs::OpenOptions::new().append(true).open(&path).unwrap();
    w.write_all(b"!").unwrap();
    let t1 = Instant::now();
    let rd = fs::File::open(&path).unwrap();
    drop(rd);
    assert!(t1.elapsed() < delay / 2, "a read-only open and close took {:?}", t1.elapsed());
    drop(w);
    assert_eq!(fs::read(secondary.path().join("c")).unwrap(), b"made durable by close alone!");
}

#[test]
fn a_write_on_an_o_dsync_descriptor_waits_for_the_ack() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let delay = Duration::from_millis(300);
    let proxy = delaying_proxy(r.local_addr(), delay);
    let g = mount_on_sync(primary.path(), Some(peer(proxy, AckLevel::Received)), FailMode::Alone, Arc::new(DirtyPaths::new()));
    let mut f = fs::OpenOptions::new().write(true).create(true).custom_flags(libc::O_DSYNC).open(primary.path().join("d")).unwrap();
    let t0 = Instant::now();
    f.write_all(b"dsync").unwrap();
    assert!(t0.elapsed() >= delay / 2, "an O_DSYNC write returned after {:?}", t0.elapsed());
    assert_eq!(fs::read(secondary.path().join("d")).unwrap(), b"dsync");
    drop(f);
    drop(g);
}

/// The peer stops acking while an fsync waits: under Alone the streamed (unwaited) change goes to
/// the tracker, and the fsync returns only once it is there.
#[test]
fn a_peer_lost_during_a_pending_fsync_sends_the_streamed_changes_to_the_tracker() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let proxy = delaying_proxy(r.local_addr(), Duration::from_millis(1500));
    let mut p = peer(proxy, AckLevel::Received);
    p.ack_timeout_ms = 300;
    p.connect_timeout_ms = 20_000;
    let dirty = Arc::new(DirtyPaths::new());
    let g = mount_on_sync(primary.path(), Some(p), FailMode::Alone, dirty.clone());
    let mut f = fs::File::create(primary.path().join("streamed")).unwrap();
    f.write_all(b"never acknowledged").unwrap();
    // Nothing waited so far: the create and the write are only listed in memory as unacked.
    assert!(dirty.paths().is_empty(), "{:?}", dirty.paths());
    let t0 = Instant::now();
    f.sync_all().unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(1400), "fsync took {took:?}");
    // Returned ok: the peer is lost and the change is recorded.
    assert!(dirty.paths().contains(&"streamed".into()), "{:?}", dirty.paths());
    let st = mirror(&g).status();
    assert!(!st.link.connected, "{st:?}");
    assert!(st.link.lost_reason.as_deref().unwrap_or("").contains("no acknowledgement within 300 ms"), "{st:?}");
    drop(f);
    drop(g);
    assert_eq!(fs::read(primary.path().join("streamed")).unwrap(), b"never acknowledged");
}

/// With the durable dirty log (the daemon's tracker), a change is in the log before it is applied
/// here; a lost peer during a pending fsync: the fsync returns once the peer is given up and the
/// log, read back from disk, lists the change.
#[test]
fn with_the_dirty_log_a_lost_peer_leaves_every_streamed_change_in_the_durable_log() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let logdir = TempDir::new("log");
    let r = replica(secondary.path());
    let proxy = delaying_proxy(r.local_addr(), Duration::from_millis(1500));
    let mut p = peer(proxy, AckLevel::Durable);
    p.ack_timeout_ms = 300;
    p.connect_timeout_ms = 20_000;
    let log = Arc::new(DirtyLog::open(logdir.path(), 65536).unwrap());
    log.clear().unwrap();
    let g = mount_on_sync(primary.path(), Some(p), FailMode::Alone, log.clone());
    let mut f = fs::File::create(primary.path().join("a")).unwrap();
    f.write_all(&[7u8; 100_000]).unwrap();
    fs::create_dir(primary.path().join("dir")).unwrap();
    f.sync_data().unwrap();
    assert!(!mirror(&g).status().link.connected);
    drop(f);
    drop(g);
    drop(log);
    // Read back from disk, as after a crash of this node.
    let reread = DirtyLog::open(logdir.path(), 65536).unwrap();
    let paths: Vec<_> = reread.entries().into_iter().map(|e| e.path).collect();
    for p in ["a", "dir"] {
        assert!(paths.contains(&p.into()), "{p} not in the durable log: {paths:?}");
    }
}

/// Under Block, a sync point waits for the lost peer until the caller chooses Alone; under Fence
/// it fails with EIO at once. Changes that do not sync do not wait while the peer is connected.
#[test]
fn a_sync_point_follows_the_fail_mode_once_the_peer_is_lost() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let mut p = peer(r.local_addr(), AckLevel::Received);
    p.ack_timeout_ms = 200;
    let dirty = Arc::new(DirtyPaths::new());
    let g = mount_on_sync(primary.path(), Some(p), FailMode::Block, dirty.clone());
    fs::write(primary.path().join("before"), b"acked at close").unwrap();
    r.stop();
    let path = primary.path().join("blocked");
    let syncer = std::thread::spawn(move || {
        let mut f = fs::File::create(path)?;
        f.write_all(b"waits")?;
        f.sync_all()?;
        Ok::<Instant, std::io::Error>(Instant::now())
    });
    std::thread::sleep(Duration::from_millis(800));
    assert!(!syncer.is_finished(), "an fsync returned under Block with the peer gone");
    let released = Instant::now();
    mirror(&g).set_fail_mode(FailMode::Alone);
    let returned = syncer.join().unwrap().unwrap();
    assert!(returned >= released, "the blocked fsync returned before set_fail_mode(Alone)");
    assert!(dirty.paths().contains(&"blocked".into()), "{:?}", dirty.paths());
    mirror(&g).set_fail_mode(FailMode::Fence);
    let mut f = fs::File::create(primary.path().join("fenced")).map_err(|e| e.raw_os_error());
    // The create itself fails (the peer is lost: it is handled by the fail mode at once), or the
    // fsync does; never an ok fsync.
    if let Ok(f) = f.as_mut() {
        let r = f.write_all(b"x").and_then(|()| f.sync_all());
        assert_eq!(r.map_err(|e| e.raw_os_error()), Err(Some(libc::EIO)));
    } else {
        assert_eq!(f.err(), Some(Some(libc::EIO)));
    }
    assert_eq!(fs::read(secondary.path().join("before")).unwrap(), b"acked at close");
    drop(g);
}

#[test]
fn every_change_is_still_the_default_and_waits_for_each_ack() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    let r = replica(secondary.path());
    let delay = Duration::from_millis(200);
    let proxy = delaying_proxy(r.local_addr(), delay);
    let m = Mounted::mount(primary.path(), Some(peer(proxy, AckLevel::Received)), FailMode::Alone);
    assert_eq!(m.mirror().status().mode, SyncMode::EveryChange);
    let mut f = fs::File::create(primary.path().join("e")).unwrap();
    let t0 = Instant::now();
    f.write_all(&[1u8; 4096]).unwrap();
    assert!(t0.elapsed() >= delay, "an every-change write returned after {:?}", t0.elapsed());
    drop(f);
    m.unmount();
}
