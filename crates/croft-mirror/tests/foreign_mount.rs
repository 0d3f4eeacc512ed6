//! A filesystem an administrator mounted at a replicated directory (a disk of its own for the
//! database) is never detached by croft: `lazy_unmount`, which a daemon runs at start to clear what
//! a killed daemon left, detaches croft's own FUSE mounts at that path and stops at anything else.
//! Found by `croft lab chaos`'s disk-full fault: its tmpfs, bound over the data directory, was gone
//! once the daemon had started.

mod common;

use common::{Mounted, TempDir};
use croft_mirror::FailMode;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// (type, source) of the topmost mount at dir.
fn top_mount(dir: &Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let real = std::fs::canonicalize(dir.parent().unwrap()).unwrap().join(dir.file_name().unwrap());
    info.lines()
        .filter(|l| l.split(' ').nth(4).map(Path::new) == Some(real.as_path()))
        .last()
        .and_then(|l| l.split(" - ").nth(1))
        .map(|rest| {
            let mut f = rest.split(' ');
            (f.next().unwrap_or("").to_string(), f.next().unwrap_or("").to_string())
        })
}

struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path) -> Tmpfs<'a> {
        let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let opts = CString::new("size=8m").unwrap();
        // SAFETY: plain mount(2) with NUL-terminated strings that live for the call.
        let rc = unsafe { libc::mount(c"croft-test-disk".as_ptr(), c.as_ptr(), c"tmpfs".as_ptr(), 0, opts.as_ptr().cast()) };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let c = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: umount2(2) of the path this guard mounted.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_disk_mounted_at_the_directory_survives_and_croft_mounts_over_it_are_detached() {
    let d = TempDir::new("foreign");
    let disk = Tmpfs::mount(d.path());
    std::fs::write(d.path().join("on-the-disk"), b"kept").unwrap();

    // What a daemon does at start: nothing of croft is there, the disk stays.
    croft_mirror::lazy_unmount(d.path());
    assert_eq!(top_mount(d.path()).map(|m| m.0).as_deref(), Some("tmpfs"));
    assert_eq!(std::fs::read(d.path().join("on-the-disk")).unwrap(), b"kept");

    // A mirror over the disk, then left mounted as a killed daemon leaves it: detached, the disk stays.
    let m = Mounted::mount(d.path(), None, FailMode::Alone);
    std::fs::write(d.path().join("through-the-mirror"), b"written").unwrap();
    assert_eq!(top_mount(d.path()).map(|m| m.1).as_deref(), Some("croft-mirror"));
    std::mem::forget(m);
    croft_mirror::lazy_unmount(d.path());
    assert_eq!(top_mount(d.path()).map(|m| m.0).as_deref(), Some("tmpfs"), "croft's mount detached, the disk below kept");
    assert_eq!(std::fs::read(d.path().join("through-the-mirror")).unwrap(), b"written", "the mirror wrote to the disk");
    drop(disk);
}
