//! Transactions: how each exchange of a capture ended, summarised per service, for the diff of
//! a normal and a failure capture (`mirrorwatch diff`).
//!
//! Fed frame by frame from the pipeline (its decode, TCP analysis and the analyzers' facts), the
//! [`Tracker`] pairs TCP handshakes with how the connection ended, DNS queries with their rcode
//! and Kerberos requests with their reply or error, and takes the exchanges the analyzers paired
//! themselves — HTTP request → status, POP/IMAP/SMTP/FTP command → reply, TLS ClientHello →
//! ServerHello or alert — with ICMP errors and application errors. Each finished exchange is
//! added to its service: (protocol, server address and port,
//! name: DNS type and name, HTTP method, host and path, SNI, Kerberos principal, command verb).
//! Client ports, transaction ids and times never enter a key, so two runs of the same work line
//! up. Everything is bounded: pending exchanges live in LRU tables, services are capped, and a
//! service keeps counts and the first few frames, never every exchange. No payload is parsed
//! here: the analyzers did.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::bounded::LruMap;
use crate::decode::{Decoded, Transport};
use crate::event::{ExchangeRow, PacketOutcome};
use crate::filter::fields::Ctx;
use crate::time::Ts;

/// Services kept per capture; beyond it new services are counted, not kept.
pub const MAX_SERVICES: usize = 20_000;
/// Connections, DNS queries and Kerberos requests waiting for their answer.
pub const MAX_PENDING: usize = 65_536;
/// Frames kept per outcome (the first ones), as evidence.
const FRAMES_KEPT: usize = 5;
/// RTT samples kept per service (the first ones) for the median.
const SAMPLES_KEPT: usize = 256;

/// Which exchange, independent of the run: protocol, server, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceKey {
    pub proto: &'static str,
    /// "ip:port" ("[v6]:port"), or the unreachable destination of an ICMP error.
    pub server: String,
    /// DNS "A name", HTTP "GET host/path", TLS SNI, Kerberos "AS-REQ user@REALM", a command
    /// verb, an error "family code"; empty for plain TCP.
    pub name: String,
    /// The client's address, for the store's exchanges ([`Tracker::per_client`]); `None` in a
    /// file diff, where two runs of the same work line up whoever the client was.
    #[serde(skip)]
    pub client: Option<IpAddr>,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = self.proto.to_uppercase();
        if self.name.is_empty() {
            write!(f, "{proto} {}", self.server)
        } else {
            write!(f, "{proto} {} {}", self.name, self.server)
        }
    }
}

/// The 5-tuple of the exchange an outcome was first seen in (for the ladder diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FlowTuple {
    pub proto: u8,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
}

/// How often an exchange of a service ended one way, and where.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OutcomeStat {
    pub count: u64,
    /// Frames that carried this outcome (the first few).
    pub frames: Vec<u64>,
    /// The request frame of the first one.
    pub request_frame: u64,
    /// Whether this is how the exchange normally ends well (established, NOERROR, HTTP 2xx…).
    pub good: bool,
    #[serde(skip)]
    pub flow: Option<FlowTuple>,
    /// Round trips of these exchanges (µs, the first [`SAMPLES_KEPT`]): TCP handshake, DNS
    /// query, HTTP time to first byte…
    #[serde(skip)]
    pub rtt_us: Vec<i64>,
    /// Frame bytes, packets and retransmissions of the connections that ended this way (TCP
    /// only: a connection's totals are added when it ends).
    #[serde(skip)]
    pub bytes: u64,
    #[serde(skip)]
    pub packets: u64,
    #[serde(skip)]
    pub retransmissions: u64,
}

/// One service of a capture.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Service {
    pub outcomes: BTreeMap<String, OutcomeStat>,
    /// Round trips (µs): TCP handshake, DNS query, HTTP time to first byte… (the first ones).
    pub rtt_us: Vec<i64>,
    /// TCP packets of the service's connections and how many were retransmissions.
    pub packets: u64,
    pub retransmissions: u64,
    pub retrans_frames: Vec<u64>,
}

