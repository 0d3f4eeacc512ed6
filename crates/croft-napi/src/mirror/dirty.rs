//! Dirty tracking for JS: in memory (`DirtyPaths`) or the durable `croft_mirror::LockedLog`;
//! `MirrorDirtyLog` (a log opened without a mount) and the dirty-log tasks.

use super::{coded_error, invalid, lock, panicked};
use croft_mirror::{
    DirtyEntry, DirtyLog, DirtyPaths, DirtyTracker, LockedLog, MirrorHandle, TO_END,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

// Dirty tracking

pub(super) const DIRTY_LOG_CODE: &str = "CROFT_ERR_MIRROR_DIRTY_LOG";

#[derive(Clone)]
pub(super) enum Dirty {
    Paths(Arc<DirtyPaths>),
    Log(Arc<LockedLog>),
}

impl Dirty {
    pub(super) fn tracker(&self) -> Arc<dyn DirtyTracker> {
        match self {
            Dirty::Paths(p) => p.clone(),
            Dirty::Log(l) => l.clone(),
        }
    }

    pub(super) fn paths(&self) -> Vec<String> {
        match self {
            Dirty::Paths(p) => p.paths().iter().map(|p| p.to_string_lossy().into_owned()).collect(),
            Dirty::Log(l) => l.log().entries().iter().map(|e| e.path.to_string_lossy().into_owned()).collect(),
        }
    }

    pub(super) fn log(&self) -> Result<&Arc<LockedLog>> {
        match self {
            Dirty::Log(l) => Ok(l),
            Dirty::Paths(_) => {
                Err(Error::new(Status::GenericFailure, "mounted without a dirty log (option dirtyLog)".to_string()))
            }
        }
    }
}

/// The dirty log's health (issue 8, finding 11): while `failing`, changes it cannot record fail
/// with EIO in the application.
#[napi(object)]
pub struct MirrorDirtyLogStatusJs {
    pub trusted: bool,
    /// A write failure not repaired yet: changes are refused (EIO) until the log can write.
    pub failing: bool,
    /// Writes, fdatasyncs, compactions or clears of the log that failed since it was opened.
    pub write_failures: i64,
    /// Changes refused since it was opened because their record could not be made durable.
    pub marks_refused: i64,
    /// The last failure since it was opened.
    pub last_error: Option<String>,
}

pub(super) fn dirty_log_status_js(log: &DirtyLog) -> MirrorDirtyLogStatusJs {
    let s = log.stats();
    MirrorDirtyLogStatusJs {
        trusted: log.is_trustworthy(),
        failing: s.failing,
        write_failures: s.write_failures as i64,
        marks_refused: s.marks_refused as i64,
        last_error: log.last_error(),
    }
}

#[napi(object)]
pub struct MirrorDirtyEntryJs {
    /// Relative to the replicated directory ("" for the directory itself).
    pub path: String,
    /// `[start, len]` byte ranges, zone-aligned, sorted; `len == -1`: to the end of the file.
    pub zones: Vec<Vec<i64>>,
    pub entry_changed: bool,
}

pub(super) fn entry_js(e: &DirtyEntry) -> MirrorDirtyEntryJs {
    MirrorDirtyEntryJs {
        path: e.path.to_string_lossy().into_owned(),
        zones: e
            .zones
            .iter()
            .map(|&(start, len)| vec![start as i64, if len == TO_END { -1 } else { len as i64 }])
            .collect(),
        entry_changed: e.entry_changed,
    }
}

pub(super) fn zone_bytes_arg(zone_bytes: f64) -> Result<u64> {
    if !(zone_bytes.is_finite() && zone_bytes >= 1.0 && zone_bytes.fract() == 0.0 && zone_bytes <= u32::MAX as f64) {
        return Err(invalid(format!("zoneBytes must be a positive integer, got {zone_bytes}")));
    }
    Ok(zone_bytes as u64)
}

/// `dirty_bytes` off the JS thread: one lstat per dirty path, through the mount.
pub struct DirtyBytesTask {
    pub(super) log: Arc<LockedLog>,
    pub(super) dir: PathBuf,
}

impl Task for DirtyBytesTask {
    type Output = f64;
    type JsValue = f64;

    fn compute(&mut self) -> Result<f64> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.log.dirty_bytes_under(&self.dir) as f64))
            .map_err(|_| panicked("computing the dirty bytes"))
    }

    fn resolve(&mut self, _env: Env, output: f64) -> Result<f64> {
        Ok(output)
    }
}

