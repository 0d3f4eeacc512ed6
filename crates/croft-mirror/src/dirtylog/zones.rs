//! The in-memory state of one path: its dirty zones (merged runs, a compressed bitmap), whether
//! the entry itself changed, and the offset from which it is dirty to its end; and [`Rec`], what
//! one mark adds to it (also the unit of the log's records).

use crate::op::TO_END;
use std::collections::BTreeMap;

/// What one mark adds, in zones of the log's size (or bytes for `ToEnd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rec {
    /// Zones `first..=last`.
    Zones { first: u64, last: u64 },
    /// Bytes from `offset` to the end of the file, and the entry itself.
    ToEnd { offset: u64 },
    Entry,
}

impl Rec {
    pub(super) fn from_extent(offset: u64, len: u64, zone_bytes: u64) -> Rec {
        match len {
            0 => Rec::Entry,
            TO_END => Rec::ToEnd { offset },
            _ => {
                let end = offset.saturating_add(len - 1);
                Rec::Zones { first: offset / zone_bytes, last: end / zone_bytes }
            }
        }
    }

    /// The same dirt in zones of another size (covering at least the same bytes).
    pub(super) fn rezone(self, from_bytes: u64, to_bytes: u64) -> Rec {
        match self {
            Rec::Zones { first, last } if from_bytes != to_bytes => {
                let start = first.saturating_mul(from_bytes);
                let end = last.saturating_add(1).saturating_mul(from_bytes).saturating_sub(1);
                Rec::Zones { first: start / to_bytes, last: end / to_bytes }
            }
            r => r,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct FileDirt {
    /// Runs of dirty zones: first -> last (inclusive), disjoint and not adjacent.
    pub(super) zones: BTreeMap<u64, u64>,
    pub(super) to_end_from: Option<u64>,
    pub(super) entry: bool,
}

impl FileDirt {
    pub(super) fn covers(&self, rec: Rec, zone_bytes: u64) -> bool {
        match rec {
            Rec::Entry => self.entry,
            Rec::ToEnd { offset } => self.to_end_from.is_some_and(|t| t <= offset),
            Rec::Zones { first, last } => {
                self.to_end_from.is_some_and(|t| t / zone_bytes <= first)
                    || self.zones.range(..=first).next_back().is_some_and(|(_, &e)| e >= last)
            }
        }
    }

    pub(super) fn apply(&mut self, rec: Rec, zone_bytes: u64) {
        match rec {
            Rec::Entry => self.entry = true,
            Rec::ToEnd { offset } => {
                self.entry = true;
                let t = self.to_end_from.map_or(offset, |t| t.min(offset));
                self.to_end_from = Some(t);
                // Runs wholly inside the to-end range are implied by it.
                let tz = t / zone_bytes;
                let beyond: Vec<u64> = self.zones.range(tz..).map(|(&s, _)| s).collect();
                for s in beyond {
                    self.zones.remove(&s);
                }
            }
            Rec::Zones { mut first, mut last } => {
                if let Some((&s, &e)) = self.zones.range(..=first).next_back() {
                    if e.saturating_add(1) >= first {
                        first = s;
                        last = last.max(e);
                        self.zones.remove(&s);
                    }
                }
                while let Some((&s, &e)) = self.zones.range(first..).next() {
                    if s > last.saturating_add(1) {
                        break;
                    }
                    last = last.max(e);
                    self.zones.remove(&s);
                }
                self.zones.insert(first, last);
            }
        }
    }

    /// The records that rebuild this state (for a snapshot).
    pub(super) fn records(&self) -> Vec<Rec> {
        let mut out = Vec::with_capacity(self.zones.len() + 2);
        if self.entry && self.to_end_from.is_none() {
            out.push(Rec::Entry);
        }
        if let Some(offset) = self.to_end_from {
            out.push(Rec::ToEnd { offset });
        }
        out.extend(self.zones.iter().map(|(&first, &last)| Rec::Zones { first, last }));
        out
    }

    pub(super) fn ranges(&self, zone_bytes: u64) -> Vec<(u64, u64)> {
        let tz = self.to_end_from.map(|t| t / zone_bytes);
        let mut out = Vec::with_capacity(self.zones.len() + 1);
        let mut to_end_start = tz;
        for (&first, &last) in &self.zones {
            if let Some(tz) = tz {
                if first >= tz {
                    break;
                }
                if last.saturating_add(1) >= tz {
                    to_end_start = Some(first);
                    break;
                }
            }
            let len = (last - first).saturating_add(1).saturating_mul(zone_bytes);
            out.push((first.saturating_mul(zone_bytes), len));
        }
        if let Some(z) = to_end_start {
            out.push((z.saturating_mul(zone_bytes), TO_END));
        }
        out
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_runs_merge_and_cover() {
        let z = 65536;
        let mut d = FileDirt::default();
        d.apply(Rec::Zones { first: 5, last: 6 }, z);
        d.apply(Rec::Zones { first: 8, last: 8 }, z);
        d.apply(Rec::Zones { first: 7, last: 7 }, z);
        assert_eq!(d.zones.iter().map(|(&a, &b)| (a, b)).collect::<Vec<_>>(), vec![(5, 8)]);
        assert!(d.covers(Rec::Zones { first: 6, last: 8 }, z));
        assert!(!d.covers(Rec::Zones { first: 4, last: 5 }, z));
        d.apply(Rec::Zones { first: 0, last: 1 }, z);
        d.apply(Rec::Zones { first: 1, last: 20 }, z);
        assert_eq!(d.zones.iter().map(|(&a, &b)| (a, b)).collect::<Vec<_>>(), vec![(0, 20)]);
        d.apply(Rec::ToEnd { offset: 3 * z + 5 }, z);
        assert_eq!(d.ranges(z), vec![(0, TO_END)]);
        assert!(d.covers(Rec::Zones { first: 1000, last: 2000 }, z));
        assert!(d.entry);
    }

    #[test]
    fn rezoning_covers_the_same_bytes() {
        let r = Rec::Zones { first: 3, last: 4 }.rezone(65536, 1 << 20);
        assert_eq!(r, Rec::Zones { first: 0, last: 0 });
        let r = Rec::Zones { first: 1, last: 1 }.rezone(1 << 20, 65536);
        assert_eq!(r, Rec::Zones { first: 16, last: 31 });
    }
}