impl Service {
    /// One exchange ended with `outcome`.
    fn record(
        &mut self,
        outcome: String,
        good: bool,
        frame: u64,
        request: u64,
        flow: Option<FlowTuple>,
        rtt: Option<i64>,
    ) {
        let o = self.outcomes.entry(outcome).or_default();
        if let Some(us) = rtt {
            if o.rtt_us.len() < SAMPLES_KEPT {
                o.rtt_us.push(us.max(0));
            }
        }
        if o.count == 0 {
            o.request_frame = request;
            o.good = good;
            o.flow = flow;
        }
        o.count += 1;
        if o.frames.len() < FRAMES_KEPT {
            o.frames.push(frame);
        }
    }

    pub fn exchanges(&self) -> u64 {
        self.outcomes.values().map(|o| o.count).sum()
    }

    pub fn median_rtt_us(&self) -> Option<i64> {
        let mut v = self.rtt_us.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }
}

pub type ServiceMap = std::collections::HashMap<ServiceKey, Service, foldhash::fast::RandomState>;

/// A capture summarised as transactions.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CaptureTx {
    pub file: String,
    pub frames: u64,
    /// By service (hashed: the store's tracker looks one up per exchange; reports sort them).
    pub services: ServiceMap,
    pub tcp_packets: u64,
    pub tcp_retransmissions: u64,
    pub retrans_frames: Vec<u64>,
    /// Services not kept (beyond [`MAX_SERVICES`]) and exchanges evicted unanswered.
    pub overflow: u64,
}

impl CaptureTx {
    fn service(&mut self, key: ServiceKey) -> Option<&mut Service> {
        use std::collections::hash_map::Entry;
        let full = self.services.len() >= MAX_SERVICES;
        match self.services.entry(key) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(_) if full => {
                self.overflow += 1;
                None
            }
            Entry::Vacant(e) => Some(e.insert(Service::default())),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &mut self,
        key: ServiceKey,
        outcome: String,
        good: bool,
        frame: u64,
        request: u64,
        flow: Option<FlowTuple>,
        rtt: Option<i64>,
    ) {
        if let Some(s) = self.service(key) {
            s.record(outcome, good, frame, request, flow, rtt);
        }
    }

    fn rtt(&mut self, key: ServiceKey, us: i64) {
        if let Some(s) = self.service(key) {
            if s.rtt_us.len() < SAMPLES_KEPT {
                s.rtt_us.push(us.max(0));
            }
        }
    }
}

pub fn addr(ip: IpAddr, port: u16) -> String {
    let mut s = String::with_capacity(24);
    if ip.is_ipv6() {
        s.push('[');
    }
    crate::decode::push_ip(&mut s, ip);
    s.push_str(if ip.is_ipv6() { "]:" } else { ":" });
    let mut digits = [0u8; 5];
    let (mut n, mut i) = (port, digits.len());
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    s.extend(digits[i..].iter().map(|&d| d as char));
    s
}

/// The first [`FRAMES_KEPT`] frames of something.
#[derive(Default)]
struct FirstFrames {
    frames: [u64; FRAMES_KEPT],
    n: usize,
}

impl FirstFrames {
    fn push(&mut self, f: u64) {
        if self.n < FRAMES_KEPT {
            self.frames[self.n] = f;
            self.n += 1;
        }
    }
    fn as_slice(&self) -> &[u64] {
        &self.frames[..self.n]
    }
}

