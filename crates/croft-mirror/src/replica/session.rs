//! One connection of the primary: the handshake, then frames read in batches (applied and
//! acknowledged together), queries answered in stream order, and the apply role (one session
//! at a time applies; a newer session of the primary takes it over).

use super::batch::{apply_batch, FdCache};
use super::{forget_session, Shared, BATCH_BYTES_MAX, BATCH_OPS_MAX, HANDSHAKE_TIMEOUT, SESSION_WRITE_TIMEOUT};
use crate::locks::Locked;
use crate::op::Op;
use crate::sync;
use crate::wire::{self, AckLevel, Frame, HandshakeError, Query, Sealed};
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::MutexGuard;
use std::time::Instant;

/// Ends a session whatever happens in it (a panic included: it is recorded, and the locks it
/// held stay usable for the next session).
struct SessionGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        forget_session(self.shared, self.id);
    }
}

pub(super) fn session_thread(shared: &Shared, id: u64, stream: TcpStream) {
    let _guard = SessionGuard { shared, id };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session(shared, id, stream)));
    if let Err(p) = r {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "?".into());
        let was_applier = *shared.applier.locked() == Some(id);
        let mut st = shared.status.locked();
        if was_applier {
            st.connected = false;
        }
        st.last_error = Some(format!("a replica session failed: {what}"));
    }
}

fn session(shared: &Shared, id: u64, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    wire::set_keepalive(&stream);
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let (sealed, level) = match wire::handshake_replica_at(stream, &shared.key, deadline, shared.protocol) {
        Ok(ok) => ok,
        Err(e) => {
            let mut st = shared.status.locked();
            st.refused += 1;
            if matches!(e, HandshakeError::Version(_)) {
                st.refused_version += 1;
            }
            st.last_error = Some(match e {
                HandshakeError::Refused(m) | HandshakeError::Version(m) => m,
                e @ HandshakeError::Downgrade(_) => e.to_string(),
                HandshakeError::Io(e) => format!("handshake: {e}"),
            });
            return;
        }
    };
    let _ = sealed.set_read_timeout(None);
    let _ = sealed.set_write_timeout(Some(SESSION_WRITE_TIMEOUT));
    shared.status.locked().sessions += 1;
    let mut applying = None;
    let result = serve(shared, id, &mut applying, &sealed, level);
    let mut st = shared.status.locked();
    if sealed.tampered() {
        st.tampered += 1;
    }
    if let Some(mut cache) = applying.take() {
        // Still holding the apply lock: a newer session cannot have said connected yet.
        cache.clear();
        st.connected = false;
        drop(cache);
    }
    if let Err(e) = result {
        st.last_error = Some(e);
    }
    drop(st);
    let _ = sealed.shutdown(Shutdown::Both);
}

/// The applying session's hold on the replica: taken at the first operation, so that a
/// query-only session (verify) runs alongside the applying one. A newer session of the
/// primary takes over: the older applier is shut down (its next read or send fails and it
/// lets go), so a silent or stuck session never holds the replica.
fn take_apply<'a>(shared: &'a Shared, id: u64, applying: &mut Option<MutexGuard<'a, FdCache>>) {
    if applying.is_none() {
        {
            let mut applier = shared.applier.locked();
            if let Some(old) = applier.replace(id) {
                if old != id {
                    if let Some(c) = shared.conns.locked().get(&old) {
                        let _ = c.shutdown(Shutdown::Both);
                    }
                    shared.status.locked().superseded += 1;
                }
            }
        }
        let mut cache = shared.apply.locked();
        cache.clear();
        let mut st = shared.status.locked();
        st.connected = true;
        st.acked_seq = 0;
        *applying = Some(cache);
    }
}

fn answer(shared: &Shared, q: &Query) -> Vec<u8> {
    match q {
        Query::DirtyEntries => {
            sync::encode_entries(shared.dirty_log.as_ref().map(|l| (l.is_trustworthy(), l.entries())))
        }
        Query::ListDir { path } => sync::encode_infos(sync::list_infos(&shared.dir, path)),
        Query::Checksums { path, zone_bytes } => sync::encode_sums(sync::checksums(&shared.dir, path, *zone_bytes)),
        Query::Done => {
            if let Some(l) = &shared.dirty_log {
                if let Err(e) = l.clear() {
                    return sync::reply_err(&e);
                }
            }
            let mut st = shared.status.locked();
            st.reintegrations += 1;
            let mut out = vec![1u8];
            out.extend_from_slice(&st.reintegrations.to_le_bytes());
            out
        }
    }
}

fn serve<'a>(
    shared: &'a Shared,
    id: u64,
    applying: &mut Option<MutexGuard<'a, FdCache>>,
    stream: &Sealed,
    level: AckLevel,
) -> Result<(), String> {
    let mut reader = stream;
    let mut writer = stream.clone();
    let mut expected = 1u64;
    let mut eof = false;
    while !eof {
        let mut batch: Vec<(u64, Op)> = Vec::new();
        let mut batch_bytes = 0u64;
        let mut query = None;
        loop {
            match wire::read_frame(&mut reader) {
                Ok(Some(Frame::Op { seq, op })) => {
                    let n = op_bytes(&op);
                    shared.status.locked().bytes_received += n;
                    batch_bytes += n;
                    batch.push((seq, op))
                }
                Ok(Some(Frame::Query { id, query: q })) => {
                    query = Some((id, q));
                    break;
                }
                Ok(Some(other)) => return Err(format!("the primary sent {}", frame_name(&other))),
                Ok(None) => {
                    eof = true;
                    break;
                }
                Err(e) => return Err(format!("reading from the primary: {e}")),
            }
            // Apply and ack what is buffered when nothing more is ready, and at the bounds.
            if batch.len() >= BATCH_OPS_MAX || batch_bytes >= BATCH_BYTES_MAX || !stream.ready() {
                break;
            }
        }
        if !batch.is_empty() {
            take_apply(shared, id, applying);
            let Some(cache) = applying.as_mut() else { return Err("the apply lock was not taken".into()) };
            apply_batch(shared, cache, &mut writer, &mut expected, &batch, level)?;
        }
        if let Some((qid, q)) = query {
            // The end of a reintegration: this stream goes live at the source (PRIM) and is the
            // one the primary mirrors on. With nothing to copy it sent no operation, so it takes
            // the apply role here: else `connected` stayed false until the primary's first write,
            // and a SECOND judges its link by it (mirror/rules.ts linkRule) — it closed the live
            // stream of an idle PRIM after its grace, over and over (the swap to a slow start_prim).
            // Before the reply: the source goes PRIM (and the SECOND looks) only after it.
            if matches!(q, Query::Done) {
                take_apply(shared, id, applying);
            }
            let body = answer(shared, &q);
            shared.status.locked().queries += 1;
            writer.write_all(&wire::reply_frame(qid, &body)).map_err(|e| format!("sending a reply: {e}"))?;
        }
    }
    Ok(())
}

fn frame_name(f: &Frame) -> String {
    match f {
        Frame::Op { seq, .. } => format!("operation {seq}"),
        Frame::Ack { seq } => format!("an ack ({seq})"),
        Frame::Nack { seq, .. } => format!("a refusal ({seq})"),
        Frame::Query { id, .. } => format!("query {id}"),
        Frame::Reply { id, .. } => format!("a reply ({id})"),
    }
}

/// Rough frame size of an operation, for the counters.
fn op_bytes(op: &Op) -> u64 {
    match op {
        Op::Write { data, .. } => data.len() as u64 + 32,
        _ => 64,
    }
}
