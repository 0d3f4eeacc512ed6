//! Tests of the frames and of the sealed session.

use super::handshake::noise;
use super::*;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

/// Two transport states of one session, made in memory.
fn transports(key: &[u8]) -> (snow::StatelessTransportState, snow::StatelessTransportState) {
    let mut i = noise(key, true, VERSION).unwrap();
    let mut r = noise(key, false, VERSION).unwrap();
    let (mut m, mut p) = ([0u8; 256], [0u8; 256]);
    let n = i.write_message(b"x", &mut m).unwrap();
    r.read_message(&m[..n], &mut p).unwrap();
    let n = r.write_message(b"y", &mut m).unwrap();
    i.read_message(&m[..n], &mut p).unwrap();
    (i.into_stateless_transport_mode().unwrap(), r.into_stateless_transport_mode().unwrap())
}

/// The records a sealed writer produces for `chunks` (one `write_all` each), as raw bytes.
fn seal(t: snow::StatelessTransportState, chunks: &[&[u8]]) -> Vec<u8> {
    let (a, mut b) = tcp_pair();
    let w = Sealed::new(a, t);
    for c in chunks {
        (&w).write_all(c).unwrap();
    }
    w.shutdown(Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    b.read_to_end(&mut raw).unwrap();
    raw
}

/// What a sealed reader makes of `raw`: the plaintext it delivered and how it ended.
fn open(t: snow::StatelessTransportState, raw: &[u8]) -> (Vec<u8>, io::Result<()>, bool) {
    let (mut a, b) = tcp_pair();
    let raw = raw.to_vec();
    let feeder = thread::spawn(move || {
        let _ = a.write_all(&raw);
        let _ = a.shutdown(Shutdown::Write);
        a
    });
    let r = Sealed::new(b, t);
    let mut out = Vec::new();
    let end = (&r).read_to_end(&mut out).map(|_| ());
    drop(feeder.join().unwrap());
    (out, end, r.tampered())
}

/// Records of a raw sealed stream (length prefix included).
fn records(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let len = u16::from_be_bytes([raw[at], raw[at + 1]]) as usize;
        v.push(raw[at..at + 2 + len].to_vec());
        at += 2 + len;
    }
    v
}

#[test]
fn frames_round_trip() {
    let op = Op::Write { path: "x".into(), offset: 3, data: vec![9; 100] };
    let mut bytes = op_frame(42, &op);
    bytes.extend(ack_frame(41));
    bytes.extend(nack_frame(43, 2, "no such file"));
    let mut r = &bytes[..];
    assert_eq!(read_frame(&mut r).unwrap(), Some(Frame::Op { seq: 42, op }));
    assert_eq!(read_frame(&mut r).unwrap(), Some(Frame::Ack { seq: 41 }));
    assert_eq!(
        read_frame(&mut r).unwrap(),
        Some(Frame::Nack { seq: 43, errno: 2, message: "no such file".into() })
    );
    assert_eq!(read_frame(&mut r).unwrap(), None);
}

#[test]
fn a_write_frame_carries_the_write_tag_checked_before_the_body() {
    let f = op_frame(1, &Op::Write { path: "x".into(), offset: 0, data: vec![] });
    assert_eq!(f[4 + 9], OP_TAG_WRITE);
    let f = op_frame(1, &Op::Truncate { path: "x".into(), size: 0 });
    assert_ne!(f[4 + 9], OP_TAG_WRITE);
}

#[test]
fn finding_7_an_oversized_write_frame_is_refused_before_its_body_is_read() {
    // 60 MiB announced, 10 bytes sent: refused from the header alone (no 60 MiB buffer,
    // no wait for the body).
    let mut f = ((60u32 << 20) + 9 + 1).to_le_bytes().to_vec();
    f.push(KIND_OP);
    f.extend(7u64.to_le_bytes());
    f.push(OP_TAG_WRITE);
    let e = read_frame(&mut &f[..]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("write frame"), "{e}");
}

#[test]
fn a_zero_checksum_zone_is_refused() {
    let f = query_frame(1, &Query::Checksums { path: "a".into(), zone_bytes: 0 });
    assert!(read_frame(&mut &f[..]).is_err());
    let f = query_frame(1, &Query::Checksums { path: "a".into(), zone_bytes: 4096 });
    assert!(read_frame(&mut &f[..]).unwrap().is_some());
}

