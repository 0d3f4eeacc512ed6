//! A mounted mirror: the held directory, the FUSE session over it and the replication stream.

use crate::exclude::Exclude;
use crate::fs::MirrorFs;
use crate::tracker::DirtyTracker;
use crate::link::{self, EventSink, FailMode, LinkStatus, PeerConfig, Replicator, SyncMode};
use crate::reint::{Core, ReintError, ReintegrateOptions, ReintegrationStatus, VerifyReport, SUM_ZONE_BYTES_DEFAULT};
use crate::sys::HeldDir;
use crate::wire::{AckLevel, HandshakeError};
use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use crate::locks::{waited, Locked};
pub use crate::mounts::lazy_unmount;

/// How often a mirrored mount with a dirty log forgets what the peer acknowledged: the activity
/// log then lists only the last seconds of changes.
pub const LOG_CLEAR_INTERVAL: Duration = Duration::from_secs(5);

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
    /// When the application's calls wait for the peer (every change, or on sync only).
    pub mode: SyncMode,
    pub threads: usize,
    /// Subtrees that stay local: not replicated, verified nor reintegrated ([`Exclude`]).
    pub exclude: Exclude,
    /// Extended attributes through the mount (true, the default). False: every xattr call is
    /// refused (EOPNOTSUPP, as on a filesystem without them), and the kernel no longer asks the
    /// server for `security.capability` before each write (FUSE clears SB_NOSEC): a round trip
    /// per write() saved, for applications that use no xattrs.
    pub xattrs: bool,
}

impl MirrorConfig {
    pub fn new(dir: impl Into<PathBuf>, peer: Option<PeerConfig>) -> MirrorConfig {
        MirrorConfig { dir: dir.into(), peer, fail_mode: FailMode::Alone, mode: SyncMode::EveryChange, threads: THREADS_DEFAULT, exclude: Exclude::default(), xattrs: true }
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
    pub mode: SyncMode,
    pub fail_mode: FailMode,
    pub link: LinkStatus,
}

pub struct Mirror {
    dir: PathBuf,
    session: Option<BackgroundSession>,
    repl: Arc<Replicator>,
    core: Arc<Core>,
    clearer: Option<(Arc<(Mutex<bool>, std::sync::Condvar)>, JoinHandle<()>)>,
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
                    HandshakeError::Refused(reason) | HandshakeError::Version(reason) => MirrorError::PeerRefused { addr, reason },
                    e @ HandshakeError::Downgrade(_) => MirrorError::PeerRefused { addr, reason: e.to_string() },
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
            config.mode,
            dirty,
            events,
            Arc::new(config.exclude.clone()),
        )
        .map_err(|source| MirrorError::Mount { dir: config.dir.clone(), source })?;
        let dir = Arc::new(dir);
        let order = Arc::new(Mutex::new(()));
        let core = Arc::new(Core::new(Arc::clone(&dir), Arc::clone(&order), Arc::clone(&repl)));
        let mut fs = MirrorFs::new(dir, Arc::clone(&repl), order).map_err(|source| {
            repl.close();
            MirrorError::Dir { dir: config.dir.clone(), source }
        })?;
        fs.xattrs = config.xattrs;
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
        let clearer = if repl.dirty_log().is_some() { Some(spawn_clearer(Arc::clone(&core))) } else { None };
        Ok(Mirror {
            dir: config.dir,
            session: Some(session),
            repl,
            core,
            clearer,
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
            // The level of the stream attached last (a reintegration attaches one to a mount
            // that started alone), else the one it was mounted with.
            ack_level: self.repl.ack_level().or(self.ack_level),
            mode: self.repl.mode(),
            fail_mode: *self.fail_mode.locked(),
            link: self.repl.status(),
        }
    }

    /// Switches the fail mode; `Alone` releases every call blocked on a lost peer (each records
    /// its change in the dirty tracker and returns).
    pub fn set_fail_mode(&self, mode: FailMode) {
        *self.fail_mode.locked() = mode;
        self.repl.set_fail_mode(mode);
    }

    /// Declares the peer lost now (the caller's membership saw it die before the ack timeout).
    pub fn drop_peer(&self, reason: &str) {
        self.repl.lose(reason);
    }

    /// See [`MirrorHandle::clear_dirty_log`].
    pub fn clear_dirty_log(&self) -> std::io::Result<bool> {
        self.handle().clear_dirty_log()
    }

    /// A handle for the long calls (reintegrate, verify) from another thread than the owner's.
    pub fn handle(&self) -> MirrorHandle {
        MirrorHandle { core: Arc::clone(&self.core) }
    }

    /// See [`MirrorHandle::reintegrate`].
    pub fn reintegrate(&self, peer: PeerConfig, opts: ReintegrateOptions) -> Result<ReintegrationStatus, ReintError> {
        self.handle().reintegrate(peer, opts)
    }

    pub fn reintegration_status(&self) -> ReintegrationStatus {
        self.core.status()
    }

    pub fn abort_reintegration(&self, reason: &str) {
        self.core.abort(reason)
    }

    /// See [`MirrorHandle::verify`].
    pub fn verify(&self, peer: PeerConfig) -> Result<VerifyReport, ReintError> {
        self.handle().verify(peer)
    }

