//! Application-layer analyzers, one folder per protocol (the shape of Suricata's
//! `rust/src/<proto>/` and Zeek's analyzers): a pure parser, a small per-flow state, and typed
//! events out. This module chooses the analyzer of each flow and hands it the flow's segments.
//!
//! - **Chosen by content.** The first bytes of each direction choose the analyzer
//!   ([`detect`]): a POP3 banner on port 1110 is POP3, an HTTP request on port 8088 is HTTP.
//!   Ports are only a hint, used when the start of a connection was not seen or its first bytes
//!   match nothing. What no analyzer claims is left alone.
//! - **State in the flow.** Each flow of the flow table carries a [`FlowApp`]: which analyzer,
//!   which side is the client, and the analyzer's state, allocated when the protocol is chosen
//!   and freed with the flow. State that spans flows (Kerberos requests retried from new ports,
//!   DHCP transactions) lives here, in bounded tables. Buffers held between segments come from
//!   one budget ([`budget`]).
//! - **Events out** ([`AppFacts`], refilled per frame): the fields the filter language reads
//!   (DNS, Kerberos, POP, DHCP, HTTP), logins with their outcome ([`IdentityFact`]), application
//!   errors, finished exchanges for the diff ([`Exchange`]), and the **credential masks** of the
//!   frame ([`Masks`]): the byte ranges that carry a secret. Identities, error counts, filter
//!   fields, transactions, the pcap ring and alert evidence all read these; nothing parses a
//!   payload again.
//!
//! Credentials, and where each analyzer finds them: POP3 `PASS`/`APOP`/SASL, IMAP `LOGIN`
//! (literals too)/`AUTHENTICATE`, SMTP `AUTH`, FTP `PASS`/`ACCT`, HTTP `Authorization` and
//! `Proxy-Authorization`, password-like form fields (urlencoded, multipart, JSON), URL
//! user-info and `password=` query parameters, LDAP simple, SASL and NTLM binds, PostgreSQL password
//! messages, MySQL authentication responses, TDS LOGIN7 passwords and SSPI blobs, SNMP v1/v2c
//! communities, Telnet input after a password prompt, SMB session-setup security blobs (NTLM
//! responses, Kerberos tickets), Kerberos PA-ENC-TIMESTAMP. A secret cut across segments is
//! masked until it ends ([`secrets`]); unknown client bytes of a login dialogue are masked
//! whole: masking too much is the safe error.

pub mod budget;
pub mod detect;
pub mod dhcp;
pub mod dns;
pub mod errors;
pub mod frames;
pub mod ftp;
pub mod http;
pub mod imap;
pub mod join;
pub mod kerberos;
pub mod ldap;
pub mod lines;
pub mod mysql;
pub mod oracle;
pub mod pgsql;
pub mod pop3;
mod sasl;
pub mod secrets;
pub mod smb;
pub mod smtp;
pub mod snmp;
pub mod tds;
pub mod telnet;
pub mod tls;

use std::net::IpAddr;

use crate::capture::mask::{offset_in, Masks};
use crate::decode::{tcp_flags, Decoded, TcpHeader, Transport, UdpHeader};
use crate::flow::tcp::TcpAnalysis;
use crate::identity::{name_from_wire, IdentityFact, Outcome, Source};
use crate::time::Ts;
use detect::Proto;
use errors::AppError;
use lines::Seg;
use secrets::Secrets;

pub use errors::Family;

/// What a filter field shows instead of a value that may be a credential.
pub const REDACTED: &str = "<redacted>";

/// What the analyzers found in one frame (reused from frame to frame).
#[derive(Clone, Debug, Default)]
pub struct AppFacts {
    pub dns: Option<dns::DnsInfo>,
    pub krb: Option<kerberos::KrbFields>,
    pub pop: Option<PopFrame>,
    pub dhcp: Option<DhcpFrame>,
    /// HTTP request or status line at the start of this segment.
    pub http: Option<HttpFrame>,
    /// Application errors this frame completed (usually none).
    pub errors: Vec<AppError>,
    /// `http.host` of the request this frame completed.
    pub http_host: Vec<u8>,
    /// Login attempts whose outcome is known (or given up), taken by the pipeline.
    pub logins: Vec<IdentityFact>,
    /// Exchanges this frame ended (a reply, or a connection's end), for the diff.
    pub exchanges: Vec<Exchange>,
    /// Credential bytes of this frame (offsets in its captured data).
    pub masks: Masks,
    /// The analyzer of the frame's flow.
    pub proto: Option<Proto>,
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
    /// The command's argument — never a password (see [`pop3::frame_fields`]).
    pub parameter: Option<String>,
}

