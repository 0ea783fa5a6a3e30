//! Lenient frame decoder: link layer → VLAN tags → IPv4/IPv6 → TCP/UDP/ICMP (+ the headers an
//! ICMP error quotes).
//!
//! Contract: never panics on any input, allocates nothing, and keeps every layer that parsed.
//! Where decoding stops early, [`Decoded::stop`] says at which layer, at which byte offset and
//! why — truncation by snaplen is normal on a capture box and is reported as such, distinct from
//! a malformed header. Lengths follow Wireshark: the TCP/UDP payload length comes from the IP
//! length fields (so headers-only captures still count sequence space correctly), and an IPv4
//! total length of 0 means "segmentation offload", use the captured length (as Wireshark does).

pub mod link;
pub mod reassembly;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::capture::{LinkType, RawPacket};
use crate::time::Ts;

/// How many VLAN tags are kept per frame. Real networks use 1–3 (QinQinQ); the bound keeps the
/// decoded frame fixed-size. Deeper stacks stop decoding with [`StopReason::TooManyTags`].
pub const MAX_VLAN_TAGS: usize = 4;

/// Layers, for stop reasons and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Link,
    Vlan,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp,
    /// GRE, and ERSPAN inside it.
    Gre,
    Vxlan,
    Pppoe,
    Mpls,
    /// IP in IP (IP protocols 4 and 41: IPIP, 6in4, 4in6, IPv6 in IPv6).
    IpInIp,
    Geneve,
    /// GTP-U (UDP 2152), a mobile backhaul's user plane.
    Gtp,
    /// PPP framing (link types 9 and 50, PPTP's GRE) and Cisco HDLC.
    Ppp,
    /// An 802.11 data frame (inside Aruba's GRE).
    Wlan,
    /// A Network Service Header (service function chaining).
    Nsh,
}

/// Why decoding stopped before the transport payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The frame was cut (snaplen) inside this layer's header.
    Truncated,
    /// The header is impossible (bad version, length smaller than the header…).
    Malformed,
    /// More VLAN tags than [`MAX_VLAN_TAGS`].
    TooManyTags,
    /// Link type the decoder does not know.
    UnsupportedLink,
    /// A tunnel or encapsulation whose content is not opened (GRE version 1, an unknown GRE
    /// protocol, an MPLS pseudowire, a tunnel inside a tunnel): counted, never skipped silently.
    Unsupported,
}

impl StopReason {
    pub fn is_error(self) -> bool {
        matches!(self, StopReason::Malformed | StopReason::TooManyTags)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    pub layer: Layer,
    pub reason: StopReason,
    /// Byte offset in the frame where the layer starts.
    pub offset: u32,
}

/// An IP header (outer, or quoted inside an ICMP error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Final next-header / protocol (after IPv6 extension headers).
    pub proto: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// ip.len (IPv4 total length) or IPv6 payload length + 40.
    pub len: u32,
    /// True for any fragment (first or later): the transport header is not decoded from it;
    /// see [`reassembly`] for the datagram put back together.
    pub fragment: bool,
    /// Fragment identification, offset (bytes) and more-fragments flag (meaningful when
    /// `fragment`).
    pub frag_id: u32,
    pub frag_offset: u32,
    pub more_fragments: bool,
}

impl IpHeader {
    pub fn is_v4(&self) -> bool {
        self.src.is_ipv4()
    }
}

pub mod tcp_flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The 12 flag bits (NS, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
    pub flags: u16,
    pub window: u16,
    pub header_len: u8,
    /// tcp.len: payload length from the IP length fields (not from what was captured).
    pub seg_len: u32,
    /// Window-scale option (shift count), if present and captured.
    pub wscale: Option<u8>,
    /// The header claims more bytes than the segment has: the frame is TCP (ports, flags) as
    /// Wireshark shows it, but has no length and takes no part in sequence analysis.
    pub malformed: bool,
}

