//! Mirror events to JS: a hub that queues the first events until `onEvent` registers a callback,
//! then calls it through a non-blocking ThreadsafeFunction (a FUSE thread never waits for JS).

use super::{PENDING_EVENTS_MAX, lock};
use croft_mirror::MirrorEvent;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::collections::VecDeque;
use std::sync::Mutex;

// Events

#[napi(object)]
pub struct MirrorEventJs {
    /// "peerLost".
    pub kind: String,
    pub reason: String,
}

pub(super) fn event_js(ev: &MirrorEvent) -> MirrorEventJs {
    match ev {
        MirrorEvent::PeerLost { reason } => MirrorEventJs { kind: "peerLost".into(), reason: reason.clone() },
    }
}

/// Weak: a registered callback does not keep the process alive. CalleeHandled false: the
/// callback gets the event as its only argument.
pub(super) type EventCallback = ThreadsafeFunction<MirrorEventJs, Unknown<'static>, MirrorEventJs, Status, false, true>;

#[derive(Default)]
pub(super) struct EventHub {
    pub(super) inner: Mutex<HubInner>,
}

#[derive(Default)]
pub(super) struct HubInner {
    pub(super) callback: Option<EventCallback>,
    pub(super) pending: VecDeque<MirrorEvent>,
}

impl EventHub {
    /// Called from a replication or FUSE thread: never blocks beyond a short lock.
    pub(super) fn emit(&self, ev: &MirrorEvent) {
        let mut h = lock(&self.inner);
        match &h.callback {
            Some(cb) => {
                // Non-blocking on an unbounded queue: returns at once; Closing at exit is fine.
                let _ = cb.call(event_js(ev), ThreadsafeFunctionCallMode::NonBlocking);
            }
            None => {
                if h.pending.len() < PENDING_EVENTS_MAX {
                    h.pending.push_back(ev.clone());
                }
            }
        }
    }

    pub(super) fn set(&self, cb: Option<EventCallback>) {
        let mut guard = lock(&self.inner);
        let h = &mut *guard;
        h.callback = cb;
        if let Some(cb) = &h.callback {
            // Events from before the callback, delivered through the queue like the others.
            for ev in h.pending.drain(..) {
                let _ = cb.call(event_js(&ev), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    }
}