/// A DHCP message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DhcpFrame {
    pub hostname: Option<String>,
}

/// One request and how it ended: a command and its reply, an HTTP request and its status, a
/// TLS ClientHello and the server's answer (`mirrorwatch diff` aligns these by service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// "http", "tls", "pop3", "imap", "smtp", "ftp".
    pub proto: &'static str,
    /// What was asked: a command verb, "GET host/path" (no query), a TLS server name.
    pub name: String,
    pub outcome: String,
    /// Whether this is how the exchange normally ends well.
    pub good: bool,
    pub request_frame: u64,
    pub request_ts: Ts,
    /// The answer came, in `frame` at `ts`: the round trip counts for the service's RTT.
    pub answered: bool,
    pub frame: u64,
    pub ts: Ts,
    /// The connection's `tcp.stream`.
    pub stream: Option<u64>,
}

impl Exchange {
    /// A request that got no answer before its connection ended.
    pub fn unanswered(proto: &'static str, req: Request, outcome: &str) -> Exchange {
        Exchange {
            proto,
            name: req.name,
            outcome: outcome.into(),
            good: false,
            request_frame: req.frame,
            request_ts: req.ts,
            answered: false,
            frame: req.frame,
            ts: req.ts,
            stream: None,
        }
    }
}

impl AppFacts {
    /// Analyzes one frame on its own (no flow, no reassembly): for callers without a pipeline.
    pub fn dissect(d: &Decoded<'_>, tcp: &TcpAnalysis) -> AppFacts {
        let mut f = AppFacts::default();
        Analyzers::default().frame(d, tcp, None, &mut f);
        f
    }

    fn set_http(&mut self, m: &http::message::Pending) {
        self.http_host.clear();
        self.http_host.extend_from_slice(m.host().unwrap_or_default());
        self.http = Some(HttpFrame { method: m.method(), code: m.code(), has_host: m.host().is_some() });
    }

    /// Starts a new frame: only what this frame has is set (the struct is reused: writing it
    /// whole per packet showed up as memcpy in profiles).
    fn reset(&mut self) {
        self.dns = None;
        self.krb = None;
        self.pop = None;
        self.dhcp = None;
        self.http = None;
        self.errors.clear();
        self.exchanges.clear();
        self.masks.clear();
        self.proto = None;
    }
}

/// Where an analyzer is: the frame, the connection's ends, and where its events go. The ends
/// are read from the frame when an event needs them (most segments make none).
pub struct Here<'a> {
    pub frame: u64,
    pub ts: Ts,
    pub stream: Option<u64>,
    /// Exchanges are followed (for the diff): requests are named and kept until answered.
    pub exchanges: bool,
    /// The frame, and whether it comes from the client.
    d: Option<&'a Decoded<'a>>,
    from_client: bool,
    pub out: &'a mut AppFacts,
}

impl<'a> Here<'a> {
    #[cfg(test)]
    pub fn test(out: &'a mut AppFacts) -> Here<'a> {
        Here { frame: 1, ts: Ts(0), stream: Some(0), exchanges: true, d: None, from_client: true, out }
    }

    /// (source, destination) of the frame, as (address, port).
    fn ends(&self) -> Option<((IpAddr, u16), (IpAddr, u16))> {
        let d = self.d?;
        let ip = d.ip?;
        let (sp, dp) = match d.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            _ => return None,
        };
        Some(((ip.src, sp), (ip.dst, dp)))
    }

    /// The client (address, port).
    pub fn client(&self) -> Option<(IpAddr, u16)> {
        self.ends().map(|(s, d)| if self.from_client { s } else { d })
    }

    /// The server (address, port).
    pub fn server(&self) -> Option<(IpAddr, u16)> {
        self.ends().map(|(s, d)| if self.from_client { d } else { s })
    }

