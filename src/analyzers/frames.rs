//! Length-framed messages of one direction (LDAP's BER messages, SMB over the NetBIOS session
//! service), read in order: each message's first bytes are kept (a [`Lazy`] buffer of the
//! budget) for the protocol to look at while the message streams by, the rest is skipped by
//! count. A hole loses the framing until a segment starts with something the protocol accepts
//! as a message start.

use super::budget::Lazy;
use super::lines::{Fresh, InOrder, Seg};

/// How a protocol frames its messages.
pub trait Framing {
    /// A message's whole length (header included) from its first bytes: None while too few
    /// are in, `Some(None)` when they are no message start.
    fn total_len(head: &[u8]) -> Option<Option<u64>>;
}

/// What the reader hands the protocol.
#[derive(Clone, Copy)]
pub enum Event<'a> {
    /// More of a message's head is in (`start`: its first byte's sequence number).
    Head { start: u32, head: &'a [u8] },
    /// A message ended (its head as kept).
    End { start: u32, head: &'a [u8] },
    /// Bytes that could not be framed.
    Lost { seq: u32, len: usize },
}

#[derive(Debug)]
pub struct MsgReader {
    pos: InOrder,
    head_max: usize,
    head: Lazy,
    start: u32,
    total: Option<u64>,
    read: u64,
    lost: bool,
}

impl MsgReader {
    /// `head_max`: bytes of each message kept; `fresh`: the direction is read from its start.
    pub fn new(head_max: usize, fresh: bool) -> MsgReader {
        MsgReader {
            pos: InOrder::default(),
            head_max,
            head: Lazy::default(),
            start: 0,
            total: None,
            read: 0,
            lost: !fresh,
        }
    }

    pub fn feed<F: Framing>(&mut self, seg: Seg<'_>, ev: &mut dyn FnMut(Event<'_>)) {
        let cap = seg.data.len().min(seg.seg_len as usize);
        let from = match self.pos.place(seg.seq, seg.seg_len) {
            Fresh::Old => return,
            Fresh::From(k) => k.min(cap),
            Fresh::AfterHole(n) => {
                ev(Event::Lost { seq: n, len: seg.seq.wrapping_sub(n) as usize });
                self.reset();
                self.lost = true;
                0
            }
        };
        let data = &seg.data[from..cap];
        let seq0 = seg.seq.wrapping_add(from as u32);
        if self.lost {
            // A segment that starts a message ends the loss.
            if from == 0 && F::total_len(data).is_some_and(|t| t.is_some()) {
                self.lost = false;
            } else {
                ev(Event::Lost { seq: seq0, len: data.len() });
                return;
            }
        }
        let mut i = 0;
        while i < data.len() {
            if self.read == 0 && self.head.is_empty() {
                self.start = seq0.wrapping_add(i as u32);
                self.total = None;
            }
            let room = match self.total {
                Some(t) => (t - self.read).min((data.len() - i) as u64) as usize,
                None => data.len() - i,
            };
            let chunk = &data[i..i + room];
            let kept = self.head.len();
            if kept < self.head_max {
                self.head.push(&chunk[..chunk.len().min(self.head_max - kept)], self.head_max);
            }
            if self.total.is_none() {
                match F::total_len(self.head.as_slice()) {
                    None if self.head.len() < self.head_max => {
                        // Not enough yet: all of this chunk is head.
                        self.read += chunk.len() as u64;
                        i += chunk.len();
                        ev(Event::Head { start: self.start, head: self.head.as_slice() });
                        continue;
                    }
                    Some(Some(t)) if t > self.read => self.total = Some(t),
                    _ => {
                        ev(Event::Lost { seq: seq0.wrapping_add(i as u32), len: data.len() - i });
                        self.reset();
                        self.lost = true;
                        return;
                    }
                }
                // Only the message's own bytes of this chunk count.
                let t = self.total.unwrap_or(0);
                let take = ((t - self.read) as usize).min(chunk.len());
                self.read += take as u64;
                i += take;
            } else {
                self.read += chunk.len() as u64;
                i += chunk.len();
            }
            ev(Event::Head { start: self.start, head: self.head.as_slice() });
            if self.total == Some(self.read) {
                ev(Event::End { start: self.start, head: self.head.as_slice() });
                self.reset();
            }
        }
        if cap < seg.seg_len as usize {
            // The capture cut the segment: the framing is lost.
            self.reset();
            self.lost = true;
        }
    }

    fn reset(&mut self) {
        self.head.clear();
        self.read = 0;
        self.total = None;
    }
}
