//! `writeFileDurable`: a small file replaced atomically and durably in one trip to the libuv pool
//! (temporary file, write, fsync, rename, fsync of the folder). The same steps from JavaScript's
//! fs.promises are nine trips, each waking the JS thread: the membership's floors are saved every
//! second, and those wake-ups were half of an idle daemon's (issue 11). `writeFileDurableSync`:
//! the same steps on the calling thread, for the saves that must be done before going on (the
//! membership's state at start, a maintenance change): one implementation for both.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub struct WriteDurableTask {
    path: PathBuf,
    data: Vec<u8>,
    mode: u32,
    dir_mode: u32,
}

fn write_durable(path: &Path, data: &[u8], mode: u32, dir_mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::DirBuilder::new().recursive(true).mode(dir_mode).create(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    // Some file systems refuse fsync on a folder; the rename is atomic all the same.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl WriteDurableTask {
    /// Checks the arguments: a path without NUL, permissions only (the folder's default 0700).
    fn new(path: String, data: &[u8], mode: u32, dir_mode: Option<u32>) -> Result<WriteDurableTask> {
        if path.is_empty() || path.contains('\0') {
            return Err(Error::new(Status::InvalidArg, format!("invalid path {path:?}")));
        }
        let dir_mode = dir_mode.unwrap_or(0o700);
        if mode > 0o777 || dir_mode > 0o777 {
            return Err(Error::new(Status::InvalidArg, format!("mode {mode:o} or folder mode {dir_mode:o} is not a permission")));
        }
        Ok(WriteDurableTask { path: PathBuf::from(path), data: data.to_vec(), mode, dir_mode })
    }

    fn run(&self) -> Result<()> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_durable(&self.path, &self.data, self.mode, self.dir_mode))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::new(Status::GenericFailure, format!("cannot write {}: {e}", self.path.display()))),
            Err(_) => Err(Error::new(Status::GenericFailure, "writing a file panicked".to_string())),
        }
    }
}

impl Task for WriteDurableTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.run()
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// Replaces `path` with `data` atomically and durably (`<path>.tmp` written with `mode` and
/// fsync'd, renamed over `path`, the folder fsync'd; the folder created with `dir_mode`, default
/// 0700, if missing), off the JS thread in one task.
#[napi(catch_unwind, ts_return_type = "Promise<void>")]
pub fn write_file_durable(path: String, data: Buffer, mode: u32, dir_mode: Option<u32>) -> Result<AsyncTask<WriteDurableTask>> {
    Ok(AsyncTask::new(WriteDurableTask::new(path, &data, mode, dir_mode)?))
}

/// The same on the calling thread (it blocks until the folder is fsync'd).
#[napi(catch_unwind)]
pub fn write_file_durable_sync(path: String, data: Buffer, mode: u32, dir_mode: Option<u32>) -> Result<()> {
    WriteDurableTask::new(path, &data, mode, dir_mode)?.run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_the_file_whole_with_its_mode_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("croft-napi-durable-{}", std::process::id()));
        let file = dir.join("sub").join("state.json");
        write_durable(&file, b"one", 0o600, 0o700).unwrap();
        write_durable(&file, b"two", 0o600, 0o700).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!dir.join("sub").join("state.json.tmp").exists());
        assert!(write_durable(Path::new("/proc/croft-no-such/x"), b"x", 0o600, 0o700).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