impl TcpHeader {
    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub length: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpHeader {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
}

impl IcmpHeader {
    /// Error messages quote the offending packet's IP header and first transport bytes.
    pub fn is_error(&self) -> bool {
        if self.v6 {
            matches!(self.icmp_type, 1..=4)
        } else {
            matches!(self.icmp_type, 3 | 4 | 5 | 11 | 12)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    None,
    Tcp(TcpHeader),
    Udp(UdpHeader),
    Icmp(IcmpHeader),
}

impl Transport {
    /// The transport, or `None` for a TCP header too long for its segment (which is TCP to
    /// filters but takes no part in sequence analysis, as in Wireshark).
    pub fn tcp_analysed(&self) -> &Transport {
        match self {
            Transport::Tcp(t) if t.malformed => &Transport::None,
            t => t,
        }
    }
}

/// Ports of a transport header quoted inside an ICMP error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedPorts {
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// One decoded frame: small, `Copy`, borrowing the payload from the capture buffer.
#[derive(Clone, Copy, Debug)]
pub struct Decoded<'a> {
    pub frame: u64,
    pub ts: Ts,
    pub frame_len: u32,
    pub cap_len: u32,
    pub link: LinkType,
    pub eth_src: Option<[u8; 6]>,
    pub eth_dst: Option<[u8; 6]>,
    /// eth.type of the Ethernet header itself (0x8100 when tagged), or the SLL protocol.
    pub eth_type: Option<u16>,
    /// 802.1Q tag ids, outermost first (`vlan.id`).
    pub vlan_ids: [u16; MAX_VLAN_TAGS],
    pub vlan_count: u8,
    /// 802.1ad (0x88a8) service tag ids (`ieee8021ad.id`), outermost first.
    pub svlan_ids: [u16; MAX_VLAN_TAGS],
    pub svlan_count: u8,
    /// The ethertype that followed the tags.
    pub net_type: Option<u16>,
    pub ip: Option<IpHeader>,
    pub transport: Transport,
    /// IP header quoted inside an ICMP error, with its transport ports when they were captured.
    pub quoted_ip: Option<IpHeader>,
    pub quoted_ports: Option<QuotedPorts>,
    /// The quoted transport header, when enough of it was quoted to decode it whole.
    pub quoted_transport: Transport,
    /// Payload bytes after the quoted transport header (Wireshark shows them as `tcp.payload`).
    pub quoted_payload: &'a [u8],
    /// Captured transport payload (TCP/UDP data), cut to the length the IP header declares.
    pub payload: &'a [u8],
    /// Captured payload of an IP fragment (input to reassembly); empty otherwise.
    pub ip_payload: &'a [u8],
    /// The whole captured frame, for `frame contains` and payload scans.
    pub data: &'a [u8],
    pub stop: Option<Stop>,
    /// Encapsulations the frame came through ([`ENCAP_GRE`]…): the frame is analysed as the
    /// packet inside them, as if captured directly, and these stay visible to filters.
    pub encap: u16,
    /// Bytes at the end of the frame outside its packet as Wireshark frames it (the FCS a
    /// FabricPath frame is taken to carry): the packet on the wire ends before them.
    pub trailer: u32,
    /// The outer IP header of a GRE or VXLAN tunnel whose inner packet is `ip`.
    pub outer_ip: Option<IpHeader>,
    /// The outer UDP header of a VXLAN tunnel.
    pub outer_udp: Option<UdpHeader>,
    /// Tunnel ids: VXLAN VNI, PPPoE session, first MPLS label, GRE protocol type.
    pub vxlan_vni: Option<u32>,
    pub pppoe_session: Option<u16>,
    pub mpls_label: Option<u32>,
    /// Where the MPLS label stack is in `data`, and how many entries it has (filters see
    /// every label, as Wireshark's `mpls.label` does).
    pub mpls_stack: (u16, u8),
    pub gre_proto: Option<u16>,
    /// Tunnels opened so far (at most [`MAX_TUNNELS`]).
    pub tunnels: u8,
    /// Geneve VNI and GTP-U TEID.
    pub geneve_vni: Option<u32>,
    pub gtp_teid: Option<u32>,
}

pub const ENCAP_GRE: u16 = 1;
pub const ENCAP_ERSPAN: u16 = 2;
pub const ENCAP_VXLAN: u16 = 4;
pub const ENCAP_PPPOES: u16 = 8;
pub const ENCAP_MPLS: u16 = 16;
pub const ENCAP_IPIP: u16 = 32;
pub const ENCAP_GENEVE: u16 = 64;
pub const ENCAP_GTP: u16 = 128;
/// PPP framing: the PPP link types, PPP inside GRE (PPTP).
pub const ENCAP_PPP: u16 = 256;
/// Cisco HDLC (its link type, or in PPP-typed captures whose frames start 0x0f/0x8f).
pub const ENCAP_CHDLC: u16 = 512;
/// An 802.11 data frame (Aruba controllers' GRE from their access points).
pub const ENCAP_WLAN: u16 = 1024;
/// A Network Service Header.
pub const ENCAP_NSH: u16 = 2048;

/// Tunnels opened one inside the other at most (Geneve inside GRE is two); a third is counted
/// as a stop, so a crafted frame cannot nest without end.
pub const MAX_TUNNELS: u8 = 2;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_IPV6: u8 = 41;
/// Geneve's IANA port (RFC 8926) and GTP-U's (3GPP TS 29.281), where Wireshark opens them.
pub const GENEVE_PORT: u16 = 6081;
pub const GTPU_PORT: u16 = 2152;

pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
pub const ETHERTYPE_MPLS: u16 = 0x8847;
pub const ETHERTYPE_MPLS_MCAST: u16 = 0x8848;
/// Cisco metadata (TrustSec's inline security group tag).
pub const ETHERTYPE_CMD: u16 = 0x8909;
/// Network Service Header (RFC 8300), service function chaining.
pub const ETHERTYPE_NSH: u16 = 0x894f;
pub const IPPROTO_GRE: u8 = 47;
/// VXLAN's IANA port (Wireshark decodes it there by default).
pub const VXLAN_PORT: u16 = 4789;
/// Labels walked in an MPLS stack at most.
const MAX_MPLS_LABELS: usize = 8;

impl<'a> Decoded<'a> {
    pub fn vlans(&self) -> &[u16] {
        &self.vlan_ids[..self.vlan_count as usize]
    }
    pub fn svlans(&self) -> &[u16] {
        &self.svlan_ids[..self.svlan_count as usize]
    }
    pub fn tcp(&self) -> Option<&TcpHeader> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }
    pub fn udp(&self) -> Option<&UdpHeader> {
        match &self.transport {
            Transport::Udp(u) => Some(u),
            _ => None,
        }
    }
}

/// A MAC address as text: lower case, colon separated (the form the JSON contract uses).
pub fn mac_text(m: &[u8; 6]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(17);
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// An address as `Display` writes it, written into `out`. IPv4 by hand: the formatter's
/// padding machinery costs about 1,700 instructions an address, and the store and the
/// exchanges write one or two per flow and exchange (IPv6 goes through `Display`).
pub fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if *o >= 100 {
                    out.push((b'0' + o / 100) as char);
                }
                if *o >= 10 {
                    out.push((b'0' + o / 10 % 10) as char);
                }
                out.push((b'0' + o % 10) as char);
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// [`push_ip`] into a new string.
pub fn ip_text(ip: std::net::IpAddr) -> String {
    let mut s = String::with_capacity(15);
    push_ip(&mut s, ip);
    s
}

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// Decodes one captured frame. Never fails: what could not be decoded is described in `stop`.
pub fn decode<'a>(pkt: &RawPacket<'a>) -> Decoded<'a> {
    let mut d = Decoded {
        frame: pkt.frame,
        ts: pkt.ts,
        frame_len: pkt.orig_len,
        cap_len: pkt.data.len() as u32,
        link: pkt.link,
        eth_src: None,
        eth_dst: None,
        eth_type: None,
        vlan_ids: [0; MAX_VLAN_TAGS],
        vlan_count: 0,
        svlan_ids: [0; MAX_VLAN_TAGS],
        svlan_count: 0,
        net_type: None,
        ip: None,
        transport: Transport::None,
        quoted_ip: None,
        quoted_ports: None,
        quoted_transport: Transport::None,
        quoted_payload: &[],
        payload: &[],
        ip_payload: &[],
        data: pkt.data,
        stop: None,
        encap: 0,
        outer_ip: None,
        outer_udp: None,
        vxlan_vni: None,
        pppoe_session: None,
        mpls_label: None,
        mpls_stack: (0, 0),
        gre_proto: None,
        tunnels: 0,
        geneve_vni: None,
        gtp_teid: None,
        trailer: 0,
    };
    let Some((net_type, off)) = link::decode_link(&mut d, pkt.data) else {
        return d;
    };
    d.net_type = Some(net_type);
    decode_net(&mut d, net_type, pkt.data, off);
    d
}