    pub fn client_mac(&self) -> Option<[u8; 6]> {
        let d = self.d?;
        if self.from_client {
            d.eth_src
        } else {
            d.eth_dst
        }
    }

    /// An application error found in a server → client segment of this frame.
    pub fn error(&mut self, family: Family, f: errors::Found) {
        self.out.errors.push(AppError {
            family,
            code: f.code,
            message: f.message,
            detail: f.detail,
            frame: self.frame,
            ts: self.ts,
            client: self.client(),
            server: self.server(),
            client_mac: self.client_mac(),
            stream: self.stream,
        });
    }

    /// An exchange that ends in this frame.
    pub fn exchange(&mut self, proto: &'static str, req: &Request, outcome: String, good: bool, answered: bool) {
        self.out.exchanges.push(Exchange {
            proto,
            name: req.name.clone(),
            outcome,
            good,
            request_frame: req.frame,
            request_ts: req.ts,
            answered,
            frame: self.frame,
            ts: self.ts,
            stream: self.stream,
        });
    }
}

/// A request waiting for its answer (for [`Exchange`]).
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub name: String,
    pub frame: u64,
    pub ts: Ts,
}

impl Request {
    pub fn new(name: String, here: &Here<'_>) -> Request {
        Request { name, frame: here.frame, ts: here.ts }
    }
}

/// A login attempt waiting for the server's verdict.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub user: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub ip: Option<IpAddr>,
    pub ts: Ts,
    pub frame: u64,
}

impl Attempt {
    /// An attempt made by the client in this frame.
    pub fn new(here: &Here<'_>, user: Option<String>) -> Attempt {
        Attempt { user, mac: here.client_mac(), ip: here.client().map(|c| c.0), ts: here.ts, frame: here.frame }
    }

    /// Reports the attempt (when it names a user) with its outcome.
    pub fn report(self, source: Source, outcome: Outcome, out: &mut Vec<IdentityFact>) {
        let Some(user) = self.user else { return };
        out.push(IdentityFact {
            source,
            mac: self.mac,
            ip: self.ip,
            user: Some(user),
            realm: None,
            hostname: None,
            outcome,
            error: None,
            ts: self.ts,
            frame: self.frame,
        });
    }
}

/// A user name from wire bytes (cut, made printable), or None when empty.
pub fn user_name(b: &[u8]) -> Option<String> {
    (!b.is_empty()).then(|| name_from_wire(b))
}

/// The analyzer state of one flow: kept in the flow table's slot and freed with the flow.
#[derive(Debug, Default)]
pub struct FlowApp {
    state: Option<Box<State>>,
    /// The client's direction (0/1 as the flow table numbers them), once known.
    client: Option<u8>,
    /// Directions whose first payload has been seen (bit 0, bit 1).
    seen: u8,
    /// A `220` greeting that neither SMTP nor FTP claimed: the client's first line decides.
    greeting_220: bool,
    /// A direction's first payload, too short to tell (a line cut two bytes in): probed again
    /// joined with what follows.
    prefix: Option<Box<Prefix>>,
    /// Nothing claimed the flow where its content could tell: no more probing.
    given_up: bool,
    /// Something on this flow an admin looks at one by one (a reset, a login, an application
    /// error): the store keeps the flow in full instead of rolling it into the exchanges.
    pub notable: bool,
}

/// The first bytes of a direction kept for a second probe.
#[derive(Debug)]
struct Prefix {
    dir: u8,
    len: u8,
    bytes: [u8; PREFIX],
}

/// Bytes of a short first payload kept: the longest probe needs fewer.
const PREFIX: usize = 32;

/// An analyzer's state with the flow's credential ranges, per direction.
#[derive(Debug)]
struct State {
    proto: ProtoState,
    secrets: [Secrets; 2],
}

#[derive(Debug)]
enum ProtoState {
    Pop3(pop3::Pop3),
    Imap(imap::Imap),
    Smtp(smtp::Smtp),
    Ftp(ftp::Ftp),
    Telnet(telnet::Telnet),
    Http(http::Http),
    Tls(tls::Tls),
    Pgsql(pgsql::Pgsql),
    Mysql(mysql::Mysql),
    Tds(tds::Tds),
    Oracle(oracle::Oracle),
    Kerberos(kerberos::KrbTcp),
    Dns(dns::DnsTcp),
    Ldap(ldap::Ldap),
    Smb(smb::Smb),
    /// A protocol that is known and not read (SSH): nothing to find in it.
    Opaque,
}

