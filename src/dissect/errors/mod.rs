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
//! at the frame that completes it, as Wireshark does.

pub mod http;
pub mod mysql;
pub mod oracle;
pub mod pgsql;
pub mod tds;

use std::collections::HashMap;
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

impl AppError {
    /// This error's place and time with another message.
    fn with(&self, f: Found) -> AppError {
        AppError { code: f.code, message: f.message, detail: f.detail, ..self.clone() }
    }
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
    last_frame: u64,
    /// Where and when the state began: an HTTP response given up is reported there.
    origin: AppError,
    state: Framing,
}

enum Framing {
    Mysql(mysql::Framer),
    Pgsql(pgsql::Framer),
    Tds(tds::Framer),
    Oracle(oracle::Scanner),
    Http(http::Pending),
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
            Framing::Http(_) => Family::Http,
        }
    }

    /// The capture cut the segment just fed (snaplen): like Wireshark, report an error message
    /// from what was captured of it, and start over at the next segment (the framing is lost).
    /// Returns whether the state is to be dropped.
    fn cut(&mut self, found: &mut Vec<Found>) -> bool {
        match self {
            Framing::Mysql(f) => f.cut(found),
            Framing::Pgsql(f) => f.cut(found),
            Framing::Tds(_) | Framing::Oracle(_) => {}
            // HTTP bodies are counted in wire bytes: a cut segment does not lose the framing.
            Framing::Http(_) => return false,
        }
        true
    }

    /// Feeds in-order bytes (`p` captured of `seg_len`); for HTTP, true when the response is
    /// complete.
    fn feed(&mut self, p: &[u8], seg_len: usize, found: &mut Vec<Found>) -> bool {
        match self {
            Framing::Mysql(f) => f.feed(p, found),
            Framing::Pgsql(f) => f.feed(p, found),
            Framing::Tds(f) => f.feed(p, found),
            Framing::Oracle(f) => f.feed(p, found),
            Framing::Http(h) => {
                if h.more(p, seg_len) {
                    found.push(h.give_up());
                    return true;
                }
            }
        }
        false
    }
}

/// What a framer hands back: one error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
}

/// Most HEAD requests awaiting their response that are remembered.
const MAX_HEADS: usize = 1024;

/// The error dissectors with their bounded per-connection state.
#[derive(Default)]
pub struct ErrorScanner {
    streams: HashMap<(u32, u8), Stream, foldhash::fast::RandomState>,
    /// Connections (slot, stream) whose last request was HEAD.
    heads: Vec<(u32, u64)>,
    found: Vec<Found>,
    /// HTTP responses waiting in `streams`: when none, segments of other protocols return at once.
    http_waiting: usize,
    /// Connections forgotten because the table was full.
    pub overflow: u64,
}

