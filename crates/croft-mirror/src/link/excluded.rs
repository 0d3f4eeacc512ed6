//! The link's side of excluded paths (crate::exclude): changes under one are not sent (nor,
//! with `before_apply` in mod.rs, recorded as dirty), and a change across the boundary is EXDEV;
//! and the link's status and settings (for status and metrics), and whether the dirty log may be cleared.

use super::{LinkStatus, Replicator, SyncMode, Ticket};
use crate::wire::AckLevel;
use crate::exclude::Touches;
use crate::locks::Locked;
use crate::op::Op;
use std::io;

impl Replicator {
    /// Sends `ops` in order (what is under an excluded path stays local). The caller holds the
    /// filesystem's order lock and has just applied them locally, so sequence order is local
    /// application order.
    pub(crate) fn replicate(&self, ops: &[Op]) -> Ticket {
        if !self.exclude.is_empty() {
            let kept: Vec<Op> = ops.iter().filter(|op| self.exclude.touches(op) == Touches::Replicated).cloned().collect();
            if kept.len() != ops.len() {
                if kept.is_empty() {
                    // Local only: nothing to wait for (sequence 0 is acknowledged by definition).
                    return Ticket { seq: Some(0), extents: Vec::new(), counted: false };
                }
                return self.replicate_kept(&kept);
            }
        }
        self.replicate_kept(ops)
    }

    /// `Err(EXDEV)` for a rename or link between an excluded and a replicated path: as across
    /// two filesystems, so that a replicated name never holds data the peer never got.
    pub(crate) fn check_crossing(&self, op: &Op) -> io::Result<()> {
        if self.exclude.touches(op) == Touches::Both {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        Ok(())
    }

    pub(crate) fn status(&self) -> LinkStatus {
        let st = self.state.locked();
        LinkStatus {
            connected: st.lost.is_none(),
            lost_reason: st.lost.clone(),
            sent_seq: st.sent,
            acked_seq: st.acked,
            bytes_sent: st.bytes_sent,
            alone_ops: st.alone_ops,
            tampered: st.tampered,
            acked_ops: st.acked_ops,
            ack_latency: self.latency.snapshot(),
        }
    }

    /// The ack level of the current (or last) stream; `None` before any was attached.
    pub(crate) fn ack_level(&self) -> Option<AckLevel> {
        let st = self.state.locked();
        st.attached.then_some(st.level)
    }

    /// Whether the dirty log may be forgotten now (no wait; the caller holds the order lock, so
    /// no change is between its mark and its send): connected and every change sent
    /// acknowledged, or no stream was ever attached (nothing was sent: the caller vouches that
    /// the peer's tree is this one, as a test or a first start does).
    pub(crate) fn log_clear_allowed(&self) -> bool {
        let st = self.state.locked();
        !st.attached || (st.lost.is_none() && !st.catchup && st.acked >= st.sent)
    }

    /// The mount's [`SyncMode`].
    pub(crate) fn mode(&self) -> SyncMode {
        self.mode
    }
}