/// The network layer of ethertype `ty` at `b[off..]`: IP, or IP inside PPPoE or MPLS.
fn decode_net<'a>(d: &mut Decoded<'a>, ty: u16, b: &'a [u8], off: usize) {
    let rest = &b[off.min(b.len())..];
    let base = off as u32;
    match ty {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => decode_ip(d, rest, base),
        ETHERTYPE_PPPOE_SESSION => {
            // ver/type, code, session id, length; then the PPP protocol.
            if rest.len() < 8 {
                return stop(d, Layer::Pppoe, StopReason::Truncated, base);
            }
            d.encap |= ENCAP_PPPOES | ENCAP_PPP;
            d.pppoe_session = Some(u16::from_be_bytes([rest[2], rest[3]]));
            // The PPP protocol field is one byte when compressed (RFC 1661 §6.5: an odd first
            // byte), as some access concentrators send it.
            let (proto, at) = match rest[6] & 1 {
                1 => (u16::from(rest[6]), 7),
                _ => (u16::from_be_bytes([rest[6], rest[7]]), 8),
            };
            match proto {
                0x0021 | 0x0057 => decode_ip(d, &rest[at..], base + at as u32),
                // Link, network and authentication control (LCP, IPCP, IPV6CP, PAP, CHAP…): PPP's
                // own business, nothing left unopened.
                p if p >= 0x8000 => {}
                _ => stop(d, Layer::Pppoe, StopReason::Unsupported, base + at as u32),
            }
        }
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MCAST => {
            d.encap |= ENCAP_MPLS;
            // Offset in the frame (a stack inside a tunnel's frame counts from the outer start).
            let at = (rest.as_ptr() as usize).wrapping_sub(d.data.as_ptr() as usize);
            let mut i = 0;
            loop {
                if rest.len() < i + 4 {
                    return stop(d, Layer::Mpls, StopReason::Truncated, base + i as u32);
                }
                let e = u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
                if d.mpls_label.is_none() {
                    d.mpls_label = Some(e >> 12);
                }
                i += 4;
                d.mpls_stack = (u16::try_from(at).unwrap_or(0), (i / 4) as u8);
                if e & 0x100 != 0 {
                    break;
                }
                if i / 4 >= MAX_MPLS_LABELS {
                    return stop(d, Layer::Mpls, StopReason::TooManyTags, base + i as u32);
                }
            }
            // After the bottom of the stack: IP by its version nibble (a pseudowire starts
            // with a control word of 0 and is not opened).
            match rest.get(i).map(|v| v >> 4) {
                Some(4 | 6) => decode_ip(d, &rest[i..], base + i as u32),
                _ => stop(d, Layer::Mpls, StopReason::Unsupported, base + i as u32),
            }
        }
        ETHERTYPE_NSH => decode_nsh(d, rest, base),
        _ => {} // ARP, LLDP, …: link-layer facts only
    }
}

/// A Network Service Header (RFC 8300) as packet-nsh.c reads it: its length (in 4-byte words;
/// 6 for metadata type 1, at least 2 for type 2), then the next protocol: IPv4, IPv6, Ethernet
/// or MPLS. A header inside a header is a counted stop, as is a third level of encapsulation.
fn decode_nsh<'a>(d: &mut Decoded<'a>, b: &'a [u8], base: u32) {
    // A level of its own: Ethernet inside NSH inside Ethernet… is bounded like tunnels.
    if !enter_tunnel(d, Layer::Nsh, b, base) {
        return;
    }
    if b.len() < 8 {
        return stop(d, Layer::Nsh, StopReason::Truncated, base);
    }
    d.encap |= ENCAP_NSH;
    let words = (u16::from_be_bytes([b[0], b[1]]) & 0x3f) as usize;
    let len = match b[2] {
        1 => 24,
        2 => (words * 4).max(8),
        _ => (words * 4).max(4),
    };
    let Some(inner) = b.get(len..) else {
        return stop(d, Layer::Nsh, StopReason::Truncated, base);
    };
    let ib = base + len as u32;
    match b[3] {
        1 | 2 => {
            begin_inner(d);
            decode_ip(d, inner, ib);
        }
        3 => decode_inner_ethernet(d, inner, ib),
        5 => {
            begin_inner(d);
            decode_net(d, ETHERTYPE_MPLS, inner, 0);
        }
        _ => stop(d, Layer::Nsh, StopReason::Unsupported, ib),
    }
}

/// The Ethernet frame inside a tunnel (GRE bridging, ERSPAN, VXLAN): its MACs and tags replace
/// the outer ones, its packet is analysed as if captured directly.
fn decode_inner_ethernet<'a>(d: &mut Decoded<'a>, b: &'a [u8], base: u32) {
    if b.len() < 14 {
        return stop(d, Layer::Link, StopReason::Truncated, base);
    }
    begin_inner(d);
    link::ethernet_addresses(d, b);
    d.vlan_count = 0;
    d.svlan_count = 0;
    let ty = u16::from_be_bytes([b[12], b[13]]);
    if ty <= 1500 {
        return;
    }
    let Some((net, off)) = link::decode_tags(d, b, ty, 14) else { return };
    d.net_type = Some(net);
    decode_net(d, net, b, off);
}

