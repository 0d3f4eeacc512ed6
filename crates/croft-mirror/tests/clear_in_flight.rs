//! Clearing the dirty log from outside (the daemon does it when its mirror machine declares a
//! reintegration done, including "already in sync (connected)": the stream had not noticed yet
//! that the peer was gone). Under `OnSync` with a durable log, a change is marked, applied and
//! sent; if the log was cleared while it was in flight and the stream then broke, its sync point
//! answered "recorded as dirty" with nothing recorded: acknowledged to the application, on
//! neither the peer nor the log, never copied by the next reintegration (finding (2) of the
//! chaos campaigns in the README: the last record of a file missing on the secondary after a partition of the
//! primary; docs/investigations/chaos-divergence.md). The clear must only forget what the peer
//! acknowledged: under the order lock, connected, every change sent acknowledged.
mod common;
use common::*;
use croft_mirror::{AckLevel, DirtyLog, DirtyTracker, FailMode, Mirror, MirrorConfig, ReintegrateOptions, SyncMode};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A relay to `target` that forwards both ways until frozen (nothing more passes: a partition),
/// and whose connections can then be cut (the peer's reset after the heal).
struct Switch {
    addr: std::net::SocketAddr,
    frozen: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Switch {
    fn new(target: std::net::SocketAddr) -> Switch {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (f, c) = (Arc::clone(&frozen), Arc::clone(&conns));
        std::thread::spawn(move || {
            for client in l.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else { return };
                c.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let f = Arc::clone(&f);
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 1 << 16];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            // Frozen: what arrives is dropped, as a partition drops it.
                            if !f.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Switch { addr, frozen, conns }
    }
    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }
    fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.frozen.store(false, Ordering::SeqCst);
    }
}

fn append_and_fsync(path: &Path, record: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().append(true).create(true).open(path)?;
    f.write_all(record)?;
    f.sync_all()
}

#[test]
fn a_change_in_flight_when_the_log_is_cleared_stays_dirty_when_the_stream_then_breaks() {
    let primary = TempDir::new("cif-p");
    let target = TempDir::new("cif-t");
    let state = TempDir::new("cif-state");
    let r = replica(target.path());
    let switch = Switch::new(r.local_addr());
    let log = Arc::new(DirtyLog::open(state.path(), 64 << 10).unwrap());
    log.clear().unwrap();
    let mut p = peer(switch.addr, AckLevel::Received);
    p.ack_timeout_ms = 5_000;
    let mut config = MirrorConfig::new(primary.path(), Some(p.clone()));
    config.fail_mode = FailMode::Alone;
    config.mode = SyncMode::OnSync;
    let mut g = MountGuard(Some(Mirror::mount(config, log.clone() as Arc<dyn DirtyTracker>, None).unwrap_or_else(|e| panic!("{}: {e}", e.code()))), primary.path().to_path_buf());
    let m = g.0.as_ref().unwrap();
    let file = primary.path().join("000000");
    for n in 1..=99 {
        append_and_fsync(&file, format!("{n:04}\n").as_bytes()).unwrap();
    }
    // Everything so far is on the peer: the clear forgets it.
    assert!(m.clear_dirty_log().unwrap(), "connected and all acknowledged: the log is cleared");
    assert!(log.is_empty());
    // The partition: record 100 is marked, applied and sent; its fsync waits for the ack.
    switch.freeze();
    let f = file.clone();
    let writer = std::thread::spawn(move || append_and_fsync(&f, b"0100\n"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while m.status().link.sent_seq == m.status().link.acked_seq {
        assert!(std::time::Instant::now() < deadline, "record 100 was never sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    // The daemon's "already in sync (connected)" clear, while record 100 is in flight.
    let cleared = m.clear_dirty_log().unwrap();
    // The heal: the peer had dropped the session; the stream breaks, record 100 never arrived.
    switch.cut();
    writer.join().unwrap().expect("the fsync of record 100 returns (recorded as dirty, alone)");
    assert!(!m.status().link.connected);
    assert!(log.entries().iter().any(|e| e.path == Path::new("000000")), "record 100 is neither on the peer nor in the log: {:?}", log.entries());
    assert!(!cleared, "a change was in flight: the log must not be cleared");
    // The other order (the loss known before the clear runs): alone now, the log is kept too.
    append_and_fsync(&primary.path().join("000001"), b"0101\n").unwrap();
    assert!(!m.clear_dirty_log().unwrap(), "the peer is lost: the log must not be cleared");
    assert_eq!(log.entries().len(), 2, "{:?}", log.entries());
    // And the next reintegration brings it over.
    let st = m.reintegrate(peer(r.local_addr(), AckLevel::Received), ReintegrateOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    println!("{st:?}");
    assert_eq!(fs::read(target.path().join("000000")).unwrap().len(), 500, "the target has every record");
    assert_eq!(fs::read(target.path().join("000001")).unwrap(), b"0101\n");
    if let Err(e) = g.0.take().unwrap().unmount() {
        panic!("{}: {e}", e.code());
    }
    drop(r);
}
