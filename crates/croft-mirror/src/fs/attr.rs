//! Conversions between the `stat` of the directory underneath and FUSE's attributes and times.

use crate::sys::SetTime;
use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

pub(super) fn set_time(t: Option<TimeOrNow>) -> SetTime {
    let st = match t {
        None => return SetTime::Omit,
        Some(TimeOrNow::Now) => SystemTime::now(),
        Some(TimeOrNow::SpecificTime(t)) => t,
    };
    match st.duration_since(UNIX_EPOCH) {
        Ok(d) => SetTime::At { sec: d.as_secs() as i64, nsec: d.subsec_nanos() as i64 },
        Err(e) => {
            let d = e.duration();
            // Before 1970: floor to whole seconds below, nanoseconds above.
            let (mut sec, mut nsec) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
            if nsec < 0 {
                sec -= 1;
                nsec += 1_000_000_000;
            }
            SetTime::At { sec, nsec }
        }
    }
}

pub(super) fn attr(node: u64, st: &libc::stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(node),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: time(st.st_ctime, st.st_ctime_nsec),
        kind: file_type(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}