fn run(key_p: &'static [u8], key_r: &'static [u8]) -> (Result<Sealed, HandshakeError>, Result<AckLevel, HandshakeError>) {
    let (a, b) = tcp_pair();
    let deadline = Instant::now() + Duration::from_secs(5);
    let t = thread::spawn(move || {
        // A refusing replica closes (its stream is dropped with the error).
        handshake_replica(b, key_r, deadline).map(|(s, level)| {
            let mut x = [0u8; 5];
            (&s).read_exact(&mut x).unwrap();
            assert_eq!(&x, b"hello");
            level
        })
    });
    let p = handshake_primary(a, key_p, AckLevel::Durable, deadline);
    if let Ok(s) = &p {
        (&*s).write_all(b"hello").unwrap();
    }
    (p, t.join().unwrap())
}

#[test]
fn same_key_is_accepted_both_ways_and_the_stream_is_sealed() {
    let (p, r) = run(b"k1", b"k1");
    assert!(p.is_ok(), "{:?}", p.err());
    assert_eq!(r.unwrap(), AckLevel::Durable);
}

#[test]
fn a_different_key_is_refused_by_both_sides() {
    let (p, r) = run(b"k1", b"k2");
    assert!(matches!(p, Err(HandshakeError::Refused(_))), "{:?}", p.err());
    assert!(matches!(&r, Err(HandshakeError::Refused(m)) if m.contains("does not hold")), "{r:?}");
}

#[test]
fn a_version_1_primary_is_told_the_version() {
    let (mut a, b) = tcp_pair();
    let t = thread::spawn(move || handshake_replica(b, b"k", Instant::now() + Duration::from_secs(5)).map(|_| ()));
    let mut hello = MAGIC.to_vec();
    hello.extend(1u16.to_le_bytes());
    hello.extend([0u8; 32]);
    a.write_all(&hello).unwrap();
    let mut back = [0u8; 10];
    a.read_exact(&mut back).unwrap();
    assert_eq!(u16::from_le_bytes([back[8], back[9]]), VERSION);
    let r = t.join().unwrap();
    assert!(matches!(&r, Err(HandshakeError::Version(m)) if m.contains("protocol version 1")), "{r:?}");
}

#[test]
fn finding_5_the_handshake_deadline_is_total_not_per_read() {
    // One byte every 300 ms never lets a 1 s read timeout fire; the 1.5 s total deadline does.
    let (mut a, b) = tcp_pair();
    let started = Instant::now();
    let t = thread::spawn(move || handshake_replica(b, b"k", Instant::now() + Duration::from_millis(1500)).map(|_| ()));
    let mut hello = MAGIC.to_vec();
    hello.extend(VERSION.to_le_bytes());
    hello.extend(vec![0u8; 64]);
    for byte in hello {
        if a.write_all(&[byte]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(300));
        if t.is_finished() {
            break;
        }
    }
    let r = t.join().unwrap();
    assert!(matches!(&r, Err(HandshakeError::Io(e)) if e.kind() == io::ErrorKind::TimedOut), "{r:?}");
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
}

#[test]
fn sealed_streams_carry_large_writes_both_ways_at_once() {
    let (i, r) = transports(b"key");
    let (a, b) = tcp_pair();
    let (p, q) = (Sealed::new(a, i), Sealed::new(b, r));
    let data: Vec<u8> = (0..5_000_000u32).map(|x| (x * 7 + x / 3) as u8).collect();
    let d2 = data.clone();
    let q2 = q.clone();
    let t = thread::spawn(move || {
        let mut got = vec![0u8; d2.len()];
        (&q2).read_exact(&mut got).unwrap();
        assert!(got == d2);
    });
    let d3 = data.clone();
    let q3 = q.clone();
    let t2 = thread::spawn(move || (&q3).write_all(&d3).unwrap());
    (&p).write_all(&data).unwrap();
    let mut back = vec![0u8; data.len()];
    (&p).read_exact(&mut back).unwrap();
    assert!(back == data);
    t.join().unwrap();
    t2.join().unwrap();
}

#[test]
fn finding_2_a_flipped_dropped_replayed_reordered_or_forged_record_fails() {
    let chunks: [&[u8]; 4] = [b"one", b"two", b"three", b"four"];
    // Each case: the bytes sent, and the plaintext that may come before the failure.
    let cases: Vec<(&str, Box<dyn Fn(Vec<Vec<u8>>) -> Vec<u8>>, &[u8])> = vec![
        ("flip", Box::new(|mut r: Vec<Vec<u8>>| { r[1][5] ^= 1; r.concat() }), b"one"),
        ("drop", Box::new(|mut r: Vec<Vec<u8>>| { r.remove(1); r.concat() }), b"one"),
        ("replay", Box::new(|r: Vec<Vec<u8>>| { let mut v = r.clone(); v.insert(2, r[1].clone()); v.concat() }), b"onetwo"),
        ("reorder", Box::new(|mut r: Vec<Vec<u8>>| { r.swap(1, 2); r.concat() }), b"one"),
        ("forge", Box::new(|mut r: Vec<Vec<u8>>| { let n = r[2].len(); r[2] = r[2][..2].to_vec(); r[2].extend(vec![0x55; n - 2]); r.concat() }), b"onetwo"),
        ("length", Box::new(|mut r: Vec<Vec<u8>>| { r[1][1] = r[1][1].wrapping_sub(1); r.concat() }), b"one"),
    ];
    let key = b"key";
    for (name, mutate, before) in cases {
        let (i, r) = transports(key);
        let raw = seal(i, &chunks);
        let recs = records(&raw);
        assert_eq!(recs.len(), 4);
        let (out, end, tampered) = open(r, &mutate(recs));
        assert!(end.is_err(), "{name}: the stream ended cleanly");
        assert!(tampered, "{name}: not counted as tampered");
        assert!(is_tampered(&end.unwrap_err()), "{name}");
        assert_eq!(out, before, "{name}: delivered {:?}", String::from_utf8_lossy(&out));
    }
}