/// `clear()` of a log off the JS thread (it writes and fsyncs a snapshot).
pub struct ClearDirtyTask {
    pub(super) log: Arc<LockedLog>,
    /// The mount the log belongs to: then only what the peer acknowledged is forgotten
    /// (`MirrorHandle::clear_dirty_log`; the log is kept while changes are in flight or the peer
    /// is lost). `None`: a log opened without a mount, nothing can be in flight.
    pub(super) mirror: Option<MirrorHandle>,
}

impl Task for ClearDirtyTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &self.mirror {
            Some(m) => m.clear_dirty_log().map(drop),
            None => self.log.log().clear(),
        }));
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::new(
                Status::GenericFailure,
                format!("cannot clear the dirty log in {}: {e}", self.log.log().dir().display()),
            )),
            Err(_) => Err(panicked("clearing the dirty log")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<()> {
        Err(coded_error(&env, DIRTY_LOG_CODE, err.reason.clone()))
    }
}

pub struct OpenDirtyLogTask {
    pub(super) dir: PathBuf,
    pub(super) zone_bytes: u64,
    pub(super) opened: Option<LockedLog>,
}

impl Task for OpenDirtyLogTask {
    type Output = ();
    type JsValue = MirrorDirtyLog;

    fn compute(&mut self) -> Result<()> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| LockedLog::open(&self.dir, self.zone_bytes).map_err(|e| e.to_string()))) {
            Ok(Ok(l)) => {
                self.opened = Some(l);
                Ok(())
            }
            Ok(Err(msg)) => Err(Error::new(Status::GenericFailure, msg)),
            Err(_) => Err(panicked("opening the dirty log")),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<MirrorDirtyLog> {
        let log = self.opened.take().ok_or_else(|| panicked("opening the dirty log"))?;
        Ok(MirrorDirtyLog { log: Mutex::new(Some(Arc::new(log))) })
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<MirrorDirtyLog> {
        Err(coded_error(&env, DIRTY_LOG_CODE, err.reason.clone()))
    }
}

/// A dirty log opened without a mount (after a crash, before reintegration): read it, clear it.
#[napi]
pub struct MirrorDirtyLog {
    /// None once closed (the flock released).
    log: Mutex<Option<Arc<LockedLog>>>,
}

impl MirrorDirtyLog {
    pub(super) fn get(&self) -> Result<Arc<LockedLog>> {
        lock(&self.log).clone().ok_or_else(|| Error::new(Status::GenericFailure, "the dirty log is closed".to_string()))
    }
}

#[napi]
impl MirrorDirtyLog {
    #[napi(catch_unwind)]
    pub fn dirty_paths(&self) -> Result<Vec<String>> {
        Ok(Dirty::Log(self.get()?).paths())
    }

    #[napi(catch_unwind)]
    pub fn dirty_entries(&self) -> Result<Vec<MirrorDirtyEntryJs>> {
        Ok(self.get()?.log().entries().iter().map(entry_js).collect())
    }

    /// Sizes from lstat of `<data_dir>/<path>`.
    #[napi(catch_unwind)]
    pub fn dirty_bytes(&self, data_dir: String) -> Result<f64> {
        Ok(self.get()?.dirty_bytes_under(Path::new(&data_dir)) as f64)
    }

    #[napi(catch_unwind)]
    pub fn dirty_trusted(&self) -> Result<bool> {
        Ok(self.get()?.log().is_trustworthy())
    }

    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn clear_dirty(&self) -> Result<AsyncTask<ClearDirtyTask>> {
        Ok(AsyncTask::new(ClearDirtyTask { log: self.get()?, mirror: None }))
    }

    /// Releases the lock (a pending clearDirty() keeps it until it ends); idempotent.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        lock(&self.log).take();
    }
}
