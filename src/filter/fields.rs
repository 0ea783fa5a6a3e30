//! The fields and protocol names the filter language knows, with their Wireshark types, and how
//! each one's values are read from a decoded packet.
//!
//! A field may occur several times in one frame (Wireshark semantics): `ip.src` once per IP
//! header (the outer one and the one an ICMP error quotes), `ip.addr` for source and
//! destination of each, `vlan.id` once per tag. Each value carries the index of the protocol
//! layer it came from, for the `field#N` layer operator.

use std::net::IpAddr;

use crate::analyzers::dns::Kind as DnsKind;
use crate::analyzers::AppFacts;
use crate::decode::{Decoded, IpHeader, TcpHeader, Transport, UdpHeader};
use crate::flow::tcp::{TcpAnalysis, TcpFlags};

/// Wireshark field types, as far as the language needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FType {
    Bool,
    UInt,
    Ipv4,
    Ipv6,
    Ether,
    Str,
    Bytes,
    /// A protocol name: tests presence; `frame` also has its bytes as value.
    Proto,
}

impl FType {
    pub fn name(self) -> &'static str {
        match self {
            FType::Bool => "boolean",
            FType::UInt => "unsigned integer",
            FType::Ipv4 => "IPv4 address",
            FType::Ipv6 => "IPv6 address",
            FType::Ether => "Ethernet address",
            FType::Str => "character string",
            FType::Bytes => "byte sequence",
            FType::Proto => "protocol",
        }
    }
    /// Types whose values are byte strings (contains, matches, slices).
    pub fn is_bytes_like(self) -> bool {
        matches!(self, FType::Str | FType::Bytes | FType::Ether | FType::Ipv4 | FType::Ipv6 | FType::Proto)
    }
}

/// One value of a field in one frame, borrowed from the frame where it is bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val<'a> {
    U(u64),
    V4([u8; 4]),
    V6([u8; 16]),
    Mac([u8; 6]),
    Bytes(&'a [u8]),
}

impl<'a> Val<'a> {
    /// The value as bytes, for contains/matches/slices (addresses in network order).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        match self {
            Val::Bytes(b) => Some(f(b)),
            Val::V4(a) => Some(f(a)),
            Val::V6(a) => Some(f(a)),
            Val::Mac(a) => Some(f(a)),
            Val::U(_) => None,
        }
    }
}

/// Most occurrences of one field in one frame that are looked at. The largest real case is
/// `ip.addr` with an ICMP quote (4) or `vlan.id` with 4 tags; extra ones are ignored.
pub const MAX_VALUES: usize = 4;

