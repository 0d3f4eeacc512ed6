//! Issue 8, finding 2: a man in the middle between a real mirror (FUSE) and a real replica, on
//! loopback. He relays the handshake untouched (he cannot make one: he has no key), then flips a
//! byte, drops a record, replays one, injects an operation, or answers the acks himself. In every
//! case the application's change is never reported as acknowledged by the peer unless the replica
//! really applied it (it goes to the dirty tracker, or fails, as the fail mode says), the replica
//! applies nothing tampered, and the side that saw the damage counts it.
mod common;
use common::*;
use croft_mirror::{wire, AckLevel, FailMode, Op};
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Attack {
    /// Flips one bit of the first data record (primary → replica).
    Flip,
    /// Drops the first data record.
    Drop,
    /// Sends the first data record twice.
    Replay,
    /// Puts a forged record (a plaintext operation frame) before the first data record.
    InjectOp,
    /// Never forwards data records; answers the primary with acks of its own: a plaintext ack
    /// frame, and the replica's genuine "accepted" record of this session replayed.
    ForgeAcks,
}

/// The next unit of one direction: unit 0 is the 10-byte prologue, every later one a u16-framed
/// message (unit 1 the Noise handshake message, unit 2 the first sealed record, then data).
fn read_unit(r: &mut TcpStream, index: usize) -> Option<Vec<u8>> {
    if index == 0 {
        let mut p = vec![0u8; 10];
        return r.read_exact(&mut p).ok().map(|()| p);
    }
    let mut len = [0u8; 2];
    r.read_exact(&mut len).ok()?;
    let mut unit = len.to_vec();
    unit.resize(2 + u16::from_be_bytes(len) as usize, 0);
    r.read_exact(&mut unit[2..]).ok()?;
    Some(unit)
}

fn mitm(target: SocketAddr, attack: Attack) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((client, _)) = l.accept() else { return };
        let server = TcpStream::connect(target).unwrap();
        let to_client = Arc::new(Mutex::new(client.try_clone().unwrap()));
        let accepted_record = Arc::new(Mutex::new(None::<Vec<u8>>));
        // Replica → primary: relayed (its "accepted" record is kept for the forger).
        {
            let mut from = server.try_clone().unwrap();
            let to = Arc::clone(&to_client);
            let kept = Arc::clone(&accepted_record);
            thread::spawn(move || {
                let mut i = 0;
                while let Some(u) = read_unit(&mut from, i) {
                    if i == 2 {
                        *kept.lock().unwrap() = Some(u.clone());
                    }
                    if to.lock().unwrap().write_all(&u).is_err() {
                        break;
                    }
                    i += 1;
                }
                let _ = to.lock().unwrap().shutdown(Shutdown::Both);
            });
        }
        // Primary → replica: the attack, on the first data record (unit 3).
        let mut from = client;
        let mut to = server;
        let mut i = 0;
        while let Some(mut u) = read_unit(&mut from, i) {
            let mut out = Vec::new();
            if i < 3 {
                out.push(u);
            } else if i == 3 {
                match attack {
                    Attack::Flip => {
                        u[2 + 5] ^= 0x10;
                        out.push(u);
                    }
                    Attack::Drop => {}
                    Attack::Replay => {
                        out.push(u.clone());
                        out.push(u);
                    }
                    Attack::InjectOp => {
                        // As a record of its own: a length, then the frame where a ciphertext goes.
                        let f = wire::op_frame(1, &Op::Create { path: "intruder".into(), mode: 0o4755, uid: 0, gid: 0 });
                        let mut forged = (f.len() as u16).to_be_bytes().to_vec();
                        forged.extend(f);
                        out.push(forged);
                        out.push(u);
                    }
                    Attack::ForgeAcks => {
                        let mut c = to_client.lock().unwrap();
                        if let Some(r) = accepted_record.lock().unwrap().clone() {
                            let _ = c.write_all(&r);
                        }
                        let _ = c.write_all(&wire::ack_frame(1));
                    }
                }
            } else if attack != Attack::ForgeAcks {
                out.push(u);
            }
            if out.iter().any(|u| to.write_all(u).is_err()) {
                break;
            }
            i += 1;
        }
        let _ = to.shutdown(Shutdown::Both);
    });
    addr
}

struct Outcome {
    /// The application's write and how long it took.
    result: Result<(), i32>,
    link: croft_mirror::LinkStatus,
    dirty: Vec<std::path::PathBuf>,
    replica: croft_mirror::ReplicaStatus,
    /// The replica's copy of the file, if any.
    copy: Option<Vec<u8>>,
    intruder: bool,
}

