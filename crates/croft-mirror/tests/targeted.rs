//! One test per replicated feature: each changes the tree through the mount, then compares the
//! primary's directory with the replica's after unmounting.
mod common;
use common::*;
use croft_mirror::{AckLevel, FailMode};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Mounts a primary over a seeded directory with a replica, runs `f` on the mount path, unmounts
/// and compares the trees (mtimes for the paths `mtime` names).
fn mirrored(level: AckLevel, f: impl FnOnce(&Path), mtime: &dyn Fn(&Path) -> bool) {
    let primary = TempDir::new("p");
    let secondary = TempDir::new("s");
    seed(&[primary.path(), secondary.path()]);
    let r = replica(secondary.path());
    let m = Mounted::mount(primary.path(), Some(peer(r.local_addr(), level)), FailMode::Alone);
    f(primary.path());
    let status = m.mirror().status();
    assert!(status.link.connected, "peer lost during the test: {:?}", status.link.lost_reason);
    assert_eq!(status.link.alone_ops, 0);
    assert!(m.dirty.paths().is_empty());
    m.unmount();
    assert_same_trees(primary.path(), secondary.path(), mtime);
}

#[test]
fn rename_noreplace_and_exchange() {
    mirrored(
        AckLevel::Received,
        |d| {
            fs::write(d.join("a"), b"A").unwrap();
            fs::write(d.join("b"), b"B").unwrap();
            fs::create_dir(d.join("dir")).unwrap();
            fs::write(d.join("dir/inner"), b"I").unwrap();
            assert_eq!(renameat2(&d.join("a"), &d.join("b"), libc::RENAME_NOREPLACE), libc::EEXIST);
            assert_eq!(renameat2(&d.join("a"), &d.join("c"), libc::RENAME_NOREPLACE), 0);
            // Exchange a file with a directory: the directory's subtree follows it.
            assert_eq!(renameat2(&d.join("c"), &d.join("dir"), libc::RENAME_EXCHANGE), 0);
            assert_eq!(fs::read(d.join("dir")).unwrap(), b"A");
            assert_eq!(fs::read(d.join("c/inner")).unwrap(), b"I");
            assert_eq!(renameat2(&d.join("b"), &d.join("nothing"), libc::RENAME_EXCHANGE), libc::ENOENT);
            // Plain rename over an existing file, and of a directory into another.
            fs::rename(d.join("b"), d.join("dir")).unwrap();
            fs::rename(d.join("c"), d.join("old/sub/c2")).unwrap();
            fs::write(d.join("old/sub/c2/inner2"), b"after the move").unwrap();
        },
        &|_| false,
    );
}

#[test]
fn hard_links_keep_their_structure() {
    mirrored(
        AckLevel::Received,
        |d| {
            fs::write(d.join("x"), b"shared").unwrap();
            fs::hard_link(d.join("x"), d.join("y")).unwrap();
            fs::hard_link(d.join("x"), d.join("old/z")).unwrap();
            assert_eq!(fs::metadata(d.join("y")).unwrap().ino(), fs::metadata(d.join("x")).unwrap().ino());
            assert_eq!(fs::metadata(d.join("y")).unwrap().nlink(), 3);
            fs::remove_file(d.join("x")).unwrap();
            let mut f = fs::OpenOptions::new().append(true).open(d.join("y")).unwrap();
            f.write_all(b" and more").unwrap();
            assert_eq!(fs::read(d.join("old/z")).unwrap(), b"shared and more");
            // A hard link to the pre-existing file too.
            fs::hard_link(d.join("old/a.txt"), d.join("a-again")).unwrap();
        },
        &|_| false,
    );
}

#[test]
fn symlinks_targets_and_owners() {
    mirrored(
        AckLevel::Received,
        |d| {
            std::os::unix::fs::symlink("../somewhere/else", d.join("s1")).unwrap();
            std::os::unix::fs::symlink("old/a.txt", d.join("s2")).unwrap();
            assert_eq!(fs::read(d.join("s2")).unwrap(), b"existing file a\n");
            assert_eq!(lchown(&d.join("s1"), 1234, 4321), 0);
            assert_eq!(fs::read_link(d.join("s1")).unwrap().to_str(), Some("../somewhere/else"));
            fs::rename(d.join("s2"), d.join("old/s3")).unwrap();
        },
        &|_| false,
    );
}

#[test]
fn xattrs_set_replace_remove() {
    mirrored(
        AckLevel::Received,
        |d| {
            fs::write(d.join("f"), b"x").unwrap();
            assert_eq!(set_xattr(&d.join("f"), "user.one", b"1", 0), 0);
            assert_eq!(set_xattr(&d.join("f"), "user.two", &[0, 255, 3], 0), 0);
            assert_eq!(set_xattr(&d.join("f"), "user.one", b"x", libc::XATTR_CREATE), libc::EEXIST);
            assert_eq!(set_xattr(&d.join("f"), "user.one", b"replaced", libc::XATTR_REPLACE), 0);
            assert_eq!(set_xattr(&d.join("old"), "user.dir", b"on a directory", 0), 0);
            assert_eq!(set_xattr(&d.join("f"), "user.gone", b"soon", 0), 0);
            assert_eq!(remove_xattr(&d.join("f"), "user.gone"), 0);
            assert_eq!(remove_xattr(&d.join("f"), "user.never"), libc::ENODATA);
            assert_eq!(set_xattr(&d.join("f"), "trusted.t", b"root only", 0), 0);
        },
        &|_| false,
    );
}

