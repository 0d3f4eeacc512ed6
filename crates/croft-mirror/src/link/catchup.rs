//! What a reintegration drives through the replicator: its own authenticated stream attached
//! to a mount that runs alone, the catch-up operations and queries on it, and the moment it goes
//! live (from then on every change is mirrored synchronously on that stream).

use super::{Recent, Replicator, State};
use crate::op::Op;
use crate::wire::{self, AckLevel, Query, Sealed};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use crate::locks::Locked;

/// How long the reintegration's stream may stay blocked while queries are in flight (the
/// target computes their answers before it reads on): as long as one query may take.
const PATIENT_WRITE_MAX: Duration = Duration::from_secs(600);

impl Replicator {
    /// Attaches a reintegration's authenticated stream to a replicator that runs alone. Its
    /// sequence numbers start again at 1 (a new session on the replica) and continue after
    /// `go_live`. The application's changes stay dirty until then.
    pub(crate) fn attach(self: &Arc<Self>, stream: Sealed, level: AckLevel, ack_timeout_ms: u64) -> Result<(), String> {
        {
            let st = self.state.locked();
            if st.closing {
                return Err("the mirror is closing".into());
            }
            if st.lost.is_none() {
                return Err("the mirror is connected to its peer: nothing to reintegrate".into());
            }
            if st.catchup {
                return Err("a reintegration is already running".into());
            }
        }
        // The previous reader ends on its own: its stream was shut down when the peer was lost.
        if let Some(h) = self.reader.locked().take() {
            let _ = h.join();
        }
        let shutdown = stream.try_clone().map_err(|e| e.to_string())?;
        let read_half = stream.try_clone().map_err(|e| e.to_string())?;
        let generation = {
            let mut tx = self.tx.locked();
            let mut st = self.state.locked();
            if st.closing || st.catchup || st.lost.is_none() {
                return Err("the mirror changed state while the reintegration connected".into());
            }
            st.generation += 1;
            st.catchup = true;
            st.attached = true;
            st.catchup_error = None;
            st.sent = 0;
            st.acked = 0;
            st.pending.clear();
            st.level = level;
            st.ack_timeout = Duration::from_millis(ack_timeout_ms.max(1));
            st.shutdown = Some(shutdown);
            st.replies.clear();
            st.queries_pending = 0;
            st.replies_received = 0;
            tx.stream = Some(stream);
            tx.next_seq = 1;
            tx.next_query = 1;
            st.generation
        };
        self.spawn_reader(read_half, generation).map_err(|e| {
            self.lose(&format!("starting the ack reader: {e}"));
            e.to_string()
        })
    }

    fn catchup_gone(st: &State) -> String {
        st.catchup_error.clone().unwrap_or_else(|| "the reintegration stream is not attached".into())
    }

    /// Sends reintegration operations on the attached stream; returns the last sequence number.
    pub(crate) fn catchup_send(&self, ops: &[Op]) -> Result<u64, String> {
        let mut tx = self.tx.locked();
        let mut buf = Vec::new();
        let first = tx.next_seq;
        for (i, op) in ops.iter().enumerate() {
            buf.extend(wire::op_frame(first + i as u64, op));
        }
        let last = first + ops.len() as u64 - 1;
        {
            let mut st = self.state.locked();
            if !st.catchup {
                return Err(Self::catchup_gone(&st));
            }
            st.sent = last;
            st.bytes_sent += buf.len() as u64;
        }
        let Some(stream) = tx.stream.as_mut() else { return Err("the reintegration stream is closed".into()) };
        match self.write_patient(stream, &buf) {
            Ok(()) => {
                tx.next_seq = last + 1;
                Ok(last)
            }
            Err(e) => {
                drop(tx);
                let m = format!("sending to the target: {e}");
                self.lose(&m);
                Err(m)
            }
        }
    }

    /// Sequence number of the last operation sent and bytes sent so far.
    pub(crate) fn sent(&self) -> (u64, u64, u64) {
        let st = self.state.locked();
        (st.sent, st.acked, st.bytes_sent)
    }