struct Conn {
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    saw_syn: bool,
    syn: (u64, Ts),
    synack: bool,
    done: bool,
    /// Packets and retransmissions, added to the server's service when the connection ends
    /// (not looked up per packet).
    packets: u64,
    retransmissions: u64,
    /// The first retransmissions' frames (the file diff's evidence; boxed when there are any,
    /// so a clean connection carries a pointer, not a vector).
    retrans_frames: Option<Box<FirstFrames>>,
    /// Frame bytes of the connection, and the handshake's round trip once seen.
    bytes: u64,
    rtt: Option<i64>,
    /// How the connection ended, once known (its totals go to that outcome when it ends).
    outcome: Option<(&'static str, bool)>,
}

impl Conn {
    fn tuple(&self) -> FlowTuple {
        FlowTuple { proto: 6, client: self.client, server: self.server }
    }
    fn key(&self, proto: &'static str, name: String, per_client: bool) -> ServiceKey {
        // Formatted when needed (a few times a connection) rather than kept: the store's tracker
        // holds tens of thousands of connections.
        ServiceKey {
            proto,
            server: addr(self.server.0, self.server.1),
            name,
            client: per_client.then_some(self.client.0),
        }
    }
}

/// A DNS query waiting: (client, client port, server, id).
type DnsKey = (IpAddr, u16, IpAddr, u16);
/// (type and name, frame, time, server port)
type DnsQuery = (String, u64, Ts, u16);

/// Pairs requests with answers over one capture.
pub struct Tracker {
    pub tx: CaptureTx,
    /// Boxed: the table's buckets stay small (it is sized for [`MAX_PENDING`] at once, so it
    /// never rehashes), a connection's state lives only while it does.
    conns: LruMap<u64, Box<Conn>>,
    dns: LruMap<DnsKey, DnsQuery>,
    krb: LruMap<(IpAddr, u16, IpAddr), (String, u64, Ts)>,
    /// Keys carry the client ([`ServiceKey::client`]), and connections end when their flow
    /// does ([`Tracker::end_stream`]): the store's mode.
    pub per_client: bool,
    /// TCP streams whose flow ended during the frame, finished after its exchanges.
    ending: Vec<u64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new(String::new())
    }
}

const FIN: u16 = 0x001;
const SYN: u16 = 0x002;
const RST: u16 = 0x004;
const ACK: u16 = 0x010;

fn us(a: Ts, b: Ts) -> i64 {
    a.since(b) / 1000
}

impl Tracker {
    pub fn new(file: String) -> Tracker {
        Tracker {
            tx: CaptureTx { file, ..Default::default() },
            conns: LruMap::with_capacity(MAX_PENDING),
            dns: LruMap::new(MAX_PENDING),
            krb: LruMap::new(MAX_PENDING),
            per_client: false,
            ending: Vec::new(),
        }
    }

    /// The store's tracker: keys by client, connections finished as their flows end.
    pub fn live() -> Tracker {
        Tracker { per_client: true, ..Tracker::new(String::new()) }
    }

    fn client(&self, ip: IpAddr) -> Option<IpAddr> {
        self.per_client.then_some(ip)
    }

    /// The flow of TCP stream `stream` ended (closed, idle, evicted): its connection is
    /// finished once the frame's exchanges are in.
    pub fn end_stream(&mut self, stream: u64) {
        if self.ending.len() < MAX_PENDING {
            self.ending.push(stream);
        }
    }

    /// Takes the services finished so far (the store writes them per minute), leaving the
    /// pending exchanges in place.
    pub fn take_services(&mut self) -> ServiceMap {
        std::mem::take(&mut self.tx.services)
    }

    /// Everything still waiting is finished as at the end of a capture (the end of a file
    /// replayed into the store): connections open at the end, queries with no answer.
    pub fn finish_pending(&mut self) {
        self.finish_ending();
        let conns: Vec<Box<Conn>> = self.conns.drain().map(|(_, c)| c).collect();
        for c in conns {
            self.finish_conn(*c);
        }
        let dns: Vec<_> = self.dns.drain().collect();
        for ((cl, cp, sv, _), (what, f, _, sp)) in dns {
            let key = ServiceKey { proto: "dns", server: addr(sv, sp), name: what, client: self.client(cl) };
            let flow = FlowTuple { proto: 17, client: (cl, cp), server: (sv, sp) };
            self.tx.outcome(key, "no answer".into(), false, f, f, Some(flow), None);
        }
        let krb: Vec<_> = self.krb.drain().collect();
        for ((cl, cp, sv), (name, f, _)) in krb {
            let key = ServiceKey { proto: "kerberos", server: addr(sv, 88), name, client: self.client(cl) };
            let flow = FlowTuple { proto: 17, client: (cl, cp), server: (sv, 88) };
            self.tx.outcome(key, "no answer".into(), false, f, f, Some(flow), None);
        }
    }

