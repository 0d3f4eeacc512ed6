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
