//! A message joined across in-order TCP segments of one direction, for the protocols whose
//! messages are small and length-prefixed (DNS and Kerberos over TCP): segments are appended
//! while they follow on, until the parser accepts the bytes; a gap or a message longer than
//! [`MAX_JOIN`] gives it up. The bytes wait in a buffer of the budget, in the flow.

use super::budget::Lazy;

/// Longest message joined. The protocols joined here have small messages; a longer one is
/// given up, not buffered.
pub const MAX_JOIN: usize = 16 * 1024;

#[derive(Debug, Default)]
pub struct Join {
    active: bool,
    /// Sequence number of the buffered message's first byte, and of the next byte expected.
    start_seq: u32,
    next_seq: u32,
    buf: Lazy,
}

impl Join {
    /// Feeds one segment; returns what `parse` made of the message this segment completes.
    pub fn feed<T>(&mut self, seq: u32, seg_len: u32, p: &[u8], parse: impl Fn(&[u8]) -> Option<T>) -> Option<T> {
        let next = seq.wrapping_add(seg_len);
        if self.active {
            if self.next_seq == seq && self.buf.len() + p.len() <= MAX_JOIN && !self.buf.lossy {
                self.buf.push(p, MAX_JOIN);
                self.next_seq = next;
                if let Some(v) = parse(self.buf.as_slice()) {
                    self.clear();
                    return Some(v);
                }
                return None;
            }
            self.clear();
        }
        if let Some(v) = parse(p) {
            return Some(v);
        }
        // The start of a message that continues in later segments.
        if p.len() <= MAX_JOIN {
            self.buf.push(p, MAX_JOIN);
            self.active = !self.buf.lossy;
            self.start_seq = seq;
            self.next_seq = next;
        }
        None
    }

    /// The message being joined (after [`Join::feed`]) and the sequence number of its start.
    pub fn pending(&self) -> Option<(u32, &[u8])> {
        self.active.then(|| (self.start_seq, self.buf.as_slice()))
    }

    pub fn clear(&mut self) {
        self.active = false;
        self.buf.clear();
    }
}
