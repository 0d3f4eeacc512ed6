//! Issue 8, findings 3-7: what anyone who reaches the replication port (or holds the key) can do
//! to a real replica on loopback, and that it now does no harm.
mod common;
use common::*;
use croft_mirror::wire::{self, Frame, Sealed};
use croft_mirror::{AckLevel, Op, Replica, ReplicaConfig};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// One test at a time: they count the process's descriptors, threads and memory.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A primary's session made by hand: the handshake, then frames.
fn session(addr: SocketAddr) -> Sealed {
    let s = TcpStream::connect(addr).unwrap();
    wire::handshake_primary(s, KEY, AckLevel::Received, Instant::now() + Duration::from_secs(5)).unwrap()
}

fn send(s: &Sealed, seq: u64, op: &Op) {
    (&*s).write_all(&wire::op_frame(seq, op)).unwrap();
}

fn next_frame(s: &Sealed, timeout: Duration) -> Option<Frame> {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut r = s;
    wire::read_frame(&mut r).ok().flatten()
}

fn create(path: &str) -> Op {
    Op::Create { path: path.into(), mode: 0o644, uid: 0, gid: 0 }
}

#[test]
fn finding_3_garbage_connections_do_not_leak_fds() {
    let _serial = serial();
    let dir = TempDir::new("garbage");
    let r = replica(dir.path());
    let before = open_fds();
    for i in 0..500 {
        let mut c = TcpStream::connect(r.local_addr()).unwrap();
        let _ = c.write_all(&[i as u8; 64]);
        drop(c);
    }
    wait_for("every garbage connection to be closed", Duration::from_secs(8), || {
        let st = r.status();
        st.refused + st.rejected_busy == 500 && st.active_sessions == 0
    });
    let after = open_fds();
    assert!(after <= before + 2, "{before} descriptors before, {after} after 500 garbage connections");
    // And the replica still serves its primary.
    let s = session(r.local_addr());
    send(&s, 1, &create("ok"));
    assert_eq!(next_frame(&s, Duration::from_secs(5)), Some(Frame::Ack { seq: 1 }));
    assert!(dir.path().join("ok").exists());
}

#[test]
fn finding_3_only_the_peers_addresses_are_accepted() {
    let _serial = serial();
    let dir = TempDir::new("allow");
    let mut config = ReplicaConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap(), KEY.to_vec());
    config.allowed_peers = vec!["127.0.0.2".parse().unwrap()];
    let r = Replica::start(config).unwrap();
    // From 127.0.0.1: closed at once, before any handshake.
    let mut c = TcpStream::connect(r.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    wait_for("the rejection to be counted", Duration::from_secs(3), || r.status().rejected_peers == 1);
    assert_eq!(r.status().refused, 0);
    // From 127.0.0.2 (the configured peer): served.
    let s = socket2_connect_from("127.0.0.2", r.local_addr());
    let s = wire::handshake_primary(s, KEY, AckLevel::Received, Instant::now() + Duration::from_secs(5)).unwrap();
    send(&s, 1, &create("from-peer"));
    assert_eq!(next_frame(&s, Duration::from_secs(5)), Some(Frame::Ack { seq: 1 }));
}

