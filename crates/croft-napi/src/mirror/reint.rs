//! Reintegration and verify of a `MirrorMount`, off the JS thread.

use super::{coded_error, panicked, MirrorPeerOptions, PeerTarget};
use croft_mirror::{
    MirrorHandle, ReintegrateOptions, ReintegrationStatus, VerifyReport,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;

// Reintegration and verify

pub(super) const REINTEGRATION_CODE: &str = "CROFT_ERR_MIRROR_REINTEGRATION";
pub(super) const VERIFY_CODE: &str = "CROFT_ERR_MIRROR_VERIFY";

#[napi(object)]
pub struct MirrorReintegrateOptionsJs {
    pub peer: MirrorPeerOptions,
    pub full: bool,
    pub freeze_below_bytes: Option<f64>,
    /// Cap on the file data copied, bytes per second (absent: none).
    pub max_bytes_per_s: Option<f64>,
}

#[napi(object)]
pub struct MirrorReintegrationStatusJs {
    pub running: bool,
    /// "idle" | "scan" | "copy" | "final" | "done" | "failed".
    pub phase: String,
    pub full: bool,
    pub bytes_to_go: f64,
    pub bytes_copied: f64,
    pub bytes_sent: f64,
    pub bytes_skipped: f64,
    pub entries_to_go: f64,
    pub entries_done: f64,
    pub passes: u32,
    pub rate_bytes_per_sec: f64,
    pub started_at_ms: Option<f64>,
    pub finished_at_ms: Option<f64>,
    pub error: Option<String>,
}

pub(super) fn reint_js(s: &ReintegrationStatus) -> MirrorReintegrationStatusJs {
    MirrorReintegrationStatusJs {
        running: s.running,
        phase: s.phase.name().into(),
        full: s.full,
        bytes_to_go: s.bytes_to_go as f64,
        bytes_copied: s.bytes_copied as f64,
        bytes_sent: s.bytes_sent as f64,
        bytes_skipped: s.bytes_skipped as f64,
        entries_to_go: s.entries_to_go as f64,
        entries_done: s.entries_done as f64,
        passes: s.passes,
        rate_bytes_per_sec: s.rate_bytes_per_sec,
        started_at_ms: s.started_at_ms.map(|v| v as f64),
        finished_at_ms: s.finished_at_ms.map(|v| v as f64),
        error: s.error.clone(),
    }
}

pub struct ReintegrateTask {
    pub(super) handle: MirrorHandle,
    pub(super) peer: PeerTarget,
    pub(super) opts: ReintegrateOptions,
    pub(super) out: Option<ReintegrationStatus>,
}

impl Task for ReintegrateTask {
    type Output = ();
    type JsValue = MirrorReintegrationStatusJs;

    // libuv pool: connects, copies, freezes, switches (may take long: one pool thread).
    fn compute(&mut self) -> Result<()> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let peer = self.peer.resolve().map_err(|(_, m)| m)?;
            self.handle.reintegrate(peer, self.opts.clone())
        }));
        match r {
            Ok(Ok(st)) => {
                self.out = Some(st);
                Ok(())
            }
            Ok(Err(m)) => Err(Error::new(Status::GenericFailure, format!("reintegration failed: {m}"))),
            Err(_) => Err(panicked("the reintegration")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<MirrorReintegrationStatusJs> {
        Ok(reint_js(self.out.as_ref().ok_or_else(|| panicked("the reintegration"))?))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<MirrorReintegrationStatusJs> {
        Err(coded_error(&env, REINTEGRATION_CODE, err.reason.clone()))
    }
}

#[napi(object)]
pub struct MirrorDifferenceJs {
    pub path: String,
    pub what: String,
}

#[napi(object)]
pub struct MirrorVerifyReportJs {
    pub identical: bool,
    pub entries_compared: f64,
    pub bytes_compared: f64,
    /// The first 1000.
    pub differences: Vec<MirrorDifferenceJs>,
    pub differences_total: f64,
}

pub(super) fn verify_js(r: &VerifyReport) -> MirrorVerifyReportJs {
    MirrorVerifyReportJs {
        identical: r.identical,
        entries_compared: r.entries_compared as f64,
        bytes_compared: r.bytes_compared as f64,
        differences: r
            .differences
            .iter()
            .map(|(p, w)| MirrorDifferenceJs { path: p.to_string_lossy().into_owned(), what: w.clone() })
            .collect(),
        differences_total: r.differences_total as f64,
    }
}

pub struct VerifyTask {
    pub(super) handle: MirrorHandle,
    pub(super) peer: PeerTarget,
    pub(super) out: Option<VerifyReport>,
}

impl Task for VerifyTask {
    type Output = ();
    type JsValue = MirrorVerifyReportJs;

    fn compute(&mut self) -> Result<()> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let peer = self.peer.resolve().map_err(|(_, m)| m)?;
            self.handle.verify(peer)
        }));
        match r {
            Ok(Ok(rep)) => {
                self.out = Some(rep);
                Ok(())
            }
            Ok(Err(m)) => Err(Error::new(Status::GenericFailure, format!("verify failed: {m}"))),
            Err(_) => Err(panicked("verify")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<MirrorVerifyReportJs> {
        Ok(verify_js(self.out.as_ref().ok_or_else(|| panicked("verify"))?))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<MirrorVerifyReportJs> {
        Err(coded_error(&env, VERIFY_CODE, err.reason.clone()))
    }
}
