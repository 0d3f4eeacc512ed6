//! Locks that survive a panic: a thread that panicked while holding a lock must not turn every
//! later use of it into a panic (a poisoned mutex), which would end the mount or the replica for
//! good on one bad input (issue 8, finding 4). The data under these locks is kept consistent by
//! each critical section itself, so the guard of a poisoned lock is taken as it is.
use std::sync::{LockResult, Mutex, MutexGuard, PoisonError};

pub(crate) trait Locked<T> {
    /// `lock()`, poison ignored.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The result of a condition variable's wait, poison ignored.
pub(crate) fn waited<G>(r: LockResult<G>) -> G {
    r.unwrap_or_else(PoisonError::into_inner)
}
