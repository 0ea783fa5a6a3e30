//! Plaintext application errors on the wire (`app_error` facts): MySQL/MariaDB ERR packets,
//! PostgreSQL ErrorResponse, SQL Server TDS ERROR tokens, Oracle `ORA-NNNNN` texts and HTTP
//! responses with a 5xx status.
//!
//! This module owns the per-connection framing state these need, and only that: for each server
//! → client byte stream of a database connection it tracks where the protocol's messages begin
//! and end (skipping result rows without copying them) and copies just the one message that is
//! an error, so an error split across TCP segments is found and nothing else is reassembled.
//! Every state is bounded: [`MAX_STREAMS`] connections, [`MAX_MESSAGE`] bytes per kept message;
//! beyond that the oldest connection is forgotten and counted (`overflow`). An error is reported
//! at the frame that completes it, as Wireshark does. HTTP 5xx responses are the HTTP message
//! tracker's ([`http::Tracker`]), which follows every HTTP message for the `http.*` fields too.

pub mod http;
pub mod mysql;
pub mod oracle;
pub mod pgsql;
pub mod tds;

use crate::bounded::LruMap;
use std::net::IpAddr;

use crate::decode::{Decoded, Transport};
use crate::time::Ts;

/// Connections whose framing is tracked at once.
pub const MAX_STREAMS: usize = 4096;
/// Longest error message kept (a database error is a few hundred bytes; longer is not an error
/// message this module cares about, and is skipped).
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
/// (MySQL packets, PostgreSQL messages).
pub struct Body {
    left: usize,
    keep: bool,
    buf: Vec<u8>,
}

/// How far a [`Body`] is.
pub enum Done {
    Pending,
    Skipped,
    /// Complete and copied: read it with [`Body::message`].
    Kept,
}

impl Body {
    /// `len` bytes still to come after `prefix`; `keep` copies them (if the whole message fits
    /// in [`MAX_MESSAGE`]).
    pub fn new(len: usize, keep: bool, prefix: &[u8]) -> Body {
        let keep = keep && len + prefix.len() <= MAX_MESSAGE;
        Body { left: len, keep, buf: if keep { prefix.to_vec() } else { Vec::new() } }
    }

    /// Reads from `p[*i..]`.
    pub fn feed(&mut self, p: &[u8], i: &mut usize) -> Done {
        let n = self.left.min(p.len() - *i);
        if self.keep {
            self.buf.extend_from_slice(&p[*i..*i + n]);
        }
        *i += n;
        self.left -= n;
        match (self.left, self.keep) {
            (0, true) => Done::Kept,
            (0, false) => Done::Skipped,
            _ => Done::Pending,
        }
    }

    pub fn message(&self) -> &[u8] {
        &self.buf
    }

    /// What was copied of a kept body so far (a segment cut by the snaplen ends it early).
    pub fn partial(&self) -> Option<&[u8]> {
        self.keep.then_some(&self.buf[..])
    }
}

/// Which protocol a server port speaks (the default ports; Wireshark's defaults too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Mysql,
    Pgsql,
    Tds,
    Oracle,
}

fn proto_for_port(port: u16) -> Option<Proto> {
    match port {
        3306 => Some(Proto::Mysql),
        5432 => Some(Proto::Pgsql),
        1433 => Some(Proto::Tds),
        1521 => Some(Proto::Oracle),
        _ => None,
    }
}

/// Ports owned by a dissector other than HTTP: an "HTTP/1.1 500" at the start of one of their
/// segments is data, not a response (Wireshark's HTTP heuristic never sees these either).
pub fn http_excluded(port: u16) -> bool {
    proto_for_port(port).is_some() || matches!(port, 21 | 22 | 25 | 53 | 88 | 110 | 143 | 389 | 443 | 445 | 465 | 587)
}

/// Framing state of one server → client byte stream.
struct Stream {
    stream: u64,
    next_seq: u32,
    state: Framing,
}

enum Framing {
    Mysql(mysql::Framer),
    Pgsql(pgsql::Framer),
    Tds(tds::Framer),
    Oracle(oracle::Scanner),
}

impl Framing {
    fn new(p: Proto) -> Framing {
        match p {
            Proto::Mysql => Framing::Mysql(mysql::Framer::default()),
            Proto::Pgsql => Framing::Pgsql(pgsql::Framer::default()),
            Proto::Tds => Framing::Tds(tds::Framer::default()),
            Proto::Oracle => Framing::Oracle(oracle::Scanner::default()),
        }
    }

    fn family(&self) -> Family {
        match self {
            Framing::Mysql(_) => Family::Mysql,
            Framing::Pgsql(_) => Family::Postgresql,
            Framing::Tds(_) => Family::Tds,
            Framing::Oracle(_) => Family::Oracle,
        }
    }

