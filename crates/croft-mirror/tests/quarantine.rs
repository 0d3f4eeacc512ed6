//! The quarantine of many paths (`sync::quarantine_paths`, what the napi binding's
//! `mirrorQuarantineCopy` calls): each path copied or skipped on its own, a failure reported
//! with its path without stopping the others, an unopenable directory an error.
mod common;
use common::TempDir;
use croft_mirror::sync::{quarantine_paths, QuarantineReport};
use std::fs;
use std::path::PathBuf;

#[test]
fn quarantine_paths_counts_copies_and_reports_each_failure() {
    let t = TempDir::new("quarpaths");
    let dir = t.path().join("r");
    let dest = t.path().join("q");
    fs::create_dir_all(dir.join("a")).unwrap();
    fs::write(dir.join("a/f"), b"one").unwrap();
    fs::write(dir.join("g"), b"two").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("l")).unwrap();
    // Already in the quarantine: nothing is overwritten, so this one fails.
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("g"), b"older").unwrap();
    let paths: Vec<PathBuf> = ["a/f", "g", "l", "a", "gone"].iter().map(PathBuf::from).collect();
    let r = quarantine_paths(&dir, &paths, &dest).unwrap();
    assert_eq!(r.copied, 2, "{r:?}");
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(r.failed[0].0, PathBuf::from("g"));
    assert_eq!(fs::read(dest.join("a/f")).unwrap(), b"one");
    assert_eq!(fs::read(dest.join("g")).unwrap(), b"older");
    assert_eq!(fs::read_link(dest.join("l")).unwrap(), PathBuf::from("/etc/passwd"));
    assert!(!dest.join("a").join("gone").exists());
    assert!(quarantine_paths(&t.path().join("missing"), &paths, &dest).is_err());
    assert_eq!(quarantine_paths(&dir, &[], &dest).unwrap(), QuarantineReport::default());
}