/// Values of one field in one frame: (layer, value), fixed capacity, no allocation.
pub struct Values<'a> {
    pub items: [(u8, Val<'a>); MAX_VALUES],
    pub len: usize,
}

impl<'a> Values<'a> {
    pub fn new() -> Self {
        Values { items: [(0, Val::U(0)); MAX_VALUES], len: 0 }
    }
    pub fn push(&mut self, layer: u8, v: Val<'a>) {
        if self.len < MAX_VALUES {
            self.items[self.len] = (layer, v);
            self.len += 1;
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &(u8, Val<'a>)> {
        self.items[..self.len].iter()
    }
}

impl Default for Values<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// What a filter sees of one frame.
#[derive(Clone, Copy)]
pub struct Ctx<'p, 'a> {
    pub d: &'p Decoded<'a>,
    pub tcp: &'p TcpAnalysis,
    pub stream: Option<u64>,
    /// Application-layer facts (DNS…); values such as names are borrowed from here.
    pub app: &'a AppFacts,
}

type Getter = for<'p, 'a> fn(&Ctx<'p, 'a>, &mut Values<'a>);

pub struct FieldDef {
    pub name: &'static str,
    pub ftype: FType,
    pub get: Getter,
}

fn ip_layers<'p>(c: &Ctx<'p, '_>) -> impl Iterator<Item = (u8, IpHeader)> + 'p {
    // Outermost first, as Wireshark numbers layers: a tunnel's outer header, the packet, an
    // ICMP error's quote.
    [c.d.outer_ip, c.d.ip, c.d.quoted_ip].into_iter().flatten().enumerate().map(|(i, h)| (i as u8 + 1, h))
}

fn v4_layers<'p>(c: &Ctx<'p, '_>) -> impl Iterator<Item = (u8, IpHeader)> + 'p {
    let mut n = 0u8;
    ip_layers(c).filter(|(_, h)| h.is_v4()).map(move |(_, h)| {
        n += 1;
        (n, h)
    })
}

fn v6_layers<'p>(c: &Ctx<'p, '_>) -> impl Iterator<Item = (u8, IpHeader)> + 'p {
    let mut n = 0u8;
    ip_layers(c).filter(|(_, h)| !h.is_v4()).map(move |(_, h)| {
        n += 1;
        (n, h)
    })
}

fn ipval<'a>(a: IpAddr) -> Val<'a> {
    match a {
        IpAddr::V4(v) => Val::V4(v.octets()),
        IpAddr::V6(v) => Val::V6(v.octets()),
    }
}

fn tcp_layers(c: &Ctx<'_, '_>) -> impl Iterator<Item = (u8, TcpHeader)> {
    let outer = match c.d.transport {
        Transport::Tcp(t) => Some(t),
        _ => None,
    };
    let quoted = match c.d.quoted_transport {
        Transport::Tcp(t) => Some(t),
        _ => None,
    };
    outer.into_iter().chain(quoted).enumerate().map(|(i, t)| (i as u8 + 1, t))
}

fn udp_layers(c: &Ctx<'_, '_>) -> impl Iterator<Item = (u8, UdpHeader)> {
    let outer = match c.d.transport {
        Transport::Udp(u) => Some(u),
        _ => None,
    };
    let quoted = match c.d.quoted_transport {
        Transport::Udp(u) => Some(u),
        _ => None,
    };
    outer.into_iter().chain(quoted).enumerate().map(|(i, u)| (i as u8 + 1, u))
}

/// Ports of TCP headers, including a quoted header too short to decode whole.
fn tcp_ports(c: &Ctx<'_, '_>) -> impl Iterator<Item = (u8, u16, u16)> {
    let outer = match c.d.transport {
        Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
        _ => None,
    };
    let quoted = c.d.quoted_ports.filter(|q| q.proto == crate::decode::IPPROTO_TCP).map(|q| (q.src_port, q.dst_port));
    outer.into_iter().chain(quoted).enumerate().map(|(i, (s, d))| (i as u8 + 1, s, d))
}

fn udp_ports(c: &Ctx<'_, '_>) -> impl Iterator<Item = (u8, u16, u16)> {
    let tunnel = c.d.outer_udp.map(|u| (u.src_port, u.dst_port));
    let outer = match c.d.transport {
        Transport::Udp(u) => Some((u.src_port, u.dst_port)),
        _ => None,
    };
    let quoted = c.d.quoted_ports.filter(|q| q.proto == crate::decode::IPPROTO_UDP).map(|q| (q.src_port, q.dst_port));
    tunnel.into_iter().chain(outer).chain(quoted).enumerate().map(|(i, (s, d))| (i as u8 + 1, s, d))
}

macro_rules! tcp_bit {
    ($bit:expr) => {
        |c, o| {
            for (l, t) in tcp_layers(c) {
                o.push(l, Val::U((t.flags & $bit != 0) as u64));
            }
        }
    };
}

macro_rules! analysis {
    ($flag:expr) => {
        |c, o| {
            if c.tcp.flags.has($flag) {
                o.push(1, Val::U(1));
            }
        }
    };
}

const fn f(name: &'static str, ftype: FType, get: Getter) -> FieldDef {
    FieldDef { name, ftype, get }
}

/// A protocol present when the frame went through the encapsulation `BIT` (`Decoded::encap`).
fn encap<const BIT: u16>(c: &Ctx<'_, '_>, o: &mut Values<'_>) {
    if c.d.encap & BIT != 0 {
        o.push(1, Val::Bytes(&[]))
    }
}

const ETHERTYPE_ARP: u16 = 0x0806;

/// Every field and protocol name, sorted by nothing in particular; looked up by name.
pub static FIELDS: &[FieldDef] = &[
    // Protocols.
    f("frame", FType::Proto, |c, o| o.push(1, Val::Bytes(c.d.data))),
    f("eth", FType::Proto, |c, o| {
        if c.d.eth_dst.is_some() && c.d.link == crate::capture::LinkType::ETHERNET {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("vlan", FType::Proto, |c, o| {
        for i in 0..c.d.vlan_count {
            o.push(i + 1, Val::Bytes(&[]))
        }
    }),
    f("ieee8021ad", FType::Proto, |c, o| {
        for i in 0..c.d.svlan_count {
            o.push(i + 1, Val::Bytes(&[]))
        }
    }),
    f("arp", FType::Proto, |c, o| {
        if c.d.net_type == Some(ETHERTYPE_ARP) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("ip", FType::Proto, |c, o| {
        for (l, _) in v4_layers(c) {
            o.push(l, Val::Bytes(&[]))
        }
    }),
    f("ipv6", FType::Proto, |c, o| {
        for (l, _) in v6_layers(c) {
            o.push(l, Val::Bytes(&[]))
        }
    }),
    f("tcp", FType::Proto, |c, o| {
        for (l, _, _) in tcp_ports(c) {
            o.push(l, Val::Bytes(&[]))
        }
    }),
    f("udp", FType::Proto, |c, o| {
        for (l, _, _) in udp_ports(c) {
            o.push(l, Val::Bytes(&[]))
        }
    }),
    f("icmp", FType::Proto, |c, o| {
        if matches!(c.d.transport, Transport::Icmp(i) if !i.v6) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("gre", FType::Proto, encap::<{ crate::decode::ENCAP_GRE }>),
    f("erspan", FType::Proto, encap::<{ crate::decode::ENCAP_ERSPAN }>),
    f("vxlan", FType::Proto, encap::<{ crate::decode::ENCAP_VXLAN }>),
    // Wireshark puts a PPPoE session under `pppoes` (its header fields are `pppoe.*`).
    f("pppoes", FType::Proto, encap::<{ crate::decode::ENCAP_PPPOES }>),
    f("ppp", FType::Proto, encap::<{ crate::decode::ENCAP_PPP }>),
    f("chdlc", FType::Proto, encap::<{ crate::decode::ENCAP_CHDLC }>),
    f("nsh", FType::Proto, encap::<{ crate::decode::ENCAP_NSH }>),
    f("wlan", FType::Proto, encap::<{ crate::decode::ENCAP_WLAN }>),
    f("mpls", FType::Proto, encap::<{ crate::decode::ENCAP_MPLS }>),
    f("gre.proto", FType::UInt, |c, o| {
        if let Some(p) = c.d.gre_proto {
            o.push(1, Val::U(p as u64))
        }
    }),
    f("vxlan.vni", FType::UInt, |c, o| {
        if let Some(v) = c.d.vxlan_vni {
            o.push(1, Val::U(v as u64))
        }
    }),
    f("geneve", FType::Proto, encap::<{ crate::decode::ENCAP_GENEVE }>),
    f("geneve.vni", FType::UInt, |c, o| {
        if let Some(v) = c.d.geneve_vni {
            o.push(1, Val::U(v as u64))
        }
    }),
    f("gtp", FType::Proto, encap::<{ crate::decode::ENCAP_GTP }>),
    f("gtp.teid", FType::UInt, |c, o| {
        if let Some(v) = c.d.gtp_teid {
            o.push(1, Val::U(v as u64))
        }
    }),
    f("pppoe.session_id", FType::UInt, |c, o| {
        if let Some(v) = c.d.pppoe_session {
            o.push(1, Val::U(v as u64))
        }
    }),
    f("mpls.label", FType::UInt, |c, o| {
        let (at, n) = c.d.mpls_stack;
        for i in 0..n as usize {
            if let Some(e) = c.d.data.get(at as usize + 4 * i..at as usize + 4 * i + 4) {
                o.push(i as u8 + 1, Val::U((u32::from_be_bytes([e[0], e[1], e[2], e[3]]) >> 12) as u64))
            }
        }
    }),
    f("icmpv6", FType::Proto, |c, o| {
        if matches!(c.d.transport, Transport::Icmp(i) if i.v6) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    // frame
    f("frame.len", FType::UInt, |c, o| o.push(1, Val::U(c.d.frame_len as u64))),
    f("frame.cap_len", FType::UInt, |c, o| o.push(1, Val::U(c.d.cap_len as u64))),
    f("frame.number", FType::UInt, |c, o| o.push(1, Val::U(c.d.frame))),
    // Ethernet and VLAN
    f("eth.src", FType::Ether, |c, o| {
        if c.d.link == crate::capture::LinkType::ETHERNET {
            if let Some(m) = c.d.eth_src {
                o.push(1, Val::Mac(m))
            }
        }
    }),
    f("eth.dst", FType::Ether, |c, o| {
        if let Some(m) = c.d.eth_dst {
            o.push(1, Val::Mac(m))
        }
    }),
    f("eth.addr", FType::Ether, |c, o| {
        if let (Some(s), Some(d)) = (c.d.eth_src, c.d.eth_dst) {
            o.push(1, Val::Mac(d));
            o.push(1, Val::Mac(s));
        }
    }),
    // Individual/group and local/global bits of the addresses (multicast and broadcast are "group").
    f("eth.dst.ig", FType::Bool, |c, o| {
        if let Some(m) = eth_mac(c, false) {
            o.push(1, Val::U((m[0] & 1) as u64))
        }
    }),
    f("eth.src.ig", FType::Bool, |c, o| {
        if let Some(m) = eth_mac(c, true) {
            o.push(1, Val::U((m[0] & 1) as u64))
        }
    }),
    f("eth.dst.lg", FType::Bool, |c, o| {
        if let Some(m) = eth_mac(c, false) {
            o.push(1, Val::U((m[0] >> 1 & 1) as u64))
        }
    }),
    f("eth.src.lg", FType::Bool, |c, o| {
        if let Some(m) = eth_mac(c, true) {
            o.push(1, Val::U((m[0] >> 1 & 1) as u64))
        }
    }),
    f("eth.type", FType::UInt, |c, o| {
        if c.d.link == crate::capture::LinkType::ETHERNET {
            if let Some(t) = c.d.eth_type.filter(|t| *t > 1500) {
                o.push(1, Val::U(t as u64))
            }
        }
    }),
    f("vlan.id", FType::UInt, |c, o| {
        for (i, id) in c.d.vlans().iter().enumerate() {
            o.push(i as u8 + 1, Val::U(*id as u64))
        }
    }),
    f("ieee8021ad.id", FType::UInt, |c, o| {
        for (i, id) in c.d.svlans().iter().enumerate() {
            o.push(i as u8 + 1, Val::U(*id as u64))
        }
    }),
    // IPv4
    f("ip.src", FType::Ipv4, |c, o| {
        for (l, h) in v4_layers(c) {
            o.push(l, ipval(h.src))
        }
    }),
    f("ip.dst", FType::Ipv4, |c, o| {
        for (l, h) in v4_layers(c) {
            o.push(l, ipval(h.dst))
        }
    }),
    f("ip.addr", FType::Ipv4, |c, o| {
        for (l, h) in v4_layers(c) {
            o.push(l, ipval(h.src));
            o.push(l, ipval(h.dst));
        }
    }),
    f("ip.proto", FType::UInt, |c, o| {
        for (l, h) in v4_layers(c) {
            o.push(l, Val::U(h.proto as u64))
        }
    }),
    f("ip.ttl", FType::UInt, |c, o| {
        for (l, h) in v4_layers(c) {
            o.push(l, Val::U(h.ttl as u64))
        }
    }),
    f("ip.len", FType::UInt, |c, o| {
        for (l, h) in v4_layers(c) {
            o.push(l, Val::U(h.len as u64))
        }
    }),
    // IPv6
    f("ipv6.src", FType::Ipv6, |c, o| {
        for (l, h) in v6_layers(c) {
            o.push(l, ipval(h.src))
        }
    }),
    f("ipv6.dst", FType::Ipv6, |c, o| {
        for (l, h) in v6_layers(c) {
            o.push(l, ipval(h.dst))
        }
    }),
    f("ipv6.addr", FType::Ipv6, |c, o| {
        for (l, h) in v6_layers(c) {
            o.push(l, ipval(h.src));
            o.push(l, ipval(h.dst));
        }
    }),
    f("ipv6.hlim", FType::UInt, |c, o| {
        for (l, h) in v6_layers(c) {
            o.push(l, Val::U(h.ttl as u64))
        }
    }),
    // TCP
    f("tcp.srcport", FType::UInt, |c, o| {
        for (l, s, _) in tcp_ports(c) {
            o.push(l, Val::U(s as u64))
        }
    }),
    f("tcp.dstport", FType::UInt, |c, o| {
        for (l, _, d) in tcp_ports(c) {
            o.push(l, Val::U(d as u64))
        }
    }),
    f("tcp.port", FType::UInt, |c, o| {
        for (l, s, d) in tcp_ports(c) {
            o.push(l, Val::U(s as u64));
            o.push(l, Val::U(d as u64));
        }
    }),
    // Wireshark shows no tcp.len for a header quoted in an ICMP error (checked with tshark).
    f("tcp.len", FType::UInt, |c, o| {
        if let Transport::Tcp(t) = c.d.transport {
            if !t.malformed {
                o.push(1, Val::U(t.seg_len as u64))
            }
        }
    }),
    f("tcp.hdr_len", FType::UInt, |c, o| {
        for (l, t) in tcp_layers(c) {
            o.push(l, Val::U(t.header_len as u64))
        }
    }),
    f("tcp.flags", FType::UInt, |c, o| {
        for (l, t) in tcp_layers(c) {
            o.push(l, Val::U(t.flags as u64))
        }
    }),
    f("tcp.flags.syn", FType::Bool, tcp_bit!(crate::decode::tcp_flags::SYN)),
    f("tcp.flags.ack", FType::Bool, tcp_bit!(crate::decode::tcp_flags::ACK)),
    f("tcp.flags.fin", FType::Bool, tcp_bit!(crate::decode::tcp_flags::FIN)),
    f("tcp.flags.reset", FType::Bool, tcp_bit!(crate::decode::tcp_flags::RST)),
    f("tcp.flags.push", FType::Bool, tcp_bit!(crate::decode::tcp_flags::PSH)),
    f("tcp.flags.urg", FType::Bool, tcp_bit!(crate::decode::tcp_flags::URG)),
    f("tcp.window_size_value", FType::UInt, |c, o| {
        for (l, t) in tcp_layers(c) {
            o.push(l, Val::U(t.window as u64))
        }
    }),
    f("tcp.stream", FType::UInt, |c, o| {
        if let (Some(s), Transport::Tcp(_)) = (c.stream, c.d.transport) {
            o.push(1, Val::U(s))
        }
    }),
    f("tcp.payload", FType::Bytes, |c, o| {
        if let Transport::Tcp(_) = c.d.transport {
            if !c.d.payload.is_empty() {
                o.push(1, Val::Bytes(c.d.payload))
            }
        }
        // …but it does show the payload of a quoted TCP segment.
        if let Transport::Tcp(_) = c.d.quoted_transport {
            if !c.d.quoted_payload.is_empty() {
                o.push(2, Val::Bytes(c.d.quoted_payload))
            }
        }
    }),
    f("tcp.analysis.flags", FType::Proto, |c, o| {
        if !c.tcp.flags.is_empty() {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("tcp.analysis.retransmission", FType::Proto, analysis!(TcpFlags::RETRANSMISSION)),
    f("tcp.analysis.fast_retransmission", FType::Proto, analysis!(TcpFlags::FAST_RETRANSMISSION)),
    f("tcp.analysis.spurious_retransmission", FType::Proto, analysis!(TcpFlags::SPURIOUS_RETRANSMISSION)),
    f("tcp.analysis.out_of_order", FType::Proto, analysis!(TcpFlags::OUT_OF_ORDER)),
    f("tcp.analysis.lost_segment", FType::Proto, analysis!(TcpFlags::LOST_SEGMENT)),
    f("tcp.analysis.ack_lost_segment", FType::Proto, analysis!(TcpFlags::ACK_LOST_SEGMENT)),
    f("tcp.analysis.duplicate_ack", FType::Proto, analysis!(TcpFlags::DUPLICATE_ACK)),
    f("tcp.analysis.zero_window", FType::Proto, analysis!(TcpFlags::ZERO_WINDOW)),
    f("tcp.analysis.zero_window_probe", FType::Proto, analysis!(TcpFlags::ZERO_WINDOW_PROBE)),
    f("tcp.analysis.zero_window_probe_ack", FType::Proto, analysis!(TcpFlags::ZERO_WINDOW_PROBE_ACK)),
    f("tcp.analysis.keep_alive", FType::Proto, analysis!(TcpFlags::KEEP_ALIVE)),
    f("tcp.analysis.keep_alive_ack", FType::Proto, analysis!(TcpFlags::KEEP_ALIVE_ACK)),
    f("tcp.analysis.window_update", FType::Proto, analysis!(TcpFlags::WINDOW_UPDATE)),
    f("tcp.analysis.window_full", FType::Proto, analysis!(TcpFlags::WINDOW_FULL)),
    f("tcp.analysis.reused_ports", FType::Proto, analysis!(TcpFlags::REUSED_PORTS)),
    f("tcp.analysis.duplicate_ack_num", FType::UInt, |c, o| {
        if c.tcp.flags.has(TcpFlags::DUPLICATE_ACK) {
            o.push(1, Val::U(c.tcp.dupack_num as u64))
        }
    }),
    // UDP
    f("udp.srcport", FType::UInt, |c, o| {
        for (l, s, _) in udp_ports(c) {
            o.push(l, Val::U(s as u64))
        }
    }),
    f("udp.dstport", FType::UInt, |c, o| {
        for (l, _, d) in udp_ports(c) {
            o.push(l, Val::U(d as u64))
        }
    }),
    f("udp.port", FType::UInt, |c, o| {
        for (l, s, d) in udp_ports(c) {
            o.push(l, Val::U(s as u64));
            o.push(l, Val::U(d as u64));
        }
    }),
    f("udp.length", FType::UInt, |c, o| {
        for (l, u) in udp_layers(c) {
            o.push(l, Val::U(u.length as u64))
        }
    }),
    // ICMP
    f("icmp.type", FType::UInt, |c, o| {
        if let Transport::Icmp(i) = c.d.transport {
            if !i.v6 {
                o.push(1, Val::U(i.icmp_type as u64))
            }
        }
    }),
    f("icmp.code", FType::UInt, |c, o| {
        if let Transport::Icmp(i) = c.d.transport {
            if !i.v6 {
                o.push(1, Val::U(i.code as u64))
            }
        }
    }),
    f("icmpv6.type", FType::UInt, |c, o| {
        if let Transport::Icmp(i) = c.d.transport {
            if i.v6 {
                o.push(1, Val::U(i.icmp_type as u64))
            }
        }
    }),
    f("icmpv6.code", FType::UInt, |c, o| {
        if let Transport::Icmp(i) = c.d.transport {
            if i.v6 {
                o.push(1, Val::U(i.code as u64))
            }
        }
    }),
    // Application layers whose dissectors come with later features.
    // DNS (and mDNS/LLMNR, which carry the same dns.* fields under their own protocol names).
    f("dns", FType::Proto, |c, o| {
        if c.app.dns.is_some_and(|d| d.kind == DnsKind::Dns) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("mdns", FType::Proto, |c, o| {
        if c.app.dns.is_some_and(|d| d.kind == DnsKind::Mdns) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("llmnr", FType::Proto, |c, o| {
        if c.app.dns.is_some_and(|d| d.kind == DnsKind::Llmnr) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("dns.qry.name", FType::Str, |c, o| {
        if let Some(n) = c.app.dns.as_ref().and_then(|d| d.qname()) {
            o.push(1, Val::Bytes(n))
        }
    }),
    // Wireshark shows the reply code only in responses.
    f("dns.flags.rcode", FType::UInt, |c, o| {
        if let Some(d) = c.app.dns.filter(|d| d.has_header && d.response) {
            o.push(1, Val::U(d.rcode as u64))
        }
    }),
    f("dns.flags.response", FType::Bool, |c, o| {
        if let Some(d) = c.app.dns.filter(|d| d.has_header) {
            o.push(1, Val::U(d.response as u64))
        }
    }),
    f("dns.flags.opcode", FType::UInt, |c, o| {
        if let Some(d) = c.app.dns.filter(|d| d.has_header) {
            o.push(1, Val::U(d.opcode as u64))
        }
    }),
    f("dns.count.queries", FType::UInt, |c, o| {
        if let Some(d) = c.app.dns.filter(|d| d.has_header) {
            o.push(1, Val::U(d.questions as u64))
        }
    }),
    // HTTP: the request or status line that starts a segment (no reassembly).
    f("http", FType::Proto, |c, o| {
        if c.app.http.is_some() {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    // Wireshark calls a NOTIFY (SSDP, GENA) a notification, not a request.
    f("http.request", FType::Proto, |c, o| {
        if c.app.http.is_some_and(|h| h.method.is_some_and(|m| m != "NOTIFY")) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("http.notification", FType::Proto, |c, o| {
        if c.app.http.is_some_and(|h| h.method == Some("NOTIFY")) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("http.response", FType::Proto, |c, o| {
        if c.app.http.is_some_and(|h| h.code.is_some()) {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("http.request.method", FType::Str, |c, o| {
        if let Some(m) = c.app.http.and_then(|h| h.method) {
            o.push(1, Val::Bytes(m.as_bytes()))
        }
    }),
    f("http.response.code", FType::UInt, |c, o| {
        if let Some(code) = c.app.http.and_then(|h| h.code) {
            o.push(1, Val::U(code as u64))
        }
    }),
    f("http.host", FType::Str, |c, o| {
        if c.app.http.is_some_and(|h| h.has_host) {
            o.push(1, Val::Bytes(&c.app.http_host))
        }
    }),
    // Application errors (mirrorwatch's own fields): present on the frame that completed one.
    f("app_error", FType::Proto, |c, o| {
        if !c.app.errors.is_empty() {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("app_error.family", FType::Str, |c, o| {
        for e in &c.app.errors {
            o.push(1, Val::Bytes(e.family.name().as_bytes()))
        }
    }),
    f("app_error.code", FType::Str, |c, o| {
        for e in &c.app.errors {
            o.push(1, Val::Bytes(e.code.as_bytes()))
        }
    }),
    f("app_error.message", FType::Str, |c, o| {
        for e in &c.app.errors {
            o.push(1, Val::Bytes(e.message.as_bytes()))
        }
    }),
    // Kerberos, POP, DHCP (the identity dissectors).
    f("kerberos", FType::Proto, |c, o| {
        if c.app.krb.is_some() {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("kerberos.msg_type", FType::UInt, |c, o| {
        for t in c.app.krb.iter().flat_map(|k| &k.msg_types) {
            o.push(1, Val::U(*t as u64))
        }
    }),
    f("kerberos.CNameString", FType::Str, |c, o| {
        for n in c.app.krb.iter().flat_map(|k| &k.cname) {
            o.push(1, Val::Bytes(n.as_bytes()))
        }
    }),
    f("kerberos.realm", FType::Str, |c, o| {
        for r in c.app.krb.iter().flat_map(|k| &k.realms) {
            o.push(1, Val::Bytes(r.as_bytes()))
        }
    }),
    f("kerberos.crealm", FType::Str, |c, o| {
        if let Some(r) = c.app.krb.as_ref().and_then(|k| k.crealm.as_ref()) {
            o.push(1, Val::Bytes(r.as_bytes()))
        }
    }),
    f("kerberos.error_code", FType::UInt, |c, o| {
        if let Some(e) = c.app.krb.as_ref().and_then(|k| k.error_code) {
            o.push(1, Val::U(e as u64))
        }
    }),
    f("pop", FType::Proto, |c, o| {
        if c.app.pop.is_some() {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("pop.request.command", FType::Str, |c, o| {
        if let Some(v) = c.app.pop.as_ref().and_then(|p| p.command.as_ref()) {
            o.push(1, Val::Bytes(v.as_bytes()))
        }
    }),
    f("pop.request.parameter", FType::Str, |c, o| {
        if let Some(v) = c.app.pop.as_ref().and_then(|p| p.parameter.as_ref()) {
            o.push(1, Val::Bytes(v.as_bytes()))
        }
    }),
    f("dhcp", FType::Proto, |c, o| {
        if c.app.dhcp.is_some() {
            o.push(1, Val::Bytes(&[]))
        }
    }),
    f("dhcp.option.hostname", FType::Str, |c, o| {
        if let Some(h) = c.app.dhcp.as_ref().and_then(|d| d.hostname.as_ref()) {
            o.push(1, Val::Bytes(h.as_bytes()))
        }
    }),
];

pub fn lookup(name: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The known name closest to `name` (for "did you mean" in errors).
pub fn nearest(name: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .map(|f| (strsim::damerau_levenshtein(name, f.name), f.name))
        .filter(|(d, n)| *d <= 3.max(n.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Single-valued reader of a numeric field of the outer headers, for the evaluator's fast path
/// (used only when the frame carries no ICMP-quoted headers, which would add occurrences).
pub type FastU64 = for<'p, 'a> fn(&Ctx<'p, 'a>) -> Option<u64>;

fn outer_tcp(c: &Ctx<'_, '_>) -> Option<TcpHeader> {
    match c.d.transport {
        Transport::Tcp(t) => Some(t),
        _ => None,
    }
}

fn outer_udp(c: &Ctx<'_, '_>) -> Option<UdpHeader> {
    match c.d.transport {
        Transport::Udp(u) => Some(u),
        _ => None,
    }
}

fn outer_icmp(c: &Ctx<'_, '_>, v6: bool) -> Option<crate::decode::IcmpHeader> {
    match c.d.transport {
        Transport::Icmp(i) if i.v6 == v6 => Some(i),
        _ => None,
    }
}

/// The Ethernet source or destination of an Ethernet frame.
fn eth_mac(c: &Ctx<'_, '_>, src: bool) -> Option<[u8; 6]> {
    if c.d.link != crate::capture::LinkType::ETHERNET {
        return None;
    }
    if src {
        c.d.eth_src
    } else {
        c.d.eth_dst
    }
}

pub fn fast_u64(name: &str) -> Option<FastU64> {
    use crate::decode::tcp_flags as tf;
    Some(match name {
        "frame.len" => |c| Some(c.d.frame_len as u64),
        "frame.cap_len" => |c| Some(c.d.cap_len as u64),
        "frame.number" => |c| Some(c.d.frame),
        "eth.dst.ig" => |c| eth_mac(c, false).map(|m| (m[0] & 1) as u64),
        "eth.src.ig" => |c| eth_mac(c, true).map(|m| (m[0] & 1) as u64),
        "ip.proto" => |c| c.d.ip.filter(|i| i.is_v4()).map(|i| i.proto as u64),
        "ip.ttl" => |c| c.d.ip.filter(|i| i.is_v4()).map(|i| i.ttl as u64),
        "ip.len" => |c| c.d.ip.filter(|i| i.is_v4()).map(|i| i.len as u64),
        "ipv6.hlim" => |c| c.d.ip.filter(|i| !i.is_v4()).map(|i| i.ttl as u64),
        "tcp.srcport" => |c| outer_tcp(c).map(|t| t.src_port as u64),
        "tcp.dstport" => |c| outer_tcp(c).map(|t| t.dst_port as u64),
        "tcp.len" => |c| outer_tcp(c).filter(|t| !t.malformed).map(|t| t.seg_len as u64),
        "tcp.hdr_len" => |c| outer_tcp(c).map(|t| t.header_len as u64),
        "tcp.flags" => |c| outer_tcp(c).map(|t| t.flags as u64),
        "tcp.flags.syn" => |c| outer_tcp(c).map(|t| t.has(tf::SYN) as u64),
        "tcp.flags.ack" => |c| outer_tcp(c).map(|t| t.has(tf::ACK) as u64),
        "tcp.flags.fin" => |c| outer_tcp(c).map(|t| t.has(tf::FIN) as u64),
        "tcp.flags.reset" => |c| outer_tcp(c).map(|t| t.has(tf::RST) as u64),
        "tcp.flags.push" => |c| outer_tcp(c).map(|t| t.has(tf::PSH) as u64),
        "tcp.flags.urg" => |c| outer_tcp(c).map(|t| t.has(tf::URG) as u64),
        "tcp.window_size_value" => |c| outer_tcp(c).map(|t| t.window as u64),
        "udp.srcport" => |c| outer_udp(c).map(|u| u.src_port as u64),
        "udp.dstport" => |c| outer_udp(c).map(|u| u.dst_port as u64),
        "udp.length" => |c| outer_udp(c).map(|u| u.length as u64),
        "icmp.type" => |c| outer_icmp(c, false).map(|i| i.icmp_type as u64),
        "icmp.code" => |c| outer_icmp(c, false).map(|i| i.code as u64),
        "icmpv6.type" => |c| outer_icmp(c, true).map(|i| i.icmp_type as u64),
        "icmpv6.code" => |c| outer_icmp(c, true).map(|i| i.code as u64),
        _ => return None,
    })
}

/// Single-valued reader of an address field of the outer headers (same contract as
/// [`fast_u64`]).
pub type FastVal = for<'p, 'a> fn(&Ctx<'p, 'a>) -> Option<Val<'a>>;

pub fn fast_val(name: &str) -> Option<FastVal> {
    fn v4<'a>(c: &Ctx<'_, 'a>, src: bool) -> Option<Val<'a>> {
        c.d.ip.filter(|i| i.is_v4()).map(|i| ipval(if src { i.src } else { i.dst }))
    }
    fn v6<'a>(c: &Ctx<'_, 'a>, src: bool) -> Option<Val<'a>> {
        c.d.ip.filter(|i| !i.is_v4()).map(|i| ipval(if src { i.src } else { i.dst }))
    }
    Some(match name {
        "eth.src" => |c| eth_mac(c, true).map(Val::Mac),
        "eth.dst" => |c| eth_mac(c, false).map(Val::Mac),
        "ip.src" => |c| v4(c, true),
        "ip.dst" => |c| v4(c, false),
        "ipv6.src" => |c| v6(c, true),
        "ipv6.dst" => |c| v6(c, false),
        _ => return None,
    })
}