    fn finish_ending(&mut self) {
        for stream in std::mem::take(&mut self.ending) {
            if let Some(c) = self.conns.remove(&stream) {
                self.finish_conn(*c);
            }
        }
    }

    /// One frame, after the pipeline processed it.
    pub fn observe(&mut self, c: &Ctx<'_, '_>, o: &PacketOutcome) {
        self.tx.frames += 1;
        let d = c.d;
        let Some(ip) = d.ip else { return };
        match d.transport {
            Transport::Tcp(t) => self.tcp(c, o, ip.src, ip.dst, t),
            Transport::Udp(u) => self.udp(c, d, ip.src, ip.dst, u.src_port, u.dst_port),
            Transport::Icmp(i) if i.is_error() => {
                if let (Some(q), Some(p)) = (d.quoted_ip, d.quoted_ports) {
                    let proto = match p.proto {
                        6 => "tcp",
                        17 => "udp",
                        _ => "ip",
                    };
                    let what = icmp_error_text(i.v6, i.icmp_type, i.code);
                    let key = ServiceKey {
                        proto: "icmp",
                        server: addr(q.dst, p.dst_port),
                        name: format!("{proto} to"),
                        client: self.client(q.src),
                    };
                    let flow = FlowTuple { proto: p.proto, client: (q.src, p.src_port), server: (q.dst, p.dst_port) };
                    self.tx.outcome(key, what, false, d.frame, d.frame, Some(flow), None);
                }
            }
            _ => {}
        }
        for x in &c.app.exchanges {
            self.exchange(x);
        }
        for e in &c.app.errors {
            let server = e.server.map(|(ip, p)| addr(ip, p)).unwrap_or_default();
            let key = ServiceKey {
                proto: "error",
                server,
                name: format!("{} {}", e.family.name(), e.code),
                client: e.client.and_then(|c| self.client(c.0)),
            };
            let flow = match (e.client, e.server) {
                (Some(cl), Some(sv)) => Some(FlowTuple { proto: 6, client: cl, server: sv }),
                _ => None,
            };
            let text = crate::analyzers::errors::wire_text(e.message.as_bytes());
            self.tx.outcome(key, text.chars().take(120).collect(), false, e.frame, e.frame, flow, None);
        }
        if !self.ending.is_empty() {
            self.finish_ending();
        }
    }