    /// The capture cut the segment just fed (snaplen): like Wireshark, report an error message
    /// from what was captured of it; the framing is lost, the caller starts over.
    fn cut(&mut self, found: &mut Vec<Found>) {
        match self {
            Framing::Mysql(f) => f.cut(found),
            Framing::Pgsql(f) => f.cut(found),
            Framing::Tds(_) | Framing::Oracle(_) => {}
        }
    }

    /// Feeds the next in-order bytes.
    fn feed(&mut self, p: &[u8], found: &mut Vec<Found>) {
        match self {
            Framing::Mysql(f) => f.feed(p, found),
            Framing::Pgsql(f) => f.feed(p, found),
            Framing::Tds(f) => f.feed(p, found),
            Framing::Oracle(f) => f.feed(p, found),
        }
    }
}

/// What a framer hands back: one error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
}

impl Found {
    /// The error of `family` that this frame's server → client segment completed.
    pub fn at(self, family: Family, d: &Decoded<'_>, flow: Option<(u32, u8, u64)>) -> AppError {
        let ends = match (d.ip, d.transport) {
            (Some(ip), Transport::Tcp(t)) => Some(((ip.dst, t.dst_port), (ip.src, t.src_port))),
            _ => None,
        };
        AppError {
            family,
            code: self.code,
            message: self.message,
            detail: self.detail,
            frame: d.frame,
            ts: d.ts,
            client: ends.map(|e| e.0),
            server: ends.map(|e| e.1),
            client_mac: d.eth_dst,
            stream: flow.map(|f| f.2),
        }
    }
}

/// The database error dissectors with their bounded per-connection state. (HTTP 5xx errors
/// come from the HTTP message tracker, [`http::Tracker`], which follows every HTTP message.)
pub struct ErrorScanner {
    streams: LruMap<(u32, u8), Stream>,
    found: Vec<Found>,
    /// Connections forgotten because the table was full.
    pub overflow: u64,
}

impl Default for ErrorScanner {
    fn default() -> Self {
        ErrorScanner { streams: LruMap::new(MAX_STREAMS), found: Vec::new(), overflow: 0 }
    }
}

impl ErrorScanner {
    /// Looks at one TCP segment (not a retransmission: Wireshark hands those to no dissector).
    /// `flow` is (slot, direction, stream). Errors go to `out`.
    pub fn segment(&mut self, d: &Decoded<'_>, flow: Option<(u32, u8, u64)>, out: &mut Vec<AppError>) {
        let Transport::Tcp(t) = d.transport else { return };
        let p = d.payload;
        let Some(proto) = proto_for_port(t.src_port) else { return };
        if p.is_empty() || d.ip.is_none() {
            return;
        }
        let cut = p.len() < t.seg_len as usize;
        self.found.clear();
        let Some((slot, dir, stream)) = flow else {
            // No flow slot (table full): this segment on its own.
            let mut state = Framing::new(proto);
            state.feed(p, &mut self.found);
            if cut {
                state.cut(&mut self.found);
            }
            out.extend(self.found.drain(..).map(|f| f.at(state.family(), d, flow)));
            return;
        };
        let key = (slot, dir);
        // Continue the stream's state when this segment follows on; a gap, a retransmitted
        // start or a new connection in the slot starts over (framers resynchronise).
        if !self.streams.peek(&key).is_some_and(|s| s.stream == stream && s.next_seq == t.seq) {
            // When full, the connection idle longest is forgotten.
            if self.streams.insert(key, Stream { stream, next_seq: t.seq, state: Framing::new(proto) }).is_some() {
                self.overflow += 1;
            }
        }
        let Some(s) = self.streams.get_mut(&key) else { return };
        s.next_seq = t.seq.wrapping_add(t.seg_len);
        let family = s.state.family();
        s.state.feed(p, &mut self.found);
        if cut {
            s.state.cut(&mut self.found);
            self.streams.remove(&key);
        }
        out.extend(self.found.drain(..).map(|f| f.at(family, d, flow)));
    }

    /// Forgets all framing state (end of a file: flow slots restart).
    pub fn clear(&mut self) {
        self.streams.clear();
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
            let mut m = mysql::Framer::default();
            let mut p = pgsql::Framer::default();
            let mut t = tds::Framer::with_info();
            let mut o = oracle::Scanner::default();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = ((next() % 1500) as usize + 1).min(rest.len());
                m.feed(&rest[..n], &mut found);
                p.feed(&rest[..n], &mut found);
                t.feed(&rest[..n], &mut found);
                o.feed(&rest[..n], &mut found);
                if let Some((mut w, false)) = http::Pending::any(&rest[..n], n, round % 2 == 0) {
                    w.more(&rest[..n], n);
                }
                rest = &rest[n..];
            }
            assert!(found.iter().all(|f| f.message.chars().count() <= MAX_TEXT));
        }
    }
}
