//! The replication stream: a Noise session keyed by the cluster key, then length-prefixed frames
//! inside it. Primary → replica: operations with their sequence number. Replica → primary:
//! cumulative acknowledgements ("everything up to seq N is applied", at the ack level agreed in
//! the handshake) or a refusal of one operation, after which the replica closes.
//!
//! [`seal`] holds the session: the Noise handshake and the sealed records (see there); this
//! file the frames that run on the plaintext of the records.

mod handshake;
mod seal;
#[cfg(test)]
mod tests;

pub use handshake::{
    handshake_primary, handshake_primary_at, handshake_replica, handshake_replica_at, session_psk, version_refusals,
    HandshakeError, Protocol, MAGIC, NOISE_PARAMS, VERSION, VERSION_MIN,
};
pub use seal::{
    is_tampered, set_keepalive, Sealed, Tampered,
    RECORD_BYTES_MAX, RECORD_PLAIN_MAX,
};
use crate::codec::{Dec, Enc};
use crate::op::Op;
use std::io::{self, Read};
use std::path::PathBuf;

/// A frame larger than this is a protocol error: it bounds what a peer can make us allocate.
/// Only a directory's name list (an `Op::SyncDir` of a reintegration) or a listing reply is
/// that large; data frames are bounded by [`WRITE_FRAME_BYTES_MAX`].
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// An operation frame carrying data (`Op::Write`) larger than this is a protocol error, refused
/// before anything is allocated: FUSE writes are at most 1 MiB (max_pages) and reintegration
/// sends 1 MiB chunks, so 4 MiB leaves a margin for the path and the header.
pub const WRITE_FRAME_BYTES_MAX: usize = 4 << 20;
/// The tag `Op::encode` gives a write (checked by a test).
const OP_TAG_WRITE: u8 = 1;
/// Smallest and largest checksum zone a query may ask for (a zero zone would divide by zero, a
/// tiny one would make the answer huge).
pub const QUERY_ZONE_BYTES_MIN: u64 = 512;
pub const QUERY_ZONE_BYTES_MAX: u64 = 1 << 30;

const KIND_OP: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_NACK: u8 = 3;
const KIND_QUERY: u8 = 4;
const KIND_REPLY: u8 = 5;

/// A question from the primary to the replica, answered in stream order (after every operation
/// sent before it is applied) by a [`Frame::Reply`] with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The replica's own dirty log (a node that was primary before it crashed).
    DirtyEntries,
    /// The entries of a directory with their lstat, symlink target and xattrs.
    ListDir { path: PathBuf },
    /// Size and per-zone checksums of a regular file.
    Checksums { path: PathBuf, zone_bytes: u64 },
    /// The reintegration into this replica is complete: clear its dirty log.
    Done,
}

impl Query {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Enc(out);
        match self {
            Query::DirtyEntries => e.u8(1),
            Query::ListDir { path } => {
                e.u8(2);
                e.path(path);
            }
            Query::Checksums { path, zone_bytes } => {
                e.u8(3);
                e.path(path);
                e.u64(*zone_bytes);
            }
            Query::Done => e.u8(4),
        }
    }

    fn decode(buf: &[u8]) -> Result<Query, String> {
        let mut d = Dec { buf, pos: 0 };
        let q = match d.u8()? {
            1 => Query::DirtyEntries,
            2 => Query::ListDir { path: d.path()? },
            3 => {
                let path = d.path()?;
                let zone_bytes = d.u64()?;
                if !(QUERY_ZONE_BYTES_MIN..=QUERY_ZONE_BYTES_MAX).contains(&zone_bytes) {
                    return Err(format!("checksum zone of {zone_bytes} bytes"));
                }
                Query::Checksums { path, zone_bytes }
            }
            4 => Query::Done,
            t => return Err(format!("unknown query tag {t}")),
        };
        if !d.done() {
            return Err("trailing bytes after a query".into());
        }
        if let Query::ListDir { path } | Query::Checksums { path, .. } = &q {
            if !path.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
                return Err(format!("path {path:?} is not a plain relative path"));
            }
        }
        Ok(q)
    }
}

pub fn query_frame(id: u64, q: &Query) -> Vec<u8> {
    let mut buf = vec![0, 0, 0, 0, KIND_QUERY];
    buf.extend_from_slice(&id.to_le_bytes());
    q.encode(&mut buf);
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf
}

pub fn reply_frame(id: u64, body: &[u8]) -> Vec<u8> {
    let mut buf = vec![0, 0, 0, 0, KIND_REPLY];
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(body);
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf
}