    fn tcp(&mut self, c: &Ctx<'_, '_>, o: &PacketOutcome, src: IpAddr, dst: IpAddr, t: crate::decode::TcpHeader) {
        let d = c.d;
        let Some(stream) = o.stream else { return };
        let (frame, ts) = (d.frame, d.ts);
        self.tx.tcp_packets += 1;
        let retrans = c.tcp.is_retransmission();
        if retrans {
            self.tx.tcp_retransmissions += 1;
            if self.tx.retrans_frames.len() < FRAMES_KEPT {
                self.tx.retrans_frames.push(frame);
            }
        }
        let syn_only = t.has(SYN) && !t.has(ACK);
        if !self.conns.contains_key(&stream) {
            // Without the SYN, the lower port is taken for the server.
            let (client, server) = if syn_only || (!t.has(SYN) && t.src_port > t.dst_port) {
                ((src, t.src_port), (dst, t.dst_port))
            } else {
                ((dst, t.dst_port), (src, t.src_port))
            };
            let conn = Box::new(Conn {
                client,
                server,
                saw_syn: syn_only,
                syn: (frame, ts),
                synack: false,
                done: false,
                packets: 0,
                retransmissions: 0,
                retrans_frames: None,
                bytes: 0,
                rtt: None,
                outcome: None,
            });
            if let Some((_, old)) = self.conns.insert(stream, conn) {
                self.finish_conn(*old);
            }
        }
        // Connections end with their flows (or the capture): their order of use is not kept, so
        // a packet costs one lookup.
        let Some(conn) = self.conns.peek_mut(&stream) else { return };
        let from_client = (src, t.src_port) == conn.client;
        conn.packets += 1;
        conn.bytes += d.frame_len as u64;
        if retrans {
            conn.retransmissions += 1;
            conn.retrans_frames.get_or_insert_with(Default::default).push(frame);
        }
        if conn.done {
            return;
        }
        if t.has(SYN) && t.has(ACK) && !from_client && !conn.synack {
            conn.synack = true;
            if conn.saw_syn {
                let rtt = us(ts, conn.syn.1);
                conn.rtt = Some(rtt);
                // The store keeps round trips per outcome (below); the file diff per service.
                if !self.per_client {
                    let key = conn.key("tcp", String::new(), false);
                    self.tx.rtt(key, rtt);
                }
            }
            return;
        }
        let tuple = conn.tuple();
        if t.has(RST) {
            conn.done = true;
            if !conn.saw_syn {
                return;
            }
            let (outcome, good) = match (conn.synack, from_client) {
                (false, false) => ("refused: RST answers the SYN", false),
                (false, true) => ("aborted by the client before an answer", false),
                (true, false) => ("established, reset by the server", false),
                (true, true) => ("established, reset by the client", true),
            };
            let (req, key, rtt) = (conn.syn.0, conn.key("tcp", String::new(), self.per_client), conn.rtt);
            conn.outcome = Some((outcome, good));
            self.tx.outcome(key, outcome.into(), good, frame, req, Some(tuple), rtt);
            return;
        }
        if t.has(FIN) {
            conn.done = true;
            if conn.saw_syn && conn.synack {
                let (req, key, rtt) = (conn.syn.0, conn.key("tcp", String::new(), self.per_client), conn.rtt);
                conn.outcome = Some(("established, closed by FIN", true));
                self.tx.outcome(key, "established, closed by FIN".into(), true, frame, req, Some(tuple), rtt);
            }
            return;
        }
        if d.payload.is_empty() || retrans {
            return;
        }
        // Kerberos over TCP (large tickets): the analyzer reports the message in the frame
        // that completes it.
        if let Some(k) = &c.app.krb {
            self.kerberos(k, frame, ts, (src, t.src_port), (dst, t.dst_port));
        }
    }

    /// An exchange an analyzer paired (or gave up on), on its connection's service.
    pub fn exchange(&mut self, x: &crate::analyzers::Exchange) {
        let Some(conn) = x.stream.and_then(|s| self.conns.peek(&s)) else {
            self.tx.overflow += 1;
            return;
        };
        let (tuple, key) = (conn.tuple(), conn.key(x.proto, x.name.clone(), self.per_client));
        let frame = if x.answered { x.frame } else { x.request_frame };
        let rtt = (x.answered && matches!(x.proto, "http" | "tls")).then(|| us(x.ts, x.request_ts));
        match rtt {
            Some(rtt) => self.answered(key, x.outcome.clone(), x.good, frame, x.request_frame, tuple, rtt),
            None => self.tx.outcome(key, x.outcome.clone(), x.good, frame, x.request_frame, Some(tuple), None),
        }
    }

    /// An exchange answered after `rtt` µs: its outcome with the round trip, and in a file diff
    /// the service's sample too (the store keeps round trips per outcome only).
    #[allow(clippy::too_many_arguments)]
    fn answered(
        &mut self,
        key: ServiceKey,
        outcome: String,
        good: bool,
        frame: u64,
        request: u64,
        flow: FlowTuple,
        rtt: i64,
    ) {
        if !self.per_client {
            self.tx.rtt(key.clone(), rtt);
        }
        self.tx.outcome(key, outcome, good, frame, request, Some(flow), Some(rtt));
    }

