//! Helpers on an unmounted directory: `mirrorLazyUnmount` and `mirrorQuarantineCopy`.

use super::{panicked};
use croft_mirror::lazy_unmount;
use croft_mirror::sync::quarantine_paths;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;

pub struct LazyUnmountTask {
    pub(super) dir: PathBuf,
}

impl Task for LazyUnmountTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        std::panic::catch_unwind(|| lazy_unmount(&self.dir)).map_err(|_| panicked("lazy unmount"))
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// `fusermount3 -u -z <dir>`: detaches a FUSE mount even when busy or when its server died
/// (SIGKILL leaves ENOTCONN). Quiet when nothing is mounted there.
#[napi(catch_unwind, ts_return_type = "Promise<void>")]
pub fn mirror_lazy_unmount(dir: String) -> AsyncTask<LazyUnmountTask> {
    AsyncTask::new(LazyUnmountTask { dir: PathBuf::from(dir) })
}

/// What `mirrorQuarantineCopy` did.
#[napi(object)]
pub struct MirrorQuarantineResultJs {
    /// Files and symlinks copied.
    pub copied: u32,
    /// "<path>: <error>" for each path that could not be copied (the others were).
    pub failed: Vec<String>,
}

pub struct QuarantineTask {
    pub(super) dir: PathBuf,
    pub(super) paths: Vec<String>,
    pub(super) dest: PathBuf,
}

impl Task for QuarantineTask {
    type Output = MirrorQuarantineResultJs;
    type JsValue = MirrorQuarantineResultJs;

    fn compute(&mut self) -> Result<MirrorQuarantineResultJs> {
        let run = || -> std::result::Result<MirrorQuarantineResultJs, String> {
            let paths: Vec<PathBuf> = self.paths.iter().map(PathBuf::from).collect();
            let r = quarantine_paths(&self.dir, &paths, &self.dest)
                .map_err(|e| format!("cannot open {} for the quarantine: {e}", self.dir.display()))?;
            let failed = r.failed.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect();
            Ok(MirrorQuarantineResultJs { copied: r.copied, failed })
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(Error::new(Status::GenericFailure, msg)),
            Err(_) => Err(panicked("copying to the quarantine")),
        }
    }

    fn resolve(&mut self, _env: Env, output: MirrorQuarantineResultJs) -> Result<MirrorQuarantineResultJs> {
        Ok(output)
    }
}

/// Copies the files and symlinks at `paths` (relative to `dir`, not mounted) into
/// `<dest>/<path>`, off the JS thread: never through a symlink in `dir` (openat2 beneath it),
/// directories created 0700, file modes kept without set-id bits (issue 8).
#[napi(catch_unwind, ts_return_type = "Promise<MirrorQuarantineResultJs>")]
pub fn mirror_quarantine_copy(dir: String, paths: Vec<String>, dest: String) -> AsyncTask<QuarantineTask> {
    AsyncTask::new(QuarantineTask { dir: PathBuf::from(dir), paths, dest: PathBuf::from(dest) })
}