impl ProtoState {
    fn new(p: Proto, fresh: [bool; 2]) -> ProtoState {
        match p {
            Proto::Pop3 => ProtoState::Pop3(pop3::Pop3::new(fresh)),
            Proto::Imap => ProtoState::Imap(imap::Imap::new(fresh)),
            Proto::Smtp => ProtoState::Smtp(smtp::Smtp::new(fresh)),
            Proto::Ftp => ProtoState::Ftp(ftp::Ftp::new(fresh)),
            Proto::Telnet => ProtoState::Telnet(telnet::Telnet::default()),
            Proto::Http => ProtoState::Http(http::Http::new(fresh[0])),
            Proto::Tls => ProtoState::Tls(tls::Tls::default()),
            Proto::Pgsql => ProtoState::Pgsql(pgsql::Pgsql::new(fresh[0])),
            Proto::Mysql => ProtoState::Mysql(mysql::Mysql::new(fresh[0])),
            Proto::Tds => ProtoState::Tds(tds::Tds::new(fresh[0])),
            Proto::Oracle => ProtoState::Oracle(oracle::Oracle::default()),
            Proto::Kerberos => ProtoState::Kerberos(kerberos::KrbTcp::default()),
            Proto::Dns => ProtoState::Dns(dns::DnsTcp::default()),
            Proto::Ldap => ProtoState::Ldap(ldap::Ldap::new(fresh)),
            Proto::Smb => ProtoState::Smb(smb::Smb::new(fresh)),
            Proto::Ssh => ProtoState::Opaque,
        }
    }

    fn proto(&self) -> Proto {
        match self {
            ProtoState::Pop3(_) => Proto::Pop3,
            ProtoState::Imap(_) => Proto::Imap,
            ProtoState::Smtp(_) => Proto::Smtp,
            ProtoState::Ftp(_) => Proto::Ftp,
            ProtoState::Telnet(_) => Proto::Telnet,
            ProtoState::Http(_) => Proto::Http,
            ProtoState::Tls(_) => Proto::Tls,
            ProtoState::Pgsql(_) => Proto::Pgsql,
            ProtoState::Mysql(_) => Proto::Mysql,
            ProtoState::Tds(_) => Proto::Tds,
            ProtoState::Oracle(_) => Proto::Oracle,
            ProtoState::Kerberos(_) => Proto::Kerberos,
            ProtoState::Dns(_) => Proto::Dns,
            ProtoState::Ldap(_) => Proto::Ldap,
            ProtoState::Smb(_) => Proto::Smb,
            ProtoState::Opaque => Proto::Ssh,
        }
    }
}

/// The flow a frame belongs to, as the flow table hands it over.
pub struct FlowRef<'f> {
    pub app: &'f mut FlowApp,
    /// The frame's direction in the flow (0/1).
    pub dir: u8,
    pub stream: u64,
    /// The direction that sent the first SYN, if the connection's start was seen.
    pub syn_dir: Option<u8>,
}

/// One TCP segment as an analyzer sees it.
#[derive(Clone, Copy, Debug)]
pub struct TcpSeg<'a> {
    pub seg: Seg<'a>,
    pub from_client: bool,
    /// TCP analysis flagged the segment a retransmission.
    pub retrans: bool,
    /// Out of order (TCP analysis).
    pub ooo: bool,
    pub fin: bool,
    pub rst: bool,
}

impl TcpSeg<'_> {
    /// The capture kept less than the segment carried (snaplen).
    pub fn cut(&self) -> bool {
        self.seg.data.len() < self.seg.seg_len as usize
    }
}

/// Counters of the analyzers (for the run summary and /metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AnalyzerStats {
    /// Flows given an analyzer by their content, and by their port alone.
    pub by_content: u64,
    pub by_port: u64,
}