/// The outer packet of a tunnel becomes the "outer" layer; the inner one is decoded next.
fn begin_inner(d: &mut Decoded<'_>) {
    if d.outer_ip.is_none() {
        d.outer_ip = d.ip.take();
    } else {
        d.ip = None;
    }
    if let Transport::Udp(u) = d.transport {
        d.outer_udp = Some(u);
    }
    d.transport = Transport::None;
    d.payload = &[];
}

/// GRE (RFC 1701/2784/2890) as packet-gre.c reads it: the version bits do not change the
/// header (but PPP with a version is PPTP's enhanced GRE, RFC 2637: its key is payload length
/// and call id, and an acknowledgment number may follow); routing entries are skipped. Inside:
/// IP, WCCP-redirected IP, Ethernet (bridging, MikroTik EoIP), ERSPAN I/II/III, MPLS, PPP,
/// and Aruba's 802.11 frames.
fn decode_gre<'a>(d: &mut Decoded<'a>, b: &'a [u8], base: u32) {
    if !enter_tunnel(d, Layer::Gre, b, base) {
        return;
    }
    if b.len() < 4 {
        return stop(d, Layer::Gre, StopReason::Truncated, base);
    }
    d.encap |= ENCAP_GRE;
    let flags = u16::from_be_bytes([b[0], b[1]]);
    let proto = u16::from_be_bytes([b[2], b[3]]);
    d.gre_proto = Some(proto);
    let seq = flags & 0x1000 != 0;
    let pptp = proto == GRE_PPP && flags & 0x0007 != 0;
    let mut len = 4;
    for (bit, present) in [(0xC000, true), (0x2000, true), (0x1000, true), (0x0080, pptp)] {
        if flags & bit != 0 && present {
            len += 4;
        }
    }
    if flags & 0x4000 != 0 {
        // Source route entries: address family, offset, length; a null entry ends them.
        loop {
            let Some(sre) = b.get(len..len + 4) else {
                return stop(d, Layer::Gre, StopReason::Truncated, base);
            };
            len += 4;
            if sre[0] == 0 && sre[1] == 0 && sre[3] == 0 {
                break;
            }
            len += sre[3] as usize;
        }
    }
    if b.len() < len {
        return stop(d, Layer::Gre, StopReason::Truncated, base);
    }
    // WCCP version 2 adds a 4-byte redirect header before the IPv4 packet.
    if proto == GRE_WCCP && b.get(len).is_some_and(|v| v >> 4 != 4) {
        len += 4;
    }
    let inner = &b[len.min(b.len())..];
    let ib = base + len as u32;
    match proto {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 | GRE_WCCP => {
            begin_inner(d);
            decode_ip(d, inner, ib);
        }
        0x6558 | GRE_MIKROTIK_EOIP => decode_inner_ethernet(d, inner, ib),
        0x88be => {
            d.encap |= ENCAP_ERSPAN;
            // Type II has an 8-byte header (the GRE sequence number is set); type I none.
            let h = if seq { 8 } else { 0 };
            if inner.len() < h {
                return stop(d, Layer::Gre, StopReason::Truncated, ib);
            }
            decode_inner_ethernet(d, &inner[h..], ib + h as u32);
        }
        0x22eb => {
            d.encap |= ENCAP_ERSPAN;
            // Type III: 12 bytes, and an 8-byte platform subheader when the O flag is set.
            if inner.len() < 12 {
                return stop(d, Layer::Gre, StopReason::Truncated, ib);
            }
            let h = if inner[11] & 0x01 != 0 { 20 } else { 12 };
            if inner.len() < h {
                return stop(d, Layer::Gre, StopReason::Truncated, ib);
            }
            decode_inner_ethernet(d, &inner[h..], ib + h as u32);
        }
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MCAST => {
            begin_inner(d);
            decode_net(d, proto, b, len);
        }
        ETHERTYPE_NSH => decode_nsh(d, inner, ib),
        // Cisco metadata: the protocol after it, 6 bytes of metadata (the SGT), then that
        // protocol's packet (IP or Ethernet; anything else is counted).
        ETHERTYPE_CMD => {
            let Some(h) = inner.get(..8) else {
                return stop(d, Layer::Gre, StopReason::Truncated, ib);
            };
            let next = &inner[8..];
            match u16::from_be_bytes([h[0], h[1]]) {
                ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => {
                    begin_inner(d);
                    decode_ip(d, next, ib + 8);
                }
                0x6558 => decode_inner_ethernet(d, next, ib + 8),
                _ => stop(d, Layer::Gre, StopReason::Unsupported, ib + 8),
            }
        }
        GRE_PPP => {
            begin_inner(d);
            match ppp_hdlc(d, inner, ib) {
                Some((ty, off)) => decode_net(d, ty, inner, off),
                None => d.payload = inner,
            }
        }
        p if (GRE_ARUBA_FIRST..=GRE_ARUBA_LAST).contains(&p) && p & 0x000f == 0 => {
            begin_inner(d);
            if let Some((ty, off)) = wlan_data(d, inner, ib) {
                decode_net(d, ty, inner, off);
            }
        }
        _ => {
            d.payload = inner;
            stop(d, Layer::Gre, StopReason::Unsupported, ib);
        }
    }
}

const GRE_PPP: u16 = 0x880b;
const GRE_WCCP: u16 = 0x883e;
const GRE_MIKROTIK_EOIP: u16 = 0x6400;
/// Aruba's GRE protocols from access points to their controller, 0x8200 to 0x8370 by 0x10:
/// 802.11 frames without FCS.
const GRE_ARUBA_FIRST: u16 = 0x8200;
const GRE_ARUBA_LAST: u16 = 0x8370;

