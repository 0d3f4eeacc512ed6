//! Rolling upgrade (issue 12, part 5): the replication handshake's versions. A primary and a
//! replica that share a version connect at the newest one both speak, whichever side is older;
//! a version outside a side's range is refused with both versions named, and counted.

use crate::link::{connect, PeerConfig};
use crate::op::Op;
use crate::replica::{Replica, ReplicaConfig};
use crate::wire::{self, version_refusals, Frame, HandshakeError, Protocol, VERSION, VERSION_MIN};
use std::io::Write;
use std::path::PathBuf;

fn replica(tag: &str, protocol: Protocol) -> (Replica, PathBuf) {
    let dir = std::env::temp_dir().join(format!("croft-versions-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = ReplicaConfig::new(&dir, "127.0.0.1:0".parse().unwrap(), b"k".to_vec());
    c.protocol = protocol;
    (Replica::start(c).unwrap(), dir)
}

fn peer(r: &Replica, protocol: Protocol) -> PeerConfig {
    let mut p = PeerConfig::new(r.local_addr(), b"k".to_vec());
    p.protocol = protocol;
    p
}

/// One replicated create through a session opened by the link's connect.
fn replicate(r: &Replica, protocol: Protocol, dir: &std::path::Path, name: &str) -> Result<(), HandshakeError> {
    let s = connect(&peer(r, protocol))?;
    (&s).write_all(&wire::op_frame(1, &Op::Create { path: name.into(), mode: 0o644, uid: 0, gid: 0 })).unwrap();
    let mut rd = &s;
    assert_eq!(wire::read_frame(&mut rd).unwrap(), Some(Frame::Ack { seq: 1 }));
    assert!(dir.join(name).exists());
    Ok(())
}

#[test]
fn lowering_is_bounded_to_what_the_build_speaks() {
    assert_eq!(Protocol::lowered(VERSION_MIN).unwrap(), Protocol { current: VERSION_MIN, min: VERSION_MIN });
    assert!(Protocol::lowered(VERSION + 1).is_err());
    assert!(Protocol::lowered(VERSION_MIN - 1).is_err());
}

#[test]
fn a_new_primary_replicates_to_a_replica_of_the_previous_version() {
    let old = Protocol::lowered(VERSION_MIN).unwrap();
    let (r, dir) = replica("new-to-old", old);
    replicate(&r, Protocol::default(), &dir, "from-new").unwrap();
    let st = r.status();
    // The first connection offered VERSION and was told VERSION_MIN (not a version refusal); the second spoke it.
    assert_eq!((st.sessions, st.refused, st.refused_version), (1, 1, 0), "{st:?}");
    r.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_primary_of_the_previous_version_replicates_to_a_new_replica() {
    let (r, dir) = replica("old-to-new", Protocol::default());
    replicate(&r, Protocol::lowered(VERSION_MIN).unwrap(), &dir, "from-old").unwrap();
    let st = r.status();
    assert_eq!((st.sessions, st.refused, st.refused_version), (1, 0, 0), "{st:?}");
    r.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_primary_older_than_the_replica_accepts_is_refused_and_counted() {
    // A replica that no longer speaks VERSION_MIN (the release after next).
    let (r, dir) = replica("too-old", Protocol { current: VERSION, min: VERSION });
    let e = replicate(&r, Protocol::lowered(VERSION_MIN).unwrap(), &dir, "never").unwrap_err();
    // The primary is told the replica's version, which it cannot speak: refused on its side too.
    assert!(matches!(&e, HandshakeError::Version(m) if m.contains(&format!("speaks mirror protocol version {VERSION}"))), "{e:?}");
    let st = r.status();
    assert_eq!((st.sessions, st.refused_version), (0, 1), "{st:?}");
    assert!(st.last_error.as_deref().unwrap_or("").contains(&format!("protocol version {VERSION_MIN}")), "{st:?}");
    assert!(!dir.join("never").exists());
    r.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replica_older_than_the_primary_accepts_is_refused_and_counted() {
    let (r, dir) = replica("replica-too-old", Protocol::lowered(VERSION_MIN).unwrap());
    let before = version_refusals();
    let e = replicate(&r, Protocol { current: VERSION, min: VERSION }, &dir, "never").unwrap_err();
    assert!(matches!(&e, HandshakeError::Version(m) if m.contains(&format!("the replica speaks mirror protocol version {VERSION_MIN}"))), "{e:?}");
    assert!(version_refusals() > before);
    assert_eq!(r.status().sessions, 0);
    r.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
