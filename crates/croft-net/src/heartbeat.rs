//! The heartbeat pump: the part of membership that must keep time when the JavaScript thread cannot.
//!
//! A peer is declared down when no heartbeat of it arrived for `timeout_ms`. Two JavaScript pauses
//! would turn into false failovers if heartbeats were sent and stamped on the JS thread: a garbage
//! collection or a starved event loop on the *sender* delays its heartbeats; on the *receiver*, the
//! timer that checks the timeout runs before the datagrams queued during the pause are read, so
//! peers look silent that were not. The pump takes both off the JS thread:
//! - **sending**: JS hands over frames already encoded and signed for the next few intervals (each
//!   with its own sequence number, so replay protection is unchanged); a native thread sends one set
//!   per interval, on time, whatever the JS thread does. When JS stops refreshing (a daemon hung for
//!   longer than the frames cover), the pump runs dry and stops sending: peers then see the node
//!   down, as they should.
//! - **receiving**: one thread per socket stamps each datagram with its arrival time and queues it
//!   (bounded); JS reads the queue (`drain`) before every timeout check, so a late check still sees
//!   what arrived in time. Datagrams are not decoded here: authentication, replay protection and
//!   every rule stay in the membership core (src/membership), which gets the arrival times.
//!   The exception is the quiet path ([`crate::quiet`]): a datagram that repeats, with a larger
//!   sequence number and a valid MAC, the heartbeat the core last accepted from that source is
//!   noted instead of queued, so an idle cluster does not wake the JS thread per heartbeat.
//! - **watching** ([`Pump::watch`]): with the quiet path, the sending thread also keeps the
//!   deadlines of the sources it absorbs for, and wakes JS when one's silence reaches the timeout,
//!   so JS does not wake to find that a quiet peer is still there. JS keeps its own timer for the
//!   sources the pump does not watch.
//!
//! Plain std sockets and threads.

use crate::quiet::{reseq, Heard, QuietFilter};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Larger than any heartbeat (src/membership/codec.ts refuses more than 32 KiB): a longer datagram
/// arrives truncated at one byte more than the limit, and the codec drops it as malformed.
pub const MAX_DATAGRAM_BYTES: usize = 32 * 1024 + 1;

/// Received datagrams waiting for JS, at most (a flood beyond it drops the oldest, counted).
pub const INBOX_MAX: usize = 4096;

/// How long a receiving thread blocks before it looks at the stop flag: the longest a stop waits.
/// (Shutting the socket down would wake it at once, but std's recv_from then asserts on the empty
/// source address it gets back.)
const RECV_POLL: Duration = Duration::from_millis(100);

/// One LAN: where this node's socket binds, and the peers' heartbeat addresses there.
#[derive(Debug, Clone)]
pub struct LanConfig {
    pub bind: SocketAddr,
    pub peers: Vec<SocketAddr>,
}

#[derive(Debug)]
pub struct Datagram {
    pub lan: usize,
    pub bytes: Vec<u8>,
    pub source: IpAddr,
    pub arrived: Instant,
}

#[derive(Debug, Default, Clone)]
pub struct PumpStats {
    /// Datagrams sent per LAN (one per peer per frame).
    pub sent: Vec<u64>,
    pub send_errors: u64,
    /// Datagrams received per LAN (before any check).
    pub received: Vec<u64>,
    /// Received datagrams dropped because JS did not read the inbox in time.
    pub inbox_dropped: u64,
    /// Intervals at which no frame was left to send (JS did not refresh in time).
    pub underruns: u64,
}

#[derive(Debug)]
pub enum PumpError {
    Bind { addr: SocketAddr, source: io::Error },
    Thread(io::Error),
    Invalid(String),
}

impl std::fmt::Display for PumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PumpError::Bind { addr, source } => write!(f, "cannot bind heartbeat socket {addr}: {source}"),
            PumpError::Thread(e) => write!(f, "cannot start a heartbeat thread: {e}"),
            PumpError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for PumpError {}

type Wake = Box<dyn Fn() + Send + Sync>;

/// Per LAN: `[frame]` for every peer, or `[frame for peer 0, frame for peer 1, ...]`.
pub type FrameSet = Vec<Vec<Vec<u8>>>;