fn run(attack: Attack, fail_mode: FailMode) -> Outcome {
    let primary = TempDir::new("mitm-p");
    let secondary = TempDir::new("mitm-s");
    let r = replica(secondary.path());
    let proxy = mitm(r.local_addr(), attack);
    let mut p = peer(proxy, AckLevel::Durable);
    p.ack_timeout_ms = 800;
    let m = Mounted::mount(primary.path(), Some(p), fail_mode);
    let result = fs::write(primary.path().join("secret"), b"payload").map_err(|e| e.raw_os_error().unwrap_or(0));
    // Let the replica finish whatever it received.
    let deadline = Instant::now() + Duration::from_secs(3);
    while r.status().active_sessions > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let out = Outcome {
        result,
        link: m.mirror().status().link,
        dirty: m.dirty.paths(),
        replica: r.status(),
        copy: fs::read(secondary.path().join("secret")).ok(),
        intruder: secondary.path().join("intruder").exists(),
    };
    m.unmount();
    out
}

/// What must hold whatever the attack: nothing tampered applied, nothing unacknowledged
/// reported as acknowledged by the peer.
fn check(attack: Attack, o: &Outcome) {
    assert!(!o.intruder, "{attack:?}: the injected operation was applied");
    assert!(!o.link.connected, "{attack:?}: the session survived the attack: {:?}", o.link);
    // The replica has the whole change, or the primary knows it does not: the change is dirty
    // (alone) or the application got EIO (fenced).
    if o.copy.as_deref() != Some(b"payload") && o.result != Err(libc::EIO) {
        assert!(
            o.dirty.contains(&"secret".into()),
            "{attack:?}: the replica has {:?} but the change is not dirty: {:?}",
            o.copy.as_deref().map(String::from_utf8_lossy),
            o.link
        );
    }
    // Never a copy with other content than what was written (a flipped byte applied).
    assert!(matches!(o.copy.as_deref(), None | Some(b"") | Some(b"payload")), "{attack:?}: {:?}", o.copy);
    // Everything the peer acknowledged, the replica applied.
    assert!(o.link.acked_seq <= o.replica.applied_ops, "{attack:?}: acked {} > applied {}", o.link.acked_seq, o.replica.applied_ops);
}

#[test]
fn finding_2_mitm_flips_a_byte() {
    let o = run(Attack::Flip, FailMode::Alone);
    check(Attack::Flip, &o);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.replica.tampered, 1, "{:?}", o.replica);
    assert_eq!(o.replica.applied_ops, 0);
    assert_eq!(o.link.acked_seq, 0);
}

#[test]
fn finding_2_mitm_drops_a_record() {
    let o = run(Attack::Drop, FailMode::Alone);
    check(Attack::Drop, &o);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.replica.applied_ops, 0);
    assert_eq!(o.link.acked_seq, 0);
    assert!(o.link.lost_reason.as_deref().unwrap_or("").contains("no acknowledgement"), "{:?}", o.link);
}

#[test]
fn finding_2_mitm_replays_a_record() {
    let o = run(Attack::Replay, FailMode::Alone);
    check(Attack::Replay, &o);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.replica.tampered, 1, "{:?}", o.replica);
}

#[test]
fn finding_2_mitm_injects_an_operation() {
    let o = run(Attack::InjectOp, FailMode::Alone);
    check(Attack::InjectOp, &o);
    assert_eq!(o.replica.tampered, 1, "{:?}", o.replica);
    assert_eq!(o.replica.applied_ops, 0);
}

#[test]
fn finding_2_mitm_answers_acks_itself() {
    let o = run(Attack::ForgeAcks, FailMode::Alone);
    check(Attack::ForgeAcks, &o);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.link.tampered, 1, "{:?}", o.link);
    assert_eq!(o.link.acked_seq, 0);
    assert_eq!(o.replica.applied_ops, 0);
}

#[test]
fn finding_2_mitm_answering_acks_makes_a_fenced_write_fail() {
    let o = run(Attack::ForgeAcks, FailMode::Fence);
    check(Attack::ForgeAcks, &o);
    assert_eq!(o.result, Err(libc::EIO));
    // Applied here and never acknowledged: recorded as dirty, so the quarantine copies it aside.
    assert!(o.dirty.contains(&"secret".into()), "the fenced change is not dirty: {:?}", o.dirty);
    assert_eq!(o.link.tampered, 1, "{:?}", o.link);
}
