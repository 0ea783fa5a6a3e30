//! Application-layer dissectors: the facts of one frame that filters, identities and alerts
//! use (DNS, Kerberos, POP, DHCP, HTTP lines, application errors). Parsers are pure functions
//! over a payload; the state that crosses segments lives here and is bounded: DNS and Kerberos
//! messages joined over TCP ([`SegmentJoin`]), login dialogues ([`TextLogins`]) and the error
//! framers of database and web connections ([`errors::ErrorScanner`]).

pub mod dns;
pub mod errors;

use crate::bounded::LruMap;
use crate::decode::{Decoded, Transport};
use crate::flow::tcp::TcpAnalysis;
use crate::identity::{self, dhcp::Dhcp, kerberos, kerberos::Kerberos, text::TextLogins, IdentityFact};

/// What the dissectors found in one frame.
#[derive(Clone, Debug, Default)]
pub struct AppFacts {
    pub dns: Option<dns::DnsInfo>,
    pub krb: Option<kerberos::KrbFields>,
    pub pop: Option<PopFrame>,
    pub dhcp: Option<DhcpFrame>,
    /// HTTP request or status line at the start of this segment.
    pub http: Option<HttpFrame>,
    /// Application errors this frame completed (usually none).
    pub errors: Vec<errors::AppError>,
    /// `http.host` of the request this frame completed.
    pub http_host: Vec<u8>,
}

/// `http.*` of the frame that completed an HTTP message (Wireshark shows the fields there).
/// The Host value is in [`AppFacts::http_host`] (a reused buffer: nothing is allocated per frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpFrame {
    pub method: Option<&'static str>,
    pub code: Option<u16>,
    pub has_host: bool,
}

/// A POP3 segment (either direction) and the client's request line in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PopFrame {
    pub command: Option<String>,
    /// The command's argument — never the password of PASS (see [`pop_frame`]).
    pub parameter: Option<String>,
}

/// A DHCP message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DhcpFrame {
    pub hostname: Option<String>,
}

/// POP3 commands (RFC 1939, 2449, 5034, 6856, 2595): anything else on a client line is shown as
/// [`REDACTED`].
const POP_VERBS: &[&str] = &[
    "USER", "PASS", "APOP", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT", "TOP", "UIDL", "CAPA", "STLS",
    "AUTH", "UTF8", "LANG",
];
/// What a filter field shows instead of a value that may be a credential.
pub const REDACTED: &str = "<redacted>";

