//! Lines of the text protocols (POP3, IMAP, SMTP, FTP, HTTP headers), read in order from one
//! direction of a TCP connection, and the credential ranges of the client's lines.
//!
//! A [`LineReader`] follows the direction's sequence numbers: bytes seen again (a
//! retransmission) are not read twice, a line cut across segments is joined (its first
//! [`MAX_LINE`] bytes are kept, in a [`Lazy`] buffer of the budget), and bytes lost before the
//! capture (a hole) make the line being read *unsynced*: its content is unknown, and on the
//! client side it is masked whole, as is the hole itself should its bytes come later.
//!
//! For each client line the protocol says, from the line's first bytes, which parts of it are
//! secret and how far its verdict is final ([`LineHandler::classify`], a [`Verdict`]): `PASS `
//! makes the rest of the line secret, `USER ` none of it, and `PA` cannot tell yet. Bytes beyond
//! what is decided when a segment ends are masked for now — masking too much is the safe error.
//! The ranges go to the direction's [`Secrets`], which mask this segment and every later copy of
//! the same bytes.

use super::budget::Lazy;
use super::secrets::{before, Secrets};
use super::{AppFacts, Here, TcpSeg};

/// Longest line prefix kept and handed to the protocol. Commands with a user name are short; a
/// longer line is judged on its start (what lies beyond is masked unless the verdict covers it).
pub const MAX_LINE: usize = 512;

/// A span end meaning "to the end of the line".
pub const OPEN: usize = usize::MAX;

const MAX_SPANS: usize = 4;

/// Which parts of a client line are secret: spans of byte offsets in the line, and how far the
/// verdict is final (bytes beyond `decided` are masked until a longer prefix decides them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    spans: [(usize, usize); MAX_SPANS],
    n: u8,
    pub decided: usize,
}

impl Verdict {
    /// Nothing secret, and nothing more to learn.
    pub const CLEAR: Verdict = Verdict { spans: [(0, 0); MAX_SPANS], n: 0, decided: OPEN };
    /// Nothing decided yet: all of it masked for now.
    pub const UNDECIDED: Verdict = Verdict { spans: [(0, 0); MAX_SPANS], n: 0, decided: 0 };

    /// Secret from byte `k` to the end of the line.
    pub fn secret_from(k: usize) -> Verdict {
        Verdict::CLEAR.with(k, OPEN)
    }

    /// Final up to byte `k` only.
    pub fn decided_to(mut self, k: usize) -> Verdict {
        self.decided = k;
        self
    }

    /// Adds the secret span `[a, b)` (the last span widens when there are too many).
    pub fn with(mut self, a: usize, b: usize) -> Verdict {
        if b <= a {
            return self;
        }
        if (self.n as usize) < MAX_SPANS {
            self.spans[self.n as usize] = (a, b);
            self.n += 1;
        } else {
            let l = &mut self.spans[MAX_SPANS - 1];
            *l = (l.0.min(a), l.1.max(b));
        }
        self
    }

    pub fn spans(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.spans[..self.n as usize].iter().copied()
    }

    pub fn is_clear(&self) -> bool {
        self.n == 0 && self.decided == OPEN
    }
}

/// What follows a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Lines,
    /// `len` bytes of data that are not lines (an IMAP literal, an HTTP body), secret or not;
    /// lines resume after them.
    Raw {
        len: u64,
        secret: bool,
    },
    /// The direction is no longer read as lines (TLS after STARTTLS, a body the protocol reads
    /// itself).
    Stop,
}

/// A protocol's view of its lines.
pub trait LineHandler {
    /// The client line read so far (`complete`: all of it, its end is in): its secret parts.
    /// Asked again as more of the line comes; must not change the handler's state.
    fn classify(&self, line: &[u8], complete: bool) -> Verdict;
    /// A whole line (CR LF removed, cut to [`MAX_LINE`]), in order.
    fn line(&mut self, line: &[u8], from_client: bool, here: &mut Here<'_>) -> After;
    /// Raw bytes announced by [`After::Raw`] (in pieces as they come; `seq` is the first's
    /// sequence number): the protocol may record secret ranges in them.
    fn raw(&mut self, _bytes: &[u8], _seq: u32, _from_client: bool, _secrets: &mut Secrets) {}
    /// Bytes were lost before this point: whatever was being read is unknown.
    fn gap(&mut self, _from_client: bool) {}
    /// The connection turned to TLS (STARTTLS, STLS, AUTH TLS accepted): nothing more is read.
    fn tls(&self) -> bool {
        false
    }
    /// The connection ended: a login still waiting for its verdict is reported unknown.
    fn end(&mut self, _f: &mut AppFacts) {}
}

/// Both directions of a line protocol (POP3, IMAP, SMTP, FTP), each read by its
/// [`LineReader`], and the protocol's handler that sees the lines of both.
#[derive(Debug)]
pub struct Dialog<H> {
    client: LineReader,
    server: LineReader,
    h: H,
}

impl<H: LineHandler + Default> Dialog<H> {
    /// `fresh`: [client, server] are read from their stream's start.
    pub fn new(fresh: [bool; 2]) -> Self {
        Dialog { client: LineReader::new(fresh[0]), server: LineReader::new(fresh[1]), h: H::default() }
    }