/// How far the replica has taken an operation before it acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckLevel {
    /// Applied to the replica's files (its page cache): survives the primary's crash, not a
    /// power loss of both.
    Received,
    /// Applied and fsync'd (the file, or the parent directory for a namespace change).
    Durable,
}

impl AckLevel {
    fn byte(self) -> u8 {
        match self {
            AckLevel::Received => 1,
            AckLevel::Durable => 2,
        }
    }
    fn from_byte(b: u8) -> Option<AckLevel> {
        match b {
            1 => Some(AckLevel::Received),
            2 => Some(AckLevel::Durable),
            _ => None,
        }
    }
}

/// A decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Op { seq: u64, op: Op },
    /// Every operation up to and including `seq` reached the agreed ack level.
    Ack { seq: u64 },
    /// The replica could not apply operation `seq`: the two trees now differ.
    Nack { seq: u64, errno: i32, message: String },
    Query { id: u64, query: Query },
    Reply { id: u64, body: Vec<u8> },
}

/// Encodes an operation frame directly (no intermediate `Frame`, the data is copied once).
pub fn op_frame(seq: u64, op: &Op) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    encode_op_frame(&mut buf, seq, op);
    buf
}

/// Appends an operation frame to `buf` (a buffer reused across calls).
pub fn encode_op_frame(buf: &mut Vec<u8>, seq: u64, op: &Op) {
    let at = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0, KIND_OP]);
    buf.extend_from_slice(&seq.to_le_bytes());
    op.encode(buf);
    let len = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

pub fn ack_frame(seq: u64) -> Vec<u8> {
    let mut buf = 9u32.to_le_bytes().to_vec();
    buf.push(KIND_ACK);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf
}

pub fn nack_frame(seq: u64, errno: i32, message: &str) -> Vec<u8> {
    let mut buf = vec![0, 0, 0, 0, KIND_NACK];
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&(errno as u32).to_le_bytes());
    buf.extend_from_slice(message.as_bytes());
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf
}

/// Reads one frame; `Ok(None)` at a clean end of stream. Any malformed frame is an
/// `InvalidData` error (never a panic); the body is allocated as it arrives, never ahead of it.
pub fn read_frame<R: Read>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let len = u32::from_le_bytes(len) as usize;
    if !(9..=FRAME_BYTES_MAX).contains(&len) {
        return Err(bad(format!("frame of {len} bytes")));
    }
    // Kind, sequence number and (for an operation) its tag first: a write frame's size is
    // checked against its own, smaller bound before the body is read.
    let mut head = [0u8; 10];
    let first = len.min(head.len());
    r.read_exact(&mut head[..first])?;
    if head[0] == KIND_OP && first == 10 && head[9] == OP_TAG_WRITE && len > WRITE_FRAME_BYTES_MAX {
        return Err(bad(format!("write frame of {len} bytes (at most {WRITE_FRAME_BYTES_MAX})")));
    }
    let mut body = Vec::with_capacity(len.min(64 << 10));
    body.extend_from_slice(&head[..first]);
    while body.len() < len {
        if body.len() >= body.capacity() {
            // Doubling as the bytes arrive: a length alone never allocates its size.
            let target = (body.capacity() * 2).max(64 << 10).min(len);
            body.reserve_exact(target - body.len());
        }
        let at = body.len();
        let upto = body.capacity().min(len);
        body.resize(upto, 0);
        r.read_exact(&mut body[at..upto])?;
    }
    let seq = u64::from_le_bytes([body[1], body[2], body[3], body[4], body[5], body[6], body[7], body[8]]);
    match body[0] {
        KIND_OP => Ok(Some(Frame::Op { seq, op: Op::decode(&body[9..]).map_err(bad)? })),
        KIND_ACK if len == 9 => Ok(Some(Frame::Ack { seq })),
        KIND_NACK if len >= 13 => Ok(Some(Frame::Nack {
            seq,
            errno: u32::from_le_bytes([body[9], body[10], body[11], body[12]]) as i32,
            message: String::from_utf8_lossy(&body[13..]).into_owned(),
        })),
        KIND_QUERY => Ok(Some(Frame::Query { id: seq, query: Query::decode(&body[9..]).map_err(bad)? })),
        KIND_REPLY => Ok(Some(Frame::Reply { id: seq, body: body[9..].to_vec() })),
        k => Err(bad(format!("unknown frame kind {k} ({len} bytes)"))),
    }
}
