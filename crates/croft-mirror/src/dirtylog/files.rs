//! The log's files: the snapshot and the log, their headers and records (`[len u32][crc32c
//! u32][payload]`), replay at open, and the atomic replacement of both at a compaction.

use super::zones::{FileDirt, Rec};
use super::{ZONE_BYTES_MAX, ZONE_BYTES_MIN};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const SNAP_NAME: &str = "dirty.snap";
const LOG_NAME: &str = "dirty.log";
const SNAP_MAGIC: &[u8; 8] = b"CROFTDS1";
const LOG_MAGIC: &[u8; 8] = b"CROFTDL1";
const SNAP_HEADER_BYTES: usize = 8 + 8 + 8 + 8 + 8 + 4;
pub(super) const LOG_HEADER_BYTES: usize = 8 + 8 + 8 + 4;
const SNAP_TRUSTED: u64 = 1;
/// kind u8, a u64, b u64, then the path's bytes.
const PAYLOAD_FIXED_BYTES: usize = 1 + 8 + 8;
/// A record longer than this is garbage (paths are at most PATH_MAX = 4096 bytes on Linux).
const PAYLOAD_BYTES_MAX: usize = PAYLOAD_FIXED_BYTES + 64 * 1024;

const KIND_ZONES: u8 = 1;
const KIND_TO_END: u8 = 2;
const KIND_ENTRY: u8 = 3;

pub(super) struct Loaded {
    pub(super) files: HashMap<PathBuf, FileDirt>,
    pub(super) trusted: bool,
    pub(super) generation: u64,
    pub(super) records: u64,
    pub(super) ignored_tail_bytes: u64,
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the snapshot and the log of the same generation. Never fails on content (a bad file
/// makes the result untrustworthy); fails only when the files cannot be read.
pub(super) fn load(dir: &Path, zone_bytes: u64) -> io::Result<Loaded> {
    let snap = read_optional(&dir.join(SNAP_NAME))?;
    let log = read_optional(&dir.join(LOG_NAME))?;
    let mut out = Loaded { files: HashMap::new(), trusted: false, generation: 0, records: 0, ignored_tail_bytes: 0 };
    let apply = |out: &mut Loaded, path: PathBuf, rec: Rec, from_zone: u64| {
        out.files.entry(path).or_default().apply(rec.rezone(from_zone, zone_bytes), zone_bytes);
        out.records += 1;
    };
    let Some(snap) = snap else {
        // No snapshot: a first start, a lost directory, or a log that failed and said so.
        if let Some(log) = log {
            if let Some((z, gen)) = parse_log_header(&log) {
                out.generation = gen;
                let (recs, _) = parse_records(&log[LOG_HEADER_BYTES..]);
                for (p, r) in recs {
                    apply(&mut out, p, r, z);
                }
            }
        }
        return Ok(out);
    };
    let Some((snap_zone, generation, flags, count)) = parse_snap_header(&snap) else {
        return Ok(out);
    };
    out.generation = generation;
    let (recs, rest) = parse_records(&snap[SNAP_HEADER_BYTES..]);
    let snap_ok = recs.len() as u64 == count && rest == 0;
    for (p, r) in recs {
        apply(&mut out, p, r, snap_zone);
    }
    let mut log_ok = false;
    if let Some(log) = log {
        if let Some((z, gen)) = parse_log_header(&log) {
            out.generation = out.generation.max(gen);
            if gen == generation {
                let (recs, rest) = parse_records(&log[LOG_HEADER_BYTES..]);
                for (p, r) in recs {
                    apply(&mut out, p, r, z);
                }
                out.ignored_tail_bytes = rest as u64;
                log_ok = true;
            } else {
                // An older log: a compaction wrote the snapshot and stopped before replacing
                // the log, whose records the snapshot holds. A newer one cannot happen.
                log_ok = gen < generation;
            }
        }
    }
    out.trusted = snap_ok && log_ok && flags & SNAP_TRUSTED != 0;
    Ok(out)
}

fn parse_snap_header(b: &[u8]) -> Option<(u64, u64, u64, u64)> {
    if b.len() < SNAP_HEADER_BYTES || &b[..8] != SNAP_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[40..44].try_into().unwrap());
    if crc32c(&b[..40]) != crc {
        return None;
    }
    let z = u64_at(b, 8);
    if !(ZONE_BYTES_MIN..=ZONE_BYTES_MAX).contains(&z) || !z.is_power_of_two() {
        return None;
    }
    Some((z, u64_at(b, 16), u64_at(b, 24), u64_at(b, 32)))
}

fn parse_log_header(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() < LOG_HEADER_BYTES || &b[..8] != LOG_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[24..28].try_into().unwrap());
    if crc32c(&b[..24]) != crc {
        return None;
    }
    let z = u64_at(b, 8);
    if !(ZONE_BYTES_MIN..=ZONE_BYTES_MAX).contains(&z) || !z.is_power_of_two() {
        return None;
    }
    Some((z, u64_at(b, 16)))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The valid records from the start, and how many bytes after them were not (a torn tail).
fn parse_records(mut b: &[u8]) -> (Vec<(PathBuf, Rec)>, usize) {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(b[4..8].try_into().unwrap());
        if !(PAYLOAD_FIXED_BYTES..=PAYLOAD_BYTES_MAX).contains(&len) || b.len() < 8 + len {
            break;
        }
        let p = &b[8..8 + len];
        if crc32c(p) != crc {
            break;
        }
        let (a, bb) = (u64_at(p, 1), u64_at(p, 9));
        let rec = match p[0] {
            KIND_ZONES if a <= bb => Rec::Zones { first: a, last: bb },
            KIND_TO_END => Rec::ToEnd { offset: a },
            KIND_ENTRY => Rec::Entry,
            _ => break,
        };
        out.push((PathBuf::from(OsStr::from_bytes(&p[PAYLOAD_FIXED_BYTES..])), rec));
        b = &b[8 + len..];
    }
    (out, b.len())
}