/// PPP in HDLC-like framing (RFC 1662) as packet-ppp.c's `dissect_ppp_hdlc` takes it: a frame
/// starting 0x0f or 0x8f is Cisco HDLC; 0xff 0x03 (address, control) is skipped when present;
/// the protocol is one byte when its first byte is odd (RFC 1661 §6.5). Returns the ethertype
/// the PPP protocol stands for and where its packet starts; control protocols (LCP, IPCP, PAP,
/// CHAP…) return nothing, other protocols are a counted stop.
pub(super) fn ppp_hdlc(d: &mut Decoded<'_>, b: &[u8], base: u32) -> Option<(u16, usize)> {
    match b.first() {
        Some(0x0f | 0x8f) => return chdlc(d, b, base),
        None => {
            stop(d, Layer::Ppp, StopReason::Truncated, base);
            return None;
        }
        _ => {}
    }
    d.encap |= ENCAP_PPP;
    let at = if b[0] == 0xff { 2 } else { 0 };
    let (proto, off) = match b.get(at) {
        Some(&p) if p & 1 == 1 => (u16::from(p), at + 1),
        Some(_) if b.len() >= at + 2 => (u16::from_be_bytes([b[at], b[at + 1]]), at + 2),
        _ => {
            stop(d, Layer::Ppp, StopReason::Truncated, base);
            return None;
        }
    };
    match proto {
        0x0021 => Some((ETHERTYPE_IPV4, off)),
        0x0057 => Some((ETHERTYPE_IPV6, off)),
        0x0281 => Some((ETHERTYPE_MPLS, off)),
        0x0283 => Some((ETHERTYPE_MPLS_MCAST, off)),
        p if p >= 0x8000 => None,
        _ => {
            stop(d, Layer::Ppp, StopReason::Unsupported, base + off as u32);
            None
        }
    }
}

/// Cisco HDLC: address (0x0f unicast, 0x8f broadcast), control, then an ethertype.
pub(super) fn chdlc(d: &mut Decoded<'_>, b: &[u8], base: u32) -> Option<(u16, usize)> {
    if b.len() < 4 {
        stop(d, Layer::Ppp, StopReason::Truncated, base);
        return None;
    }
    d.encap |= ENCAP_CHDLC;
    Some((u16::from_be_bytes([b[2], b[3]]), 4))
}

/// An 802.11 data frame without FCS (frame control, duration, addresses, sequence control,
/// a fourth address between access points, QoS and HT control) and its LLC/SNAP header: the
/// ethertype and where the packet starts. Protected (encrypted) frames and other frame types
/// carry nothing to decode.
fn wlan_data(d: &mut Decoded<'_>, b: &[u8], base: u32) -> Option<(u16, usize)> {
    if b.len() < 24 {
        stop(d, Layer::Wlan, StopReason::Truncated, base);
        return None;
    }
    d.encap |= ENCAP_WLAN;
    let (fc0, fc1) = (b[0], b[1]);
    if (fc0 >> 2) & 3 != 2 || fc1 & 0x40 != 0 || fc0 & 0x40 != 0 {
        return None; // not data, protected, or a null-function subtype without a body
    }
    let mut off = 24;
    if fc1 & 3 == 3 {
        off += 6;
    }
    if fc0 & 0x80 != 0 {
        off += 2; // QoS control
        if fc1 & 0x80 != 0 {
            off += 4; // HT control (the order bit of a QoS data frame)
        }
    }
    match b.get(off..off + 8) {
        Some([0xaa, 0xaa, 0x03, _, _, _, t0, t1]) => Some((u16::from_be_bytes([*t0, *t1]), off + 8)),
        Some(_) => None,
        None => {
            stop(d, Layer::Wlan, StopReason::Truncated, base);
            None
        }
    }
}

/// One more tunnel level, if the bound allows: otherwise the tunnel's bytes are its payload and
/// the stop is counted.
fn enter_tunnel<'a>(d: &mut Decoded<'a>, layer: Layer, b: &'a [u8], base: u32) -> bool {
    if d.tunnels >= MAX_TUNNELS {
        d.payload = b;
        stop(d, layer, StopReason::Unsupported, base);
        return false;
    }
    d.tunnels += 1;
    true
}

/// IP in IP: the inner packet (IPv4 for protocol 4, IPv6 for 41, whichever the outer is).
fn decode_ip_in_ip<'a>(d: &mut Decoded<'a>, proto: u8, b: &'a [u8], base: u32) {
    if !enter_tunnel(d, Layer::IpInIp, b, base) {
        return;
    }
    let want = if proto == IPPROTO_IPIP { 4 } else { 6 };
    if b.first().map(|v| v >> 4) != Some(want) {
        d.payload = b;
        return stop(d, Layer::IpInIp, if b.is_empty() { StopReason::Truncated } else { StopReason::Malformed }, base);
    }
    d.encap |= ENCAP_IPIP;
    begin_inner(d);
    decode_ip(d, b, base);
}

/// Geneve (RFC 8926): version 0, options, then an Ethernet frame or an IP packet.
fn decode_geneve<'a>(d: &mut Decoded<'a>, p: &'a [u8], base: u32) {
    if p.len() < 8 || p[0] >> 6 != 0 || !enter_tunnel(d, Layer::Geneve, p, base) {
        return;
    }
    d.encap |= ENCAP_GENEVE;
    d.geneve_vni = Some(u32::from_be_bytes([0, p[4], p[5], p[6]]));
    let h = 8 + (p[0] & 0x3f) as usize * 4;
    let Some(inner) = p.get(h..) else { return stop(d, Layer::Geneve, StopReason::Truncated, base) };
    let ib = base + h as u32;
    match u16::from_be_bytes([p[2], p[3]]) {
        0x6558 => decode_inner_ethernet(d, inner, ib),
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => {
            begin_inner(d);
            decode_ip(d, inner, ib);
        }
        _ => {
            d.payload = inner;
            stop(d, Layer::Geneve, StopReason::Unsupported, ib);
        }
    }
}

