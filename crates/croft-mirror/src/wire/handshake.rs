//! The session under the frames.
//!
//! Handshake (the `snow` crate, Noise_NNpsk0 with a 32-byte pre-shared key derived from the
//! cluster key by HKDF-SHA256 with a croft label; no home-made construction):
//!   primary → replica: MAGIC, the version it offers (plain), then Noise message 1 (psk, e)
//!                      whose payload is that version and the ack level
//!   replica → primary: MAGIC, version, then Noise message 2 (e, ee) whose payload is the version
//!   primary → replica: the first sealed record, "ready" (proves the primary completed `ee`:
//!                      a replayed message 1 never gets this far)
//!   replica → primary: a sealed "accepted"
//! Versions (rolling upgrade, see [`Protocol`]): each side speaks `min..=current`. The primary
//! offers its current version; a replica that speaks it echoes it and the session runs at that
//! version. Otherwise the replica answers with its own current version and closes: a primary that
//! also speaks that (older) one connects again offering it (so a new primary works with an old
//! replica, and a new replica accepts an old primary directly); a version outside the range is
//! refused on either side with a message naming both, and counted ([`version_refusals`]).
//! Builds before versions were negotiated spoke exactly 2 and behave as a replica whose range is 2..=2.
//! MAGIC and version are the Noise prologue, so they are authenticated too. Message 1 decrypts
//! only under the same key (the replica refuses the primary otherwise) and message 2 likewise
//! (the primary refuses the replica). Both sides get fresh ephemeral keys, so every session has
//! its own transport keys, and a recorded session cannot be replayed into a new one.
//!
//! After the handshake every byte is sealed: a record is a big-endian u16 length and a Noise
//! transport message (AEAD ciphertext of at most [`super::RECORD_PLAIN_MAX`] bytes and its 16-byte
//! tag), with an implicit counter per direction as its nonce. A flipped, forged, dropped,
//! replayed or reordered record fails authentication: the session ends and the side that saw it
//! counts it ([`Sealed::tampered`]). The frame codec runs on the plaintext of the records.



use hkdf::Hkdf;
use sha2::Sha256;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use super::AckLevel;
use super::seal::{deadline_passed, Sealed};

pub const MAGIC: &[u8; 8] = b"CROFTMIR";
/// The current protocol version: 3 (croft's protocol version, the same number as the heartbeats'
/// `proto`). 3 adds the negotiation; its sessions are 2's otherwise. 2: the Noise session
/// (1 was an HMAC challenge with plaintext frames).
pub const VERSION: u16 = 3;
/// The oldest version this build still speaks (the previous release's, for a rolling upgrade).
pub const VERSION_MIN: u16 = 2;

/// The versions one side speaks: `min..=current`. [`Protocol::default`] is this build's; a node
/// may speak a lower `current` (croft's test-only lowering: `CROFT_TEST_PROTOCOL_VERSION`, read by
/// the daemon, passed down through the binding), never a higher one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    pub current: u16,
    pub min: u16,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol { current: VERSION, min: VERSION_MIN }
    }
}

impl Protocol {
    /// This build speaking `current` as its newest version: Err unless VERSION_MIN ≤ current ≤ VERSION.
    pub fn lowered(current: u16) -> Result<Protocol, String> {
        if !(VERSION_MIN..=VERSION).contains(&current) {
            return Err(format!("protocol version {current} is outside what this build speaks ({VERSION_MIN}..={VERSION})"));
        }
        Ok(Protocol { current, min: VERSION_MIN })
    }

    pub fn accepts(&self, v: u16) -> bool {
        (self.min..=self.current).contains(&v)
    }
}

/// Handshakes refused for their version (either side), since the process started.
static VERSION_REFUSALS: AtomicU64 = AtomicU64::new(0);

/// Handshakes refused because the peer's version is outside this side's range (both sides count).
pub fn version_refusals() -> u64 {
    VERSION_REFUSALS.load(Ordering::Relaxed)
}

fn refuse_version(message: String) -> HandshakeError {
    VERSION_REFUSALS.fetch_add(1, Ordering::Relaxed);
    HandshakeError::Version(message)
}
/// The Noise protocol. ChaCha20-Poly1305 sealed faster than AES-256-GCM on the development
/// machine (one core, 64 KiB records, RustCrypto through snow: 751 against 663 MiB/s).
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// HKDF-SHA256 info label of the pre-shared key (the salt is [`PSK_SALT`]).
const PSK_INFO: &[u8] = b"croft-mirror noise psk v2";
const PSK_SALT: &[u8] = b"croft-mirror";
/// First sealed records of each side, in the handshake.
const READY: &[u8] = b"croft-mirror primary ready";
const ACCEPTED: &[u8] = b"croft-mirror replica accepted";
/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The other side does not hold the key (or is not a croft mirror peer of this version).
    Refused(String),
    /// The peer's protocol version is outside this side's range (counted: [`version_refusals`]).
    Version(String),
    /// The replica speaks an older version this primary also speaks: connect again offering it
    /// (handled by the link's connect; never reaches a caller of it).
    Downgrade(u16),
    Io(io::Error),
}

