//! Byte ranges of one frame to overwrite before the frame leaves the process: the credentials
//! the analyzers found in it (`crate::analyzers` reports them; the pcap ring, the evidence of
//! alert mails and anything built from payload bytes apply them).
//!
//! Fixed capacity, no allocation: a frame rarely holds more than one or two secrets. When more
//! ranges come than fit, the last one is widened to cover them all — masking too much is the
//! safe error.

/// What a masked byte becomes. `*` keeps text readable ("PASS ******") and is valid content for
/// any binary field, so the frame still decodes in Wireshark.
pub const MASK_BYTE: u8 = b'*';

/// Ranges kept per frame before they are merged.
pub const MAX_MASKS: usize = 8;

/// Byte ranges `[start, end)` of a frame's captured data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Masks {
    spans: [(u32, u32); MAX_MASKS],
    len: u8,
}

impl Masks {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The ranges, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.spans[..self.len as usize].iter().map(|&(a, b)| (a as usize, b as usize))
    }

    /// Adds `[start, end)` (empty ranges are ignored; one that touches the last is merged).
    pub fn add(&mut self, start: usize, end: usize) {
        if end <= start {
            return;
        }
        let (s, e) = (start.min(u32::MAX as usize) as u32, end.min(u32::MAX as usize) as u32);
        if let Some(last) = self.spans[..self.len as usize].last_mut() {
            if s <= last.1 && e >= last.0 {
                *last = (last.0.min(s), last.1.max(e));
                return;
            }
        }
        if (self.len as usize) < MAX_MASKS {
            self.spans[self.len as usize] = (s, e);
            self.len += 1;
        } else {
            let last = &mut self.spans[MAX_MASKS - 1];
            *last = (last.0.min(s), last.1.max(e));
        }
    }

    /// Whether byte `i` is masked.
    pub fn covers(&self, i: usize) -> bool {
        self.iter().any(|(a, b)| a <= i && i < b)
    }

    /// Overwrites the masked bytes of `data` (ranges beyond its end are cut).
    pub fn apply(&self, data: &mut [u8]) {
        for (a, b) in self.iter() {
            let b = b.min(data.len());
            if a < b {
                data[a..b].fill(MASK_BYTE);
            }
        }
    }

    /// The masked bytes of `data[at..at + out.len()]` written over `out` (a copy of those bytes):
    /// for values taken out of a frame (group keys, messages).
    pub fn apply_at(&self, at: usize, out: &mut [u8]) {
        let end = at + out.len();
        for (a, b) in self.iter() {
            let (a, b) = (a.max(at), b.min(end));
            if a < b {
                out[a - at..b - at].fill(MASK_BYTE);
            }
        }
    }

    /// The ranges moved `base` bytes further (the payload's ranges as ranges of its frame).
    pub fn shifted(&self, base: usize) -> Masks {
        let mut m = Masks::default();
        for (a, b) in self.iter() {
            m.add(a + base, b + base);
        }
        m
    }
}

/// Where `part` lies in `whole`, if it is a sub-slice of it (a payload of its frame).
pub fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (p >= w && p + part.len() <= w + whole.len()).then(|| p - w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_apply() {
        let mut m = Masks::default();
        m.add(2, 4);
        m.add(4, 6);
        m.add(8, 8);
        assert_eq!(m.iter().collect::<Vec<_>>(), [(2, 6)]);
        let mut d = *b"0123456789";
        m.apply(&mut d);
        assert_eq!(&d, b"01****6789");
        let mut v = *b"3456";
        m.apply_at(3, &mut v);
        assert_eq!(&v, b"***6");
    }

    #[test]
    fn too_many_ranges_widen_the_last() {
        let mut m = Masks::default();
        for i in 0..20 {
            m.add(i * 10, i * 10 + 2);
        }
        assert_eq!(m.iter().count(), MAX_MASKS);
        assert!(m.covers(190) && m.covers(75) && !m.covers(5));
        let mut d = vec![b'x'; 100];
        m.apply(&mut d); // ranges past the end are cut, no panic
    }

    #[test]
    fn sub_slices_are_found() {
        let v = [0u8; 10];
        assert_eq!(offset_in(&v, &v[3..7]), Some(3));
        let other = [0u8; 2];
        assert_eq!(offset_in(&v, &other), None);
    }
}