    fn finish_conn(&mut self, conn: Conn) {
        let tuple = conn.tuple();
        let key = conn.key("tcp", String::new(), self.per_client);
        let per_client = self.per_client;
        let Some(s) = self.tx.service(key) else { return };
        s.packets += conn.packets;
        s.retransmissions += conn.retransmissions;
        // The first ones of all its connections, whatever order they end in.
        if let Some(frames) = &conn.retrans_frames {
            s.retrans_frames.extend(frames.as_slice());
            s.retrans_frames.sort_unstable();
            s.retrans_frames.truncate(FRAMES_KEPT);
        }
        let (syn, rtt) = (conn.syn.0, conn.rtt);
        let outcome = if conn.done || !conn.saw_syn {
            conn.outcome
        } else {
            let (what, good) =
                if conn.synack { ("established, open at the end", true) } else { ("no answer to the SYN", false) };
            s.record(what.into(), good, syn, syn, Some(tuple), rtt);
            Some((what, good))
        };
        // The store's exchanges: the connection's volume on the outcome it had (a connection
        // first seen mid-stream has none of its own).
        if per_client {
            let (outcome, good) = match outcome {
                Some(o) => o,
                None => {
                    let what = "seen mid-stream";
                    s.record(what.into(), true, syn, syn, Some(tuple), None);
                    (what, true)
                }
            };
            // The outcome may have been stored already (the store takes them every batch): the
            // volume then comes as a row of its own that adds up with it.
            let o = s.outcomes.entry(outcome.to_string()).or_insert_with(|| OutcomeStat { good, ..Default::default() });
            o.bytes += conn.bytes;
            o.packets += conn.packets;
            o.retransmissions += conn.retransmissions;
        }
    }

    fn udp(&mut self, c: &Ctx<'_, '_>, d: &Decoded<'_>, src: IpAddr, dst: IpAddr, sp: u16, dp: u16) {
        let (frame, ts) = (d.frame, d.ts);
        // Multicast name services (mDNS, LLMNR) are answered by whoever wants: no exchange.
        if let Some(dns) = c.app.dns.filter(|x| x.has_header && x.kind == crate::analyzers::dns::Kind::Dns) {
            let id = dns.id;
            if !dns.response {
                let qtype = dns.qtype.map(qtype_name).unwrap_or_else(|| "?".into());
                let name = dns.qname().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
                if self.dns.insert((src, sp, dst, id), (format!("{qtype} {name}"), frame, ts, dp)).is_some() {
                    // Evicted unanswered: counted, not reported.
                    self.tx.overflow += 1;
                }
            } else if let Some((what, req, req_ts, _)) = self.dns.remove(&(dst, dp, src, id)) {
                let rcode = rcode_name(dns.rcode);
                let outcome =
                    if dns.rcode == 0 && dns.answers == 0 { "NOERROR, no answer records".to_string() } else { rcode };
                let key = ServiceKey { proto: "dns", server: addr(src, sp), name: what, client: self.client(dst) };
                let flow = FlowTuple { proto: 17, client: (dst, dp), server: (src, sp) };
                self.answered(key, outcome, dns.rcode == 0, frame, req, flow, us(ts, req_ts));
            }
            return;
        }
        if let Some(k) = &c.app.krb {
            self.kerberos(k, frame, ts, (src, sp), (dst, dp));
        }
    }

