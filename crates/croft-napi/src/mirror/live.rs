//! Live mounts, detached at process exit: an atexit(3) handler drops every mount still live
//! (lazy detach when busy) when the process exits normally.

use super::{lock};
use croft_mirror::Mirror;
use std::sync::{Arc, Mutex, Once, Weak};

// Live mounts, detached at process exit

pub(super) type Slot = Mutex<Option<Mirror>>;

pub(super) static LIVE: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());
pub(super) static ATEXIT: Once = Once::new();

pub(super) extern "C" fn detach_live_mounts() {
    let live = std::mem::take(&mut *lock(&LIVE));
    for slot in live.iter().filter_map(Weak::upgrade) {
        // Drop: releases blocked callers, unmounts (lazily when busy).
        drop(lock(&slot).take());
    }
}

pub(super) fn register_live(slot: &Arc<Slot>) {
    ATEXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" function; the addon is never unloaded.
        unsafe { libc::atexit(detach_live_mounts) };
    });
    let mut live = lock(&LIVE);
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(slot));
}