/// The analyzers with the state that is not a flow's: Kerberos requests waiting across flows,
/// DHCP transactions, counters.
#[derive(Default)]
pub struct Analyzers {
    kerberos: kerberos::Kerberos,
    dhcp: dhcp::Dhcp,
    pub stats: AnalyzerStats,
    /// Follow exchanges (request → answer, for `diff`): off in the daemon and `analyze`, which
    /// need none, so no request is named or kept for them.
    pub exchanges: bool,
}

impl Analyzers {
    /// One frame. `flow` is the frame's flow (TCP or UDP), when it has one. Fills `f` (reused).
    pub fn frame(&mut self, d: &Decoded<'_>, tcp: &TcpAnalysis, flow: Option<FlowRef<'_>>, f: &mut AppFacts) {
        f.reset();
        match d.transport {
            Transport::Udp(u) => self.udp(d, u, flow.as_ref().map(|r| r.stream), f),
            Transport::Tcp(t) => {
                if let Some(flow) = flow {
                    if !d.payload.is_empty() || t.has(tcp_flags::FIN) || t.has(tcp_flags::RST) {
                        self.tcp(d, t, tcp, flow, f);
                    }
                }
            }
            // A DNS message quoted in an ICMP error (a query to a closed port) is `dns` to
            // filters, as tshark shows it; nothing else takes it for a query.
            Transport::Icmp(_) => {
                if let Some(q) = d.quoted_ports.filter(|q| q.proto == 17) {
                    if let Some(kind) = dns::Kind::for_ports(q.src_port, q.dst_port) {
                        f.dns = dns::parse(d.quoted_payload, kind);
                    }
                }
            }
            _ => {}
        }
        fragment_masks(d, f);
    }

    fn udp(&mut self, d: &Decoded<'_>, u: UdpHeader, stream: Option<u64>, f: &mut AppFacts) {
        let p = d.payload;
        if let Some(kind) = dns::Kind::for_ports(u.src_port, u.dst_port) {
            f.dns = dns::parse(p, kind);
        }
        let mut masks = Masks::default();
        if u.src_port == 88 || u.dst_port == 88 {
            kerberos::secret_spans(p, &mut masks);
            if let Some((msg, fields)) = kerberos::parse(p) {
                f.krb = Some(fields);
                self.kerberos.message(msg, d, &mut f.logins);
            }
        }
        // SSDP is HTTP over UDP (one message per datagram).
        if u.src_port == 1900 || u.dst_port == 1900 {
            if let Some((m, true)) = http::message::Pending::any(p, p.len(), false) {
                f.set_http(&m);
            }
        }
        if matches!(u.src_port, 67 | 68) && matches!(u.dst_port, 67 | 68) {
            if let Some(m) = dhcp::parse(p) {
                f.dhcp = Some(DhcpFrame { hostname: m.hostname });
            }
            self.dhcp.message(p, d.ts, d.frame, &mut f.logins);
        }
        // SNMP v1/v2c on any port: the community is a password.
        snmp::secret_spans(p, &mut masks);
        let _ = stream;
        if !masks.is_empty() {
            if let Some(base) = offset_in(d.data, p) {
                f.masks = masks.shifted(base);
            }
        }
    }

