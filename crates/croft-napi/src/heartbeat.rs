//! Binding of croft_net::heartbeat (the heartbeat pump): conversions only.

use croft_net::heartbeat::{LanConfig, Pump, PumpError};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[napi(object)]
pub struct HeartbeatLanJs {
    /// This node's address on the LAN ("10.0.0.1" or "fd00::1").
    pub address: String,
    pub port: u32,
    /// The peers' addresses on the LAN (same port).
    pub peers: Vec<String>,
}

#[napi(object)]
pub struct HeartbeatDatagramJs {
    pub lan: u32,
    pub bytes: Buffer,
    pub source: String,
    /// How long ago it arrived (ms, fractional): the caller's clock minus this is the arrival time.
    pub age_ms: f64,
}

/// Quiet heartbeats of one (LAN, source) since the last call (croft_net::quiet).
#[napi(object)]
pub struct HeartbeatHeardJs {
    pub lan: u32,
    pub source: String,
    /// The last one's sequence number.
    pub seq: f64,
    /// How long ago it arrived (ms, fractional).
    pub age_ms: f64,
    pub count: f64,
}

#[napi(object)]
pub struct HeartbeatPumpStatsJs {
    pub sent: Vec<f64>,
    pub received: Vec<f64>,
    pub send_errors: f64,
    pub inbox_dropped: f64,
    pub underruns: f64,
}

/// Weak (does not keep the process alive); the callback gets nothing useful (the LAN index).
type WakeCallback = ThreadsafeFunction<u32, Unknown<'static>, u32, Status, false, true>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn socket_addr(address: &str, port: u32) -> Result<SocketAddr> {
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| Error::new(Status::InvalidArg, format!("invalid IP address {address:?}")))?;
    let port = u16::try_from(port).map_err(|_| Error::new(Status::InvalidArg, format!("port {port} out of range")))?;
    Ok(SocketAddr::new(ip, port))
}

fn frames_of(set: Vec<Vec<Buffer>>) -> Vec<Vec<Vec<u8>>> {
    set.into_iter().map(|lan| lan.into_iter().map(|b| b.to_vec()).collect()).collect()
}

#[napi]
pub struct HeartbeatPump {
    pump: Mutex<Option<Pump>>,
}

#[napi]
impl HeartbeatPump {
    /// Binds one socket per LAN and starts the threads; with the cluster key, the quiet path.
    /// Errors: "CROFT_ERR_BIND: ..." when a socket cannot be bound.
    #[napi(constructor, catch_unwind)]
    pub fn new(lans: Vec<HeartbeatLanJs>, interval_ms: u32, quiet_key: Option<Buffer>) -> Result<Self> {
        let mut conf = Vec::with_capacity(lans.len());
        for l in &lans {
            let bind = socket_addr(&l.address, l.port)?;
            let peers = l.peers.iter().map(|p| socket_addr(p, l.port)).collect::<Result<Vec<_>>>()?;
            conf.push(LanConfig { bind, peers });
        }
        let pump = Pump::start(conf, Duration::from_millis(u64::from(interval_ms)), quiet_key.map(|k| k.to_vec())).map_err(|e| match e {
            PumpError::Bind { .. } => Error::new(Status::GenericFailure, format!("CROFT_ERR_BIND: {e}")),
            PumpError::Invalid(_) => Error::new(Status::InvalidArg, e.to_string()),
            PumpError::Thread(_) => Error::new(Status::GenericFailure, e.to_string()),
        })?;
        Ok(HeartbeatPump { pump: Mutex::new(Some(pump)) })
    }

    /// Registers the callback run on the JS thread when datagrams wait in the inbox.
    #[napi(catch_unwind, ts_args_type = "callback: (lan: number) => void")]
    pub fn on_wake(&self, callback: WakeCallback) {
        if let Some(p) = lock(&self.pump).as_ref() {
            p.on_wake(Some(Box::new(move || {
                let _ = callback.call(0, ThreadsafeFunctionCallMode::NonBlocking);
            })));
        }
    }

    /// `sets[k][lan]`: the frames for `lan` sent at the k-th next interval (replaces what was
    /// left): one for every peer, or one per peer.
    #[napi(catch_unwind)]
    pub fn schedule(&self, sets: Vec<Vec<Vec<Buffer>>>) {
        if let Some(p) = lock(&self.pump).as_ref() {
            p.schedule(sets.into_iter().map(frames_of).collect());
        }
    }