impl From<io::Error> for HandshakeError {
    fn from(e: io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Refused(m) | HandshakeError::Version(m) => f.write_str(m),
            HandshakeError::Downgrade(v) => write!(f, "the replica speaks the older protocol version {v}"),
            HandshakeError::Io(e) => write!(f, "{e}"),
        }
    }
}

fn noise_err(e: snow::Error) -> HandshakeError {
    HandshakeError::Refused(format!("noise: {e}"))
}

/// The Noise pre-shared key of a cluster key: HKDF-SHA256 (RFC 5869) with croft's salt and label.
pub fn session_psk(key: &[u8]) -> [u8; 32] {
    let mut psk = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length (at most 255 × 32).
    if Hkdf::<Sha256>::new(Some(PSK_SALT), key).expand(PSK_INFO, &mut psk).is_err() {
        unreachable!("HKDF-SHA256 expands to 32 bytes");
    }
    psk
}

fn prologue(version: u16) -> [u8; 10] {
    let mut p = [0u8; 10];
    p[..8].copy_from_slice(MAGIC);
    p[8..].copy_from_slice(&version.to_le_bytes());
    p
}

pub(super) fn noise(key: &[u8], initiator: bool, version: u16) -> Result<snow::HandshakeState, HandshakeError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().map_err(noise_err)?;
    let psk = session_psk(key);
    let prologue = prologue(version);
    let b = snow::Builder::new(params).psk(0, &psk).map_err(noise_err)?.prologue(&prologue).map_err(noise_err)?;
    if initiator { b.build_initiator() } else { b.build_responder() }.map_err(noise_err)
}

/// `read_exact` that ends at `deadline` in total, however slowly the peer sends.
fn read_exact_by(s: &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(deadline_passed());
        }
        s.set_read_timeout(Some(left))?;
        match (&*s).read(&mut buf[got..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(deadline_passed())
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all_by(s: &TcpStream, buf: &[u8], deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(deadline_passed());
    }
    s.set_write_timeout(Some(left))?;
    (&*s).write_all(buf)
}

/// Reads the peer's MAGIC and version.
fn read_prologue(s: &TcpStream, deadline: Instant, peer: &str) -> Result<u16, HandshakeError> {
    let mut p = [0u8; 10];
    match read_exact_by(s, &mut p, deadline) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(HandshakeError::Refused(format!("the {peer} closed the connection: wrong key?")))
        }
        Err(e) => return Err(e.into()),
    }
    if &p[..8] != MAGIC {
        return Err(HandshakeError::Refused("not a croft mirror peer (bad magic)".into()));
    }
    Ok(u16::from_le_bytes([p[8], p[9]]))
}

fn read_message(s: &TcpStream, deadline: Instant, peer: &str) -> Result<Vec<u8>, HandshakeError> {
    let mut len = [0u8; 2];
    let r = read_exact_by(s, &mut len, deadline).and_then(|()| {
        let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
        read_exact_by(s, &mut m, deadline).map(|()| m)
    });
    match r {
        Ok(m) => Ok(m),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(HandshakeError::Refused(format!("the {peer} closed the connection: wrong key?")))
        }
        Err(e) => Err(e.into()),
    }
}

