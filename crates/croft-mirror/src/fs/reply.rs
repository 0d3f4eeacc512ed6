//! The one way a request is answered: [`answer`] turns a handler's `Result` into exactly one
//! reply, and the replies that acknowledge a change take the proof that it may be acknowledged.

use super::{ttl, tuning::tuning, GEN};
use crate::link::AckedOp;
use fuser::{
    Errno, FileAttr, FileHandle, FopenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
};

/// A FUSE reply that can carry an errno (each fuser reply type has its own `error`).
pub(super) trait Fails {
    fn fail(self, e: Errno);
}
macro_rules! fails {
    ($($t:ty),*) => { $(impl Fails for $t { fn fail(self, e: Errno) { self.error(e) } })* };
}
fails!(ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr);

/// The one reply of every operation: `ok` with the value on success, the errno otherwise.
pub(super) fn answer<R: Fails, T>(reply: R, r: Result<T, Errno>, ok: impl FnOnce(R, T)) {
    match r {
        Ok(v) => ok(reply, v),
        Err(e) => reply.fail(e),
    }
}

// Replies that acknowledge a change take the proof that it may be acknowledged.
pub(super) fn ok(reply: ReplyEmpty, _proof: AckedOp) {
    reply.ok()
}
pub(super) fn written(reply: ReplyWrite, n: u32, _proof: AckedOp) {
    reply.written(n)
}
pub(super) fn entry(reply: ReplyEntry, a: &FileAttr, _proof: AckedOp) {
    reply.entry(&ttl(), a, GEN)
}
pub(super) fn created(reply: ReplyCreate, a: &FileAttr, fh: FileHandle, _proof: AckedOp) {
    reply.created(&ttl(), a, GEN, fh, open_flags())
}

/// The flags of every open and create reply: FOPEN_KEEP_CACHE unless tuned off (see [`tuning`]).
pub(super) fn open_flags() -> FopenFlags {
    if tuning().keep_cache {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
}