/// A TCP connection from a chosen local address (bind before connect).
fn socket2_connect_from(local: &str, to: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let ip: std::net::Ipv4Addr = local.parse().unwrap();
    // SAFETY: plain socket calls on a fresh descriptor that the TcpStream then owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_addr.s_addr = u32::from(ip).to_be();
        assert_eq!(libc::bind(fd, &a as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32), 0);
        let SocketAddr::V4(to) = to else { panic!("v4 expected") };
        let mut b: libc::sockaddr_in = std::mem::zeroed();
        b.sin_family = libc::AF_INET as libc::sa_family_t;
        b.sin_addr.s_addr = u32::from(*to.ip()).to_be();
        b.sin_port = to.port().to_be();
        assert_eq!(libc::connect(fd, &b as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32), 0);
        TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn finding_4_a_failing_op_with_a_long_non_ascii_path_then_a_new_session_works() {
    let _serial = serial();
    let dir = TempDir::new("utf8");
    let r = replica(dir.path());
    // Its description is cut at 300 characters: byte 300 falls inside a 2-byte character.
    let long = format!("a{}/{}/{}", "é".repeat(100), "é".repeat(100), "é".repeat(100));
    let s = session(r.local_addr());
    send(&s, 1, &Op::Truncate { path: long.into(), size: 0 });
    match next_frame(&s, Duration::from_secs(5)) {
        Some(Frame::Nack { seq: 1, errno, message }) => {
            assert_eq!(errno, libc::ENOENT, "{message}");
            assert!(message.contains('…'), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    wait_for("the dead session in status", Duration::from_secs(3), || {
        let st = r.status();
        !st.connected && st.last_error.as_deref().is_some_and(|e| e.contains("failed"))
    });
    // A new session applies (the old code panicked and poisoned the apply lock for good).
    let s2 = session(r.local_addr());
    send(&s2, 1, &create("after"));
    assert_eq!(next_frame(&s2, Duration::from_secs(5)), Some(Frame::Ack { seq: 1 }));
    assert!(dir.path().join("after").exists());
    assert!(r.status().connected);
}

#[test]
fn finding_5_slow_handshakers_do_not_hold_threads() {
    let _serial = serial();
    let dir = TempDir::new("slow");
    let r = replica(dir.path());
    let base = threads();
    let mut conns = Vec::new();
    for _ in 0..400 {
        let mut c = TcpStream::connect(r.local_addr()).unwrap();
        let _ = c.write_all(b"C"); // the first byte of the magic, then nothing
        conns.push(c);
    }
    thread::sleep(Duration::from_millis(300));
    let st = r.status();
    let peak = threads();
    assert!(st.active_sessions <= croft_mirror::replica::SESSIONS_MAX as u64, "{st:?}");
    assert!(peak <= base + croft_mirror::replica::SESSIONS_MAX + 2, "{base} threads before, {peak} with 400 slow clients");
    assert!(st.rejected_busy >= 400 - croft_mirror::replica::SESSIONS_MAX as u64, "{st:?}");
    // The total deadline ends the ones being served, even though they keep their connection.
    wait_for("the handshake deadline", Duration::from_secs(7), || r.status().active_sessions == 0);
    let s = session(r.local_addr());
    send(&s, 1, &create("after-slow"));
    assert_eq!(next_frame(&s, Duration::from_secs(5)), Some(Frame::Ack { seq: 1 }));
    drop(conns);
}

#[test]
fn finding_6_a_silent_session_does_not_make_another_sessions_ops_wait() {
    let _serial = serial();
    let dir = TempDir::new("silent");
    let r = replica(dir.path());
    let a = session(r.local_addr());
    send(&a, 1, &create("a"));
    assert_eq!(next_frame(&a, Duration::from_secs(5)), Some(Frame::Ack { seq: 1 }));
    // Session a now holds the replica and says nothing more (its primary hung, or a key
    // holder keeps it open).
    let b = session(r.local_addr());
    let t0 = Instant::now();
    send(&b, 1, &create("b"));
    assert_eq!(next_frame(&b, Duration::from_secs(5)), Some(Frame::Ack { seq: 1 }));
    assert!(t0.elapsed() < Duration::from_secs(1), "session b waited {:?}", t0.elapsed());
    assert!(dir.path().join("b").exists());
    assert_eq!(r.status().superseded, 1);
    // The superseded session was shut down.
    assert_eq!(next_frame(&a, Duration::from_secs(2)), None);
}

fn rss_bytes() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn finding_7_sixteen_60_mib_writes_are_refused_with_bounded_memory() {
    let _serial = serial();
    let dir = TempDir::new("big");
    fs::write(dir.path().join("f"), b"").unwrap();
    let r = replica(dir.path());
    let before = rss_bytes();
    let s = session(r.local_addr());
    // 16 write frames of 60 MiB each, streamed: the replica refuses the first from its header.
    let chunk = vec![7u8; 1 << 20];
    let mut refused = false;
    'send: for seq in 1..=16u64 {
        let op = Op::Write { path: "f".into(), offset: (seq - 1) * (60 << 20), data: Vec::new() };
        let mut frame = wire::op_frame(seq, &op);
        // Patch the frame's and the data's lengths to announce 60 MiB of data.
        let data_len = 60u32 << 20;
        let total = (frame.len() - 4) as u32 + data_len;
        frame[..4].copy_from_slice(&total.to_le_bytes());
        let n = frame.len();
        frame[n - 4..].copy_from_slice(&data_len.to_le_bytes());
        if (&s).write_all(&frame).is_err() {
            refused = true;
            break;
        }
        for _ in 0..60 {
            if (&s).write_all(&chunk).is_err() {
                refused = true;
                break 'send;
            }
        }
    }
    assert!(refused, "the replica read 16 × 60 MiB");
    wait_for("the session to end", Duration::from_secs(5), || r.status().active_sessions == 0);
    let st = r.status();
    assert!(st.last_error.as_deref().unwrap_or("").contains("write frame"), "{st:?}");
    assert_eq!(st.applied_ops, 0);
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "the process grew by {} MiB", grown >> 20);
    assert_eq!(fs::metadata(dir.path().join("f")).unwrap().len(), 0);
}

#[test]
fn finding_7_a_burst_of_writes_is_applied_and_acked_by_bounded_batches() {
    let _serial = serial();
    let dir = TempDir::new("burst");
    fs::write(dir.path().join("f"), b"").unwrap();
    let r = replica(dir.path());
    let s = session(r.local_addr());
    let n = 96u64;
    let reader = {
        let s = s.clone();
        thread::spawn(move || {
            let mut acks = Vec::new();
            while let Some(Frame::Ack { seq }) = next_frame(&s, Duration::from_secs(20)) {
                acks.push(seq);
                if seq == n {
                    break;
                }
            }
            acks
        })
    };
    let data = vec![3u8; 1 << 20];
    // All sent without waiting: the replica must not buffer them all before acking.
    for seq in 1..=n {
        send(&s, seq, &Op::Write { path: "f".into(), offset: (seq - 1) << 20, data: data.clone() });
    }
    let acks = reader.join().unwrap();
    assert_eq!(acks.last(), Some(&n), "{acks:?}");
    let per_batch = (croft_mirror::replica::BATCH_BYTES_MAX >> 20) + 1;
    assert!(acks.windows(2).all(|w| w[1] - w[0] <= per_batch), "a batch held more than 16 MiB: {acks:?}");
    assert_eq!(fs::metadata(dir.path().join("f")).unwrap().len(), n << 20);
}
