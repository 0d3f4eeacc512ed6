//! Mounts left live when the process exits normally are detached: an atexit(3) handler drops
//! every registered mount still there (Mirror's Drop releases blocked callers and unmounts,
//! lazily when busy). For an embedder (the napi binding) whose mounts may outlive every owner
//! that would unmount them: a JS object not collected before `process.exit()`. After SIGKILL
//! nothing runs: the mount point answers ENOTCONN until a lazy unmount.

use crate::locks::Locked;
use crate::mirror::Mirror;
use std::sync::{Arc, Mutex, Once, Weak};

/// Where an embedder keeps a mount; `None` once unmounted.
pub type MountSlot = Mutex<Option<Mirror>>;

static LIVE: Mutex<Vec<Weak<MountSlot>>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

extern "C" fn detach_live_mounts() {
    let live = std::mem::take(&mut *LIVE.locked());
    for slot in live.iter().filter_map(Weak::upgrade) {
        drop(slot.locked().take());
    }
}

/// Registers `slot` (held weakly) to be emptied at normal process exit.
pub fn detach_at_exit(slot: &Arc<MountSlot>) {
    ATEXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" function; this library is never unloaded.
        unsafe { libc::atexit(detach_live_mounts) };
    });
    let mut live = LIVE.locked();
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(slot));
}