    /// `count` intervals from one set encoded with sequence number `seq`: the k-th next interval
    /// sends it with `first + k`, signed by the pump (croft_net::heartbeat::Pump::schedule_from).
    /// False (nothing scheduled) without the cluster key, for a seq that is not an exact integer,
    /// or a frame that is not a heartbeat carrying it once: then schedule() encoded sets.
    #[napi(catch_unwind)]
    pub fn schedule_from(&self, set: Vec<Vec<Buffer>>, seq: f64, first: f64, count: u32) -> bool {
        let exact = |v: f64| v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_992.0;
        if !exact(seq) || !exact(first) || count > 1000 {
            return false;
        }
        lock(&self.pump).as_ref().is_some_and(|p| p.schedule_from(&frames_of(set), seq as u64, first as u64, count as usize))
    }

    /// `frames[lan]` sent now (one for every peer of that LAN, or one per peer).
    #[napi(catch_unwind)]
    pub fn send_now(&self, frames: Vec<Vec<Buffer>>) {
        if let Some(p) = lock(&self.pump).as_ref() {
            p.send_now(&frames_of(frames));
        }
    }

    #[napi(catch_unwind)]
    pub fn drain(&self) -> Vec<HeartbeatDatagramJs> {
        let Some(p) = lock(&self.pump).as_ref().map(|p| p.drain()) else { return Vec::new() };
        let now = Instant::now();
        p.into_iter()
            .map(|d| HeartbeatDatagramJs {
                lan: d.lan as u32,
                source: d.source.to_string(),
                age_ms: now.saturating_duration_since(d.arrived).as_secs_f64() * 1000.0,
                bytes: d.bytes.into(),
            })
            .collect()
    }

    /// The core accepted `frame` (sequence number `seq`, arrived `age_ms` ago) from `source` on
    /// `lan`: its repeats are quiet, and the source is watched. False when nothing was learned (a
    /// bad source, seq or age, or see croft_net::quiet).
    #[napi(catch_unwind)]
    pub fn learn(&self, lan: u32, source: String, frame: Buffer, seq: f64, age_ms: f64) -> bool {
        let Ok(ip) = source.parse::<std::net::IpAddr>() else { return false };
        if !(seq.is_finite() && seq >= 0.0 && seq.fract() == 0.0 && seq <= 9_007_199_254_740_992.0) {
            return false;
        }
        if !(age_ms.is_finite() && (0.0..=3_600_000.0).contains(&age_ms)) {
            return false;
        }
        let now = Instant::now();
        let arrived = now.checked_sub(Duration::from_secs_f64(age_ms / 1000.0)).unwrap_or(now);
        lock(&self.pump).as_ref().is_some_and(|p| p.learn(lan as usize, ip, &frame, seq as u64, arrived))
    }

    /// Wakes JS (the onWake callback) when a learned source has been silent for `timeout_ms`;
    /// null: no watching. False without the quiet path, or for a timeout out of 1 ms..1 h.
    #[napi(catch_unwind)]
    pub fn watch(&self, timeout_ms: Option<f64>) -> bool {
        let timeout = match timeout_ms {
            None => None,
            Some(ms) if ms.is_finite() && (1.0..=3_600_000.0).contains(&ms) => Some(Duration::from_secs_f64(ms / 1000.0)),
            Some(_) => return false,
        };
        lock(&self.pump).as_ref().is_some_and(|p| p.watch(timeout))
    }

    /// Every datagram of `source` goes to the inbox again.
    #[napi(catch_unwind)]
    pub fn forget(&self, source: String) {
        if let (Ok(ip), Some(p)) = (source.parse::<std::net::IpAddr>(), lock(&self.pump).as_ref()) {
            p.forget(ip);
        }
    }

    /// The quiet heartbeats since the last call, per (LAN, source).
    #[napi(catch_unwind)]
    pub fn heard(&self) -> Vec<HeartbeatHeardJs> {
        let Some(h) = lock(&self.pump).as_ref().map(|p| p.heard()) else { return Vec::new() };
        let now = Instant::now();
        h.into_iter()
            .map(|h| HeartbeatHeardJs {
                lan: h.lan as u32,
                source: h.source.to_string(),
                seq: h.seq as f64,
                age_ms: now.saturating_duration_since(h.arrived).as_secs_f64() * 1000.0,
                count: h.count as f64,
            })
            .collect()
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> HeartbeatPumpStatsJs {
        let st = lock(&self.pump).as_ref().map(|p| p.stats()).unwrap_or_default();
        HeartbeatPumpStatsJs {
            sent: st.sent.iter().map(|&v| v as f64).collect(),
            received: st.received.iter().map(|&v| v as f64).collect(),
            send_errors: st.send_errors as f64,
            inbox_dropped: st.inbox_dropped as f64,
            underruns: st.underruns as f64,
        }
    }

    /// Stops the threads and closes the sockets; idempotent.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        let pump = lock(&self.pump).take();
        drop(pump);
    }
}
