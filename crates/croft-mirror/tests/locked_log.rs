//! The dirty log's single-writer policy (LockedLog: an exclusive flock on `<dir>/dirty.lock`)
//! and the dirty bytes clipped to the files under the data directory, both moved here from the
//! napi binding so cargo tests cover them.
mod common;
use common::*;
use croft_mirror::{DirtyTracker, LockedLog, OpenLogError, DIRTY_LOCK_NAME};
use std::fs;
use std::path::Path;

const K64: u64 = 64 * 1024;

#[test]
fn a_second_opener_of_a_dirty_log_is_refused_until_the_first_closes() {
    let dir = TempDir::new("ll-lock");
    let logdir = dir.path().join("log"); // created by open
    let first = LockedLog::open(&logdir, K64).unwrap();
    assert!(logdir.join(DIRTY_LOCK_NAME).exists());
    first.mark(Path::new("a"), 0, 1).unwrap();
    let second = LockedLog::open(&logdir, K64).unwrap_err();
    assert!(matches!(second, OpenLogError::Busy { .. }), "{second:?}");
    assert!(second.to_string().contains("it is already open"), "{second}");
    drop(first);
    let again = LockedLog::open(&logdir, K64).unwrap();
    assert_eq!(again.log().entries().len(), 1, "the mark made by the first opener is there");
    assert!(again.activity_log().is_some(), "a locked log is a durable tracker");
}

#[test]
fn a_dirty_log_that_cannot_be_created_is_an_io_error() {
    let dir = TempDir::new("ll-io");
    fs::write(dir.path().join("file"), b"x").unwrap();
    let e = LockedLog::open(&dir.path().join("file/log"), K64).unwrap_err();
    assert!(matches!(e, OpenLogError::Io { .. }), "{e:?}");
    assert!(e.to_string().starts_with("cannot open the dirty log in "), "{e}");
}

#[test]
fn dirty_bytes_under_clip_to_regular_files_sizes_now() {
    let dir = TempDir::new("ll-bytes");
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("d")).unwrap();
    fs::write(data.join("f"), vec![1u8; 100_000]).unwrap();
    fs::write(data.join("big"), vec![2u8; 1_000_000]).unwrap();
    std::os::unix::fs::symlink("big", data.join("s")).unwrap();
    let log = LockedLog::open(&dir.path().join("log"), K64).unwrap();
    log.log().clear().unwrap();
    log.mark(Path::new("f"), 0, 10).unwrap(); // zone [0, 64K)
    log.mark(Path::new("f"), 90_000, 10).unwrap(); // zone [64K, 128K), the file ends at 100000
    log.mark(Path::new("big"), 500_000, 1).unwrap(); // one zone of 64 KiB
    log.mark(Path::new("gone"), 0, 10).unwrap(); // no file: nothing to copy
    log.mark(Path::new("d"), 0, 10).unwrap(); // a directory: copied as an entry
    log.mark(Path::new("s"), 0, 10).unwrap(); // a symlink: not followed
    assert_eq!(log.dirty_bytes_under(&data), 100_000 + K64);
    // A data directory that is not there: every size is unknown.
    assert_eq!(log.dirty_bytes_under(&dir.path().join("nowhere")), 0);
}