/// `pop.request.*` of a client segment: the first line's command and argument. The argument of
/// PASS (and APOP's digest) is left out: passwords are never kept, not even for a filter, since a
/// counter grouped by the field would store it.
fn pop_frame(payload: &[u8], from_client: bool) -> PopFrame {
    if !from_client {
        return PopFrame::default();
    }
    let line = payload.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (cmd, arg) = match line.iter().position(|b| *b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let secret = cmd.eq_ignore_ascii_case(b"PASS") || cmd.eq_ignore_ascii_case(b"APOP");
    if !cmd.is_empty() && !POP_VERBS.iter().any(|v| cmd.eq_ignore_ascii_case(v.as_bytes())) {
        // Not a POP3 command: a SASL response on its own line, or the tail of a split line. The
        // field is present (as in Wireshark) but its value is never the wire's.
        return PopFrame { command: Some(REDACTED.to_string()), parameter: None };
    }
    // AUTH keeps its mechanism; an initial response after it is a credential.
    let arg = match arg {
        Some(a) if cmd.eq_ignore_ascii_case(b"AUTH") => match a.iter().position(|b| *b == b' ') {
            Some(i) => {
                return PopFrame {
                    command: Some(identity::name_from_wire(cmd)),
                    parameter: Some(format!("{} {REDACTED}", identity::name_from_wire(&a[..i]))),
                }
            }
            None => Some(a),
        },
        a => a,
    };
    PopFrame {
        command: (!cmd.is_empty()).then(|| identity::name_from_wire(cmd)),
        parameter: arg.filter(|a| !a.is_empty() && !secret).map(identity::name_from_wire),
    }
}

impl AppFacts {
    fn set_http(&mut self, m: &errors::http::Pending) {
        self.http_host.clear();
        self.http_host.extend_from_slice(m.host().unwrap_or_default());
        self.http = Some(HttpFrame { method: m.method(), code: m.code(), has_host: m.host().is_some() });
    }

    /// Dissects one frame on its own (no reassembly): for callers without a pipeline.
    pub fn dissect(d: &Decoded<'_>, tcp: &TcpAnalysis) -> AppFacts {
        let mut f = AppFacts::default();
        Dissectors::default().dissect(d, tcp, None, &mut f);
        f
    }
}

/// Messages split across TCP segments waiting for the rest, per (flow slot, direction).
/// At most [`MAX_PENDING`] at once, each at most [`MAX_PENDING_BYTES`]: the protocols joined
/// here (DNS, Kerberos over TCP) have small messages; a longer one is given up, not buffered.
pub const MAX_PENDING: usize = 64;
pub const MAX_PENDING_BYTES: usize = 16 * 1024;

struct Pending {
    next_seq: u32,
    buf: Vec<u8>,
}

/// Joins in-order TCP segments of one direction until `parse` accepts them; when full, the
/// message waiting longest is given up.
pub struct SegmentJoin {
    pending: LruMap<(u32, u8), Pending>,
}

impl Default for SegmentJoin {
    fn default() -> Self {
        SegmentJoin { pending: LruMap::new(MAX_PENDING) }
    }
}

impl SegmentJoin {
    /// Feeds one segment; returns what `parse` made of the message this segment completes.
    pub fn feed<T>(
        &mut self,
        key: Option<(u32, u8)>,
        seq: u32,
        seg_len: u32,
        p: &[u8],
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Option<T> {
        let Some(key) = key else { return parse(p) };
        let next = seq.wrapping_add(seg_len);
        if let Some(e) = self.pending.get_mut(&key) {
            if e.next_seq == seq && e.buf.len() + p.len() <= MAX_PENDING_BYTES {
                e.buf.extend_from_slice(p);
                e.next_seq = next;
                if let Some(v) = parse(&e.buf) {
                    self.pending.remove(&key);
                    return Some(v);
                }
                return None;
            }
            self.pending.remove(&key);
        }
        if let Some(v) = parse(p) {
            return Some(v);
        }
        // The start of a message that continues in later segments.
        if p.len() <= MAX_PENDING_BYTES {
            self.pending.insert(key, Pending { next_seq: next, buf: p.to_vec() });
        }
        None
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// The dissectors with their (bounded) cross-segment state.
#[derive(Default)]
pub struct Dissectors {
    dns_join: SegmentJoin,
    krb_join: SegmentJoin,
    kerberos: Kerberos,
    logins: TextLogins,
    dhcp: Dhcp,
    errors: errors::ErrorScanner,
    http: errors::http::Tracker,
    /// Identity facts found in the current frame (or flushed at the end), taken by the caller.
    pub identities: Vec<IdentityFact>,
}

impl Dissectors {
    /// `flow` is the frame's (flow slot, direction, stream), when it belongs to a flow.
    /// Fills `f` in place (it is reused from frame to frame: only what this frame has is set;
    /// writing the whole struct per packet showed up as memcpy in profiles).
    pub fn dissect(&mut self, d: &Decoded<'_>, tcp: &TcpAnalysis, flow: Option<(u32, u8, u64)>, f: &mut AppFacts) {
        f.dns = None;
        f.krb = None;
        f.pop = None;
        f.dhcp = None;
        f.http = None;
        f.errors.clear();
        match d.transport {
            Transport::Udp(u) => {
                if let Some(kind) = dns::Kind::for_ports(u.src_port, u.dst_port) {
                    f.dns = dns::parse(d.payload, kind);
                }
                if u.src_port == 88 || u.dst_port == 88 {
                    if let Some((msg, fields)) = kerberos::parse(d.payload) {
                        f.krb = Some(fields);
                        self.kerberos.message(msg, d, &mut self.identities);
                    }
                }
                // SSDP is HTTP over UDP (one message per datagram).
                if u.src_port == 1900 || u.dst_port == 1900 {
                    if let Some((m, true)) = errors::http::Pending::any(d.payload, d.payload.len(), false) {
                        f.set_http(&m);
                    }
                }
                if matches!(u.src_port, 67 | 68) && matches!(u.dst_port, 67 | 68) {
                    if let Some(m) = identity::dhcp::parse(d.payload) {
                        f.dhcp = Some(DhcpFrame { hostname: m.hostname });
                    }
                    self.dhcp.message(d.payload, d.ts, d.frame, &mut self.identities);
                }
            }
            // HTTP follows messages through holes and retransmissions (see errors::http::Tracker).
            Transport::Tcp(t)
                if !d.payload.is_empty()
                    && !errors::http_excluded(t.src_port)
                    && !errors::http_excluded(t.dst_port) =>
            {
                // Retransmitted and out-of-order segments only fill holes (Wireshark dissects
                // neither on its own).
                let refill = tcp.is_retransmission() || tcp.flags.has(crate::flow::tcp::TcpFlags::OUT_OF_ORDER);
                if let Some(m) = self.http.segment(d.payload, t.seq, t.seg_len, refill, flow) {
                    f.set_http(&m);
                    // A 5xx response is an application error, at the frame that completed it.
                    f.errors.extend(m.error().map(|e| e.at(errors::Family::Http, d, flow)));
                }
                if !tcp.is_retransmission() {
                    self.tcp_segment(d, t, flow, f);
                }
            }
            // Other protocols: retransmitted data goes to no subdissector (tcp.no_subdissector_on_error).
            Transport::Tcp(t) if !tcp.is_retransmission() && !d.payload.is_empty() => self.tcp_segment(d, t, flow, f),
            _ => {}
        }
    }

    /// A TCP segment with data that is not a retransmission, for every dissector but HTTP.
    fn tcp_segment(
        &mut self,
        d: &Decoded<'_>,
        t: crate::decode::TcpHeader,
        flow: Option<(u32, u8, u64)>,
        f: &mut AppFacts,
    ) {
        let key = flow.map(|(s, dir, _)| (s, dir));
        self.errors.segment(d, flow, &mut f.errors);
        if let Some(kind) = dns::Kind::for_ports(t.src_port, t.dst_port) {
            f.dns = self.dns_join.feed(key, t.seq, t.seg_len, d.payload, |b| dns::parse_tcp_segment(b, kind));
        }
        if t.src_port == 88 || t.dst_port == 88 {
            if let Some((msg, fields)) = self.krb_join.feed(key, t.seq, t.seg_len, d.payload, kerberos::parse_tcp) {
                f.krb = Some(fields);
                self.kerberos.message(msg, d, &mut self.identities);
            }
        }
        if t.src_port == 110 || t.dst_port == 110 {
            f.pop = Some(pop_frame(d.payload, t.dst_port == 110));
        }
        if let (Some((slot, _, stream)), Some(from_client)) =
            (flow, identity::text::classify(t.src_port, t.dst_port, d.payload))
        {
            let ip = d.ip.map(|i| if from_client { i.src } else { i.dst });
            let mac = if from_client { d.eth_src } else { d.eth_dst };
            let seg = identity::text::Segment {
                conv: (slot, stream),
                payload: d.payload,
                from_client,
                client_mac: mac,
                client_ip: ip,
                ts: d.ts,
                frame: d.frame,
            };
            self.logins.segment(&seg, t.src_port, t.dst_port, &mut self.identities);
        }
    }

    /// End of input: attempts without a verdict are reported (outcome unknown).
    pub fn flush_identities(&mut self) {
        self.logins.flush(&mut self.identities);
        self.kerberos.flush(&mut self.identities);
    }

    /// Connections whose error framing or HTTP message was forgotten because its table was
    /// full, since the last call.
    pub fn take_error_overflow(&mut self) -> u64 {
        std::mem::take(&mut self.errors.overflow) + std::mem::take(&mut self.http.overflow)
    }

    /// Forgets partial messages (end of a file: flow slots restart).
    pub fn clear(&mut self) {
        self.http.clear();
        self.errors.clear();
        self.dns_join.clear();
        self.krb_join.clear();
    }
}
