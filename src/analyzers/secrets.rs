//! Credential ranges of one direction of a TCP connection, in TCP sequence space.
//!
//! An analyzer that reads `PASS `, an `Authorization:` header or a bind request records where
//! the secret starts and, once it knows, where it ends — possibly segments later. Every segment
//! of that direction (the one that carried the bytes, a retransmitted copy, one that came out of
//! order) is then masked by intersecting its sequence range with the recorded ones, so the same
//! bytes are masked in every copy. A secret whose end is not known yet is *open*: everything
//! from its start on is masked until the analyzer closes it.
//!
//! Bounded: the last [`MAX_RANGES`] ranges are kept (a retransmission of an older secret would
//! have to come after eight newer ones on the same connection); adjacent ranges merge.
//! Sequence numbers wrap: comparisons are made relative to the segment, within ±2 GiB.

use crate::capture::mask::Masks;

pub const MAX_RANGES: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// `[start, end)` in sequence space, oldest first.
    ranges: [(u32, u32); MAX_RANGES],
    len: u8,
    /// The start of a secret whose end is not known yet.
    open: Option<u32>,
}

/// `a` is before `b` in sequence space.
pub fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.open.is_none()
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Records `[start, end)` as secret.
    pub fn add(&mut self, start: u32, end: u32) {
        if !before(start, end) {
            return;
        }
        let n = self.len as usize;
        // Touching or overlapping a range kept: one range (the same bytes are often recorded
        // again as a line grows over segments).
        for r in self.ranges[..n].iter_mut().rev() {
            if !before(r.1, start) && !before(end, r.0) {
                if before(start, r.0) {
                    r.0 = start;
                }
                if before(r.1, end) {
                    r.1 = end;
                }
                return;
            }
        }
        if n == MAX_RANGES {
            self.ranges.rotate_left(1);
            self.ranges[MAX_RANGES - 1] = (start, end);
        } else {
            self.ranges[n] = (start, end);
            self.len += 1;
        }
    }

    /// A secret starts at `start` and runs until [`Secrets::close`].
    pub fn open(&mut self, start: u32) {
        if self.open.is_none() {
            self.open = Some(start);
        }
    }

    /// The open secret ends at `end` (exclusive).
    pub fn close(&mut self, end: u32) {
        if let Some(s) = self.open.take() {
            self.add(s, end);
        }
    }

    /// Adds to `out` the parts of the segment `[seq, seq + len)` that are secret, as offsets
    /// from `base` (where the segment's first byte is in its frame).
    pub fn mask(&self, seq: u32, len: usize, base: usize, out: &mut Masks) {
        if len == 0 {
            return;
        }
        let rel = |x: u32| x.wrapping_sub(seq) as i32 as i64;
        let len = len as i64;
        let mut put = |a: i64, b: i64| {
            let (a, b) = (a.max(0), b.min(len));
            if a < b {
                out.add(base + a as usize, base + b as usize);
            }
        };
        for &(s, e) in &self.ranges[..self.len as usize] {
            put(rel(s), rel(e));
        }
        if let Some(s) = self.open {
            put(rel(s), len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &Secrets, seq: u32, len: usize) -> Vec<(usize, usize)> {
        let mut m = Masks::default();
        s.mask(seq, len, 0, &mut m);
        m.iter().collect()
    }

    #[test]
    fn a_secret_open_across_segments_masks_each_copy() {
        let mut s = Secrets::default();
        s.open(105); // "PASS " at 100..105
        assert_eq!(masked(&s, 100, 10), [(5, 10)]);
        s.close(112); // "\r\n" at 112
        assert_eq!(masked(&s, 110, 10), [(0, 2)]);
        // A retransmission of both segments at once.
        assert_eq!(masked(&s, 100, 20), [(5, 12)]);
        assert_eq!(masked(&s, 120, 10), []);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s = Secrets::default();
        s.add(u32::MAX - 2, 3);
        assert_eq!(masked(&s, u32::MAX - 4, 10), [(2, 8)]);
    }

    #[test]
    fn old_ranges_are_forgotten_beyond_the_bound() {
        let mut s = Secrets::default();
        for i in 0..20u32 {
            s.add(i * 100, i * 100 + 10);
        }
        assert_eq!(masked(&s, 0, 50), []);
        assert_eq!(masked(&s, 1900, 50), [(0, 10)]);
    }
}
