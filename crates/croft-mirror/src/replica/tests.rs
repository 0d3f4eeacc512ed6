//! The replica's unit tests (issue 8, finding 4).

use super::batch::{describe, truncate_chars};
use super::*;
use crate::op::Op;
use crate::wire::{self, AckLevel, Frame};
use std::io::Write;
use std::time::Instant;

#[test]
fn finding_4_descriptions_are_cut_between_characters() {
    let op = Op::Truncate { path: "é".repeat(400).into(), size: 0 };
    let d = describe(&op);
    assert!(d.ends_with('…') && d.chars().count() == DESCRIBE_CHARS_MAX + 1, "{d}");
    let w = Op::Write { path: "ü".repeat(500).into(), offset: 0, data: vec![0; 10] };
    assert!(describe(&w).ends_with('…'));
    assert_eq!(truncate_chars("abc", 300), "abc");
}

#[test]
fn finding_4_a_panic_under_the_replicas_locks_does_not_stop_later_sessions() {
    let dir = std::env::temp_dir().join(format!("croft-replica-poison-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let r = Replica::start(ReplicaConfig::new(&dir, "127.0.0.1:0".parse().unwrap(), b"k".to_vec())).unwrap();
    let shared = Arc::clone(&r.shared);
    let _ = thread::spawn(move || {
        let _apply = shared.apply.lock();
        let _status = shared.status.lock();
        panic!("a panic while holding the replica's locks");
    })
    .join();
    assert!(r.shared.apply.is_poisoned() && r.shared.status.is_poisoned());
    let s = TcpStream::connect(r.local_addr()).unwrap();
    let s = wire::handshake_primary(s, b"k", AckLevel::Received, Instant::now() + Duration::from_secs(5)).unwrap();
    (&s).write_all(&wire::op_frame(1, &Op::Create { path: "after".into(), mode: 0o644, uid: 0, gid: 0 })).unwrap();
    let mut rd = &s;
    assert_eq!(wire::read_frame(&mut rd).unwrap(), Some(Frame::Ack { seq: 1 }));
    assert!(dir.join("after").exists());
    assert!(r.status().connected);
    drop(s);
    r.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The swap to a slow start_prim (kvm-mirror lab): the new primary had nothing to copy, so its
/// reintegration sent only queries, and the stream that went live held no apply role: the replica
/// said "not connected" until the first write, and the SECOND closed the live stream after its
/// grace, again after every resync. The "done" of a reintegration makes its stream the live one.
#[test]
fn a_reintegration_with_nothing_to_copy_leaves_the_replica_connected() {
    let dir = std::env::temp_dir().join(format!("croft-replica-done-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let r = Replica::start(ReplicaConfig::new(&dir, "127.0.0.1:0".parse().unwrap(), b"k".to_vec())).unwrap();
    let s = TcpStream::connect(r.local_addr()).unwrap();
    let s = wire::handshake_primary(s, b"k", AckLevel::Received, Instant::now() + Duration::from_secs(5)).unwrap();
    let mut rd = &s;
    // A query that is not the end of a reintegration (verify's) takes no apply role.
    (&s).write_all(&wire::query_frame(1, &crate::wire::Query::ListDir { path: "".into() })).unwrap();
    assert!(matches!(wire::read_frame(&mut rd).unwrap(), Some(Frame::Reply { id: 1, .. })));
    assert!(!r.status().connected, "a verify session is not the primary's live stream");
    (&s).write_all(&wire::query_frame(2, &crate::wire::Query::Done)).unwrap();
    assert!(matches!(wire::read_frame(&mut rd).unwrap(), Some(Frame::Reply { id: 2, .. })));
    let st = r.status();
    assert!(st.connected && st.reintegrations == 1, "after done, with no operation sent: {st:?}");
    // It is the applying session: its first write is applied and acked as on any live stream.
    (&s).write_all(&wire::op_frame(1, &Op::Create { path: "live".into(), mode: 0o644, uid: 0, gid: 0 })).unwrap();
    assert_eq!(wire::read_frame(&mut rd).unwrap(), Some(Frame::Ack { seq: 1 }));
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.status().connected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(!r.status().connected, "the stream closed: not connected any more");
    r.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