    /// Waits until the target acknowledged `seq` on the attached stream.
    pub(crate) fn catchup_wait(&self, seq: u64) -> Result<(), String> {
        let mut st = self.state.locked();
        let patience = |st: &State| if st.queries_pending > 0 { PATIENT_WRITE_MAX } else { st.ack_timeout };
        let mut deadline = Instant::now() + patience(&st);
        let mut last_progress = (st.acked, st.replies_received);
        loop {
            if !st.catchup {
                return Err(Self::catchup_gone(&st));
            }
            if st.acked >= seq {
                return Ok(());
            }
            if (st.acked, st.replies_received) != last_progress {
                // Progress: the target is applying a long burst, or answering the queries
                // in flight before the operations (it answers in stream order).
                last_progress = (st.acked, st.replies_received);
                deadline = Instant::now() + patience(&st);
            }
            let now = Instant::now();
            if now >= deadline {
                let m = format!("no acknowledgement from the target within {} ms", st.ack_timeout.as_millis());
                drop(st);
                self.lose(&m);
                return Err(m);
            }
            st = self.cv.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Asks the target (answered after every operation sent before it is applied).
    pub(crate) fn query(&self, q: &Query, timeout: Duration) -> Result<Vec<u8>, String> {
        let id = self.query_send(q)?;
        self.query_wait(id, timeout)
    }

    /// Sends a query without waiting for its answer (several may be in flight: the target
    /// answers them in stream order); `query_wait` takes the answer.
    pub(crate) fn query_send(&self, q: &Query) -> Result<u64, String> {
        let mut tx = self.tx.locked();
        {
            let mut st = self.state.locked();
            if !st.catchup {
                return Err(Self::catchup_gone(&st));
            }
            // Before the write: the reply may come back before write_all returns.
            st.queries_pending += 1;
        }
        let id = tx.next_query;
        tx.next_query += 1;
        let frame = wire::query_frame(id, q);
        let r = match tx.stream.as_mut() {
            Some(s) => self.write_patient(s, &frame),
            None => return Err("the reintegration stream is closed".into()),
        };
        if let Err(e) = r {
            drop(tx);
            let m = format!("sending a query to the target: {e}");
            self.lose(&m);
            return Err(m);
        }
        self.state.locked().bytes_sent += frame.len() as u64;
        Ok(id)
    }

    /// Waits for the answer to query `id`.
    pub(crate) fn query_wait(&self, id: u64, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.locked();
        loop {
            if let Some(body) = st.replies.remove(&id) {
                return Ok(body);
            }
            if !st.catchup {
                return Err(Self::catchup_gone(&st));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(st);
                let m = format!("no answer from the target within {} ms", timeout.as_millis());
                self.lose(&m);
                return Err(m);
            }
            st = self.cv.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// `write_all` on the reintegration's stream that, while queries are in flight, keeps
    /// waiting past the socket's send timeout: the target answers queries in stream order and
    /// reads nothing more while it computes one (a long listing, a big file's checksums).
    fn write_patient(&self, s: &mut Sealed, mut buf: &[u8]) -> io::Result<()> {
        let mut stalled_since: Option<Instant> = None;
        loop {
            // The sealed stream may keep records queued after a send timeout: flush them last.
            let r = if buf.is_empty() { s.flush().map(|()| usize::MAX) } else { s.write(buf) };
            match r {
                Ok(usize::MAX) => return Ok(()),
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the stream accepts nothing")),
                Ok(n) => {
                    buf = &buf[n..];
                    stalled_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    let pending = self.state.locked().queries_pending > 0;
                    if !pending || since.elapsed() >= PATIENT_WRITE_MAX {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Ends the reintegration's stream (abort); the mount stays alone.
    pub(crate) fn abort_catchup(&self, reason: &str) {
        let st = self.state.locked();
        if st.catchup {
            drop(st);
            self.lose(reason);
        }
    }

    /// Waits (bounded) until no change is between its local application and its outcome.
    /// The caller holds the order lock, so none can start meanwhile.
    pub(crate) fn wait_unresolved(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.locked();
        while st.unresolved > 0 {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "{} changes still wait for the lost peer (fail mode block?): switch to alone first",
                    st.unresolved
                ));
            }
            st = self.cv.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        Ok(())
    }

    /// The reintegration is complete (the caller holds the order lock and the target acked
    /// everything): from now on every change is mirrored synchronously on this stream.
    pub(crate) fn go_live(&self) -> Result<(), String> {
        let mut st = self.state.locked();
        if !st.catchup {
            return Err(Self::catchup_gone(&st));
        }
        if st.acked < st.sent {
            return Err("the target has not acknowledged everything".into());
        }
        st.catchup = false;
        st.lost = None;
        self.cv.notify_all();
        Ok(())
    }

    pub(crate) fn start_recording(&self) {
        *self.recent.locked() = Some(Recent::new());
    }

    /// What was marked since the last call (recording goes on).
    pub(crate) fn take_recent(&self) -> Recent {
        self.recent.locked().as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub(crate) fn stop_recording(&self) {
        *self.recent.locked() = None;
    }
}