#[test]
fn chown_chmod_and_explicit_times() {
    mirrored(
        AckLevel::Durable,
        |d| {
            fs::write(d.join("f"), b"x").unwrap();
            std::os::unix::fs::chown(d.join("f"), Some(1000), Some(2000)).unwrap();
            fs::set_permissions(d.join("f"), fs::Permissions::from_mode(0o4751)).unwrap();
            assert_eq!(fs::metadata(d.join("f")).unwrap().mode() & 0o7777, 0o4751);
            fs::create_dir(d.join("g")).unwrap();
            std::os::unix::fs::chown(d.join("g"), None, Some(3000)).unwrap();
            fs::set_permissions(d.join("g"), fs::Permissions::from_mode(0o2770)).unwrap();
            // A file made in a set-group-ID directory takes its group, as on a local filesystem.
            fs::write(d.join("g/in"), b"y").unwrap();
            assert_eq!(fs::metadata(d.join("g/in")).unwrap().gid(), 3000);
            assert_eq!(mkfifo(&d.join("fifo"), 0o640), 0);
            assert_eq!(set_mtime(&d.join("f"), 1_000_000_000, 123_456_789), 0);
            assert_eq!(set_mtime(&d.join("g"), 1_500_000_000, 1), 0);
        },
        &|p| p == Path::new("f") || p == Path::new("g"),
    );
}

#[test]
fn truncate_fallocate_and_sparse_files() {
    mirrored(
        AckLevel::Received,
        |d| {
            let p = d.join("sparse");
            let f = fs::OpenOptions::new().create(true).read(true).write(true).open(&p).unwrap();
            f.write_all_at(b"head", 0).unwrap();
            f.write_all_at(b"tail", 10 << 20).unwrap();
            assert_eq!(f.metadata().unwrap().len(), (10 << 20) + 4);
            assert!(f.metadata().unwrap().blocks() < 1024, "the hole was filled");
            // SEEK_DATA / SEEK_HOLE go to the file underneath.
            use std::os::fd::AsRawFd;
            // SAFETY: valid descriptor.
            let hole = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_HOLE) };
            assert!(hole > 0 && hole < 10 << 20, "SEEK_HOLE gave {hole}");
            f.set_len(5 << 20).unwrap();
            f.set_len(6 << 20).unwrap();
            drop(f);
            fs::write(d.join("t"), vec![1u8; 300_000]).unwrap();
            fs::OpenOptions::new().write(true).open(d.join("t")).unwrap().set_len(1000).unwrap();
            fs::write(d.join("fa"), vec![2u8; 200_000]).unwrap();
            assert_eq!(fallocate_path(&d.join("fa"), 0, 0, 1 << 20), 0);
            assert_eq!(fallocate_path(&d.join("fa"), libc::FALLOC_FL_KEEP_SIZE, 0, 4 << 20), 0);
            assert_eq!(
                fallocate_path(&d.join("fa"), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 4096, 65536),
                0
            );
            assert_eq!(fs::metadata(d.join("fa")).unwrap().len(), 1 << 20);
            let mut back = Vec::new();
            fs::File::open(d.join("fa")).unwrap().read_to_end(&mut back).unwrap();
            assert!(back[4096..4096 + 65536].iter().all(|b| *b == 0));
            // Writes past the end through a seeking handle, and an O_APPEND handle.
            let mut g = fs::OpenOptions::new().write(true).open(d.join("t")).unwrap();
            g.seek(SeekFrom::Start(5000)).unwrap();
            g.write_all(b"after a gap").unwrap();
            let mut a = fs::OpenOptions::new().append(true).open(d.join("t")).unwrap();
            a.write_all(b"appended").unwrap();
            a.sync_all().unwrap();
            g.sync_data().unwrap();
        },
        &|_| false,
    );
}

#[test]
fn unlinked_open_files_and_directories() {
    mirrored(
        AckLevel::Received,
        |d| {
            let mut f = fs::File::create(d.join("tmp")).unwrap();
            fs::remove_file(d.join("tmp")).unwrap();
            // Writes to a file without a name any more stay local (the peer has nothing to hold).
            f.write_all(b"nobody sees this").unwrap();
            f.sync_all().unwrap();
            drop(f);
            fs::create_dir_all(d.join("a/b/c")).unwrap();
            fs::write(d.join("a/b/c/f"), b"deep").unwrap();
            fs::remove_file(d.join("a/b/c/f")).unwrap();
            fs::remove_dir(d.join("a/b/c")).unwrap();
            assert_eq!(fs::remove_dir(d.join("a")).unwrap_err().raw_os_error(), Some(libc::ENOTEMPTY));
            fs::File::open(d.join("a")).unwrap().sync_all().unwrap(); // fsyncdir
            let names: Vec<_> = fs::read_dir(d.join("old")).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names.len(), 3, "{names:?}");
        },
        &|_| false,
    );
}