    fn kerberos(
        &mut self,
        k: &crate::analyzers::kerberos::KrbFields,
        frame: u64,
        ts: Ts,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
    ) {
        let Some(&t) = k.msg_types.first() else { return };
        match t {
            10 | 12 => {
                let who = k.cname.join("/");
                let realm = k.realms.first().cloned().unwrap_or_default();
                let kind = if t == 10 { "AS-REQ" } else { "TGS-REQ" };
                let name = if who.is_empty() { format!("{kind} @{realm}") } else { format!("{kind} {who}@{realm}") };
                self.krb.insert((src.0, src.1, dst.0), (name, frame, ts));
            }
            11 | 13 | 30 => {
                let Some((name, req, req_ts)) = self.krb.remove(&(dst.0, dst.1, src.0)) else { return };
                let (outcome, good) = match (t, k.error_code) {
                    (11, _) => ("AS-REP".to_string(), true),
                    (13, _) => ("TGS-REP".to_string(), true),
                    (_, Some(c)) => (format!("KRB-ERROR {c} {}", krb_error_name(c)), c == 25),
                    _ => ("KRB-ERROR".to_string(), false),
                };
                let key =
                    ServiceKey { proto: "kerberos", server: addr(src.0, src.1), name, client: self.client(dst.0) };
                let flow = FlowTuple { proto: 17, client: dst, server: src };
                self.answered(key, outcome, good, frame, req, flow, us(ts, req_ts));
            }
            _ => {}
        }
    }

    /// The end of the capture: what is still waiting had no answer.
    pub fn finish(mut self) -> CaptureTx {
        self.finish_pending();
        self.tx
    }
}

/// Rows the store keeps per batch; beyond them, exchanges are folded per protocol and outcome
/// class into rows with server "(other)" (bad outcomes are kept before good ones).
pub const MAX_STORED_ROWS: usize = 2_000;

fn quantile(sorted: &[i64], q: f64) -> i64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i.min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// The services finished since the last batch as the store's rows (see [`ExchangeRow`]): one
/// per (client, service, outcome), at most `cap`, the rest folded.
pub fn exchange_rows(services: ServiceMap, cap: usize) -> Vec<ExchangeRow> {
    let mut rows = Vec::new();
    for (k, s) in services {
        for (outcome, mut o) in s.outcomes {
            o.rtt_us.sort_unstable();
            let n = o.rtt_us.len() as u64;
            rows.push(ExchangeRow {
                client: k.client.map(crate::decode::ip_text).unwrap_or_default(),
                proto: k.proto,
                server: k.server.clone(),
                name: k.name.clone(),
                outcome,
                good: o.good,
                count: o.count,
                bytes: o.bytes,
                packets: o.packets,
                retransmissions: o.retransmissions,
                rtt_n: n,
                rtt_p50_wsum: quantile(&o.rtt_us, 0.5) * n as i64,
                rtt_p90_wsum: quantile(&o.rtt_us, 0.9) * n as i64,
                rtt_max_us: o.rtt_us.last().copied().unwrap_or(0),
            });
        }
    }
    if rows.len() <= cap {
        return rows;
    }
    // Bad outcomes first, then the most frequent: what an admin looks for one by one.
    // (Ties broken by the key, so which rows fold does not depend on the map's order.)
    rows.sort_by(|a, b| {
        a.good.cmp(&b.good).then(b.count.cmp(&a.count)).then_with(|| {
            (a.proto, &a.server, &a.name, &a.outcome, &a.client)
                .cmp(&(b.proto, &b.server, &b.name, &b.outcome, &b.client))
        })
    });
    let rest = rows.split_off(cap.saturating_sub(8));
    let mut folded: BTreeMap<(&'static str, bool), ExchangeRow> = BTreeMap::new();
    for r in rest {
        let f = folded.entry((r.proto, r.good)).or_insert_with(|| ExchangeRow {
            proto: r.proto,
            server: "(other)".into(),
            outcome: if r.good { "(other, good)" } else { "(other, bad)" }.into(),
            good: r.good,
            ..Default::default()
        });
        f.add(&r);
    }
    rows.extend(folded.into_values());
    rows
}

fn qtype_name(t: u16) -> String {
    match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        65 => "HTTPS",
        255 => "ANY",
        _ => return format!("TYPE{t}"),
    }
    .to_string()
}