/// GTP-U (3GPP TS 29.281): a G-PDU's IP packet. Echo and error messages carry none.
fn decode_gtpu<'a>(d: &mut Decoded<'a>, p: &'a [u8], base: u32) {
    // Version 1, protocol type GTP; anything else is not GTP-U.
    if p.len() < 8 || p[0] >> 5 != 1 || p[0] & 0x10 == 0 || !enter_tunnel(d, Layer::Gtp, p, base) {
        return;
    }
    d.encap |= ENCAP_GTP;
    d.gtp_teid = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
    if p[1] != 0xff {
        return;
    }
    let mut h = 8;
    if p[0] & 0x07 != 0 {
        // Sequence number, N-PDU number, next extension header type; then the extensions,
        // each a length in 4-byte units and ending with the next type.
        let Some(&next) = p.get(11) else { return stop(d, Layer::Gtp, StopReason::Truncated, base) };
        h = 12;
        let mut next = next;
        let mut n = 0;
        while next != 0 {
            let Some(&len) = p.get(h) else { return stop(d, Layer::Gtp, StopReason::Truncated, base) };
            n += 1;
            if len == 0 || n > 8 {
                return stop(d, Layer::Gtp, StopReason::Malformed, base);
            }
            h += len as usize * 4;
            let Some(&nx) = p.get(h - 1) else { return stop(d, Layer::Gtp, StopReason::Truncated, base) };
            next = nx;
        }
    }
    let Some(inner) = p.get(h..) else { return stop(d, Layer::Gtp, StopReason::Truncated, base) };
    match inner.first().map(|v| v >> 4) {
        Some(4 | 6) => {
            begin_inner(d);
            decode_ip(d, inner, base + h as u32);
        }
        Some(_) => {
            d.payload = inner;
            stop(d, Layer::Gtp, StopReason::Unsupported, base + h as u32);
        }
        None => {}
    }
}

fn stop(d: &mut Decoded<'_>, layer: Layer, reason: StopReason, offset: u32) {
    if d.stop.is_none() {
        d.stop = Some(Stop { layer, reason, offset });
    }
}

/// Result of parsing an IP header: the header, where its payload starts, how long the payload is
/// by the length fields, and how much of it was captured.
struct IpParse {
    hdr: IpHeader,
    payload_off: usize,
    declared_len: usize,
    /// An IPv4 option shorter than its kind's fields (Wireshark's dissector reads past it and
    /// the packet ends there as malformed): the transport is not decoded.
    options_malformed: bool,
}

fn parse_ip(b: &[u8]) -> Result<IpParse, (Layer, StopReason)> {
    let version = b.first().map(|v| v >> 4);
    match version {
        Some(4) => {
            if b.len() < 20 {
                return Err((Layer::Ipv4, StopReason::Truncated));
            }
            let ihl = (b[0] & 0x0f) as usize * 4;
            if ihl < 20 {
                return Err((Layer::Ipv4, StopReason::Malformed));
            }
            if b.len() < ihl {
                return Err((Layer::Ipv4, StopReason::Truncated));
            }
            let total = u16::from_be_bytes([b[2], b[3]]) as usize;
            let frag = u16::from_be_bytes([b[6], b[7]]);
            let declared_len = if total == 0 {
                // TSO/GSO: the kernel hands the capture a super-frame with total length 0.
                b.len() - ihl
            } else if total < ihl {
                return Err((Layer::Ipv4, StopReason::Malformed));
            } else {
                total - ihl
            };
            // A loose or strict source route not yet used up names the final destination:
            // that is the packet's `ip.dst` and conversation, as Wireshark takes it (the
            // header's address is only the current hop).
            let d = source_route_destination(&b[20..ihl]).unwrap_or([b[16], b[17], b[18], b[19]]);
            let hdr = IpHeader {
                src: IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
                dst: IpAddr::V4(Ipv4Addr::from(d)),
                proto: b[9],
                ttl: b[8],
                len: if total == 0 { b.len() as u32 } else { total as u32 },
                fragment: frag & 0x3fff != 0,
                frag_id: u16::from_be_bytes([b[4], b[5]]) as u32,
                frag_offset: (frag & 0x1fff) as u32 * 8,
                more_fragments: frag & 0x2000 != 0,
            };
            let options_malformed = ihl > 20 && ipv4_options_malformed(&b[20..ihl]);
            Ok(IpParse { hdr, payload_off: ihl, declared_len, options_malformed })
        }
        Some(6) => {
            if b.len() < 40 {
                return Err((Layer::Ipv6, StopReason::Truncated));
            }
            let plen = u16::from_be_bytes([b[4], b[5]]) as usize;
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&b[8..24]);
            dst.copy_from_slice(&b[24..40]);
            let body = &b[40..];
            let declared = if plen == 0 { body.len() } else { plen };
            let captured = &body[..declared.min(body.len())];
            let (exts, next, _payload, err) =
                etherparse::Ipv6ExtensionsSlice::from_slice_lax(etherparse::IpNumber(b[6]), captured);
            if err.is_some() {
                return Err((Layer::Ipv6, StopReason::Truncated));
            }
            let ext_len = exts.slice().len();
            let (mut frag_id, mut frag_offset, mut more_fragments) = (0, 0, false);
            for ext in exts.clone() {
                if let etherparse::Ipv6ExtensionSlice::Fragment(f) = ext {
                    // RFC 8200 §4.5, read from the raw header: offset in the top 13 bits of
                    // bytes 2-3 (8-byte units), M flag in bit 0, identification in bytes 4-7.
                    let h = f.slice();
                    let off_m = u16::from_be_bytes([h[2], h[3]]);
                    frag_offset = (off_m & 0xfff8) as u32;
                    more_fragments = off_m & 1 != 0;
                    frag_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                }
            }
            let hdr = IpHeader {
                src: IpAddr::V6(Ipv6Addr::from(src)),
                dst: IpAddr::V6(Ipv6Addr::from(dst)),
                proto: next.0,
                ttl: b[7],
                len: (declared + 40) as u32,
                fragment: exts.is_fragmenting_payload(),
                frag_id,
                frag_offset,
                more_fragments,
            };
            Ok(IpParse {
                hdr,
                payload_off: 40 + ext_len,
                declared_len: declared.saturating_sub(ext_len),
                options_malformed: false,
            })
        }
        Some(_) => Err((Layer::Ipv4, StopReason::Malformed)),
        None => Err((Layer::Ipv4, StopReason::Truncated)),
    }
}

