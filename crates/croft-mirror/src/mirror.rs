//! A mounted mirror: the held directory, the FUSE session over it and the replication stream.

use crate::fs::MirrorFs;
use crate::link::{self, DirtyTracker, EventSink, FailMode, LinkStatus, PeerConfig, Replicator};
use crate::sys::HeldDir;
use crate::wire::{AckLevel, HandshakeError};
use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// FUSE worker threads by default: enough for a few application threads to have changes in
/// flight to the peer at once (each waits for its ack), few enough for a 2-core machine.
pub const THREADS_DEFAULT: usize = 4;

#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// The replicated directory; the mirror is mounted over it, at the same path.
    pub dir: PathBuf,
    /// `None`: run alone from the start (every change goes to the dirty tracker).
    pub peer: Option<PeerConfig>,
    pub fail_mode: FailMode,
    pub threads: usize,
}

impl MirrorConfig {
    pub fn new(dir: impl Into<PathBuf>, peer: Option<PeerConfig>) -> MirrorConfig {
        MirrorConfig { dir: dir.into(), peer, fail_mode: FailMode::Alone, threads: THREADS_DEFAULT }
    }
}

/// Operating errors of the mirror, each with a stable code for the TypeScript layer.
#[derive(Debug)]
pub enum MirrorError {
    /// The directory could not be opened (missing, not a directory, no permission).
    Dir { dir: PathBuf, source: io::Error },
    /// FUSE refused the mount (no /dev/fuse, no fusermount3, already mounted...).
    Mount { dir: PathBuf, source: io::Error },
    /// The peer could not be reached.
    PeerUnreachable { addr: String, source: io::Error },
    /// The peer does not hold the cluster key, or is not a croft mirror peer.
    PeerRefused { addr: String, reason: String },
    Unmount { dir: PathBuf, source: io::Error },
}

impl MirrorError {
    pub fn code(&self) -> &'static str {
        match self {
            MirrorError::Dir { .. } => "CROFT_ERR_MIRROR_DIR",
            MirrorError::Mount { .. } => "CROFT_ERR_MIRROR_MOUNT",
            MirrorError::PeerUnreachable { .. } => "CROFT_ERR_MIRROR_PEER_UNREACHABLE",
            MirrorError::PeerRefused { .. } => "CROFT_ERR_MIRROR_PEER_AUTH",
            MirrorError::Unmount { .. } => "CROFT_ERR_MIRROR_UNMOUNT",
        }
    }
}

impl fmt::Display for MirrorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MirrorError::Dir { dir, source } => write!(f, "cannot open the replicated directory {}: {source}", dir.display()),
            MirrorError::Mount { dir, source } => write!(
                f,
                "cannot mount the mirror over {}: {source} (is /dev/fuse there and fusermount3 installed? is something already mounted there?)",
                dir.display()
            ),
            MirrorError::PeerUnreachable { addr, source } => {
                write!(f, "cannot reach the mirror peer at {addr}: {source} (is croft running there, is the port open?)")
            }
            MirrorError::PeerRefused { addr, reason } => {
                write!(f, "the mirror peer at {addr} was refused: {reason} (both nodes need the same cluster key)")
            }
            MirrorError::Unmount { dir, source } => {
                write!(f, "cannot unmount the mirror from {}: {source} (is a process still using it? see fuser -m)", dir.display())
            }
        }
    }
}

impl std::error::Error for MirrorError {}

/// Status of a mounted mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorStatus {
    pub dir: PathBuf,
    pub ack_level: Option<AckLevel>,
    pub fail_mode: FailMode,
    pub link: LinkStatus,
}

pub struct Mirror {
    dir: PathBuf,
    session: Option<BackgroundSession>,
    repl: Arc<Replicator>,
    ack_level: Option<AckLevel>,
    fail_mode: std::sync::Mutex<FailMode>,
}

