//! The replication stream: a mutual challenge/response handshake over a shared key, then
//! length-prefixed frames. Primary → replica: operations with their sequence number. Replica →
//! primary: cumulative acknowledgements ("everything up to seq N is applied", at the ack level
//! agreed in the handshake) or a refusal of one operation, after which the replica closes.
//!
//! Handshake (both sides prove the key, neither reveals it; HMAC-SHA256, RFC 2104):
//!   primary → replica: MAGIC, version, nonce_p (32 random bytes)
//!   replica → primary: MAGIC, version, nonce_r, HMAC(key, "croft-mirror replica" ‖ nonce_p ‖ nonce_r)
//!   primary → replica: HMAC(key, "croft-mirror primary" ‖ nonce_r ‖ nonce_p), ack level
//!   replica → primary: 1 (accepted) — or the replica closes the connection.
//! The two labels differ, so a proof obtained from one side can never be replayed as the other's.
//! Frames are not encrypted or individually authenticated: run the link on a trusted LAN.

use crate::op::{Dec, Enc, Op};
use std::path::PathBuf;
use crate::sys;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 8] = b"CROFTMIR";
pub const VERSION: u16 = 1;
const NONCE_BYTES: usize = 32;
const PROOF_BYTES: usize = 32;
/// A frame larger than this is a protocol error: FUSE writes are at most 1 MiB (max_pages), so
/// this bounds what a peer can make us allocate.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

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
            3 => Query::Checksums { path: d.path()?, zone_bytes: d.u64()? },
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

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The other side does not hold the key (or is not a croft mirror peer).
    Refused(String),
    Io(io::Error),
}

impl From<io::Error> for HandshakeError {
    fn from(e: io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

fn proof(key: &[u8], label: &[u8], a: &[u8], b: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.update(a);
    mac.update(b);
    mac
}

fn read_hello<S: Read>(s: &mut S) -> Result<[u8; NONCE_BYTES], HandshakeError> {
    let mut hello = [0u8; 8 + 2 + NONCE_BYTES];
    s.read_exact(&mut hello)?;
    if &hello[..8] != MAGIC {
        return Err(HandshakeError::Refused("not a croft mirror peer (bad magic)".into()));
    }
    let version = u16::from_le_bytes([hello[8], hello[9]]);
    if version != VERSION {
        return Err(HandshakeError::Refused(format!(
            "protocol version {version}, this side speaks {VERSION}"
        )));
    }
    Ok(hello[10..].try_into().unwrap())
}

fn hello(nonce: &[u8; NONCE_BYTES]) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&VERSION.to_le_bytes());
    v.extend_from_slice(nonce);
    v
}

fn nonce() -> io::Result<[u8; NONCE_BYTES]> {
    let mut n = [0u8; NONCE_BYTES];
    sys::random_bytes(&mut n)?;
    Ok(n)
}