#[test]
fn a_record_from_another_session_fails() {
    let (i1, _) = transports(b"key");
    let (_, r2) = transports(b"key");
    let raw = seal(i1, &[b"hello"]);
    let (out, end, tampered) = open(r2, &raw);
    assert!(out.is_empty() && end.is_err() && tampered);
}

/// A small deterministic generator (xorshift) for the randomized tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn sample_frames() -> Vec<Vec<u8>> {
    let long = "é".repeat(400);
    vec![
        op_frame(1, &Op::Write { path: "a/b".into(), offset: 9, data: vec![1; 300] }),
        op_frame(2, &Op::Truncate { path: long.clone().into(), size: 5 }),
        op_frame(3, &Op::Rename { from: "x".into(), to: "y/z".into(), flags: 0 }),
        op_frame(4, &Op::SetXattr { path: "x".into(), name: b"user.a".to_vec(), value: vec![0; 40], flags: 0 }),
        ack_frame(9),
        nack_frame(3, 5, &long),
        query_frame(7, &Query::ListDir { path: "d".into() }),
        query_frame(8, &Query::Checksums { path: "f".into(), zone_bytes: 65536 }),
        query_frame(9, &Query::DirtyEntries),
        reply_frame(7, &[1, 2, 3]),
    ]
}

#[test]
fn finding_4_randomized_frames_never_panic_the_decoder() {
    let frames = sample_frames();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let (mut ok, mut err) = (0u64, 0u64);
    for round in 0..300_000 {
        let mut f = frames[rng.below(frames.len())].clone();
        match round % 5 {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(f.len());
                    f[at] ^= 1 << rng.below(8);
                }
            }
            1 => f.truncate(rng.below(f.len())),
            2 => {
                let at = 4 + rng.below(f.len() - 4);
                f[at] = rng.next() as u8;
            }
            3 => {
                let n = rng.below(64);
                f = (0..n).map(|_| rng.next() as u8).collect();
            }
            _ => {
                // A plausible length and kind with random contents.
                let n = 9 + rng.below(40);
                f = (n as u32).to_le_bytes().to_vec();
                f.push(1 + rng.below(5) as u8);
                f.extend((0..n - 1).map(|_| rng.next() as u8));
            }
        }
        let mut r = &f[..];
        match read_frame(&mut r) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert!(ok > 1000 && err > 1000, "ok {ok} err {err}");
}

#[test]
fn finding_2_randomized_mutations_of_sealed_records_never_deliver_them() {
    let frames = sample_frames();
    let mut rng = Rng(0x2545f4914f6cdd1d);
    for round in 0..150 {
        let (i, r) = transports(b"key");
        let sent: Vec<u8> = frames.concat();
        let chunks: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        let raw = seal(i, &chunks);
        let mut bad = raw.clone();
        match round % 4 {
            0 => {
                let at = rng.below(bad.len());
                bad[at] ^= 1 << rng.below(8);
            }
            1 => bad.truncate(rng.below(bad.len())),
            2 => {
                let at = rng.below(bad.len());
                bad.insert(at, rng.next() as u8);
            }
            _ => {
                let at = rng.below(bad.len());
                let n = rng.below(bad.len() - at);
                bad.drain(at..at + n);
            }
        }
        let (out, end, _) = open(r, &bad);
        // Whatever was delivered is a prefix of what was sent, and the damage is an error.
        assert!(sent.starts_with(&out), "round {round}: delivered bytes that were never sent");
        if bad != raw {
            assert!(end.is_err() || out.len() < sent.len(), "round {round}: the damage went unnoticed");
        }
        // The frame decoder on what was delivered: frames or errors, no panic.
        let mut rd = &out[..];
        while let Ok(Some(_)) = read_frame(&mut rd) {}
    }
}
