//! Acknowledgement latency of the live stream, for metrics: a histogram with fixed buckets kept
//! in atomics (recording is a few relaxed adds, reading never locks the stream), and the sends
//! waiting for their ack in a bounded queue (a full queue skips the sample, never grows).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the buckets, in microseconds (Prometheus `le`); one more bucket is +Inf.
/// From a LAN's 100 µs to the 2 s ack timeout.
pub const ACK_LATENCY_BOUNDS_US: [u64; 14] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000];

/// Sends awaiting their ack that are timed at most (the stream's window holds fewer in practice).
pub(crate) const PENDING_SAMPLES_MAX: usize = 4096;

#[derive(Debug, Default)]
pub struct AckLatency {
    buckets: [AtomicU64; ACK_LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A reading of [`AckLatency`]: `cumulative[i]` counts the samples ≤ `ACK_LATENCY_BOUNDS_US[i]`,
/// the last one all of them (+Inf).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckLatencySnapshot {
    pub cumulative: Vec<u64>,
    pub sum_us: u64,
    pub count: u64,
}

impl AckLatency {
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = ACK_LATENCY_BOUNDS_US.iter().position(|&b| us <= b).unwrap_or(ACK_LATENCY_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> AckLatencySnapshot {
        let mut acc = 0;
        let cumulative = self.buckets.iter().map(|b| {
            acc += b.load(Ordering::Relaxed);
            acc
        }).collect();
        AckLatencySnapshot { cumulative, sum_us: self.sum_us.load(Ordering::Relaxed), count: acc }
    }
}

/// Sends of the live stream not acknowledged yet: (last sequence number of the send, when).
#[derive(Debug, Default)]
pub(crate) struct Pending(VecDeque<(u64, Instant)>);

impl Pending {
    pub(crate) fn push(&mut self, seq: u64, at: Instant) {
        if self.0.len() < PENDING_SAMPLES_MAX {
            self.0.push_back((seq, at));
        }
    }

    /// Records every send that `seq` acknowledges (acks are cumulative).
    pub(crate) fn acked(&mut self, seq: u64, into: &AckLatency) {
        let now = Instant::now();
        while let Some(&(s, at)) = self.0.front() {
            if s > seq {
                break;
            }
            into.record(now.saturating_duration_since(at));
            self.0.pop_front();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_fixed() {
        let h = AckLatency::default();
        h.record(Duration::from_micros(50));
        h.record(Duration::from_micros(100));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), ACK_LATENCY_BOUNDS_US.len() + 1);
        assert_eq!(s.cumulative[0], 2); // ≤ 100 µs
        assert_eq!(s.cumulative[5], 3); // ≤ 5 ms
        assert_eq!(s.cumulative[13], 3); // ≤ 2.5 s
        assert_eq!(*s.cumulative.last().unwrap(), 4);
        assert_eq!(s.count, 4);
        assert_eq!(s.sum_us, 50 + 100 + 3_000 + 60_000_000);
    }

    #[test]
    fn pending_is_bounded_and_cumulative_acks_pop_in_order() {
        let h = AckLatency::default();
        let mut p = Pending::default();
        let t = Instant::now();
        for seq in 1..=(PENDING_SAMPLES_MAX as u64 + 100) {
            p.push(seq, t);
        }
        assert_eq!(p.0.len(), PENDING_SAMPLES_MAX);
        p.acked(10, &h);
        assert_eq!(h.snapshot().count, 10);
        p.acked(u64::MAX, &h);
        assert_eq!(h.snapshot().count, PENDING_SAMPLES_MAX as u64);
        assert!(p.0.is_empty());
    }
}