pub(crate) fn rcode_name(r: u8) -> String {
    match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => return format!("RCODE{r}"),
    }
    .to_string()
}

fn krb_error_name(c: i32) -> &'static str {
    match c {
        6 => "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        7 => "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        18 => "KDC_ERR_CLIENT_REVOKED",
        23 => "KDC_ERR_KEY_EXPIRED",
        24 => "KDC_ERR_PREAUTH_FAILED",
        25 => "KDC_ERR_PREAUTH_REQUIRED",
        31 => "KRB_AP_ERR_BAD_INTEGRITY",
        32 => "KRB_AP_ERR_TKT_EXPIRED",
        37 => "KRB_AP_ERR_SKEW",
        41 => "KRB_AP_ERR_MODIFIED",
        68 => "KDC_ERR_WRONG_REALM",
        _ => "",
    }
}

pub(crate) fn icmp_error_text(v6: bool, t: u8, code: u8) -> String {
    let what = match (v6, t, code) {
        (false, 3, 0) | (true, 1, 3) => "network unreachable",
        (false, 3, 1) => "host unreachable",
        (false, 3, 3) | (true, 1, 4) => "port unreachable",
        (false, 3, 13) | (true, 1, 1) => "administratively prohibited",
        (false, 3, _) | (true, 1, _) => "destination unreachable",
        (false, 11, _) | (true, 3, _) => "time exceeded",
        _ => "ICMP error",
    };
    format!("ICMP {what} (type {t} code {code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(outcome: &str, good: bool, count: u64, rtt: &[i64]) -> Service {
        let mut s = Service::default();
        for _ in 0..count {
            s.record(outcome.into(), good, 1, 1, None, None);
        }
        s.outcomes.get_mut(outcome).unwrap().rtt_us = rtt.to_vec();
        s
    }

    /// A flood of distinct names (a DGA, a typo loop) costs the store a bounded number of rows:
    /// bad outcomes are kept before good ones, the rest folded with nothing lost from the sums.
    #[test]
    fn rows_beyond_the_budget_are_folded_bad_ones_kept_first() {
        let mut m = ServiceMap::default();
        let client = Some("10.1.0.7".parse().unwrap());
        for i in 0..500 {
            let key = |proto| ServiceKey { proto, server: "10.1.9.1:53".into(), name: format!("A n{i}.lan"), client };
            m.insert(key("dns"), service("NXDOMAIN", false, 2, &[10, 30]));
            m.insert(key("http"), service("HTTP 200", true, 1, &[]));
        }
        let rows = exchange_rows(m.clone(), 100);
        assert!(rows.len() <= 100, "{}", rows.len());
        let kept_bad = rows.iter().filter(|r| !r.good && r.server != "(other)").count();
        let kept_good = rows.iter().filter(|r| r.good && r.server != "(other)").count();
        assert_eq!((kept_bad, kept_good), (92, 0), "bad outcomes first");
        let total: u64 = rows.iter().map(|r| r.count).sum();
        assert_eq!(total, 500 * 2 + 500);
        assert_eq!(rows.iter().map(|r| r.rtt_n).sum::<u64>(), 1000);
        let other_bad = rows.iter().find(|r| r.outcome == "(other, bad)").unwrap();
        assert_eq!((other_bad.count, other_bad.rtt_max_us, other_bad.client.as_str()), (2 * 408, 30, ""));
        // The same services give the same rows, whatever the map's order.
        assert_eq!(exchange_rows(m.clone(), 100), rows);
        // Within the budget: one row per (client, service, outcome), medians weighted.
        let few = exchange_rows(m.into_iter().take(3).collect(), 100);
        assert_eq!(few.len(), 3);
        let dns = few.iter().find(|r| r.proto == "dns");
        if let Some(d) = dns {
            assert_eq!((d.client.as_str(), d.rtt_n, d.rtt_p50_wsum, d.rtt_max_us), ("10.1.0.7", 2, 60, 30));
        }
    }
}