/// The last address of the first loose (0x83) or strict (0x89) source route option whose
/// pointer still points into the route (RFC 791 §3.1); none when the options are malformed,
/// the route is used up or there is none (Wireshark's `get_dst_offset`).
fn source_route_destination(opts: &[u8]) -> Option<[u8; 4]> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = *opts.get(i + 1)? as usize;
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == 0x83 || kind == 0x89 {
                    let ptr = *opts.get(i + 2)? as usize;
                    if ptr < 4 || ptr & 3 != 0 || ptr > len || len < 7 {
                        return None;
                    }
                    let a = &opts[i + len - 4..i + len];
                    return Some([a[0], a[1], a[2], a[3]]);
                }
                i += len;
            }
        }
    }
    None
}

/// Whether Wireshark 4.0's IPv4 option walk ends in a malformed packet: an option whose length
/// byte is sound for the walk (at least 2, inside the header) but shorter than the fields its
/// kind's dissector reads (packet-ip.c: a security option of 2 bytes, a timestamp of 3, a CIPSO
/// tag running past its option…). Lengths the walk itself rejects only end the walk.
/// Checked against tshark 4.0.17 on 7,000 random option areas (tests/odd_traces.rs keeps a lab
/// capture of each kind).
fn ipv4_options_malformed(opts: &[u8]) -> bool {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return false,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { return false };
                let len = len as usize;
                if len < 2 || i + len > opts.len() {
                    return false;
                }
                let min = match kind {
                    0x82 | 0x83 | 0x85 | 0x07 | 0x89 => 3, // security, routes, extended security
                    0x44 | 0x88 | 0x0b | 0x0c | 0x94 => 4, // timestamp, stream id, MTU, router alert
                    0x86 => 6,                             // CIPSO: its domain of interpretation
                    0x52 => 12,                            // traceroute
                    _ => 0,
                };
                if len < min || (kind == 0x86 && cipso_malformed(&opts[i..i + len])) {
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

/// The CIPSO tags of one option (type, length, DOI, tags) as packet-ip.c reads them: a tag
/// whose fields run past the option, within the one-byte slack of its length check, or an
/// unknown tag in the option's last byte (its length byte is read anyway), is malformed.
fn cipso_malformed(o: &[u8]) -> bool {
    let end = o.len();
    let mut off = 6;
    while off < end {
        let tag = o[off];
        let tag_len = if off + 1 < end { o[off + 1] as usize } else { 1 };
        let max_ok = |min: usize| tag_len >= min && tag_len <= 34 && off + tag_len - 1 <= end;
        match tag {
            0 => {
                off += 1;
                continue;
            }
            1 | 2 | 5 | 6 if !max_ok(4) => return false,
            7 if !max_ok(2) => return false,
            1 | 2 | 5 | 6 | 7 => {}
            _ => return off + 1 == end,
        }
        let fields_end = match tag {
            // Sensitivity level, then a bitmap (1), 16-bit categories (2) or ranges (5) up to
            // the tag's end; the 16-bit reads stop at the last whole one.
            1 => off + tag_len.max(4),
            2 | 5 => off + 4 + (tag_len - 4) / 2 * 2,
            _ => off + tag_len,
        };
        if fields_end > end {
            return true;
        }
        off = fields_end;
    }
    false
}

fn decode_ip<'a>(d: &mut Decoded<'a>, b: &'a [u8], base: u32) {
    let ip = match parse_ip(b) {
        Ok(ip) => ip,
        Err((layer, reason)) => return stop(d, layer, reason, base),
    };
    d.ip = Some(ip.hdr);
    if ip.options_malformed {
        return stop(d, Layer::Ipv4, StopReason::Malformed, base);
    }
    let off = ip.payload_off.min(b.len());
    let avail = &b[off..];
    // A frame shorter on the wire than its IP length says (not cut by the snaplen: cut before
    // it was captured) carries only what is there, as Wireshark takes it ("total length
    // exceeds packet length"): the segment is that long, not what the header claims.
    let at = (b.as_ptr() as usize).wrapping_sub(d.data.as_ptr() as usize);
    let on_wire = match at <= d.data.len() {
        true => (d.frame_len as usize).checked_sub(d.trailer as usize + at + ip.payload_off),
        false => None,
    };
    let declared = match on_wire {
        Some(w) if w < ip.declared_len => w,
        _ => ip.declared_len,
    };
    let captured = &avail[..declared.min(avail.len())];
    if ip.hdr.fragment {
        // The transport is decoded from the reassembled datagram, in the frame completing it.
        d.ip_payload = captured;
        return;
    }
    decode_transport(d, ip.hdr.proto, captured, declared, base + off as u32);
}

/// The same frame, with the transport decoded from the datagram that this fragment completed.
pub fn with_reassembled<'a>(d: &Decoded<'a>, datagram: &'a [u8]) -> Decoded<'a> {
    let mut r = *d;
    if let Some(ip) = d.ip {
        decode_transport(&mut r, ip.proto, datagram, datagram.len(), 0);
    }
    r
}

fn decode_transport<'a>(d: &mut Decoded<'a>, proto: u8, captured: &'a [u8], declared: usize, base: u32) {
    match proto {
        IPPROTO_TCP => match parse_tcp(captured, declared) {
            Ok((t, payload)) => {
                d.transport = Transport::Tcp(t);
                d.payload = payload;
                if t.malformed {
                    // Still counted: nothing past the header is read.
                    stop(d, Layer::Tcp, StopReason::Malformed, base);
                }
            }
            Err(reason) => stop(d, Layer::Tcp, reason, base),
        },
        IPPROTO_UDP => {
            if captured.len() < 8 {
                return stop(d, Layer::Udp, trunc_or_malformed(declared, 8), base);
            }
            let u = UdpHeader {
                src_port: u16::from_be_bytes([captured[0], captured[1]]),
                dst_port: u16::from_be_bytes([captured[2], captured[3]]),
                length: u16::from_be_bytes([captured[4], captured[5]]),
            };
            d.transport = Transport::Udp(u);
            d.payload = &captured[8..];
            // VXLAN (RFC 7348): flags with the I bit, VNI; then the Ethernet frame.
            let p = d.payload;
            if u.dst_port == VXLAN_PORT && p.len() >= 8 && p[0] & 0x08 != 0 {
                if enter_tunnel(d, Layer::Vxlan, p, base + 8) {
                    d.encap |= ENCAP_VXLAN;
                    d.vxlan_vni = Some(u32::from_be_bytes([0, p[4], p[5], p[6]]));
                    decode_inner_ethernet(d, &p[8..], base + 16);
                }
            } else if u.dst_port == GENEVE_PORT {
                decode_geneve(d, p, base + 8);
            } else if u.dst_port == GTPU_PORT || u.src_port == GTPU_PORT {
                decode_gtpu(d, p, base + 8);
            }
        }
        IPPROTO_GRE => decode_gre(d, captured, base),
        IPPROTO_IPIP | IPPROTO_IPV6 => decode_ip_in_ip(d, proto, captured, base),
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if captured.len() < 4 {
                return stop(d, Layer::Icmp, trunc_or_malformed(declared, 4), base);
            }
            let icmp = IcmpHeader { v6: proto == IPPROTO_ICMPV6, icmp_type: captured[0], code: captured[1] };
            d.transport = Transport::Icmp(icmp);
            d.payload = captured.get(8..).unwrap_or(&[]);
            if icmp.is_error() && captured.len() > 8 {
                decode_quoted(d, &captured[8..]);
            }
        }
        _ => d.payload = captured,
    }
}

