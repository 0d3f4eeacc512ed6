//! What is mounted at a replicated directory, from /proc/self/mountinfo, so that croft detaches
//! only its own FUSE mounts there (a killed daemon leaves one answering ENOTCONN) and never what
//! an administrator mounted at that path: a dedicated disk under /var/lib/postgresql is the usual
//! way to give a database its own filesystem, and `fusermount3 -u -z`, run as root, detaches
//! whatever is on top — a disk included.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The file system type and source croft's mounts show (crate::mirror mounts with FSName and
/// Subtype "croft-mirror").
const FSTYPE: &str = "fuse.croft-mirror";
const SOURCE: &str = "croft-mirror";
/// Stacked mounts of croft detached at most (each killed daemon may have left one).
const MAX_STACKED: usize = 16;

/// A mount point or source as mountinfo writes it: space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The topmost mount at `dir` in a mountinfo text: (file system type, source), or None.
/// Later lines are mounted later, so the last one at a point is the one on top.
pub fn top_mount_at(mountinfo: &str, dir: &Path) -> Option<(String, String)> {
    let mut top = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(dash)) = (fields.get(4), fields.iter().position(|f| *f == "-")) else { continue };
        if dash < 6 || Path::new(&unescape(point)) != dir {
            continue;
        }
        let (Some(fstype), Some(source)) = (fields.get(dash + 1), fields.get(dash + 2)) else { continue };
        top = Some((unescape(fstype), unescape(source)));
    }
    top
}

/// Whether a mount (type, source) is one of croft's mirror mounts.
pub fn is_croft_mount(fstype: &str, source: &str) -> bool {
    fstype == FSTYPE || (fstype.starts_with("fuse") && source == SOURCE)
}

/// `dir` as mountinfo names it: its parent resolved (symlinks, `..`), its own name kept — a dead
/// FUSE mount cannot be resolved itself (ENOTCONN).
fn as_mounted(dir: &Path) -> PathBuf {
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(if parent.as_os_str().is_empty() { Path::new(".") } else { parent })
            .map(|p| p.join(name))
            .unwrap_or_else(|_| dir.to_path_buf()),
        _ => dir.to_path_buf(),
    }
}

/// `fusermount3 -u -z dir` while croft's own mount is on top at `dir`: detaches a croft mount even
/// while busy or when its server died, and leaves anything else mounted there alone. Quiet when
/// nothing is.
pub fn lazy_unmount(dir: &Path) {
    let point = as_mounted(dir);
    for _ in 0..MAX_STACKED {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
        match top_mount_at(&info, &point) {
            Some((fstype, source)) if is_croft_mount(&fstype, &source) => {}
            _ => return,
        }
        let detached = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !detached {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:35 / /var/lib/pg rw,relatime shared:20 - xfs /dev/sdb1 rw
41 40 0:36 / /var/lib/pg rw,nosuid,nodev,relatime shared:21 - fuse.croft-mirror croft-mirror rw,user_id=0,group_id=0
50 22 0:40 / /srv/my\\040data rw,relatime shared:30 - tmpfs disk rw,size=1024k
51 22 0:41 / /srv/old rw - fuse croft-mirror rw
";

    #[test]
    fn the_last_mount_at_a_point_is_on_top() {
        assert_eq!(top_mount_at(INFO, Path::new("/var/lib/pg")), Some(("fuse.croft-mirror".into(), "croft-mirror".into())));
        let below: String = INFO.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(top_mount_at(&below, Path::new("/var/lib/pg")), Some(("xfs".into(), "/dev/sdb1".into())));
        assert_eq!(top_mount_at(INFO, Path::new("/var/lib")), None);
    }

    #[test]
    fn escaped_mount_points_and_optional_fields() {
        assert_eq!(top_mount_at(INFO, Path::new("/srv/my data")), Some(("tmpfs".into(), "disk".into())));
        assert_eq!(unescape("a\\134b\\011c"), "a\\b\tc");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
        // A garbled line is skipped, never a panic.
        assert_eq!(top_mount_at("x y\n- - - - - -\n\\\\\\ - -", Path::new("/")), None);
    }

    #[test]
    fn only_croft_mounts_are_croft_mounts() {
        assert!(is_croft_mount("fuse.croft-mirror", "croft-mirror"));
        assert!(is_croft_mount("fuse", "croft-mirror"));
        assert!(!is_croft_mount("xfs", "/dev/sdb1"));
        assert!(!is_croft_mount("fuse.sshfs", "host:/x"));
        assert!(!is_croft_mount("tmpfs", "croft-mirror"));
    }

    #[test]
    fn a_path_is_named_as_mountinfo_names_it() {
        let t = std::env::temp_dir();
        let real = std::fs::canonicalize(&t).unwrap();
        assert_eq!(as_mounted(&t.join(".").join("x")), real.join("x"));
        // A parent that does not exist: the path as given.
        assert_eq!(as_mounted(Path::new("/no/such/dir/x")), Path::new("/no/such/dir/x"));
    }
}
