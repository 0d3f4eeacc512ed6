//! The reintegration's bandwidth cap (`resync_max_bytes_per_s`): file data is paid for outside
//! the order lock (the application never waits on the cap) by sleeping until the bytes fit the
//! rate: before a dirty-log copy reads a chunk, after a full sync sent a zone it found different
//! (only then is it known to be sent). No credit is saved while idle beyond "now", so N bytes
//! take at least N / rate seconds, and a burst never exceeds one chunk.

use std::time::{Duration, Instant};

/// Longest single sleep: an abort is seen within this.
const SLICE: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub(crate) struct Pace {
    rate: Option<u64>,
    /// When the bytes sent so far are paid for.
    paid_until: Instant,
}

impl Pace {
    /// `rate`: bytes per second (None or 0: no cap).
    pub(crate) fn new(rate: Option<u64>) -> Pace {
        Pace { rate: rate.filter(|r| *r > 0), paid_until: Instant::now() }
    }

    /// Pays for `bytes` (about to be sent, or just sent): sleeps until they fit the rate, calling `check` (abort) between
    /// slices; its error ends the wait.
    pub(crate) fn pay<E>(&mut self, bytes: u64, mut check: impl FnMut() -> Result<(), E>) -> Result<(), E> {
        let Some(rate) = self.rate else { return Ok(()) };
        let now = Instant::now();
        let start = self.paid_until.max(now);
        self.paid_until = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
        loop {
            let now = Instant::now();
            if now >= self.paid_until {
                return Ok(());
            }
            check()?;
            std::thread::sleep((self.paid_until - now).min(SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cap_never_sleeps() {
        let mut p = Pace::new(None);
        let t = Instant::now();
        for _ in 0..1000 {
            p.pay::<()>(1 << 20, || Ok(())).unwrap();
        }
        assert!(t.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn capped_bytes_take_at_least_bytes_over_rate() {
        let mut p = Pace::new(Some(4 << 20)); // 4 MiB/s
        let t = Instant::now();
        for _ in 0..8 {
            p.pay::<()>(256 << 10, || Ok(())).unwrap(); // 2 MiB in all
        }
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(500), "{e:?}");
        assert!(e < Duration::from_millis(900), "{e:?}");
    }

    #[test]
    fn an_abort_ends_the_wait() {
        let mut p = Pace::new(Some(1024));
        let t = Instant::now();
        let r = p.pay(1 << 20, || Err("aborted")); // would be 1024 s
        assert_eq!(r, Err("aborted"));
        assert!(t.elapsed() < Duration::from_millis(100));
    }
}