fn framed(m: &[u8]) -> Vec<u8> {
    let mut v = (m.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(m);
    v
}

/// The primary's side of the handshake with this build's versions, offering the current one.
pub fn handshake_primary(stream: TcpStream, key: &[u8], level: AckLevel, deadline: Instant) -> Result<Sealed, HandshakeError> {
    handshake_primary_at(stream, key, level, deadline, Protocol::default(), VERSION)
}

/// The primary's side, within `deadline` in total, offering `offer` (its current version, or the
/// older one a replica answered with: [`HandshakeError::Downgrade`]). The stream is then sealed.
pub fn handshake_primary_at(
    stream: TcpStream, key: &[u8], level: AckLevel, deadline: Instant, proto: Protocol, offer: u16,
) -> Result<Sealed, HandshakeError> {
    let mut hs = noise(key, true, offer)?;
    let mut msg = [0u8; 256];
    let mut payload = offer.to_le_bytes().to_vec();
    payload.push(level.byte());
    let n = hs.write_message(&payload, &mut msg).map_err(noise_err)?;
    let mut out = prologue(offer).to_vec();
    out.extend(framed(&msg[..n]));
    write_all_by(&stream, &out, deadline)?;
    let theirs = read_prologue(&stream, deadline, "replica")?;
    if theirs != offer {
        if theirs < offer && proto.accepts(theirs) {
            return Err(HandshakeError::Downgrade(theirs));
        }
        return Err(refuse_version(format!(
            "the replica speaks mirror protocol version {theirs}, this node {}..={} (offered {offer}): \
             upgrade the older node (README: rolling upgrade)",
            proto.min, proto.current
        )));
    }
    let m2 = read_message(&stream, deadline, "replica")?;
    let mut p = [0u8; 256];
    let n = hs
        .read_message(&m2, &mut p)
        .map_err(|_| HandshakeError::Refused("the replica does not hold the cluster key".into()))?;
    if p[..n] != offer.to_le_bytes() {
        return Err(HandshakeError::Refused("the replica's handshake payload is not this version's".into()));
    }
    let sealed = Sealed::new(stream, hs.into_stateless_transport_mode().map_err(noise_err)?);
    sealed.set_read_deadline(Some(deadline));
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    sealed.set_write_timeout(Some(left))?;
    (&sealed).write_all(READY)?;
    let mut accepted = [0u8; ACCEPTED.len()];
    match (&sealed).read_exact(&mut accepted) {
        Ok(()) if accepted == ACCEPTED => {}
        Ok(()) => return Err(HandshakeError::Refused("the replica did not accept the session".into())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(HandshakeError::Refused("the replica closed the connection instead of accepting".into()))
        }
        Err(e) if sealed.tampered() => return Err(HandshakeError::Refused(format!("the replica's acceptance: {e}"))),
        Err(e) => return Err(e.into()),
    }
    sealed.set_read_deadline(None);
    Ok(sealed)
}

/// The replica's side with this build's versions.
pub fn handshake_replica(stream: TcpStream, key: &[u8], deadline: Instant) -> Result<(Sealed, AckLevel), HandshakeError> {
    handshake_replica_at(stream, key, deadline, Protocol::default())
}

/// The replica's side, within `deadline` in total: the sealed stream and the ack level the
/// primary asked for. The session is authenticated only once the primary's first sealed record
/// opened (a replayed first message never gets there). A primary's offer within `proto` is
/// echoed and spoken; otherwise this side's current version is sent back and the connection ends.
pub fn handshake_replica_at(stream: TcpStream, key: &[u8], deadline: Instant, proto: Protocol) -> Result<(Sealed, AckLevel), HandshakeError> {
    let offered = read_prologue(&stream, deadline, "primary");
    let version = match offered {
        Ok(v) if proto.accepts(v) => v,
        _ => proto.current,
    };
    // Our prologue in any case: a primary of another version learns which one we speak.
    if !matches!(offered, Err(HandshakeError::Io(_))) {
        write_all_by(&stream, &prologue(version), deadline)?;
    }
    let offered = offered?;
    if offered < proto.min {
        return Err(refuse_version(format!(
            "the primary speaks mirror protocol version {offered}, this node {}..={}: upgrade the older node (README: rolling upgrade)",
            proto.min, proto.current
        )));
    }
    if offered > proto.current {
        // A newer primary: it connects again offering ours if it still speaks it (it counts a refusal otherwise).
        return Err(HandshakeError::Refused(format!(
            "the primary offered protocol version {offered}, newer than this node's {}: told it {}",
            proto.current, proto.current
        )));
    }
    let m1 = read_message(&stream, deadline, "primary")?;
    let mut hs = noise(key, false, version)?;
    let mut p = [0u8; 256];
    let n = hs
        .read_message(&m1, &mut p)
        .map_err(|_| HandshakeError::Refused("the primary does not hold the cluster key".into()))?;
    if n != 3 || p[..2] != version.to_le_bytes() {
        return Err(HandshakeError::Refused("the primary's handshake payload is not this version's".into()));
    }
    let level = AckLevel::from_byte(p[2]).ok_or_else(|| HandshakeError::Refused(format!("unknown ack level {}", p[2])))?;
    let mut msg = [0u8; 256];
    let n = hs.write_message(&version.to_le_bytes(), &mut msg).map_err(noise_err)?;
    write_all_by(&stream, &framed(&msg[..n]), deadline)?;
    let sealed = Sealed::new(stream, hs.into_stateless_transport_mode().map_err(noise_err)?);
    sealed.set_read_deadline(Some(deadline));
    let mut ready = [0u8; READY.len()];
    match (&sealed).read_exact(&mut ready) {
        Ok(()) if ready == READY => {}
        Ok(()) => return Err(HandshakeError::Refused("the primary's first record is not ready".into())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(HandshakeError::Refused("the primary closed the connection in the handshake".into()))
        }
        Err(e) if sealed.tampered() => return Err(HandshakeError::Refused(format!("the primary's first record: {e}"))),
        Err(e) => return Err(e.into()),
    }
    sealed.set_read_deadline(None);
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    sealed.set_write_timeout(Some(left))?;
    (&sealed).write_all(ACCEPTED)?;
    Ok((sealed, level))
}
