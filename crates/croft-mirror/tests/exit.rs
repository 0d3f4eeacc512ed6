//! A mount registered with `detach_at_exit` and never unmounted is detached when its process
//! exits normally (the napi binding's atexit registry, moved here so a cargo test covers it).
//! The test runs itself again as a child process that mounts, registers, leaks its handle and
//! calls exit(0); without the handler the mount would stay in the mount table (ENOTCONN).
mod common;
use common::*;
use croft_mirror::{detach_at_exit, DirtyPaths, Mirror, MirrorConfig};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const CHILD: &str = "CROFT_TEST_EXIT_CHILD_DIR";

fn mounted(dir: &Path) -> bool {
    let d = dir.to_string_lossy();
    fs::read_to_string("/proc/mounts").unwrap().lines().any(|l| l.split(' ').nth(1) == Some(&*d))
}

#[test]
fn a_registered_mount_left_live_is_detached_at_process_exit() {
    if let Ok(dir) = std::env::var(CHILD) {
        let m = Mirror::mount(MirrorConfig::new(&dir, None), Arc::new(DirtyPaths::new()), None).unwrap();
        fs::write(Path::new(&dir).join("written-through-the-mount"), b"x").unwrap();
        let slot = Arc::new(Mutex::new(Some(m)));
        detach_at_exit(&slot);
        assert!(mounted(Path::new(&dir)));
        std::mem::forget(slot); // never dropped: only the exit handler can unmount
        std::process::exit(0); // runs atexit(3) handlers, no destructors
    }
    let dir = TempDir::new("exit");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_registered_mount_left_live_is_detached_at_process_exit", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let still = mounted(dir.path());
    if still {
        let _ = Command::new("fusermount3").args(["-u", "-z"]).arg(dir.path()).status();
    }
    assert!(out.status.success(), "child: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(!still, "the mount outlived its process");
    assert!(dir.path().join("written-through-the-mount").exists(), "the child wrote through its mount");
}