/// The primary's side of the handshake.
pub fn handshake_primary<S: Read + Write>(s: &mut S, key: &[u8], level: AckLevel) -> Result<(), HandshakeError> {
    let nonce_p = nonce()?;
    s.write_all(&hello(&nonce_p))?;
    let nonce_r = read_hello(s)?;
    let mut their = [0u8; PROOF_BYTES];
    s.read_exact(&mut their)?;
    proof(key, b"croft-mirror replica", &nonce_p, &nonce_r)
        .verify_slice(&their)
        .map_err(|_| HandshakeError::Refused("the replica does not hold the cluster key".into()))?;
    let mut msg = proof(key, b"croft-mirror primary", &nonce_r, &nonce_p).finalize().into_bytes().to_vec();
    msg.push(level.byte());
    s.write_all(&msg)?;
    let mut accepted = [0u8; 1];
    match s.read_exact(&mut accepted) {
        Ok(()) if accepted[0] == 1 => Ok(()),
        Ok(()) => Err(HandshakeError::Refused("the replica refused the session".into())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(HandshakeError::Refused("the replica closed the connection: wrong key?".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The replica's side: returns the ack level the primary asked for.
pub fn handshake_replica<S: Read + Write>(s: &mut S, key: &[u8]) -> Result<AckLevel, HandshakeError> {
    let nonce_p = read_hello(s)?;
    let nonce_r = nonce()?;
    let mut msg = hello(&nonce_r);
    msg.extend_from_slice(&proof(key, b"croft-mirror replica", &nonce_p, &nonce_r).finalize().into_bytes());
    s.write_all(&msg)?;
    let mut their = [0u8; PROOF_BYTES + 1];
    s.read_exact(&mut their)?;
    proof(key, b"croft-mirror primary", &nonce_r, &nonce_p)
        .verify_slice(&their[..PROOF_BYTES])
        .map_err(|_| HandshakeError::Refused("the primary does not hold the cluster key".into()))?;
    let level = AckLevel::from_byte(their[PROOF_BYTES])
        .ok_or_else(|| HandshakeError::Refused(format!("unknown ack level {}", their[PROOF_BYTES])))?;
    s.write_all(&[1])?;
    Ok(level)
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
    buf.extend_from_slice(&[0, 0, 0, 0, KIND_OP]);
    buf.extend_from_slice(&seq.to_le_bytes());
    op.encode(&mut buf);
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf
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

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame<R: Read>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if !(9..=FRAME_BYTES_MAX).contains(&len) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let seq = u64::from_le_bytes(body[1..9].try_into().unwrap());
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    match body[0] {
        KIND_OP => Ok(Some(Frame::Op { seq, op: Op::decode(&body[9..]).map_err(bad)? })),
        KIND_ACK if len == 9 => Ok(Some(Frame::Ack { seq })),
        KIND_NACK if len >= 13 => Ok(Some(Frame::Nack {
            seq,
            errno: u32::from_le_bytes(body[9..13].try_into().unwrap()) as i32,
            message: String::from_utf8_lossy(&body[13..]).into_owned(),
        })),
        KIND_QUERY => Ok(Some(Frame::Query { id: seq, query: Query::decode(&body[9..]).map_err(bad)? })),
        KIND_REPLY => Ok(Some(Frame::Reply { id: seq, body: body[9..].to_vec() })),
        k => Err(bad(format!("unknown frame kind {k} ({len} bytes)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::thread;

    #[test]
    fn frames_round_trip() {
        let op = Op::Write { path: "x".into(), offset: 3, data: vec![9; 100] };
        let mut bytes = op_frame(42, &op);
        bytes.extend(ack_frame(41));
        bytes.extend(nack_frame(43, 2, "no such file"));
        let mut r = &bytes[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some(Frame::Op { seq: 42, op }));
        assert_eq!(read_frame(&mut r).unwrap(), Some(Frame::Ack { seq: 41 }));
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some(Frame::Nack { seq: 43, errno: 2, message: "no such file".into() })
        );
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }

    fn run(key_p: &'static [u8], key_r: &'static [u8]) -> (Result<(), HandshakeError>, Result<AckLevel, HandshakeError>) {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = thread::spawn(move || {
            let r = handshake_replica(&mut b, key_r);
            drop(b); // a refusing replica closes
            r
        });
        let p = handshake_primary(&mut a, key_p, AckLevel::Durable);
        drop(a); // a refusing primary closes too
        (p, t.join().unwrap())
    }

    #[test]
    fn same_key_is_accepted_both_ways() {
        let (p, r) = run(b"k1", b"k1");
        assert!(p.is_ok());
        assert_eq!(r.unwrap(), AckLevel::Durable);
    }

    #[test]
    fn a_different_key_is_refused_by_both_sides() {
        let (p, r) = run(b"k1", b"k2");
        // The primary sees the replica's proof fail and never sends its own.
        assert!(matches!(p, Err(HandshakeError::Refused(_))), "{p:?}");
        assert!(r.is_err());
    }
}