impl Mirror {
    /// Connects to the peer (if any), opens `config.dir` with O_PATH and mounts the mirror over it.
    /// On error nothing stays mounted or connected.
    pub fn mount(config: MirrorConfig, dirty: Arc<dyn DirtyTracker>, events: Option<EventSink>) -> Result<Mirror, MirrorError> {
        let dir = HeldDir::open(&config.dir).map_err(|source| MirrorError::Dir { dir: config.dir.clone(), source })?;
        let (stream, level, timeout_ms) = match &config.peer {
            Some(peer) => {
                let addr = peer.addr.to_string();
                let s = link::connect(peer).map_err(|e| match e {
                    HandshakeError::Io(source) => MirrorError::PeerUnreachable { addr, source },
                    HandshakeError::Refused(reason) => MirrorError::PeerRefused { addr, reason },
                })?;
                (Some(s), Some(peer.ack_level), peer.ack_timeout_ms)
            }
            None => (None, None, 2000),
        };
        let repl = Replicator::start(
            stream,
            "no peer configured",
            level.unwrap_or(AckLevel::Received),
            timeout_ms,
            config.fail_mode,
            dirty,
            events,
        )
        .map_err(|source| MirrorError::Mount { dir: config.dir.clone(), source })?;
        let fs = MirrorFs::new(Arc::new(dir), Arc::clone(&repl)).map_err(|source| {
            repl.close();
            MirrorError::Dir { dir: config.dir.clone(), source }
        })?;
        let mut options = Config::default();
        options.mount_options = vec![
            MountOption::FSName("croft-mirror".into()),
            MountOption::Subtype("croft-mirror".into()),
            MountOption::DefaultPermissions,
            MountOption::Dev,
            MountOption::Suid,
        ];
        options.acl = SessionACL::All;
        options.n_threads = Some(config.threads.max(1));
        options.clone_fd = config.threads > 1;
        let session = fuser::spawn_mount(fs, &config.dir, &options).map_err(|source| {
            repl.close();
            MirrorError::Mount { dir: config.dir.clone(), source }
        })?;
        Ok(Mirror {
            dir: config.dir,
            session: Some(session),
            repl,
            ack_level: level,
            fail_mode: std::sync::Mutex::new(config.fail_mode),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn status(&self) -> MirrorStatus {
        MirrorStatus {
            dir: self.dir.clone(),
            ack_level: self.ack_level,
            fail_mode: *self.fail_mode.lock().unwrap(),
            link: self.repl.status(),
        }
    }

    /// Switches the fail mode; `Alone` releases every call blocked on a lost peer (each records
    /// its change in the dirty tracker and returns).
    pub fn set_fail_mode(&self, mode: FailMode) {
        *self.fail_mode.lock().unwrap() = mode;
        self.repl.set_fail_mode(mode);
    }

    /// Declares the peer lost now (the caller's membership saw it die before the ack timeout).
    pub fn drop_peer(&self, reason: &str) {
        self.repl.lose(reason);
    }

    /// Unmounts and closes the stream. When the mount is busy (a process still has files open
    /// under it), it is detached lazily (`fusermount3 -u -z`: gone for new opens) and the error
    /// says so; changes still made through the open files are then not replicated (EIO under
    /// `Block`, dirty under `Alone`). Stop the application first.
    pub fn unmount(mut self) -> Result<(), MirrorError> {
        let mut result = Ok(());
        if let Some(session) = self.session.take() {
            let r = match umount_retrying(&self.dir) {
                // Unmounted: the kernel ends the session, whose thread then returns.
                Ok(()) => session.join(),
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => session.umount_and_join(),
                Err(e) => Err(e),
            };
            if let Err(source) = r {
                lazy_unmount(&self.dir);
                result = Err(MirrorError::Unmount { dir: self.dir.clone(), source });
            }
        }
        self.repl.close();
        result
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Release blocked callers first, then detach lazily: a drop must never hang.
            self.repl.close();
            drop(session);
            lazy_unmount(&self.dir);
        }
    }
}

/// How long an unmount retries while the mount is busy. A descriptor on the mount can be held
/// for an instant by a child this process forks (between fork and exec, even CLOEXEC ones).
const UNMOUNT_BUSY_RETRY_MS: u64 = 2000;

/// umount2(2) (root), retried while EBUSY for a bounded time.
fn umount_retrying(dir: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(UNMOUNT_BUSY_RETRY_MS);
    loop {
        // SAFETY: c is a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) || std::time::Instant::now() >= deadline {
            return Err(e);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `fusermount3 -u -z`: detaches a FUSE mount even while it is busy. Quiet when nothing is
/// mounted there.
pub fn lazy_unmount(dir: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}