fn trunc_or_malformed(declared: usize, need: usize) -> StopReason {
    if declared < need {
        StopReason::Malformed
    } else {
        StopReason::Truncated
    }
}

/// Parses a TCP header; `declared` is the segment length the IP header gives.
fn parse_tcp(b: &[u8], declared: usize) -> Result<(TcpHeader, &[u8]), StopReason> {
    if b.len() < 20 {
        return Err(trunc_or_malformed(declared, 20));
    }
    let hlen = ((b[12] >> 4) as usize) * 4;
    if hlen < 20 {
        return Err(StopReason::Malformed);
    }
    let malformed = hlen > declared;
    let mut t = TcpHeader {
        src_port: u16::from_be_bytes([b[0], b[1]]),
        dst_port: u16::from_be_bytes([b[2], b[3]]),
        seq: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ack: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        flags: u16::from_be_bytes([b[12], b[13]]) & 0x0fff,
        window: u16::from_be_bytes([b[14], b[15]]),
        header_len: hlen as u8,
        seg_len: declared.saturating_sub(hlen) as u32,
        wscale: None,
        malformed,
    };
    if malformed {
        return Ok((t, &[]));
    }
    // Options as far as captured; a cut option list is normal with small snaplens.
    let opts = &b[20..hlen.min(b.len())];
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                let len = len as usize;
                if len < 2 || i + len > opts.len() {
                    break;
                }
                if kind == 3 && len == 3 {
                    t.wscale = Some(opts[i + 2]);
                }
                i += len;
            }
        }
    }
    let payload = b.get(hlen..).unwrap_or(&[]);
    Ok((t, payload))
}

/// Decodes the IP header and transport ports quoted in an ICMP error (RFC 792/4443: the
/// offending datagram's header plus at least 8 bytes of its payload).
fn decode_quoted<'a>(d: &mut Decoded<'a>, b: &'a [u8]) {
    let Ok(ip) = parse_ip(b) else { return };
    d.quoted_ip = Some(ip.hdr);
    let l4 = b.get(ip.payload_off..).unwrap_or(&[]);
    if matches!(ip.hdr.proto, IPPROTO_TCP | IPPROTO_UDP) && l4.len() >= 4 && !ip.hdr.fragment {
        d.quoted_ports = Some(QuotedPorts {
            proto: ip.hdr.proto,
            src_port: u16::from_be_bytes([l4[0], l4[1]]),
            dst_port: u16::from_be_bytes([l4[2], l4[3]]),
        });
        match ip.hdr.proto {
            IPPROTO_TCP => {
                if let Ok((t, payload)) = parse_tcp(l4, ip.declared_len) {
                    d.quoted_transport = Transport::Tcp(t);
                    d.quoted_payload = payload;
                }
            }
            _ if l4.len() >= 8 => {
                d.quoted_transport = Transport::Udp(UdpHeader {
                    src_port: u16::from_be_bytes([l4[0], l4[1]]),
                    dst_port: u16::from_be_bytes([l4[2], l4[3]]),
                    length: u16::from_be_bytes([l4[4], l4[5]]),
                });
                // As much of the datagram as the error quotes (a DNS query, for filters).
                d.quoted_payload = &l4[8..l4.len().min(ip.declared_len.max(8))];
            }
            _ => {}
        }
    }
}

/// RFC 1918 / RFC 4193 private addresses (the `tcp.private_retransmissions` definition).
pub fn is_private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in ["0.0.0.0", "10.77.1.10", "192.168.100.255", "1.20.255.9", "fd77:1::10", "::ffff:10.0.0.1", "::"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
        for o in 0..=255u8 {
            let ip = std::net::IpAddr::from([o, 255 - o, o / 2, 7]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
        assert_eq!(mac_text(&[0, 0x1b, 0xa0, 0xff, 0x0f, 0xf0]), "00:1b:a0:ff:0f:f0");
        assert_eq!(crate::transactions::addr("10.0.0.1".parse().unwrap(), 0), "10.0.0.1:0");
        assert_eq!(crate::transactions::addr("10.0.0.1".parse().unwrap(), 65535), "10.0.0.1:65535");
        assert_eq!(crate::transactions::addr("fd00::1".parse().unwrap(), 443), "[fd00::1]:443");
    }
}