    fn tcp(&mut self, d: &Decoded<'_>, t: TcpHeader, tcp: &TcpAnalysis, flow: FlowRef<'_>, f: &mut AppFacts) {
        let FlowRef { app, dir, stream, syn_dir } = flow;
        let bit = 1u8 << dir;
        let first_payload = !d.payload.is_empty() && app.seen & bit == 0;
        if !d.payload.is_empty() {
            app.seen |= bit;
        }
        if app.client.is_none() {
            app.client = syn_dir;
        }
        // POP fields follow the port, as Wireshark's dissector does (which hands retransmitted
        // data to no dissector).
        if (t.src_port == 110 || t.dst_port == 110) && !d.payload.is_empty() && !tcp.is_retransmission() {
            f.pop = Some(pop3::frame_fields(d.payload, t.dst_port == 110));
        }
        if app.state.is_none() && !app.given_up && !d.payload.is_empty() {
            self.choose(app, d.payload, t, dir, syn_dir, first_payload);
        }
        let Some(state) = app.state.as_mut() else { return };
        let client_dir = app.client.unwrap_or(1 - dir);
        let from_client = dir == client_dir;
        f.proto = Some(state.proto.proto());
        let mut here = Here {
            frame: d.frame,
            ts: d.ts,
            stream: Some(stream),
            exchanges: self.exchanges,
            d: Some(d),
            from_client,
            out: f,
        };
        let seg = TcpSeg {
            seg: Seg { data: d.payload, seq: t.seq, seg_len: t.seg_len },
            from_client,
            retrans: tcp.is_retransmission(),
            ooo: tcp.flags.has(crate::flow::tcp::TcpFlags::OUT_OF_ORDER),
            fin: t.has(tcp_flags::FIN),
            rst: t.has(tcp_flags::RST),
        };
        let secrets = &mut state.secrets[dir as usize];
        let stop = match &mut state.proto {
            ProtoState::Pop3(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Imap(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Smtp(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Ftp(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Telnet(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Http(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Tls(a) => a.segment(seg, &mut here),
            ProtoState::Pgsql(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Mysql(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Tds(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Oracle(a) => a.segment(seg, &mut here),
            ProtoState::Kerberos(a) => a.segment(seg, secrets, d, &mut self.kerberos, &mut here),
            ProtoState::Dns(a) => a.segment(seg, d, &mut here),
            ProtoState::Ldap(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Smb(a) => a.segment(seg, secrets, &mut here),
            ProtoState::Opaque => false,
        };
        if !secrets.is_empty() && !d.payload.is_empty() {
            if let Some(base) = offset_in(d.data, d.payload) {
                let mut m = Masks::default();
                secrets.mask(t.seq, d.payload.len(), base, &mut m);
                for (a, b) in m.iter() {
                    f.masks.add(a, b);
                }
            }
        }
        if stop {
            // The connection turned to TLS (STARTTLS): what the text protocol waited for is
            // reported now, and its handshake is read as TLS's. What was masked stays masked.
            self.flow_end(app, stream, f);
            if let Some(state) = app.state.as_mut() {
                state.proto = ProtoState::Tls(tls::Tls::default());
            }
        }
    }

    /// Picks the flow's analyzer from a payload (and the ports), or leaves it undecided.
    fn choose(&mut self, app: &mut FlowApp, payload: &[u8], t: TcpHeader, dir: u8, syn_dir: Option<u8>, first: bool) {
        let from_client_by_syn = syn_dir.map(|s| s == dir);
        let hint = detect::port_hint(t.src_port, t.dst_port);
        // A short first payload of this direction is probed again joined with this one.
        let mut joined = [0u8; 2 * PREFIX];
        let mut probed = payload;
        let mut after_prefix = false;
        if let Some(pre) = app.prefix.take() {
            if pre.dir == dir {
                let n = pre.len as usize;
                let m = payload.len().min(PREFIX);
                joined[..n].copy_from_slice(&pre.bytes[..n]);
                joined[n..n + m].copy_from_slice(&payload[..m]);
                probed = &joined[..n + m];
                after_prefix = true;
            } else {
                app.prefix = Some(pre);
            }
        }
        let found = if app.greeting_220 && from_client_by_syn != Some(false) {
            Some(detect::after_220(probed, hint.map(|h| h.0)))
        } else {
            detect::probe(probed)
        };
        if found.is_none() && first && payload.len() < PREFIX {
            let mut bytes = [0u8; PREFIX];
            bytes[..payload.len()].copy_from_slice(payload);
            app.prefix = Some(Box::new(Prefix { dir, len: payload.len() as u8, bytes }));
        }
        let (proto, sender_is_client) = match found {
            Some(detect::Found::Is(p, role)) => {
                self.stats.by_content += 1;
                (p, role.map(|r| r == detect::Role::Client))
            }
            Some(detect::Found::Greeting220) => {
                // A greeting of SMTP or FTP: the client's first line decides.
                app.greeting_220 = true;
                app.client.get_or_insert(1 - dir);
                match hint {
                    Some((p @ (Proto::Smtp | Proto::Ftp), _)) => {
                        self.stats.by_port += 1;
                        (p, Some(false))
                    }
                    _ => return,
                }
            }
            None => {
                // Content decided nothing: the port may, where content was not the stream's start
                // (a connection already open when the capture began) or for the protocols whose
                // first bytes carry no signature.
                let mid_stream = syn_dir.is_none() || !first;
                match hint {
                    Some((p, server_port_is_dst)) if mid_stream || p.hint_only() => {
                        self.stats.by_port += 1;
                        let sender_is_client = (t.dst_port == t.src_port) || server_port_is_dst;
                        (p, Some(sender_is_client))
                    }
                    _ => {
                        // The stream's start matched nothing: nothing will.
                        if syn_dir.is_some() && first && app.seen == 0b11 {
                            app.given_up = true;
                        }
                        return;
                    }
                }
            }
        };
        if app.client.is_none() {
            app.client = sender_is_client.map(|c| if c { dir } else { 1 - dir });
        }
        // A direction is read from its stream's start when the SYN was seen and nothing of it
        // went by before this analyzer.
        let client = app.client.unwrap_or(dir);
        let fresh = |d: u8| syn_dir.is_some() && (app.seen & (1 << d) == 0 || (d == dir && first && !after_prefix));
        let fresh = if client == 0 { [fresh(0), fresh(1)] } else { [fresh(1), fresh(0)] };
        app.prefix = None;
        app.state = Some(Box::new(State { proto: ProtoState::new(proto, fresh), secrets: Default::default() }));
    }

    /// The flow ended (closed, idle, evicted, end of capture): attempts and exchanges still
    /// waiting are reported (outcome unknown, no response). Called by the pipeline for every
    /// flow that leaves the table.
    pub fn flow_end(&mut self, app: &mut FlowApp, stream: u64, out: &mut AppFacts) {
        let before = out.exchanges.len();
        self.end(app, out);
        for x in &mut out.exchanges[before..] {
            x.stream = Some(stream);
        }
    }

    fn end(&mut self, app: &mut FlowApp, f: &mut AppFacts) {
        let Some(state) = app.state.as_mut() else { return };
        match &mut state.proto {
            ProtoState::Pop3(a) => a.end(f),
            ProtoState::Imap(a) => a.end(f),
            ProtoState::Smtp(a) => a.end(f),
            ProtoState::Ftp(a) => a.end(f),
            ProtoState::Telnet(a) => a.end(f),
            ProtoState::Http(a) => a.end(f),
            ProtoState::Tls(a) => a.end(f),
            ProtoState::Mysql(a) => a.end(f),
            ProtoState::Pgsql(a) => a.end(f),
            ProtoState::Tds(a) => a.end(f),
            ProtoState::Ldap(a) => a.end(f),
            _ => {}
        }
    }

    /// End of input: Kerberos requests without an answer (unknown outcome).
    pub fn flush(&mut self, f: &mut AppFacts) {
        self.kerberos.flush(&mut f.logins);
    }
}

/// IP fragments: the analyzers judge a datagram once it is whole, when its first fragments are
/// gone. A fragment's payload is kept in clear only when its datagram is known to be of a
/// protocol without credentials (UDP ports of DNS, mDNS, LLMNR, NTP, syslog, NetBIOS), from the
/// first fragment's header or the reassembled datagram; every other fragment's payload is
/// masked (the first keeps its UDP header).
fn fragment_masks(d: &Decoded<'_>, f: &mut AppFacts) {
    let Some(ip) = d.ip.filter(|ip| ip.fragment) else { return };
    let p = d.ip_payload;
    let ports = match d.transport {
        Transport::Udp(u) => Some((u.src_port, u.dst_port)),
        _ if ip.frag_offset == 0 && ip.proto == crate::decode::IPPROTO_UDP && p.len() >= 4 => {
            Some((u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])))
        }
        _ => None,
    };
    let clear = |p: u16| matches!(p, 53 | 5353 | 5355 | 123 | 514 | 137 | 138);
    if ports.is_some_and(|(a, b)| clear(a) || clear(b)) || p.is_empty() {
        return;
    }
    if let Some(at) = offset_in(d.data, p) {
        let keep = if ip.frag_offset == 0 && ip.proto == crate::decode::IPPROTO_UDP { 8.min(p.len()) } else { 0 };
        f.masks.add(at + keep, at + p.len());
    }
}

#[cfg(test)]
mod tests;
