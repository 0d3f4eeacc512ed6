//! Verify: compares both trees (entries, metadata, zone checksums) through a query-only
//! session while the mirror is connected and settled.

use super::query::QueryClient;
use super::{Core, ReintError, VerifyReport, VERIFY_DIFFERENCES_MAX};
use crate::link::PeerConfig;
use crate::sync::{self, EntryInfo};
use crate::wire::Query;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use crate::locks::Locked;

impl Core {
    pub(crate) fn verify(&self, peer: &PeerConfig, zone_bytes: u64) -> Result<VerifyReport, ReintError> {
        let mut client = QueryClient::connect(peer)?;
        let mut report = VerifyReport::default();
        let diff = |report: &mut VerifyReport, p: &Path, what: String| {
            report.differences_total += 1;
            if report.differences.len() < VERIFY_DIFFERENCES_MAX {
                report.differences.push((p.to_path_buf(), what));
            }
        };
        let mut stack = vec![PathBuf::new()];
        while let Some(d) = stack.pop() {
            let (local, remote) = {
                let _g = self.order.locked();
                self.settled()?;
                let local = sync::list_infos(&self.dir, &d).map_err(ReintError::local("listing", &d))?;
                let remote = sync::decode_infos(&client.query(&Query::ListDir { path: d.clone() })?)
                    .map_err(|e| ReintError::Peer(format!("listing {d:?} on the peer: {e}")))?;
                (local, remote)
            };
            // Excluded paths differ by design: compared on neither side.
            let kept = |i: &EntryInfo| !self.repl.exclude.covers(&d.join(OsStr::from_bytes(&i.name)));
            let local: Vec<EntryInfo> = local.into_iter().filter(kept).collect();
            let remote: BTreeMap<Vec<u8>, EntryInfo> = remote.into_iter().filter(kept).map(|i| (i.name.clone(), i)).collect();
            let names: BTreeSet<&[u8]> = local.iter().map(|i| i.name.as_slice()).collect();
            for name in remote.keys() {
                if !names.contains(name.as_slice()) {
                    diff(&mut report, &d.join(OsStr::from_bytes(name)), "only on the peer".into());
                }
            }
            for li in &local {
                let p = d.join(OsStr::from_bytes(&li.name));
                report.entries_compared += 1;
                let Some(r) = remote.get(&li.name) else {
                    diff(&mut report, &p, "missing on the peer".into());
                    continue;
                };
                if let Some(what) = meta_difference(li, r) {
                    diff(&mut report, &p, what);
                    continue;
                }
                match li.kind() {
                    libc::S_IFDIR => stack.push(p),
                    libc::S_IFREG => {
                        let _g = self.order.locked();
                        self.settled()?;
                        let mine = sync::checksums(&self.dir, &p, zone_bytes);
                        let theirs = sync::decode_sums(&client.query(&Query::Checksums { path: p.clone(), zone_bytes })?);
                        match (mine, theirs) {
                            (Ok((sa, a)), Ok((sb, b))) => {
                                report.bytes_compared += sa;
                                if sa != sb {
                                    diff(&mut report, &p, format!("size {sa} here, {sb} on the peer"));
                                } else if let Some(i) = (0..a.len()).find(|&i| a.get(i) != b.get(i)) {
                                    diff(&mut report, &p, format!("content differs from byte {}", i as u64 * zone_bytes));
                                }
                            }
                            (Err(e), _) => diff(&mut report, &p, format!("cannot checksum here: {e}")),
                            (_, Err(e)) => diff(&mut report, &p, format!("cannot checksum on the peer: {e}")),
                        }
                    }
                    _ => {}
                }
            }
        }
        report.identical = report.differences_total == 0;
        Ok(report)
    }

    /// The caller holds the order lock: waits until the peer acknowledged everything sent.
    pub(super) fn settled(&self) -> Result<(), ReintError> {
        if self.repl.all_acked() {
            Ok(())
        } else {
            Err(ReintError::NotSettled)
        }
    }
}

/// What verify reports for one entry (times are not compared: a running mirror's replica sets
/// its own directory times).
pub(super) fn meta_difference(a: &EntryInfo, b: &EntryInfo) -> Option<String> {
    if a.kind() != b.kind() {
        return Some(format!("type {:o} here, {:o} on the peer", a.kind(), b.kind()));
    }
    if a.kind() == libc::S_IFREG && a.size != b.size {
        return Some(format!("size {} here, {} on the peer", a.size, b.size));
    }
    if a.mode != b.mode {
        return Some(format!("mode {:o} here, {:o} on the peer", a.mode & 0o7777, b.mode & 0o7777));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        return Some(format!("owner {}:{} here, {}:{} on the peer", a.uid, a.gid, b.uid, b.gid));
    }
    if a.target != b.target {
        return Some("symlink target differs".into());
    }
    if a.rdev != b.rdev {
        return Some("device number differs".into());
    }
    if a.xattrs != b.xattrs {
        return Some("xattrs differ".into());
    }
    None
}
