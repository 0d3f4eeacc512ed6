//! `MirrorReplica`: the peer's side (no mount), its status.

use super::{coded_error, invalid, lock, port_u16};
use super::dirty::{DIRTY_LOG_CODE, zone_bytes_arg};
use super::mount::{MirrorDirtyLogOptions};
use croft_mirror::{
    LockedLog, Replica,
    ReplicaConfig, ReplicaStatus,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

// MirrorReplica

#[napi(object)]
pub struct MirrorReplicaOptions {
    pub dir: String,
    /// Listening IP address ("0.0.0.0", "127.0.0.1", "::"...).
    pub host: String,
    /// 0: any free port (see the `port` getter).
    pub port: u32,
    pub key: Buffer,
    /// This node's own dirty log (it was primary before): a reintegration into this replica
    /// copies its entries too and clears it when done.
    pub dirty_log: Option<MirrorDirtyLogOptions>,
    /// The IP addresses the primary may connect from (the peer node's addresses); a connection
    /// from any other is closed at once and counted. Absent or empty: any.
    pub allowed_peers: Option<Vec<String>>,
    /// The newest protocol version this node speaks (absent: this build's; lowered only by tests).
    pub protocol: Option<u32>,
}

#[napi(object)]
pub struct MirrorReplicaStatusJs {
    pub sessions: i64,
    pub refused: i64,
    /// Of `refused`: the primary's protocol version is older than this side speaks.
    pub refused_version: i64,
    pub applied_ops: i64,
    pub acked_seq: i64,
    pub connected: bool,
    pub last_error: Option<String>,
    pub reintegrations: i64,
    pub bytes_received: i64,
    /// Sessions ended because a record failed authentication (tampered, forged, replayed).
    pub tampered: i64,
    /// Connections closed at once: not from the peer's addresses.
    pub rejected_peers: i64,
    /// Connections closed at once: the session cap was reached.
    pub rejected_busy: i64,
    /// Failed accepts (each followed by a back-off).
    pub accept_errors: i64,
    /// Applying sessions shut down because a newer one of the primary took over.
    pub superseded: i64,
    /// Connections being served now.
    pub active_sessions: i64,
}

pub(super) fn replica_status_js(s: &ReplicaStatus) -> MirrorReplicaStatusJs {
    MirrorReplicaStatusJs {
        sessions: s.sessions as i64,
        refused: s.refused as i64,
        refused_version: s.refused_version as i64,
        applied_ops: s.applied_ops as i64,
        acked_seq: s.acked_seq as i64,
        connected: s.connected,
        last_error: s.last_error.clone(),
        reintegrations: s.reintegrations as i64,
        bytes_received: s.bytes_received as i64,
        tampered: s.tampered as i64,
        rejected_peers: s.rejected_peers as i64,
        rejected_busy: s.rejected_busy as i64,
        accept_errors: s.accept_errors as i64,
        superseded: s.superseded as i64,
        active_sessions: s.active_sessions as i64,
    }
}

/// The peer's side: applies the primary's changes in place to `dir` (no mount) and acks them.
#[napi]
pub struct MirrorReplica {
    inner: Mutex<Option<Replica>>,
    /// Holds the log's flock while the replica runs.
    log: Mutex<Option<LockedLog>>,
    port: u16,
    stopped_status: Mutex<Option<ReplicaStatus>>,
}

#[napi]
impl MirrorReplica {
    /// Opens `dir` and listens (both immediate); sessions run on Rust threads. Throws
    /// CROFT_ERR_MIRROR_REPLICA when the directory cannot be opened or the address bound.
    #[napi(factory, catch_unwind)]
    pub fn start(env: Env, opts: MirrorReplicaOptions) -> Result<MirrorReplica> {
        let ip: IpAddr = opts
            .host
            .parse()
            .map_err(|_| invalid(format!("host must be an IP address to listen on, got {:?}", opts.host)))?;
        let listen = SocketAddr::new(ip, port_u16(opts.port)?);
        let log = match &opts.dirty_log {
            None => None,
            Some(d) => Some(
                LockedLog::open(Path::new(&d.dir), zone_bytes_arg(d.zone_bytes)?).map_err(|e| e.to_string())
                    .map_err(|m| coded_error(&env, DIRTY_LOG_CODE, m))?,
            ),
        };
        let mut allowed_peers = Vec::new();
        for a in opts.allowed_peers.iter().flatten() {
            allowed_peers.push(
                a.parse::<IpAddr>()
                    .map_err(|_| invalid(format!("allowedPeers must hold IP addresses, got {a:?}")))?,
            );
        }
        let mut config = ReplicaConfig::new(PathBuf::from(&opts.dir), listen, opts.key.to_vec());
        config.dirty_log = log.as_ref().map(|l| Arc::clone(l.log()));
        config.allowed_peers = allowed_peers;
        config.protocol = super::protocol_arg(opts.protocol)?;
        match Replica::start(config) {
            Ok(r) => Ok(MirrorReplica {
                port: r.local_addr().port(),
                inner: Mutex::new(Some(r)),
                log: Mutex::new(log),
                stopped_status: Mutex::new(None),
            }),
            Err(e) => Err(coded_error(
                &env,
                "CROFT_ERR_MIRROR_REPLICA",
                format!("cannot start the mirror replica over {} on {listen}: {e}", opts.dir),
            )),
        }
    }

    /// The bound port (the real one when started with port 0).
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port as u32
    }

    /// Counters; after stop() the final ones.
    #[napi(catch_unwind)]
    pub fn status(&self) -> MirrorReplicaStatusJs {
        if let Some(r) = lock(&self.inner).as_ref() {
            return replica_status_js(&r.status());
        }
        replica_status_js(&lock(&self.stopped_status).clone().unwrap_or_default())
    }

    /// Stops listening and closes the sessions (the primary sees the peer lost); idempotent.
    /// Bounded: it shuts the sockets down and joins threads that then return.
    #[napi(catch_unwind)]
    pub fn stop(&self) {
        let taken = lock(&self.inner).take();
        if let Some(r) = taken {
            let mut last = r.status();
            r.stop();
            last.connected = false;
            *lock(&self.stopped_status) = Some(last);
        }
        lock(&self.log).take();
    }
}