    /// One segment; true when the connection just turned to TLS (nothing more is read).
    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets, here: &mut Here<'_>) -> bool {
        if self.h.tls() {
            return false;
        }
        let r = if s.from_client { &mut self.client } else { &mut self.server };
        r.feed(s.seg, s.from_client, secrets, &mut self.h, here);
        self.h.tls()
    }

    pub fn end(&mut self, f: &mut AppFacts) {
        self.h.end(f);
    }
}

/// One segment of a direction: its captured bytes, sequence number and length on the wire.
#[derive(Clone, Copy, Debug)]
pub struct Seg<'a> {
    pub data: &'a [u8],
    pub seq: u32,
    pub seg_len: u32,
}

impl Seg<'_> {
    pub fn end(&self) -> u32 {
        self.seq.wrapping_add(self.seg_len)
    }
}

/// In-order position of one direction: which part of a segment is new.
#[derive(Clone, Copy, Debug, Default)]
pub struct InOrder {
    next: Option<u32>,
}

/// What a segment is relative to the bytes seen so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// New bytes from this offset of the segment on.
    From(usize),
    /// All seen before (a retransmission).
    Old,
    /// New bytes after a hole starting at this sequence number.
    AfterHole(u32),
}

impl InOrder {
    pub fn started(&self) -> bool {
        self.next.is_some()
    }

    /// Places the segment and moves the position past it.
    pub fn place(&mut self, seq: u32, seg_len: u32) -> Fresh {
        let end = seq.wrapping_add(seg_len);
        let f = match self.next {
            None => Fresh::From(0),
            Some(n) if n == seq => Fresh::From(0),
            Some(n) if before(seq, n) => {
                let skip = n.wrapping_sub(seq);
                if skip >= seg_len {
                    return Fresh::Old;
                }
                Fresh::From(skip as usize)
            }
            Some(n) => Fresh::AfterHole(n),
        };
        if self.next.is_none_or(|n| before(n, end)) {
            self.next = Some(end);
        }
        f
    }

    /// The new bytes of a client segment of a binary login (PostgreSQL, MySQL, TDS) and the
    /// sequence number of the first; None for a retransmission. A hole before them, or bytes
    /// the capture cut (snaplen), lose the client's framing (`lost`); while `in_login` the
    /// hole is masked, should its bytes come later, as any of them may be a password.
    pub fn login_bytes<'a>(
        &mut self,
        s: &TcpSeg<'a>,
        in_login: bool,
        lost: &mut bool,
        secrets: &mut Secrets,
    ) -> Option<(&'a [u8], u32)> {
        let seg = s.seg;
        let cap = seg.data.len().min(seg.seg_len as usize);
        let from = match self.place(seg.seq, seg.seg_len) {
            Fresh::Old => return None,
            Fresh::From(k) => k.min(cap),
            Fresh::AfterHole(n) => {
                if in_login {
                    secrets.add(n, seg.seq);
                }
                *lost = true;
                0
            }
        };
        if s.cut() && in_login {
            // What the capture did not keep cannot be framed.
            *lost = true;
        }
        Some((&seg.data[from..cap], seg.seq.wrapping_add(from as u32)))
    }
}

#[derive(Debug, Default)]
pub struct LineReader {
    pos: InOrder,
    line_start: u32,
    partial: Lazy,
    unsynced: bool,
    raw_left: u64,
    raw_secret: bool,
    stopped: bool,
}

