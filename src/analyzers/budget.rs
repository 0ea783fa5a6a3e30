//! The one bound on the bytes analyzers hold between segments: partial lines, messages joined
//! across segments (DNS and Kerberos over TCP, LDAP binds), database error messages being read.
//!
//! Per-flow state is small and fixed; what varies is these buffers, and a LAN host that opens
//! thousands of connections and leaves each with half a message must not grow the daemon past
//! its `MemoryMax`. Every such buffer is a [`Buf`], whose capacity is reserved from one
//! process-wide budget (`[pipeline] analyzer_buffers`, default [`DEFAULT_MAX`]) and given back
//! when it is dropped — with its flow, or when the message is complete. A buffer the budget
//! cannot grant is not made: the analyzer treats the message as it treats one cut by the
//! capture, and the refusal is counted ([`refused`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// 16 MiB: a thousand half-read 16 KiB messages at once, far beyond what a branch office has
/// in flight, and a sixteenth of the unit's MemoryMax.
pub const DEFAULT_MAX: usize = 16 << 20;

static USED: AtomicUsize = AtomicUsize::new(0);
static MAX: AtomicUsize = AtomicUsize::new(DEFAULT_MAX);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Sets the budget (at start, from the configuration).
pub fn set_max(bytes: usize) {
    MAX.store(bytes, Ordering::Relaxed);
}

/// Bytes held now.
pub fn used() -> usize {
    USED.load(Ordering::Relaxed)
}

/// Buffers refused since the process started.
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

fn reserve(n: usize) -> bool {
    let max = MAX.load(Ordering::Relaxed);
    let ok =
        USED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| u.checked_add(n).filter(|t| *t <= max)).is_ok();
    if !ok {
        REFUSED.fetch_add(1, Ordering::Relaxed);
    }
    ok
}

/// A byte buffer of fixed capacity reserved from the budget.
#[derive(Debug)]
pub struct Buf {
    data: Vec<u8>,
}

impl Buf {
    /// A buffer that can hold `cap` bytes, if the budget has them.
    pub fn with_capacity(cap: usize) -> Option<Buf> {
        reserve(cap).then(|| Buf { data: Vec::with_capacity(cap) })
    }

    /// Appends as much of `b` as fits; false when some did not.
    pub fn push(&mut self, b: &[u8]) -> bool {
        let room = self.data.capacity() - self.data.len();
        let n = b.len().min(room);
        self.data.extend_from_slice(&b[..n]);
        n == b.len()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.data.len() == self.data.capacity()
    }

    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// Drops the first `n` bytes.
    pub fn consume(&mut self, n: usize) {
        self.data.drain(..n.min(self.data.len()));
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        USED.fetch_sub(self.data.capacity(), Ordering::Relaxed);
    }
}

/// Bytes of the budget held by something that is not a buffer (a queued request, a login
/// waiting for its verdict): given back when the claim is dropped.
#[derive(Debug)]
pub struct Claim(usize);

impl Claim {
    pub fn new(n: usize) -> Option<Claim> {
        reserve(n).then_some(Claim(n))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        USED.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// A buffer made on first use and dropped when emptied: what a parser holds only while a
/// message or line is incomplete.
#[derive(Debug, Default)]
pub struct Lazy {
    buf: Option<Buf>,
    /// A push was refused or cut (budget or capacity): the content is incomplete.
    pub lossy: bool,
}

impl Lazy {
    /// Appends `b`, making a buffer of `cap` bytes first if there is none.
    pub fn push(&mut self, b: &[u8], cap: usize) {
        if b.is_empty() {
            return;
        }
        if self.buf.is_none() {
            self.buf = Buf::with_capacity(cap);
        }
        match self.buf.as_mut() {
            Some(buf) => {
                if !buf.push(b) {
                    self.lossy = true;
                }
            }
            None => self.lossy = true,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], Buf::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.buf.as_ref().is_none_or(Buf::is_empty) && !self.lossy
    }

    /// Drops the first `n` bytes (the buffer is given back when it empties).
    pub fn consume(&mut self, n: usize) {
        if let Some(b) = self.buf.as_mut() {
            b.consume(n);
            if b.is_empty() {
                self.buf = None;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Gives the buffer back.
    pub fn clear(&mut self) {
        self.buf = None;
        self.lossy = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_give_their_capacity_back() {
        let before = used();
        {
            let mut b = Buf::with_capacity(100).unwrap();
            assert!(b.push(&[1; 60]));
            assert!(!b.push(&[2; 60]), "capacity is fixed");
            assert_eq!(b.len(), 100);
            assert!(used() >= before + 100);
        }
        let mut l = Lazy::default();
        l.push(b"abc", 2);
        assert!(l.lossy && l.as_slice() == b"ab");
        l.clear();
        assert!(l.is_empty());
    }
}
