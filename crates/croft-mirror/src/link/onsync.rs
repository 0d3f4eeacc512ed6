//! The mount's [`SyncMode`] at the end of a change: [`Replicator::settle`] waits for the ack under
//! `EveryChange` and at a sync point, returns at once otherwise under `OnSync`; without an activity
//! log, what was sent and not yet acknowledged is listed (`State::unacked`) and goes to the tracker
//! the moment the peer is lost ([`Replicator::mark_unacked`]), before any waiter is answered.

use super::{AckedBy, AckedOp, Replicator, State, SyncMode, Ticket};
use crate::locks::Locked;

impl Replicator {
    /// Settles a ticket by the mount's [`SyncMode`]: under `EveryChange`, and for a
    /// `sync_point` (a change that makes data durable, or a barrier), this is [`Self::wait`].
    /// Under `OnSync` any other change that was sent returns at once (its extents, without an
    /// activity log, stay listed until acked); one that could not be sent (the peer is known
    /// lost) is handled by the fail mode at once, as `wait` does.
    pub(crate) fn settle(&self, ticket: Ticket, sync_point: bool) -> Result<AckedOp, ()> {
        if self.mode == SyncMode::EveryChange || sync_point || ticket.seq.is_none() {
            return self.wait(ticket);
        }
        let mut st = self.state.locked();
        if st.lost.is_some() {
            // Lost between the send and now: its extents must reach the tracker before the
            // call returns, as under `EveryChange`.
            drop(st);
            return self.wait(ticket);
        }
        let Ticket { seq, extents, counted } = ticket;
        let seq = seq.unwrap_or(0);
        // The broken build (chaos-ack-early): what was sent counts as acknowledged, never listed.
        if !extents.is_empty() && st.acked < seq && !cfg!(feature = "chaos-ack-early") {
            st.unacked.push_back((seq, extents));
        }
        if counted {
            st.unresolved -= 1;
            self.cv.notify_all();
        }
        Ok(AckedOp { seq, by: AckedBy::Streamed, _private: () })
    }

    /// The peer is lost (the caller holds the state lock): the extents sent under `OnSync` and
    /// never acknowledged go to the tracker now, before any waiter is answered. A failure to
    /// record them makes every later sync point fail (EIO) for the life of the mount.
    pub(super) fn mark_unacked(&self, st: &mut State) {
        while let Some((_, extents)) = st.unacked.pop_front() {
            for (path, offset, len) in extents {
                if self.mark(&path, offset, len).is_err() {
                    st.unacked_unrecorded = true;
                }
            }
        }
    }

}