pub(super) fn encode_record(out: &mut Vec<u8>, path: &Path, rec: Rec) {
    let name = path.as_os_str().as_bytes();
    assert!(name.len() <= PAYLOAD_BYTES_MAX - PAYLOAD_FIXED_BYTES, "path of {} bytes", name.len());
    let (kind, a, b) = match rec {
        Rec::Zones { first, last } => (KIND_ZONES, first, last),
        Rec::ToEnd { offset } => (KIND_TO_END, offset, 0),
        Rec::Entry => (KIND_ENTRY, 0, 0),
    };
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    out.push(kind);
    out.extend_from_slice(&a.to_le_bytes());
    out.extend_from_slice(&b.to_le_bytes());
    out.extend_from_slice(name);
    let len = out.len() - start - 8;
    let crc = crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically: temp file, fsync, rename, fsync of the directory.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// A snapshot of `files` at `generation`, then an empty log of the same generation, each
/// replaced atomically and in this order (a crash between the two leaves a newer snapshot and
/// an older log, whose records the snapshot holds). Returns the snapshot's size and the new
/// log, open for appending.
pub(super) fn write_snapshot_and_log(
    dir: &Path,
    zone_bytes: u64,
    generation: u64,
    trusted: bool,
    files: &HashMap<PathBuf, FileDirt>,
) -> io::Result<(u64, File)> {
    let mut body = Vec::new();
    let mut count = 0u64;
    for (path, d) in files {
        for rec in d.records() {
            encode_record(&mut body, path, rec);
            count += 1;
        }
    }
    let mut snap = Vec::with_capacity(SNAP_HEADER_BYTES + body.len());
    snap.extend_from_slice(SNAP_MAGIC);
    snap.extend_from_slice(&zone_bytes.to_le_bytes());
    snap.extend_from_slice(&generation.to_le_bytes());
    snap.extend_from_slice(&(if trusted { SNAP_TRUSTED } else { 0 }).to_le_bytes());
    snap.extend_from_slice(&count.to_le_bytes());
    snap.extend_from_slice(&crc32c(&snap).to_le_bytes());
    snap.extend_from_slice(&body);
    replace_file(dir, SNAP_NAME, &snap)?;

    let mut log = Vec::with_capacity(LOG_HEADER_BYTES);
    log.extend_from_slice(LOG_MAGIC);
    log.extend_from_slice(&zone_bytes.to_le_bytes());
    log.extend_from_slice(&generation.to_le_bytes());
    log.extend_from_slice(&crc32c(&log).to_le_bytes());
    replace_file(dir, LOG_NAME, &log)?;
    let file = OpenOptions::new().append(true).open(dir.join(LOG_NAME))?;
    Ok((snap.len() as u64, file))
}

// --- CRC-32C (Castagnoli), as in iSCSI and ext4 metadata ---------------------------------------

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32C_TABLE: [u32; 256] = crc32c_table();

fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32C_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_check_value() {
        // RFC 3720 B.4 / the "123456789" check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
