//! Plaintext application errors on the wire (`app_error` facts): what they are ([`AppError`],
//! [`Family`]) and the framing pieces the database analyzers share to find them — a fixed-size
//! message header read across segments ([`Header`]) and a message body that is copied only when
//! it may be an error ([`Body`], at most [`MAX_MESSAGE`] bytes of the budget) and skipped
//! otherwise, so no result row is ever copied. The analyzers that find errors: MySQL/MariaDB ERR
//! packets ([`crate::analyzers::mysql`]), PostgreSQL ErrorResponse ([`crate::analyzers::pgsql`]),
//! SQL Server TDS ERROR tokens ([`crate::analyzers::tds`]), Oracle `ORA-NNNNN` texts
//! ([`crate::analyzers::oracle`]) and HTTP 5xx responses ([`crate::analyzers::http`]); each
//! reports an error at the frame that completes it, as Wireshark does.

use std::net::IpAddr;

use super::budget::Buf;
use crate::time::Ts;

/// Longest error message kept (a database error is a few hundred bytes; of a longer one the
/// start, where code and message are, is kept).
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Longest message text reported.
pub const MAX_TEXT: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Mysql,
    Postgresql,
    Tds,
    Oracle,
    Http,
    Pattern,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Mysql => "mysql",
            Family::Postgresql => "postgresql",
            Family::Tds => "tds",
            Family::Oracle => "oracle",
            Family::Http => "http",
            Family::Pattern => "pattern",
        }
    }
}

/// One application error seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppError {
    pub family: Family,
    /// MySQL error number, PostgreSQL SQLSTATE, TDS error number, `ORA-00060`, HTTP status.
    pub code: String,
    pub message: String,
    /// MySQL/PostgreSQL SQLSTATE or severity, TDS class/state: what the protocol adds.
    pub detail: Option<String>,
    pub frame: u64,
    pub ts: Ts,
    pub client: Option<(IpAddr, u16)>,
    pub server: Option<(IpAddr, u16)>,
    pub client_mac: Option<[u8; 6]>,
    pub stream: Option<u64>,
}

/// Text from the wire, made printable: control characters become U+FFFD, length is bounded.
/// (Escaping for HTML and mail happens where those are written; this only keeps the stored
/// text one line and short.)
pub fn wire_text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(MAX_TEXT)]);
    s.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

/// A fixed-size message header being read, possibly across segments (MySQL, PostgreSQL, TDS).
#[derive(Debug)]
pub struct Header<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Header<N> {
    fn default() -> Self {
        Header { bytes: [0; N], len: 0 }
    }
}

impl<const N: usize> Header<N> {
    /// Reads from `p[*i..]`; the whole header once its N bytes are in.
    pub fn feed(&mut self, p: &[u8], i: &mut usize) -> Option<[u8; N]> {
        let n = (N - self.len).min(p.len() - *i);
        self.bytes[self.len..self.len + n].copy_from_slice(&p[*i..*i + n]);
        self.len += n;
        *i += n;
        (self.len == N).then(|| {
            self.len = 0;
            self.bytes
        })
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The rest of a length-framed message: copied when it may be an error, skipped otherwise
/// (MySQL packets, PostgreSQL messages). The copy is the message's first [`MAX_MESSAGE`] bytes,
/// in a buffer of the budget (none when the budget is spent: the error is then missed, counted
/// by the budget).
#[derive(Debug)]
pub struct Body {
    left: usize,
    buf: Option<Buf>,
}

/// How far a [`Body`] is.
pub enum Done {
    Pending,
    Skipped,
    /// Complete and copied: read it with [`Body::message`].
    Kept,
}

impl Body {
    /// `len` bytes still to come after `prefix`; `keep` copies them.
    pub fn new(len: usize, keep: bool, prefix: &[u8]) -> Body {
        let buf = if keep { Buf::with_capacity((len + prefix.len()).min(MAX_MESSAGE)) } else { None };
        let mut b = Body { left: len, buf };
        if let Some(buf) = b.buf.as_mut() {
            buf.push(prefix);
        }
        b
    }

    /// Reads from `p[*i..]`.
    pub fn feed(&mut self, p: &[u8], i: &mut usize) -> Done {
        let n = self.left.min(p.len() - *i);
        if let Some(buf) = self.buf.as_mut() {
            buf.push(&p[*i..*i + n]);
        }
        *i += n;
        self.left -= n;
        match (self.left, self.buf.is_some()) {
            (0, true) => Done::Kept,
            (0, false) => Done::Skipped,
            _ => Done::Pending,
        }
    }

    pub fn message(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], Buf::as_slice)
    }