/// A line's content without its line end.
pub fn body(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Records the secret parts of the line bytes `[from, to)` (offsets in the line; the line starts
/// at `start`) as `v` judges them: its spans, and everything beyond what it decided.
fn record(v: &Verdict, start: u32, from: usize, to: usize, secrets: &mut Secrets) {
    let at = |k: usize| start.wrapping_add(k as u32);
    for (a, b) in v.spans() {
        let (a, b) = (a.max(from), b.min(to));
        if a < b {
            secrets.add(at(a), at(b));
        }
    }
    let d = v.decided.max(from);
    if d < to {
        secrets.add(at(d), at(to));
    }
}

impl LineReader {
    /// `fresh`: the direction's first byte is the start of the stream (its SYN was seen); a
    /// reader that starts mid-stream cannot know where its first line begins.
    pub fn new(fresh: bool) -> LineReader {
        LineReader { unsynced: !fresh, ..Default::default() }
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Reads one segment of the direction. Client lines' secret ranges go to `secrets`.
    pub fn feed<H: LineHandler>(
        &mut self,
        seg: Seg<'_>,
        from_client: bool,
        secrets: &mut Secrets,
        h: &mut H,
        here: &mut Here<'_>,
    ) {
        if self.stopped || seg.seg_len == 0 {
            return;
        }
        let cap = seg.data.len().min(seg.seg_len as usize);
        if !self.pos.started() {
            self.line_start = seg.seq;
        }
        let from = match self.pos.place(seg.seq, seg.seg_len) {
            Fresh::Old => return,
            Fresh::From(k) => k.min(cap),
            Fresh::AfterHole(n) => {
                // The hole's bytes, should they come later, are unknown.
                if from_client {
                    secrets.add(n, seg.seq);
                }
                h.gap(from_client);
                self.resync(seg.seq);
                0
            }
        };
        let data = &seg.data[..cap];
        let seq_at = |i: usize| seg.seq.wrapping_add(i as u32);
        let mut i = from;
        while i < data.len() && !self.stopped {
            if self.raw_left > 0 {
                let n = (self.raw_left.min(usize::MAX as u64) as usize).min(data.len() - i);
                if from_client && self.raw_secret {
                    secrets.add(seq_at(i), seq_at(i + n));
                }
                h.raw(&data[i..i + n], seq_at(i), from_client, secrets);
                self.raw_left -= n as u64;
                i += n;
                if self.raw_left == 0 {
                    self.line_start = seq_at(i);
                }
                continue;
            }
            let (chunk, complete) = match memchr::memchr(b'\n', &data[i..]) {
                Some(j) => (&data[i..=i + j], true),
                None => (&data[i..], false),
            };
            let end = i + chunk.len();
            // Offsets of this chunk in its line.
            let in_line = seq_at(i).wrapping_sub(self.line_start) as usize;
            let joined = !self.partial.is_empty();
            if joined {
                self.partial.push(chunk, MAX_LINE);
            }
            let so_far: &[u8] = if joined { self.partial.as_slice() } else { &chunk[..chunk.len().min(MAX_LINE)] };
            let whole = complete && in_line + chunk.len() <= MAX_LINE && !self.partial.lossy;
            if from_client {
                let content = body(so_far);
                let v = if self.unsynced { Verdict::UNDECIDED } else { h.classify(content, whole) };
                // This chunk's bytes, up to the line end (CR LF stay clear).
                let line_end = if complete { in_line + body(chunk).len() } else { in_line + chunk.len() };
                record(&v, self.line_start, in_line, line_end, secrets);
            }
            if complete {
                let after = h.line(body(so_far), from_client, here);
                self.partial.clear();
                self.unsynced = false;
                self.line_start = seq_at(end);
                match after {
                    After::Lines => {}
                    After::Raw { len, secret } => {
                        self.raw_left = len;
                        self.raw_secret = secret;
                    }
                    After::Stop => self.stopped = true,
                }
            } else if !joined {
                self.partial.push(&chunk[..chunk.len().min(MAX_LINE)], MAX_LINE);
            }
            i = end;
        }
        if cap < seg.seg_len as usize && !self.stopped {
            // The capture cut the segment: what follows is unknown.
            h.gap(from_client);
            self.resync(seg.end());
        }
    }

    /// Starts over at `seq` without knowing where lines begin.
    fn resync(&mut self, seq: u32) {
        self.partial.clear();
        self.unsynced = true;
        self.raw_left = 0;
        self.line_start = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::AppFacts;
    use crate::capture::mask::Masks;

    /// A handler for the tests: `PASS ` lines are secret from byte 5, `USER ` clear, others
    /// undecided until complete (then secret), `LIT n` announces a secret literal, and in
    /// `URL a?b` everything after `?` is secret.
    #[derive(Default)]
    struct T {
        lines: Vec<String>,
    }

    impl LineHandler for T {
        fn classify(&self, l: &[u8], complete: bool) -> Verdict {
            if l.starts_with(b"PASS ") {
                Verdict::secret_from(5)
            } else if l.starts_with(b"USER ") || l.starts_with(b"LIT ") {
                Verdict::CLEAR
            } else if l.starts_with(b"URL ") {
                match l.iter().position(|b| *b == b'?') {
                    Some(q) => Verdict::secret_from(q + 1),
                    None if complete => Verdict::CLEAR,
                    None => Verdict::CLEAR.decided_to(l.len()),
                }
            } else if complete {
                Verdict::secret_from(0)
            } else {
                Verdict::UNDECIDED
            }
        }
        fn line(&mut self, l: &[u8], _c: bool, _h: &mut Here<'_>) -> After {
            self.lines.push(String::from_utf8_lossy(l).into_owned());
            match l.strip_prefix(b"LIT ") {
                Some(n) => After::Raw { len: std::str::from_utf8(n).unwrap().parse().unwrap(), secret: true },
                None => After::Lines,
            }
        }
    }

    /// Feeds `segs` (seq, bytes) as client segments; returns each segment with its masks applied.
    fn run(fresh: bool, segs: &[(u32, &[u8])]) -> (Vec<String>, Vec<String>) {
        let mut r = LineReader::new(fresh);
        let mut s = Secrets::default();
        let mut t = T::default();
        let mut facts = AppFacts::default();
        let mut out = Vec::new();
        for &(seq, data) in segs {
            let mut here = Here::test(&mut facts);
            r.feed(Seg { data, seq, seg_len: data.len() as u32 }, true, &mut s, &mut t, &mut here);
            let mut m = Masks::default();
            s.mask(seq, data.len(), 0, &mut m);
            let mut d = data.to_vec();
            m.apply(&mut d);
            out.push(String::from_utf8_lossy(&d).into_owned());
        }
        (out, t.lines)
    }

    #[test]
    fn a_password_cut_anywhere_is_masked_in_both_segments() {
        let all = b"USER bob\r\nPASS hunter2\r\nSTAT\r\n";
        for cut in 1..all.len() {
            let (a, b) = all.split_at(cut);
            let (out, lines) = run(true, &[(1000, a), (1000 + cut as u32, b)]);
            let joined = out.concat();
            assert!(!joined.contains("hunter") && !joined.contains("er2"), "cut {cut}: {joined}");
            assert!(joined.starts_with("USER bob\r\n") || cut < 10, "cut {cut}: {joined}");
            assert_eq!(lines, ["USER bob", "PASS hunter2", "STAT"], "cut {cut}");
            // A retransmission of everything is masked the same way.
            let (again, _) = run(true, &[(1000, a), (1000 + cut as u32, b), (1000, all)]);
            assert!(!again[2].contains("hunter"), "cut {cut}: {}", again[2]);
        }
    }

    #[test]
    fn a_hole_and_a_mid_stream_start_are_masked() {
        // The reader starts mid-stream: the first line is unknown.
        let (out, _) = run(false, &[(0, b"ret\r\nUSER al\r\n")]);
        assert_eq!(out[0], "***\r\nUSER al\r\n");
        // Bytes 10..15 lost: the line they are in is masked, and so are they when they come.
        let (out, _) = run(true, &[(0, b"USER bob\r\n"), (15, b"nter2\r\nUSER x\r\n"), (10, b"PASS ")]);
        assert_eq!(out[1], "*****\r\nUSER x\r\n");
        assert_eq!(out[2], "*****");
    }

    #[test]
    fn secret_literals_are_masked_across_segments() {
        let (out, lines) = run(true, &[(0, b"LIT 6\r\nabc"), (10, b"def\r\nUSER x\r\n")]);
        assert_eq!(out, ["LIT 6\r\n***", "***\r\nUSER x\r\n"]);
        assert_eq!(lines, ["LIT 6", "", "USER x"]);
    }

    #[test]
    fn a_line_undecided_at_a_segment_end_is_masked_only_beyond_what_is_decided() {
        let (out, _) = run(true, &[(0, b"URL /a/b"), (8, b"/c?pw=x\r\n")]);
        assert_eq!(out, ["URL /a/b", "/c?****\r\n"]);
        let (out, _) = run(true, &[(0, b"URL /a?p"), (8, b"w=x HTTP\r\n")]);
        assert_eq!(out, ["URL /a?*", "********\r\n"]);
    }
}