struct Shared {
    sockets: Vec<UdpSocket>,
    peers: Vec<Vec<SocketAddr>>,
    interval: Duration,
    /// Frames to send, one set per interval; a set holds, per LAN, one frame for every peer or
    /// one frame per peer (in the order of `peers`).
    schedule: Mutex<VecDeque<FrameSet>>,
    inbox: Mutex<VecDeque<Datagram>>,
    /// With the cluster key: the quiet path (crate::quiet).
    quiet: Option<Mutex<QuietFilter>>,
    /// The cluster key (with the quiet path): the pump can then sign a frame set for each interval
    /// from one set JS encoded ([`Pump::schedule_from`]).
    key: Option<Vec<u8>>,
    wake: Mutex<Option<Wake>>,
    /// With the quiet path: wake JS when a watched source is silent this long ([`Pump::watch`]).
    watch: Mutex<Option<Duration>>,
    stop: AtomicBool,
    /// Wakes the sender early at stop.
    stop_lock: Mutex<()>,
    stop_cond: Condvar,
    sent: Vec<AtomicU64>,
    received: Vec<AtomicU64>,
    send_errors: AtomicU64,
    inbox_dropped: AtomicU64,
    underruns: AtomicU64,
}

/// A poisoned lock only means another thread panicked while holding it; the data (queues of
/// bytes) is still consistent enough to go on with.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// A watched deadline appeared (a source learned, or heard again after its silence was
    /// reported): the sending thread computes its wait again.
    fn rearm_watch(&self) {
        let _g = lock(&self.stop_lock);
        self.stop_cond.notify_all();
    }

    fn send_set(&self, set: &FrameSet) {
        for (lan, frames) in set.iter().enumerate() {
            let (Some(socket), Some(peers)) = (self.sockets.get(lan), self.peers.get(lan)) else { continue };
            for (i, peer) in peers.iter().enumerate() {
                let frame = if frames.len() == 1 { &frames[0] } else { match frames.get(i) { Some(f) => f, None => continue } };
                if frame.is_empty() {
                    continue;
                }
                match socket.send_to(frame, peer) {
                    Ok(_) => {
                        self.sent[lan].fetch_add(1, Ordering::Relaxed);
                    }
                    // An unreachable peer is normal during failures; the timeout logic handles it.
                    Err(_) => {
                        self.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

pub struct Pump {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pump {
    /// Binds one socket per LAN and starts the sending thread and one receiving thread per socket.
    /// With the cluster key (`quiet_key`), heartbeats that repeat what [`Pump::learn`] was given
    /// are absorbed (crate::quiet); without, every datagram goes to the inbox.
    pub fn start(lans: Vec<LanConfig>, interval: Duration, quiet_key: Option<Vec<u8>>) -> Result<Pump, PumpError> {
        if lans.is_empty() {
            return Err(PumpError::Invalid("at least one LAN is needed".into()));
        }
        if interval < Duration::from_millis(1) || interval > Duration::from_secs(3600) {
            return Err(PumpError::Invalid(format!("heartbeat interval {interval:?} out of range 1 ms..1 h")));
        }
        let mut sockets = Vec::with_capacity(lans.len());
        for l in &lans {
            // std's bind sets no SO_REUSEADDR: a second daemon on the same address fails here.
            let s = UdpSocket::bind(l.bind).map_err(|source| PumpError::Bind { addr: l.bind, source })?;
            s.set_read_timeout(Some(RECV_POLL)).map_err(PumpError::Thread)?;
            sockets.push(s);
        }
        let n = lans.len();
        let shared = Arc::new(Shared {
            sockets,
            peers: lans.into_iter().map(|l| l.peers).collect(),
            interval,
            schedule: Mutex::new(VecDeque::new()),
            inbox: Mutex::new(VecDeque::new()),
            key: quiet_key.clone(),
            quiet: quiet_key.map(|k| Mutex::new(QuietFilter::new(k))),
            wake: Mutex::new(None),
            watch: Mutex::new(None),
            stop: AtomicBool::new(false),
            stop_lock: Mutex::new(()),
            stop_cond: Condvar::new(),
            sent: (0..n).map(|_| AtomicU64::new(0)).collect(),
            received: (0..n).map(|_| AtomicU64::new(0)).collect(),
            send_errors: AtomicU64::new(0),
            inbox_dropped: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
        });
        let mut pump = Pump { shared, threads: Vec::new() };
        let sh = Arc::clone(&pump.shared);
        let sender = std::thread::Builder::new().name("croft-hb-send".into()).spawn(move || send_loop(&sh));
        match sender {
            Ok(t) => pump.threads.push(t),
            Err(e) => {
                pump.stop();
                return Err(PumpError::Thread(e));
            }
        }
        for lan in 0..n {
            let sh = Arc::clone(&pump.shared);
            match std::thread::Builder::new().name(format!("croft-hb-recv{lan}")).spawn(move || recv_loop(&sh, lan)) {
                Ok(t) => pump.threads.push(t),
                Err(e) => {
                    pump.stop();
                    return Err(PumpError::Thread(e));
                }
            }
        }
        Ok(pump)
    }

    /// Called (from a receiving thread) when the inbox goes from empty to not empty, and (from the
    /// sending thread) when a watched source's silence reaches the watch timeout.
    pub fn on_wake(&self, wake: Option<Wake>) {
        *lock(&self.shared.wake) = wake;
    }

    /// Replaces the frames still to send: `sets[k]` goes out at the k-th next interval.
    pub fn schedule(&self, sets: Vec<FrameSet>) {
        *lock(&self.shared.schedule) = sets.into();
    }

    /// Like [`Pump::schedule`] for `count` intervals, from one set JS encoded with sequence number
    /// `seq`: the set of interval k is that set with sequence number `first + k`, signed here
    /// (JavaScript encodes and signs once per refresh instead of once per interval). Needs the
    /// cluster key (the quiet path); false (nothing scheduled) without it, or when a frame is not a
    /// heartbeat carrying `"seq":<seq>` once: JS then schedules encoded sets.
    pub fn schedule_from(&self, set: &FrameSet, seq: u64, first: u64, count: usize) -> bool {
        let Some(key) = self.shared.key.as_deref() else { return false };
        let mut sets: VecDeque<FrameSet> = VecDeque::with_capacity(count);
        for k in 0..count as u64 {
            let mut out: FrameSet = Vec::with_capacity(set.len());
            for frames in set {
                let mut lan = Vec::with_capacity(frames.len());
                for f in frames {
                    if f.is_empty() {
                        lan.push(Vec::new());
                        continue;
                    }
                    let Some(g) = first.checked_add(k).and_then(|s| reseq(f, seq, s, key)) else { return false };
                    lan.push(g);
                }
                out.push(lan);
            }
            sets.push_back(out);
        }
        *lock(&self.shared.schedule) = sets;
        true
    }

    /// Sends one set now, on the caller's thread (a change that should not wait for the interval).
    pub fn send_now(&self, frames: &FrameSet) {
        if !self.shared.stop.load(Ordering::Relaxed) {
            self.shared.send_set(frames);
        }
    }

    /// Every datagram received since the last call, oldest first.
    pub fn drain(&self) -> Vec<Datagram> {
        lock(&self.shared.inbox).drain(..).collect()
    }

    /// The core accepted `frame` (sequence number `seq`, arrived at `arrived`) from `source` on
    /// `lan`: its repeats are quiet from now on, and the source is watched. False when nothing was
    /// learned (no quiet path, or see QuietFilter::learn): JS then keeps the deadline itself.
    pub fn learn(&self, lan: usize, source: IpAddr, frame: &[u8], seq: u64, arrived: Instant) -> bool {
        let learned = self.shared.quiet.as_ref().is_some_and(|q| lock(q).learn(lan, source, frame, seq, arrived));
        if learned {
            self.shared.rearm_watch();
        }
        learned
    }

    /// Wakes JS (the `on_wake` callback) when a source learned on a LAN has been silent for
    /// `timeout` since its last authenticated arrival, once per silence; None: no watching. The
    /// wake comes 1 ms after the deadline, so that JS, checking at its own clock, finds it passed.
    /// False without the quiet path (nothing is watched).
    pub fn watch(&self, timeout: Option<Duration>) -> bool {
        if self.shared.quiet.is_none() {
            return false;
        }
        *lock(&self.shared.watch) = timeout;
        self.shared.rearm_watch();
        true
    }

    /// Every datagram of `source` goes to the inbox again (the core declared its node down).
    pub fn forget(&self, source: IpAddr) {
        if let Some(q) = &self.shared.quiet {
            lock(q).forget(source);
        }
    }

    /// The quiet heartbeats since the last call: per (LAN, source), the last one's seq and arrival.
    pub fn heard(&self) -> Vec<Heard> {
        self.shared.quiet.as_ref().map(|q| lock(q).take_heard()).unwrap_or_default()
    }

    pub fn stats(&self) -> PumpStats {
        let sh = &self.shared;
        PumpStats {
            sent: sh.sent.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            send_errors: sh.send_errors.load(Ordering::Relaxed),
            received: sh.received.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            inbox_dropped: sh.inbox_dropped.load(Ordering::Relaxed),
            underruns: sh.underruns.load(Ordering::Relaxed),
        }
    }

    /// Stops the threads and closes the sockets; idempotent.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _g = lock(&self.shared.stop_lock);
            self.shared.stop_cond.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        *lock(&self.shared.wake) = None;
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop();
    }
}

fn send_loop(sh: &Shared) {
    // Deadlines on a fixed grid from the start, so a late wake-up does not shift later ones.
    let mut next = Instant::now();
    loop {
        let set = lock(&sh.schedule).pop_front();
        match set {
            Some(frames) => sh.send_set(&frames),
            None => {
                sh.underruns.fetch_add(1, Ordering::Relaxed);
            }
        }
        next += sh.interval;
        let now = Instant::now();
        if next < now {
            // Far behind (the machine was suspended, or the thread starved): restart the grid.
            next = now + sh.interval;
        }
        let mut g = lock(&sh.stop_lock);
        loop {
            if sh.stop.load(Ordering::SeqCst) {
                return;
            }
            let now = Instant::now();
            let silence = next_silence(sh);
            if silence.is_some_and(|due| now >= due) {
                drop(g);
                report_silence(sh, now);
                g = lock(&sh.stop_lock);
                continue;
            }
            if now >= next {
                break;
            }
            let until = silence.map_or(next, |due| due.min(next));
            g = match sh.stop_cond.wait_timeout(g, until - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

/// Past the watch timeout of a watched source by this much, JS is woken.
const WATCH_MARGIN: Duration = Duration::from_millis(1);

/// When the next watched source's silence is due to be reported, if any.
fn next_silence(sh: &Shared) -> Option<Instant> {
    let timeout = (*lock(&sh.watch))?;
    let q = sh.quiet.as_ref()?;
    lock(q).next_silence(timeout + WATCH_MARGIN)
}

/// Marks the sources silent at `now` and wakes JS if there were any.
fn report_silence(sh: &Shared, now: Instant) {
    let Some(timeout) = *lock(&sh.watch) else { return };
    let Some(q) = sh.quiet.as_ref() else { return };
    if lock(q).mark_silent(now, timeout + WATCH_MARGIN) > 0 {
        if let Some(w) = lock(&sh.wake).as_ref() {
            w();
        }
    }
}

fn recv_loop(sh: &Shared, lan: usize) {
    let socket = &sh.sockets[lan];
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
    while !sh.stop.load(Ordering::SeqCst) {
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                if sh.stop.load(Ordering::SeqCst) {
                    return;
                }
                let arrived = Instant::now();
                sh.received[lan].fetch_add(1, Ordering::Relaxed);
                let source = canonical(from.ip());
                let quiet = sh.quiet.as_ref().map(|q| {
                    let mut q = lock(q);
                    let absorbed = q.absorb(lan, source, &buf[..len], arrived);
                    (absorbed, absorbed && q.take_revived())
                });
                if let Some((true, revived)) = quiet {
                    if revived {
                        sh.rearm_watch();
                    }
                    continue;
                }
                let was_empty = {
                    let mut inbox = lock(&sh.inbox);
                    if inbox.len() >= INBOX_MAX {
                        inbox.pop_front();
                        sh.inbox_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    let was_empty = inbox.is_empty();
                    inbox.push_back(Datagram { lan, bytes: buf[..len].to_vec(), source, arrived });
                    was_empty
                };
                if was_empty {
                    if let Some(w) = lock(&sh.wake).as_ref() {
                        w();
                    }
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            // ICMP errors of earlier sends surface here on some kernels (ECONNREFUSED): not ours to act on.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(_) => {
                if sh.stop.load(Ordering::SeqCst) {
                    return;
                }
                // An unexpected socket error: do not spin on it.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// IPv4-mapped IPv6 sources as the IPv4 address they are (the configured addresses are plain).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn pair(interval: Duration) -> (Pump, Pump) {
        // Bind b first on an ephemeral port to learn it, then a pointing at b.
        let b = Pump::start(vec![LanConfig { bind: local(), peers: vec![] }], interval, None).unwrap();
        let b_addr = b.shared.sockets[0].local_addr().unwrap();
        let a = Pump::start(vec![LanConfig { bind: local(), peers: vec![b_addr] }], interval, None).unwrap();
        (a, b)
    }

    fn wait_for(b: &Pump, n: usize, within: Duration) -> Vec<Datagram> {
        let t0 = Instant::now();
        let mut got = Vec::new();
        while got.len() < n && t0.elapsed() < within {
            got.extend(b.drain());
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    #[test]
    fn sends_one_scheduled_set_per_interval_in_order_then_runs_dry() {
        let (a, b) = pair(Duration::from_millis(20));
        a.schedule((0..5u8).map(|k| vec![vec![vec![k]]]).collect());
        let got = wait_for(&b, 5, Duration::from_secs(2));
        assert_eq!(got.iter().map(|d| d.bytes[0]).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        // Spaced by about the interval (first one at once): 4 intervals between first and last.
        let span = got[4].arrived - got[0].arrived;
        assert!(span >= Duration::from_millis(70) && span < Duration::from_millis(400), "span {span:?}");
        std::thread::sleep(Duration::from_millis(100));
        assert!(b.drain().is_empty(), "nothing sent once the schedule ran dry");
        assert!(a.stats().underruns >= 2);
        assert_eq!(a.stats().sent, vec![5]);
        assert_eq!(b.stats().received, vec![5]);
    }

    #[test]
    fn a_new_schedule_replaces_the_old_and_send_now_does_not_wait() {
        let (a, b) = pair(Duration::from_millis(200));
        // Past the sender's first slot (at start), so the next one is 200 ms away.
        std::thread::sleep(Duration::from_millis(30));
        a.schedule(vec![vec![vec![b"old1".to_vec()]], vec![vec![b"old2".to_vec()]]]);
        a.schedule(vec![vec![vec![b"new".to_vec()]]]);
        a.send_now(&vec![vec![b"now".to_vec()]]);
        let got = wait_for(&b, 1, Duration::from_millis(100));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bytes, b"now");
        let got = wait_for(&b, 1, Duration::from_secs(1));
        assert_eq!(got[0].bytes, b"new");
        assert!(wait_for(&b, 1, Duration::from_millis(500)).is_empty(), "old frames were replaced");
    }

    #[test]
    fn a_set_may_hold_one_frame_per_peer() {
        let interval = Duration::from_secs(1);
        let b = Pump::start(vec![LanConfig { bind: local(), peers: vec![] }], interval, None).unwrap();
        let c = Pump::start(vec![LanConfig { bind: local(), peers: vec![] }], interval, None).unwrap();
        let peers = vec![b.shared.sockets[0].local_addr().unwrap(), c.shared.sockets[0].local_addr().unwrap()];
        let a = Pump::start(vec![LanConfig { bind: local(), peers }], interval, None).unwrap();
        a.send_now(&vec![vec![b"to b".to_vec(), b"to c".to_vec()]]);
        assert_eq!(wait_for(&b, 1, Duration::from_secs(1))[0].bytes, b"to b");
        assert_eq!(wait_for(&c, 1, Duration::from_secs(1))[0].bytes, b"to c");
    }

    #[test]
    fn arrival_is_stamped_when_received_not_when_drained() {
        let (a, b) = pair(Duration::from_millis(10));
        a.send_now(&vec![vec![b"x".to_vec()]]);
        std::thread::sleep(Duration::from_millis(150)); // JS "paused"
        let got = b.drain();
        assert_eq!(got.len(), 1);
        assert!(got[0].arrived.elapsed() >= Duration::from_millis(140), "stamped at arrival");
        assert_eq!(got[0].source, "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_flood_keeps_the_inbox_bounded_and_counts_the_drops() {
        let (a, b) = pair(Duration::from_secs(1));
        for _ in 0..(INBOX_MAX + 500) {
            a.send_now(&vec![vec![vec![1u8; 8]]]);
        }
        std::thread::sleep(Duration::from_millis(200));
        let got = b.drain();
        assert!(got.len() <= INBOX_MAX);
        let st = b.stats();
        assert_eq!(st.received[0] - st.inbox_dropped, got.len() as u64);
    }

    #[test]
    fn an_oversized_datagram_arrives_longer_than_any_heartbeat() {
        let (_a, b) = pair(Duration::from_secs(1));
        let raw = UdpSocket::bind(local()).unwrap();
        raw.send_to(&vec![7u8; 40_000], b.shared.sockets[0].local_addr().unwrap()).unwrap();
        let got = wait_for(&b, 1, Duration::from_secs(1));
        assert_eq!(got[0].bytes.len(), MAX_DATAGRAM_BYTES);
    }

    #[test]
    fn wake_is_called_when_the_inbox_fills_and_stop_is_prompt() {
        let (a, mut b) = pair(Duration::from_millis(50));
        let woke = Arc::new(AtomicU64::new(0));
        let w = Arc::clone(&woke);
        b.on_wake(Some(Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        })));
        a.send_now(&vec![vec![b"1".to_vec()]]);
        a.send_now(&vec![vec![b"2".to_vec()]]);
        std::thread::sleep(Duration::from_millis(100));
        assert!(woke.load(Ordering::SeqCst) >= 1);
        assert_eq!(b.drain().len(), 2);
        let t0 = Instant::now();
        b.stop();
        assert!(t0.elapsed() < Duration::from_millis(300), "stop took {:?}", t0.elapsed());
    }

    #[test]
    fn schedule_from_signs_one_set_per_interval_with_growing_seqs() {
        use hmac::{Hmac, Mac};
        let key = vec![9u8; 32];
        let hb = |seq: u64| {
            let mut f = b"CRFT\x01".to_vec();
            f.extend_from_slice(format!(r#"{{"from":"n1","seq":{seq},"lan":0}}"#).as_bytes());
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
            mac.update(&f);
            f.extend_from_slice(&mac.finalize().into_bytes());
            f
        };
        let b = Pump::start(vec![LanConfig { bind: local(), peers: vec![] }], Duration::from_secs(1), None).unwrap();
        let b_addr = b.shared.sockets[0].local_addr().unwrap();
        let interval = Duration::from_millis(20);
        let a = Pump::start(vec![LanConfig { bind: local(), peers: vec![b_addr] }], interval, Some(key.clone())).unwrap();
        // Without the key there is nothing to sign with; a frame without that seq is refused.
        let keyless = Pump::start(vec![LanConfig { bind: local(), peers: vec![b_addr] }], interval, None).unwrap();
        assert!(!keyless.schedule_from(&vec![vec![hb(30)]], 30, 31, 3));
        assert!(!a.schedule_from(&vec![vec![hb(30)]], 29, 31, 3));
        assert!(a.schedule_from(&vec![vec![hb(30)]], 30, 31, 4));
        let got = wait_for(&b, 4, Duration::from_secs(2));
        let bytes: Vec<Vec<u8>> = got.iter().map(|d| d.bytes.clone()).collect();
        assert_eq!(bytes, vec![hb(31), hb(32), hb(33), hb(34)], "each interval the same frame, its own seq, a valid MAC");
        std::thread::sleep(interval * 5);
        assert!(b.drain().is_empty(), "then the reserve runs dry");
    }

    /// A heartbeat frame of `json`, signed with `key` (the codec's wire format).
    fn signed(key: &[u8], json: &str) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        let mut f = b"CRFT\x01".to_vec();
        f.extend_from_slice(json.as_bytes());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(&f);
        f.extend_from_slice(&mac.finalize().into_bytes());
        f
    }

    /// (b, a): b receives with the quiet path under `key`, a sends to b (1 s intervals).
    fn quiet_pair(key: &[u8]) -> (Pump, Pump) {
        let b = Pump::start(vec![LanConfig { bind: local(), peers: vec![] }], Duration::from_secs(1), Some(key.to_vec())).unwrap();
        let b_addr = b.shared.sockets[0].local_addr().unwrap();
        let a = Pump::start(vec![LanConfig { bind: local(), peers: vec![b_addr] }], Duration::from_secs(1), None).unwrap();
        (b, a)
    }

    #[test]
    fn quiet_heartbeats_are_noted_not_queued_and_wake_nobody() {
        let key = vec![7u8; 32];
        let hb = |seq: u64, epoch: u32| signed(&key, &format!(r#"{{"from":"n2","seq":{seq},"view":{{"epoch":{epoch}}}}}"#));
        let (mut b, a) = quiet_pair(&key);
        let woke = Arc::new(AtomicU64::new(0));
        let w = Arc::clone(&woke);
        b.on_wake(Some(Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        })));
        a.send_now(&vec![vec![hb(1, 1)]]);
        let got = wait_for(&b, 1, Duration::from_secs(1));
        assert_eq!(got.len(), 1, "no template yet: queued");
        assert!(b.learn(0, got[0].source, &got[0].bytes, 1, got[0].arrived));
        let woke_before = woke.load(Ordering::SeqCst);
        a.send_now(&vec![vec![hb(2, 1)]]);
        a.send_now(&vec![vec![hb(3, 1)]]);
        std::thread::sleep(Duration::from_millis(100));
        assert!(b.drain().is_empty(), "quiet: not queued");
        assert_eq!(woke.load(Ordering::SeqCst), woke_before, "quiet: no wake");
        let heard = b.heard();
        assert_eq!(heard.len(), 1);
        assert_eq!((heard[0].seq, heard[0].count), (3, 2));
        assert_eq!(b.stats().received, vec![3], "counted as received");
        a.send_now(&vec![vec![hb(4, 2)]]);
        assert_eq!(wait_for(&b, 1, Duration::from_secs(1)).len(), 1, "a change is queued");
        b.forget(got[0].source);
        a.send_now(&vec![vec![hb(5, 1)]]);
        assert_eq!(wait_for(&b, 1, Duration::from_secs(1)).len(), 1, "forgotten: queued");
        b.stop();
    }

    #[test]
    fn a_watched_source_wakes_js_once_when_its_silence_reaches_the_timeout() {
        let key = vec![9u8; 32];
        let hb = |seq: u64| signed(&key, &format!(r#"{{"from":"n2","seq":{seq}}}"#));
        // The sender's interval (1 s) is longer than the watch timeout: the wake is not a send's.
        let (mut b, a) = quiet_pair(&key);
        let wakes = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let w = Arc::clone(&wakes);
        b.on_wake(Some(Box::new(move || lock(&w).push(Instant::now()))));
        let timeout = Duration::from_millis(150);
        assert!(b.watch(Some(timeout)));
        a.send_now(&vec![vec![hb(1)]]);
        let got = wait_for(&b, 1, Duration::from_secs(1));
        assert!(b.learn(0, got[0].source, &got[0].bytes, 1, got[0].arrived));
        lock(&wakes).clear(); // the queued datagram's wake
        // Heard every 50 ms for 600 ms: never silent for 150 ms, no wake.
        for seq in 2..14 {
            a.send_now(&vec![vec![hb(seq)]]);
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(lock(&wakes).is_empty(), "a source heard in time wakes nobody");
        let last = b.heard()[0].arrived;
        // Then silent: one wake, at the timeout after the last arrival (not before it).
        std::thread::sleep(Duration::from_millis(500));
        let got = lock(&wakes).clone();
        assert_eq!(got.len(), 1, "one wake per silence");
        let after = got[0].duration_since(last);
        assert!(after >= timeout && after < timeout + Duration::from_millis(100), "woken {after:?} after the last arrival");
        // Forged datagrams do not count as heard: no second wake, the deadline is not moved.
        let mut forged = hb(20);
        let n = forged.len();
        forged[n - 1] ^= 1;
        a.send_now(&vec![vec![forged]]);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(lock(&wakes).len(), 2, "the forged datagram is queued (a wake for the inbox), never a deadline moved");
        assert_eq!(b.drain().len(), 1);
        // Heard again, then silent again: a new wake. Watching off: none.
        a.send_now(&vec![vec![hb(21)]]);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(lock(&wakes).len(), 3);
        assert!(b.watch(None));
        a.send_now(&vec![vec![hb(22)]]);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(lock(&wakes).len(), 3, "not watched");
        // Without the quiet path there is nothing to watch.
        assert!(!a.watch(Some(timeout)));
        b.stop();
    }

    #[test]
    fn binding_an_address_in_use_is_a_clear_error() {
        let b = Pump::start(vec![LanConfig { bind: local(), peers: vec![] }], Duration::from_secs(1), None).unwrap();
        let taken = b.shared.sockets[0].local_addr().unwrap();
        match Pump::start(vec![LanConfig { bind: taken, peers: vec![] }], Duration::from_secs(1), None) {
            Err(e @ PumpError::Bind { .. }) => assert!(e.to_string().contains(&taken.to_string())),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("bound twice"),
        }
    }
}