    /// What was copied of a kept body so far (a segment cut by the snaplen ends it early).
    pub fn partial(&self) -> Option<&[u8]> {
        self.buf.as_ref().map(Buf::as_slice)
    }
}

/// What a framer hands back: one error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
}

/// A framer of a server → client byte stream that finds error messages in it.
pub trait ErrorFramer: Default {
    /// Feeds the next in-order bytes; errors completed go to `found`.
    fn feed(&mut self, p: &[u8], found: &mut Vec<Found>);
    /// The segment just fed was cut by the capture (snaplen): report an error begun in it from
    /// what was captured, as Wireshark does with truncated frames.
    fn cut(&mut self, _found: &mut Vec<Found>) {}
}

/// The server → client stream of a database connection as its error framer reads it: in-order
/// segments continue the framing; a gap, a retransmitted start or a segment cut by the snaplen
/// begins it again (the framers resynchronise on message starts). Retransmitted and out-of-order
/// segments go to no framer (Wireshark's `tcp.no_subdissector_on_error`): an error the capture
/// saw before the router dropped it comes again, and is one error.
#[derive(Debug, Default)]
pub struct ServerStream<F> {
    pub framer: F,
    next: Option<u32>,
    found: Vec<Found>,
}

impl<F: ErrorFramer> ServerStream<F> {
    /// One server segment; the errors it completes are reported at this frame.
    pub fn segment(&mut self, s: super::TcpSeg<'_>, family: Family, here: &mut super::Here<'_>) {
        let p = s.seg.data;
        if s.retrans || s.ooo || p.is_empty() {
            return;
        }
        if self.next != Some(s.seg.seq) {
            self.framer = F::default();
        }
        self.next = Some(s.seg.end());
        self.framer.feed(p, &mut self.found);
        if s.cut() {
            self.framer.cut(&mut self.found);
            self.next = None;
        }
        for f in self.found.drain(..) {
            here.error(family, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random bytes in random cuts through every framer: no panic, bounded buffers.
    #[test]
    fn framers_survive_random_streams() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300 {
            let len = (next() % 5000) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Sprinkle the bytes the framers look for.
            for _ in 0..len / 50 {
                let i = (next() as usize) % len.max(1);
                if i < data.len() {
                    data[i] = [0xff, b'E', 0xaa, b'O', 0x04, b'H'][(next() % 6) as usize];
                }
            }
            let mut found = Vec::new();
            let mut m = crate::analyzers::mysql::framer::Framer::default();
            let mut p = crate::analyzers::pgsql::framer::Framer::default();
            let mut t = crate::analyzers::tds::framer::Framer::with_info();
            let mut o = crate::analyzers::oracle::Scanner::default();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = ((next() % 1500) as usize + 1).min(rest.len());
                m.feed(&rest[..n], &mut found);
                p.feed(&rest[..n], &mut found);
                t.feed(&rest[..n], &mut found);
                o.feed(&rest[..n], &mut found);
                if let Some((mut w, false)) =
                    crate::analyzers::http::message::Pending::any(&rest[..n], n, round % 2 == 0)
                {
                    w.more(&rest[..n], n);
                }
                rest = &rest[n..];
            }
            assert!(found.iter().all(|f| f.message.chars().count() <= MAX_TEXT));
        }
    }
}