    /// Unmounts and closes the stream. When the mount is busy (a process still has files open
    /// under it), it is detached lazily (`fusermount3 -u -z`: gone for new opens) and the error
    /// says so; changes still made through the open files are then not replicated (EIO under
    /// `Block`, dirty under `Alone`). Stop the application first.
    pub fn unmount(mut self) -> Result<(), MirrorError> {
        let mut result = Ok(());
        if let Some(session) = self.session.take() {
            let r = match umount_retrying(&self.dir) {
                // Unmounted: the kernel ends the session, whose thread then returns. Its last read
                // of /dev/fuse may fail with ECONNABORTED rather than ENODEV (which fuser takes
                // for the end): the mount is gone either way, so that is a clean end too.
                Ok(()) => session.join().or_else(|e| if e.raw_os_error() == Some(libc::ECONNABORTED) { Ok(()) } else { Err(e) }),
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => session.umount_and_join(),
                Err(e) => Err(e),
            };
            if let Err(source) = r {
                lazy_unmount(&self.dir);
                result = Err(MirrorError::Unmount { dir: self.dir.clone(), source });
            }
        }
        self.stop_clearer();
        // What the unmount wrote back (the writeback cache of an on-sync mount) was streamed:
        // give the peer its ack timeout to acknowledge it before the stream closes.
        let _ = self.repl.all_acked();
        self.repl.close();
        result
    }

    fn stop_clearer(&mut self) {
        if let Some((stop, h)) = self.clearer.take() {
            *stop.0.locked() = true;
            stop.1.notify_all();
            let _ = h.join();
        }
    }
}

/// Every [`LOG_CLEAR_INTERVAL`] while mirrored: under the order lock, once the peer acked every
/// change sent, the dirty log is cleared (the peer holds all of it).
fn spawn_clearer(core: Arc<Core>) -> (Arc<(Mutex<bool>, std::sync::Condvar)>, JoinHandle<()>) {
    let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let s = Arc::clone(&stop);
    let h = std::thread::Builder::new()
        .name("croft-mirror-logclear".into())
        .spawn(move || loop {
            {
                let stopped = s.0.locked();
                let (stopped, _) = waited(s.1.wait_timeout(stopped, LOG_CLEAR_INTERVAL));
                if *stopped {
                    return;
                }
            }
            let Some(log) = core.repl.dirty_log() else { return };
            if log.is_empty() || !core.repl.status().connected {
                continue;
            }
            let _g = core.order.locked();
            if core.repl.all_acked() {
                if let Err(e) = log.clear() {
                    log::error!("clearing the mirror's dirty log: {e}");
                }
            }
        })
        .expect("spawning the dirty log clearer");
    (stop, h)
}

/// Shares a mounted mirror's reintegration and verify with other threads (the napi binding's
/// workers); every call fails cleanly once the mirror is unmounted.
#[derive(Clone)]
pub struct MirrorHandle {
    core: Arc<Core>,
}

impl MirrorHandle {
    /// Brings the peer `peer` (a replica holding an older tree) up to date while the application
    /// keeps writing, then mirrors synchronously again on that stream. Only on a mount that runs
    /// alone. `Err`: the mount stays alone and the dirty log still lists everything.
    pub fn reintegrate(&self, peer: PeerConfig, opts: ReintegrateOptions) -> Result<ReintegrationStatus, ReintError> {
        self.core.reintegrate(&peer, &opts)
    }

    pub fn status(&self) -> ReintegrationStatus {
        self.core.status()
    }

    /// Clears the durable dirty log if the peer holds everything it lists: under the order lock,
    /// connected, every change sent acknowledged (or no stream was ever attached: nothing was
    /// sent, the caller vouches for the peer's tree). `Ok(false)`: not so (the peer is lost, a
    /// reintegration runs, or changes are in flight), the log is kept; the reintegration clears
    /// it when it goes live, and the clearer thread while mirrored. A plain clear of the log, as
    /// the daemon once did after a reintegration, forgot a change sent and not yet acknowledged:
    /// if the stream then broke, its sync point answered "recorded" with nothing recorded
    /// (tests/clear_in_flight.rs). `Ok(true)` also without a dirty log (nothing to clear).
    pub fn clear_dirty_log(&self) -> std::io::Result<bool> {
        let Some(log) = self.core.repl.dirty_log() else { return Ok(true) };
        let _g = self.core.order.locked();
        if !self.core.repl.log_clear_allowed() {
            return Ok(false);
        }
        log.clear().map(|()| true)
    }

    pub fn abort(&self, reason: &str) {
        self.core.abort(reason)
    }

    /// Compares both trees (type, size, mode, owner, symlink target, xattrs, zone checksums)
    /// over a query-only session, one file at a time under the order lock once the peer acked
    /// everything. Only while mirrored.
    pub fn verify(&self, peer: PeerConfig) -> Result<VerifyReport, ReintError> {
        let zone = self.core.repl.dirty_log().map(|l| l.zone_bytes()).unwrap_or(SUM_ZONE_BYTES_DEFAULT);
        self.core.verify(&peer, zone)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Release blocked callers first, then detach lazily: a drop must never hang.
            self.stop_clearer();
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

