//! Excluded paths (`dirs: [{ path, exclude }]`) against a real mount and a replica on loopback:
//! changes under them stay local, a rename or link across the boundary fails with EXDEV, and
//! reintegration (dirty log and full sync) and verify skip them on both sides.
mod common;
use common::*;
use croft_mirror::{AckLevel, DirtyLog, DirtyTracker, Exclude, FailMode, Mirror, MirrorConfig, ReintegrateOptions, ReintegrationPhase};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn exclude() -> Exclude {
    Exclude::new(vec![PathBuf::from("tmp"), PathBuf::from("cache/thumbs")]).unwrap()
}

fn mount(dir: &Path, state: &Path, peer: Option<croft_mirror::PeerConfig>) -> MountGuard {
    let log = Arc::new(DirtyLog::open(state, 64 << 10).unwrap());
    log.clear().unwrap();
    let mut config = MirrorConfig::new(dir, peer);
    config.fail_mode = FailMode::Alone;
    config.exclude = exclude();
    let m = Mirror::mount(config, log as Arc<dyn DirtyTracker>, None).unwrap_or_else(|e| panic!("{}: {e}", e.code()));
    MountGuard(Some(m), dir.to_path_buf())
}

fn errno_of(r: std::io::Result<()>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap()
}

#[test]
fn live_changes_under_an_excluded_path_stay_local_and_crossing_it_is_exdev() {
    let primary = TempDir::new("ex-live-p");
    let target = TempDir::new("ex-live-t");
    let state = TempDir::new("ex-live-s");
    for d in [primary.path(), target.path()] {
        fs::create_dir_all(d.join("cache")).unwrap();
    }
    let r = replica(target.path());
    let g = mount(primary.path(), state.path(), Some(peer(r.local_addr(), AckLevel::Received)));
    let p = primary.path();
    fs::create_dir(p.join("tmp")).unwrap();
    fs::write(p.join("tmp/session"), b"local only").unwrap();
    fs::create_dir(p.join("cache/thumbs")).unwrap();
    fs::write(p.join("cache/thumbs/1.png"), b"png").unwrap();
    fs::write(p.join("data"), b"replicated").unwrap();
    fs::write(p.join("tmpx"), b"not excluded: a different name").unwrap();
    assert_eq!(fs::read(target.path().join("data")).unwrap(), b"replicated");
    assert_eq!(fs::read(target.path().join("tmpx")).unwrap(), b"not excluded: a different name");
    assert!(!target.path().join("tmp").exists(), "tmp was replicated");
    assert!(!target.path().join("cache/thumbs").exists(), "cache/thumbs was replicated");
    // Across the boundary: EXDEV, as between two filesystems (mv copies then).
    assert_eq!(errno_of(fs::rename(p.join("tmp/session"), p.join("session"))), libc::EXDEV);
    assert_eq!(errno_of(fs::rename(p.join("data"), p.join("tmp/data"))), libc::EXDEV);
    assert_eq!(errno_of(fs::hard_link(p.join("data"), p.join("tmp/data"))), libc::EXDEV);
    // A directory holding an excluded path cannot move either (its excluded subtree would follow).
    assert_eq!(errno_of(fs::rename(p.join("cache"), p.join("cache2"))), libc::EXDEV);
    // Inside either side: fine.
    fs::rename(p.join("tmp/session"), p.join("tmp/session2")).unwrap();
    fs::rename(p.join("data"), p.join("data2")).unwrap();
    assert_eq!(fs::read(target.path().join("data2")).unwrap(), b"replicated");
    let link = g.0.as_ref().unwrap().status().link;
    assert!(link.connected, "{link:?}");
    // Verify: identical, the excluded paths differ by design and are compared on neither side.
    fs::create_dir(target.path().join("tmp")).unwrap();
    fs::write(target.path().join("tmp/theirs"), b"the target's own").unwrap();
    let v = g.0.as_ref().unwrap().verify(peer(r.local_addr(), AckLevel::Received)).unwrap_or_else(|e| panic!("{e}"));
    assert!(v.identical, "{v:?}");
    assert!(v.entries_compared >= 3);
    // A replicated difference is still found.
    fs::write(target.path().join("tmpx"), b"changed behind croft's back").unwrap();
    let v = g.0.as_ref().unwrap().verify(peer(r.local_addr(), AckLevel::Received)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!v.identical && v.differences.iter().all(|(p, _)| p == Path::new("tmpx")), "{v:?}");
}

fn reintegration_skips_excluded(full: bool) {
    let tag = if full { "ex-full" } else { "ex-dirty" };
    let primary = TempDir::new(&format!("{tag}-p"));
    let target = TempDir::new(&format!("{tag}-t"));
    let state = TempDir::new(&format!("{tag}-s"));
    // The target has its own tmp; the primary writes alone, in tmp too.
    fs::create_dir(target.path().join("tmp")).unwrap();
    fs::write(target.path().join("tmp/theirs"), b"the target's own").unwrap();
    let g = mount(primary.path(), state.path(), None);
    let p = primary.path();
    fs::create_dir(p.join("tmp")).unwrap();
    fs::write(p.join("tmp/mine"), vec![7u8; 300_000]).unwrap();
    fs::create_dir_all(p.join("cache/thumbs")).unwrap();
    fs::write(p.join("cache/thumbs/a"), b"a").unwrap();
    fs::write(p.join("cache/kept"), b"kept").unwrap();
    fs::write(p.join("data"), vec![1u8; 200_000]).unwrap();
    let r = replica(target.path());
    let m = g.0.as_ref().unwrap();
    let st = m
        .reintegrate(peer(r.local_addr(), AckLevel::Received), ReintegrateOptions { full, ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.phase, ReintegrationPhase::Done);
    let t = target.path();
    assert_eq!(fs::read(t.join("data")).unwrap(), vec![1u8; 200_000]);
    assert_eq!(fs::read(t.join("cache/kept")).unwrap(), b"kept");
    assert!(!t.join("tmp/mine").exists(), "an excluded file was reintegrated");
    assert!(!t.join("cache/thumbs").exists(), "an excluded dir was reintegrated");
    assert_eq!(fs::read(t.join("tmp/theirs")).unwrap(), b"the target's own", "the target's excluded files are left alone");
    assert!(st.bytes_copied < 300_000 + 200_000, "copied {} bytes", st.bytes_copied);
    let v = m.verify(peer(r.local_addr(), AckLevel::Received)).unwrap_or_else(|e| panic!("{e}"));
    assert!(v.identical, "{v:?}");
}

#[test]
fn a_dirty_log_reintegration_skips_excluded_paths_on_both_sides() {
    reintegration_skips_excluded(false);
}

#[test]
fn a_full_sync_skips_excluded_paths_on_both_sides() {
    reintegration_skips_excluded(true);
}
