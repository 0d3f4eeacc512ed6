//! The typed error of reintegration, full sync and verify. Its text is what the status
//! (`ReintegrationStatus::error`) and the napi binding show.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum ReintError {
    /// The target could not be reached.
    Unreachable { addr: String, source: io::Error },
    /// The target refused the session (it does not hold the cluster key, or is not a croft
    /// mirror peer).
    Refused { addr: String, reason: String },
    /// `abort` was called, with this reason.
    Aborted(String),
    /// Another reintegration runs on this mount.
    Busy,
    /// A dirty-log reintegration of a mount that has no dirty log.
    NoDirtyLog,
    /// Verify needs a connected mirror with every change acknowledged.
    NotSettled,
    /// The replicated directory itself is gone.
    DirectoryGone,
    /// A local file-system call on `path` failed (`what`: reading, listing, opening).
    Local { what: &'static str, path: PathBuf, source: io::Error },
    /// Another local error.
    Io(io::Error),
    /// The session with the peer failed, or the peer answered something unusable.
    Peer(String),
    /// The dirty log could not be cleared at the end (the mount stays alone).
    ClearLog(io::Error),
}

impl ReintError {
    pub(super) fn local<'a>(what: &'static str, path: &'a std::path::Path) -> impl FnOnce(io::Error) -> ReintError + 'a {
        move |source| ReintError::Local { what, path: path.to_path_buf(), source }
    }
}

impl fmt::Display for ReintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReintError::Unreachable { addr, source } => write!(f, "cannot reach the target at {addr}: {source}"),
            ReintError::Refused { addr, reason } => write!(f, "the target at {addr} refused the session: {reason}"),
            ReintError::Aborted(reason) => write!(f, "aborted: {reason}"),
            ReintError::Busy => f.write_str("a reintegration is already running"),
            ReintError::NoDirtyLog => f.write_str("this mount has no dirty log: only a full sync can reintegrate it"),
            ReintError::NotSettled => {
                f.write_str("the mirror is not connected to its peer (alone, or reintegrating): nothing to verify")
            }
            ReintError::DirectoryGone => f.write_str("the directory is gone"),
            ReintError::Local { what, path, source } => write!(f, "{what} {path:?}: {source}"),
            ReintError::Io(e) => write!(f, "{e}"),
            ReintError::Peer(m) => f.write_str(m),
            ReintError::ClearLog(e) => write!(f, "clearing the dirty log: {e}"),
        }
    }
}

impl std::error::Error for ReintError {}

/// The replicator's and the reply codecs' errors are texts about the peer's session.
impl From<String> for ReintError {
    fn from(m: String) -> ReintError {
        ReintError::Peer(m)
    }
}