impl ErrorScanner {
    /// Looks at one TCP segment (not a retransmission: Wireshark hands those to no dissector).
    /// `flow` is (slot, direction, stream). Errors go to `out`.
    pub fn segment(&mut self, d: &Decoded<'_>, flow: Option<(u32, u8, u64)>, out: &mut Vec<AppError>) {
        let Transport::Tcp(t) = d.transport else { return };
        let p = d.payload;
        let Some(ip) = d.ip else { return };
        if p.is_empty() {
            return;
        }
        let proto = proto_for_port(t.src_port);
        if proto.is_none() && self.http_waiting == 0 && !p.starts_with(b"HTTP/") && !p.starts_with(b"HEAD ") {
            return;
        }
        let http_ok = proto.is_none() && !http_excluded(t.src_port) && !http_excluded(t.dst_port);
        let mk = |family: Family, f: Found, (frame, ts): (u64, Ts)| AppError {
            family,
            code: f.code,
            message: f.message,
            detail: f.detail,
            frame,
            ts,
            client: Some((ip.dst, t.dst_port)),
            server: Some((ip.src, t.src_port)),
            client_mac: d.eth_dst,
            stream: flow.map(|f| f.2),
        };
        let here = (d.frame, d.ts);
        if http_ok && p.starts_with(b"HEAD ") {
            if let Some((slot, _, stream)) = flow {
                if self.heads.len() >= MAX_HEADS {
                    self.heads.remove(0);
                }
                self.heads.push((slot, stream));
            }
            return;
        }
        let key = flow.map(|(s, dir, _)| (s, dir));
        let stream_id = flow.map_or(0, |f| f.2);
        // Continue the stream's state when this segment follows on; a gap, a retransmitted
        // start or a new connection in the slot starts over (framers resynchronise).
        let cont = key.and_then(|k| self.streams.get(&k)).map(|s| s.stream == stream_id && s.next_seq == t.seq);
        if cont == Some(false) {
            let old = self.remove(key.expect("has key")).expect("present");
            if let Framing::Http(h) = &old.state {
                out.push(old.origin.with(h.give_up()));
            }
        }
        self.found.clear();
        if cont != Some(true) {
            let state = match proto {
                Some(pr) => Framing::new(pr),
                None if http_ok && p.starts_with(b"HTTP/") => {
                    let head = match self.heads.iter().position(|h| flow.is_some_and(|f| (f.0, f.2) == *h)) {
                        Some(i) => {
                            self.heads.swap_remove(i);
                            true
                        }
                        None => false,
                    };
                    match http::Pending::start(p, t.seg_len as usize, head) {
                        http::Start::Ignore => return,
                        http::Start::Complete(f) => {
                            out.push(mk(Family::Http, f, here));
                            return;
                        }
                        http::Start::Waiting(pend) => {
                            if let Some(k) = key {
                                self.insert(
                                    k,
                                    Stream {
                                        stream: stream_id,
                                        next_seq: t.seq.wrapping_add(t.seg_len),
                                        last_frame: d.frame,
                                        origin: mk(Family::Http, http::Pending::placeholder(), here),
                                        state: Framing::Http(pend),
                                    },
                                );
                            }
                            return;
                        }
                    }
                }
                None => return,
            };
            match key {
                Some(k) => self.insert(
                    k,
                    Stream {
                        stream: stream_id,
                        next_seq: t.seq,
                        last_frame: d.frame,
                        origin: mk(state.family(), http::Pending::placeholder(), here),
                        state,
                    },
                ),
                None => {
                    // No flow slot (table full): this segment on its own.
                    let mut state = state;
                    let fam = state.family();
                    state.feed(p, t.seg_len as usize, &mut self.found);
                    if p.len() < t.seg_len as usize {
                        state.cut(&mut self.found);
                    }
                    out.extend(self.found.drain(..).map(|f| mk(fam, f, here)));
                    return;
                }
            }
        }
        let k = key.expect("stateful streams have a key");
        let s = self.streams.get_mut(&k).expect("present");
        s.next_seq = t.seq.wrapping_add(t.seg_len);
        s.last_frame = d.frame;
        let fam = s.state.family();
        let mut done = s.state.feed(p, t.seg_len as usize, &mut self.found);
        if p.len() < t.seg_len as usize {
            done |= s.state.cut(&mut self.found);
        }
        if done {
            self.remove(k);
        }
        out.extend(self.found.drain(..).map(|f| mk(fam, f, here)));
    }

    fn insert(&mut self, k: (u32, u8), s: Stream) {
        if self.streams.len() >= MAX_STREAMS {
            // Forget the connection idle longest.
            if let Some(old) = self.streams.iter().min_by_key(|(_, s)| s.last_frame).map(|(k, _)| *k) {
                self.remove(old);
                self.overflow += 1;
            }
        }
        if matches!(s.state, Framing::Http(_)) {
            self.http_waiting += 1;
        }
        if let Some(prev) = self.streams.insert(k, s) {
            if matches!(prev.state, Framing::Http(_)) {
                self.http_waiting -= 1;
            }
        }
    }

    fn remove(&mut self, k: (u32, u8)) -> Option<Stream> {
        let s = self.streams.remove(&k)?;
        if matches!(s.state, Framing::Http(_)) {
            self.http_waiting -= 1;
        }
        Some(s)
    }

    /// End of a file: HTTP responses still waiting for their body are reported as seen (with
    /// the frame of their status line); all framing state is forgotten.
    pub fn finish(&mut self, out: &mut Vec<AppError>) {
        let mut pending: Vec<&Stream> = self.streams.values().filter(|s| matches!(s.state, Framing::Http(_))).collect();
        pending.sort_by_key(|s| s.origin.frame);
        for s in pending {
            if let Framing::Http(h) = &s.state {
                out.push(s.origin.with(h.give_up()));
            }
        }
        self.streams.clear();
        self.http_waiting = 0;
        self.heads.clear();
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
                if let http::Start::Waiting(mut w) = http::Pending::start(&rest[..n], n, round % 2 == 0) {
                    w.more(&rest[..n], n);
                }
                rest = &rest[n..];
            }
            assert!(found.iter().all(|f| f.message.chars().count() <= MAX_TEXT));
        }
    }
}
