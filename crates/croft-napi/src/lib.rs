//! Thin napi-rs binding of croft's Rust core crates: conversions of arguments in and errors out,
//! nothing else. Every exported function catches panics (`catch_unwind`) so that a bug becomes a JS
//! error instead of aborting the daemon; blocking work runs off the JS thread.

mod files;
mod heartbeat;
mod mirror;
mod nft;

use croft_net::arp::responder::{self, ArpResponder as CoreResponder};
use croft_net::mac::Mac;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::net::IpAddr;
use std::time::Duration;

fn invalid(msg: String) -> Error {
    Error::new(Status::InvalidArg, msg)
}

fn net_error(e: croft_net::arp::socket::NetError) -> Error {
    use croft_net::arp::socket::NetError;
    let status = match e {
        NetError::NoSuchInterface(_) | NetError::InvalidArgument(_) => Status::InvalidArg,
        _ => Status::GenericFailure,
    };
    Error::new(status, e.to_string())
}

fn parse_ip(ip: &str) -> Result<IpAddr> {
    ip.parse()
        .map_err(|_| invalid(format!("invalid IP address {ip:?}")))
}

fn parse_mac(mac: &str) -> Result<Mac> {
    mac.parse()
        .map_err(|e: croft_net::mac::MacParseError| invalid(e.to_string()))
}

/// The kernel's jhash (include/linux/jhash.h) of `data` with initval `seed`.
#[napi(catch_unwind)]
pub fn jhash(data: Buffer, seed: u32) -> u32 {
    croft_net::jhash(&data, seed)
}

/// The bucket the kernel's `jhash ip saddr [. tcp sport] mod <modulus> seed <seed>` gives a client
/// (IPv4 or IPv6 source; `port` null for a source-address-only hash).
#[napi(catch_unwind)]
pub fn nft_bucket(ip: String, port: Option<u32>, modulus: u32, seed: u32) -> Result<u32> {
    let addr = parse_ip(&ip)?;
    if modulus == 0 {
        return Err(invalid("modulus must be at least 1".into()));
    }
    let sport = match port {
        None => None,
        Some(p) if p <= u16::MAX as u32 => Some(p as u16),
        Some(p) => return Err(invalid(format!("port {p} is out of range 0..65535"))),
    };
    Ok(croft_net::nft_key::source_bucket(
        addr, sport, modulus, seed, 0,
    ))
}

pub struct GratuitousArp {
    ifname: String,
    ip: IpAddr,
    mac: Mac,
    count: u32,
    interval: Duration,
}

impl Task for GratuitousArp {
    type Output = ();
    type JsValue = ();

    // Runs on the libuv thread pool: it sleeps between announcements.
    fn compute(&mut self) -> Result<()> {
        let run = || {
            responder::send_gratuitous(&self.ifname, self.ip, self.mac, self.count, self.interval)
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(r) => r.map_err(net_error),
            Err(_) => Err(Error::new(
                Status::GenericFailure,
                "gratuitous ARP sender panicked".to_string(),
            )),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// Sends `count` gratuitous ARP announcements of `ip` at `mac` on `ifname`, `intervalMs` apart
/// (default 0), from the interface's real MAC; for an IPv6 `ip`, unsolicited neighbour
/// advertisements. Resolves when all were sent.
#[napi(catch_unwind, ts_return_type = "Promise<void>")]
pub fn arp_send_gratuitous(
    ifname: String,
    ip: String,
    mac: String,
    count: u32,
    interval_ms: Option<u32>,
) -> Result<AsyncTask<GratuitousArp>> {
    let ip = parse_ip(&ip)?;
    let mac = parse_mac(&mac)?;
    Ok(AsyncTask::new(GratuitousArp {
        ifname,
        ip,
        mac,
        count,
        interval: Duration::from_millis(interval_ms.unwrap_or(0) as u64),
    }))
}

#[napi(object)]
pub struct ArpAddress {
    pub ip: String,
    pub mac: String,
}

#[napi(object)]
pub struct ArpStats {
    pub requests: i64,
    pub replies: i64,
    pub malformed: i64,
    pub send_errors: i64,
    /// Why the responder thread stopped by itself (null while it runs normally).
    pub failure: Option<String>,
}

/// Answers ARP requests for a set of IPv4 addresses, and neighbour solicitations for a set of IPv6
/// ones, on one interface, from a Rust thread.
#[napi]
pub struct ArpResponder {
    inner: Option<CoreResponder>,
    ifname: String,
    /// Counters at close(), so that stats() still answers afterwards.
    closed_stats: responder::Stats,
}

#[napi]
impl ArpResponder {
    #[napi(constructor, catch_unwind)]
    pub fn new(ifname: String) -> Result<Self> {
        let inner = CoreResponder::start(&ifname).map_err(net_error)?;
        Ok(ArpResponder {
            inner: Some(inner),
            ifname,
            closed_stats: responder::Stats::default(),
        })
    }

    fn open(&self) -> Result<&CoreResponder> {
        self.inner.as_ref().ok_or_else(|| {
            Error::new(
                Status::GenericFailure,
                format!("ARP responder on {:?} is closed", self.ifname),
            )
        })
    }

    /// Replaces the answered addresses; an empty list answers nothing.
    #[napi(catch_unwind)]
    pub fn set_addresses(&self, addresses: Vec<ArpAddress>) -> Result<()> {
        let mut parsed = Vec::with_capacity(addresses.len());
        for a in &addresses {
            parsed.push((parse_ip(&a.ip)?, parse_mac(&a.mac)?));
        }
        self.open()?.set_addresses(&parsed).map_err(net_error)
    }

    /// Counters since start; after close() the final counters.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> ArpStats {
        let (s, failure) = match &self.inner {
            Some(r) => (r.stats(), r.failure()),
            None => (self.closed_stats, None),
        };
        ArpStats {
            requests: s.requests as i64,
            replies: s.replies as i64,
            malformed: s.malformed as i64,
            send_errors: s.send_errors as i64,
            failure,
        }
    }

    /// Stops the responder thread and closes the socket; idempotent.
    #[napi(catch_unwind)]
    pub fn close(&mut self) {
        if let Some(mut inner) = self.inner.take() {
            inner.close();
            self.closed_stats = inner.stats();
        }
    }
}

/// Swaps two paths atomically (renameat2 RENAME_EXCHANGE, both on one filesystem): `croft config
/// push` puts a checked config folder in place of the running one with no moment where the folder
/// is missing or half written (top/daemon/push.ts). Throws with the errno's message.
#[napi(catch_unwind)]
pub fn exchange_paths(a: String, b: String) -> Result<()> {
    let ca = std::ffi::CString::new(a.as_bytes()).map_err(|_| invalid(format!("path {a:?} holds a NUL byte")))?;
    let cb = std::ffi::CString::new(b.as_bytes()).map_err(|_| invalid(format!("path {b:?} holds a NUL byte")))?;
    // SAFETY: both are valid C strings; renameat2 takes (int, char*, int, char*, unsigned).
    let r = unsafe {
        libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE as libc::c_uint)
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::new(Status::GenericFailure, format!("cannot exchange {a} and {b}: {e}")));
    }
    Ok(())
}

/// The deliberately broken features this addon was built with (empty for every release build):
/// the daemon warns at start when one is present, and a test checks the release addon has none.
#[napi]
pub fn chaos_features() -> Vec<String> {
    let mut out = Vec::new();
    if cfg!(feature = "chaos-ack-early") {
        out.push("chaos-ack-early".to_string());
    }
    out
}
