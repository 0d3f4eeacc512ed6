//! The peer's end of the live stream: connecting to it, the thread that reads its acks and
//! replies, and losing it (once: the stream is shut down, waiters wake, the event is told).

use super::{MirrorEvent, PeerConfig, Replicator};
use crate::wire::{self, Frame, HandshakeError, Sealed};
use std::io::{self, BufReader};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use crate::locks::Locked;

/// Connects to the peer and opens a sealed session (the connection and the whole handshake
/// within the connect timeout). A replica of an older version this side also speaks is
/// connected to again, offering that version (wire/handshake.rs: versions).
pub(crate) fn connect(peer: &PeerConfig) -> Result<Sealed, HandshakeError> {
    let timeout = Duration::from_millis(peer.connect_timeout_ms.max(1));
    let deadline = Instant::now() + timeout;
    let open = |offer: u16| -> Result<Sealed, HandshakeError> {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let s = TcpStream::connect_timeout(&peer.addr, left)?;
        s.set_nodelay(true)?;
        wire::set_keepalive(&s);
        wire::handshake_primary_at(s, &peer.key, peer.ack_level, deadline, peer.protocol, offer)
    };
    let s = match open(peer.protocol.current) {
        Err(HandshakeError::Downgrade(v)) => match open(v) {
            Err(HandshakeError::Downgrade(w)) => {
                return Err(HandshakeError::Refused(format!("the replica changed its protocol version from {v} to {w} between two connections")))
            }
            other => other?,
        },
        other => other?,
    };
    s.set_read_timeout(None)?;
    // A send blocks only while the peer's receive window is full, i.e. on the peer's progress:
    // bounded by the ack timeout like the ack itself.
    s.set_write_timeout(Some(Duration::from_millis(peer.ack_timeout_ms.max(1))))?;
    Ok(s)
}

impl Replicator {
    pub(super) fn spawn_reader(self: &Arc<Self>, read_half: Sealed, generation: u64) -> io::Result<()> {
        let me = Arc::clone(self);
        let h = thread::Builder::new()
            .name("croft-mirror-acks".into())
            .spawn(move || me.read_acks(read_half, generation))?;
        *self.reader.locked() = Some(h);
        Ok(())
    }

    fn read_acks(&self, stream: Sealed, generation: u64) {
        let mut r = BufReader::with_capacity(64 << 10, stream.clone());
        let reason = loop {
            match wire::read_frame(&mut r) {
                Ok(Some(Frame::Ack { seq })) => {
                    let mut st = self.state.locked();
                    if st.generation != generation {
                        return;
                    }
                    if seq > st.sent {
                        break format!("the peer acknowledged seq {seq} that was never sent ({} sent)", st.sent);
                    }
                    if !st.catchup {
                        st.acked_ops += seq.saturating_sub(st.acked);
                        st.pending.acked(seq, &self.latency);
                    }
                    st.acked = st.acked.max(seq);
                    while st.unacked.front().is_some_and(|(s, _)| *s <= seq) {
                        st.unacked.pop_front();
                    }
                    self.cv.notify_all();
                }
                Ok(Some(Frame::Reply { id, body })) => {
                    let mut st = self.state.locked();
                    if st.generation != generation {
                        return;
                    }
                    st.replies.insert(id, body);
                    st.queries_pending = st.queries_pending.saturating_sub(1);
                    st.replies_received += 1;
                    self.cv.notify_all();
                }
                Ok(Some(Frame::Nack { seq, errno, message })) => {
                    break format!(
                        "the peer could not apply operation {seq}: {message} (errno {errno}); the trees differ"
                    )
                }
                Ok(Some(other)) => break format!("the peer sent an unexpected frame {other:?}"),
                Ok(None) => break "the peer closed the connection".into(),
                Err(e) => {
                    if wire::is_tampered(&e) {
                        let mut st = self.state.locked();
                        if st.generation == generation {
                            st.tampered += 1;
                        }
                    }
                    break format!("reading acks from the peer: {e}");
                }
            }
        };
        self.lose_generation(Some(generation), &reason);
    }

    /// Marks the peer lost (once), closes the stream and wakes every waiter; during a
    /// reintegration, ends the reintegration's stream instead (the mount was alone already).
    pub(crate) fn lose(&self, reason: &str) {
        self.lose_generation(None, reason)
    }

    fn lose_generation(&self, generation: Option<u64>, reason: &str) {
        let newly = {
            let mut st = self.state.locked();
            if generation.is_some_and(|g| g != st.generation) {
                return;
            }
            if st.catchup {
                st.catchup = false;
                st.catchup_error = Some(reason.to_string());
                if let Some(s) = st.shutdown.take() {
                    let _ = s.shutdown(Shutdown::Both);
                }
                self.cv.notify_all();
                return;
            }
            if st.lost.is_some() {
                false
            } else {
                st.lost = Some(reason.to_string());
                st.pending.clear();
                if let Some(s) = st.shutdown.take() {
                    let _ = s.shutdown(Shutdown::Both);
                }
                self.mark_unacked(&mut st);
                self.cv.notify_all();
                true
            }
        };
        if newly {
            if let Some(ev) = &self.events {
                ev(&MirrorEvent::PeerLost { reason: reason.to_string() });
            }
        }
    }
}
