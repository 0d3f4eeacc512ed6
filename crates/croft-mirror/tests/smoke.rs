mod common;
use common::*;
use croft_mirror::{AckLevel, FailMode};
use std::fs;

#[test]
fn existing_files_stay_visible_and_changes_reach_the_replica() {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    seed(&[primary.path(), secondary.path()]);
    let r = replica(secondary.path());
    let m = Mounted::mount(primary.path(), Some(peer(r.local_addr(), AckLevel::Received)), FailMode::Alone);
    let d = primary.path();
    assert_eq!(fs::read(d.join("old/a.txt")).unwrap(), b"existing file a\n");
    assert_eq!(fs::read_link(d.join("old/link")).unwrap().to_str(), Some("a.txt"));
    fs::write(d.join("new.txt"), b"hello").unwrap();
    fs::create_dir(d.join("newdir")).unwrap();
    fs::rename(d.join("new.txt"), d.join("newdir/moved.txt")).unwrap();
    fs::hard_link(d.join("newdir/moved.txt"), d.join("hl")).unwrap();
    fs::remove_file(d.join("old/sub/b.bin")).unwrap();
    assert!(m.mirror().status().link.connected);
    assert!(r.status().applied_ops > 0);
    m.unmount();
    assert_same_trees(primary.path(), secondary.path(), &|_| false);
}
