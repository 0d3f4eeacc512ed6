//! croft's mirror data plane, with no napi dependency (STYLE.md: three layers at the native
//! boundary).
//!
//! - [`Mirror`]: on the node that runs the application, a FUSE filesystem mounted over the
//!   replicated directory at its own path. The directory underneath is held open (O_PATH) from
//!   before the mount and reached with `*at()` calls. Every change is applied locally and sent in
//!   order to the peer; the application's call returns once the peer acknowledged it (or, the
//!   peer lost, according to the [`FailMode`]): every call under [`SyncMode::EveryChange`], only
//!   the calls that make data durable under [`SyncMode::OnSync`]. Reads are local.
//! - [`Replica`]: on the other node, applies the operations in place (no mount) and acks them.
//! - [`Op`]: the replicated operations; [`wire`]: the authenticated stream that carries them.

pub mod dirtylog;
mod exclude;
mod exit;
mod fs;
pub mod link;
mod codec;
pub mod apply;
mod locked_log;
mod locks;
mod mirror;
mod mounts;
mod reint;
pub mod op;
pub mod replica;
pub mod sync;
mod sys;
mod table;
pub mod tracker;
pub mod wire;
#[cfg(test)]
mod versions_tests;

pub use exclude::{Exclude, EXCLUDE_MAX};
pub use exit::{detach_at_exit, MountSlot};
pub use locked_log::{LockedLog, OpenLogError, DIRTY_LOCK_NAME};
pub use dirtylog::{DirtyLog, DirtyLogOptions, DirtyLogStats, REPAIR_EVERY};
pub use link::{AckLatency, AckLatencySnapshot, ACK_LATENCY_BOUNDS_US, AckedBy, AckedOp, EventSink, FailMode, LinkStatus, MirrorEvent, PeerConfig, SyncMode};
pub use mirror::{lazy_unmount, Mirror, MirrorConfig, MirrorError, MirrorHandle, MirrorStatus, LOG_CLEAR_INTERVAL, THREADS_DEFAULT};
pub use reint::{
    ReintError,
    ReintegrateOptions, ReintegrationPhase, ReintegrationStatus, VerifyReport, FREEZE_BELOW_BYTES_DEFAULT, PASSES_MAX_DEFAULT,
    SUM_ZONE_BYTES_DEFAULT, VERIFY_DIFFERENCES_MAX,
};
pub use sync::EntryInfo;
pub use op::{Op, TO_END};
pub use tracker::{ActivityLog, DirtyEntry, DirtyPaths, DirtyTracker};
pub use replica::{Replica, ReplicaConfig, ReplicaStatus};
pub use sys::{HeldDir, SetTime};
pub use wire::{AckLevel, Query};
