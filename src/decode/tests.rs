//! Literal-byte decoder tests, including every truncation length of a frame.

use super::*;
use crate::capture::{LinkType, RawPacket};
use crate::flow::tests::tcp_frame;

fn dec(link: LinkType, data: &[u8]) -> Decoded<'_> {
    decode(&RawPacket { frame: 1, ts: Ts(0), orig_len: data.len() as u32, link, interface: 0, data })
}

/// A frame of `wire_len` bytes on the wire, cut by the snaplen to `data`.
fn dec_snap(data: &[u8], wire_len: usize) -> Decoded<'_> {
    decode(&RawPacket { frame: 1, ts: Ts(0), orig_len: wire_len as u32, link: LinkType::ETHERNET, interface: 0, data })
}

#[test]
fn ethernet_ipv4_tcp_with_payload_and_padding() {
    let mut f = tcp_frame([10, 0, 0, 1], [192, 168, 1, 2], 40000, 80, 7, 9, 0x18, 5);
    f.extend_from_slice(&[0; 6]); // Ethernet padding beyond the IP length is not payload
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!(d.eth_src, Some([0, 0, 0, 0, 0, 1]));
    let ip = d.ip.unwrap();
    assert_eq!(ip.src.to_string(), "10.0.0.1");
    assert_eq!(ip.dst.to_string(), "192.168.1.2");
    let t = d.tcp().unwrap();
    assert_eq!((t.src_port, t.dst_port, t.seq, t.ack, t.seg_len), (40000, 80, 7, 9, 5));
    assert!(t.has(tcp_flags::PSH) && t.has(tcp_flags::ACK));
    assert_eq!(d.payload, b"xxxxx");
    assert_eq!(d.stop, None);
}

#[test]
fn headers_only_capture_keeps_the_declared_segment_length() {
    let f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 100, 0, 0x10, 1000);
    let d = dec_snap(&f[..54], f.len());
    assert_eq!(d.tcp().unwrap().seg_len, 1000);
    assert!(d.payload.is_empty());
}

#[test]
fn a_frame_shorter_on_the_wire_than_its_ip_length_carries_what_is_there() {
    // The IP header says 1000 bytes of segment, the wire had 600 (not a snaplen cut): as
    // Wireshark, the segment is 600 bytes long.
    let f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 100, 0, 0x10, 1000);
    let short = &f[..54 + 600];
    let d = dec(LinkType::ETHERNET, short);
    assert_eq!((d.tcp().unwrap().seg_len, d.payload.len(), d.stop), (600, 600, None));
    assert_eq!(d.ip.unwrap().len, 1040, "ip.len stays the header's");
    // Cut by the snaplen instead, the header's length stands.
    assert_eq!(dec_snap(short, f.len()).tcp().unwrap().seg_len, 1000);
}

#[test]
fn every_truncation_length_decodes_without_panic_and_says_where_it_stopped() {
    let f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 100, 0, 0x10, 10);
    for cut in 0..f.len() {
        let d = dec_snap(&f[..cut], f.len());
        match cut {
            0..=13 => assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Link, StopReason::Truncated))),
            14..=33 => assert_eq!(
                d.stop.map(|s| (s.layer, s.reason, s.offset)),
                Some((Layer::Ipv4, StopReason::Truncated, 14))
            ),
            34..=53 => {
                assert_eq!(d.stop.map(|s| (s.layer, s.reason, s.offset)), Some((Layer::Tcp, StopReason::Truncated, 34)))
            }
            _ => {
                assert_eq!(d.stop, None, "cut {cut}");
                assert_eq!(d.tcp().unwrap().seg_len, 10);
            }
        }
    }
}

#[test]
fn vlan_stacks_and_8021ad_tags() {
    // 802.1ad (S-tag 1525) + 802.1Q (30) + 802.1Q (40) + IPv4 UDP
    let mut f = vec![0xff; 12];
    f.extend_from_slice(&[0x88, 0xa8, 0x05, 0xf5, 0x81, 0x00, 0x00, 30, 0x81, 0x00, 0x00, 40, 0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[0x00, 0x35, 0x30, 0x39, 0, 8, 0, 0]);
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!(d.svlans(), &[1525]);
    assert_eq!(d.vlans(), &[30, 40]);
    assert_eq!(d.eth_type, Some(0x88a8));
    let u = d.udp().unwrap();
    assert_eq!((u.src_port, u.dst_port, u.length), (53, 12345, 8));
}

#[test]
fn too_many_vlan_tags_is_a_counted_decode_error() {
    let mut f = vec![0xff; 12];
    for _ in 0..6 {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!(d.stop.map(|s| s.reason), Some(StopReason::TooManyTags));
    assert!(d.stop.unwrap().reason.is_error());
}

#[test]
fn ipv6_with_hop_by_hop_header_then_tcp() {
    let mut f = vec![0x60, 0, 0, 0, 0, 28, 0, 64];
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop: next = TCP, PadN
    f.extend_from_slice(&[0, 22, 0xc3, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let d = dec(LinkType::RAW, &f);
    let ip = d.ip.unwrap();
    assert_eq!(ip.proto, IPPROTO_TCP);
    assert_eq!(ip.dst.to_string(), "fd00::2");
    let t = d.tcp().unwrap();
    assert_eq!((t.src_port, t.dst_port, t.seg_len), (22, 50000, 0));
    assert!(t.has(tcp_flags::SYN));
}

#[test]
fn ipv4_fragments_carry_no_transport_header() {
    let mut f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 100, 0, 0x10, 10);
    f[14 + 6] = 0x20; // more fragments
    let d = dec(LinkType::ETHERNET, &f);
    assert!(d.ip.unwrap().fragment);
    assert_eq!(d.transport, Transport::None);
}

#[test]
fn icmp_error_quotes_the_offending_header() {
    let mut f = vec![0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 192, 168, 1, 1, 10, 10, 1, 4];
    f.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]); // port unreachable
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 10, 1, 4, 74, 53, 140, 153]);
    f.extend_from_slice(&[0x05, 0xbe, 0x00, 0x19, 1, 2, 3, 4]);
    let d = dec(LinkType::RAW, &f);
    assert!(matches!(d.transport, Transport::Icmp(IcmpHeader { icmp_type: 3, code: 3, v6: false })));
    assert_eq!(d.quoted_ip.unwrap().src.to_string(), "10.10.1.4");
    assert_eq!(d.quoted_ports, Some(QuotedPorts { proto: 6, src_port: 1470, dst_port: 25 }));
}

#[test]
fn loopback_and_linux_cooked_links() {
    let ip = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 253, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
    let mut null = vec![2, 0, 0, 0];
    null.extend_from_slice(&ip);
    assert_eq!(dec(LinkType::NULL, &null).ip.unwrap().proto, 253);
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
    sll2.extend_from_slice(&ip);
    let d = dec(LinkType::LINUX_SLL2, &sll2);
    assert_eq!(d.eth_src, Some([1, 2, 3, 4, 5, 6]));
    assert_eq!(d.ip.unwrap().ttl, 64);
    let mut sll = vec![0, 0, 0, 1, 0, 6, 9, 8, 7, 6, 5, 4, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    assert_eq!(dec(LinkType::LINUX_SLL, &sll).eth_src, Some([9, 8, 7, 6, 5, 4]));
}

#[test]
fn malformed_ip_lengths_are_errors_not_panics() {
    let mut f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 100, 0, 0x10, 0);
    f[14 + 2] = 0;
    f[14 + 3] = 10; // total length smaller than the header
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Ipv4, StopReason::Malformed)));
    let mut f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 100, 0, 0x10, 0);
    f[14 + 20 + 12] = 0xf0; // TCP data offset 60 > segment
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Tcp, StopReason::Malformed)));
}

#[test]
fn tso_total_length_zero_uses_the_captured_length() {
    let mut f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 100, 0, 0x10, 3000);
    f[14 + 2] = 0;
    f[14 + 3] = 0;
    assert_eq!(dec(LinkType::ETHERNET, &f).tcp().unwrap().seg_len, 3000);
}

/// `f` (an Ethernet frame from `tcp_frame`) with its IP packet moved behind `encap` and the
/// ethertype `ty`.
fn reencapsulate(f: &[u8], ty: u16, encap: &[u8]) -> Vec<u8> {
    let mut out = f[..12].to_vec();
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(encap);
    out.extend_from_slice(&f[14..]);
    out
}

#[test]
fn pppoe_session_carries_ip() {
    let f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    let ip_len = (f.len() - 14 + 2) as u16;
    let mut hdr = vec![0x11, 0x00, 0x12, 0x34];
    hdr.extend_from_slice(&ip_len.to_be_bytes());
    hdr.extend_from_slice(&[0x00, 0x21]);
    let p = reencapsulate(&f, ETHERTYPE_PPPOE_SESSION, &hdr);
    let d = dec(LinkType::ETHERNET, &p);
    assert_eq!(d.encap, ENCAP_PPPOES | ENCAP_PPP);
    assert_eq!(d.pppoe_session, Some(0x1234));
    assert_eq!(d.tcp().map(|t| t.dst_port), Some(80));
    assert_eq!(d.payload, b"xxxxx");
    // LCP is PPP's own business: no IP, no stop.
    let mut lcp = hdr.clone();
    lcp[6..8].copy_from_slice(&[0xc0, 0x21]);
    let l = reencapsulate(&f, ETHERTYPE_PPPOE_SESSION, &lcp);
    let d = dec(LinkType::ETHERNET, &l);
    assert!(d.ip.is_none() && d.stop.is_none());
    for cut in 14..22 {
        let d = dec(LinkType::ETHERNET, &p[..cut]);
        assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Pppoe, StopReason::Truncated)), "cut {cut}");
    }
}

#[test]
fn mpls_label_stack_then_ip_or_a_counted_pseudowire() {
    let f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    // Label 100, then label 200 with the bottom-of-stack bit.
    let labels = [0x00, 0x06, 0x40, 0x40, 0x00, 0x0c, 0x81, 0x40];
    let m = reencapsulate(&f, ETHERTYPE_MPLS, &labels);
    let d = dec(LinkType::ETHERNET, &m);
    assert_eq!((d.encap, d.mpls_label), (ENCAP_MPLS, Some(100)));
    assert_eq!(d.mpls_stack, (14, 2), "both labels, after the Ethernet header");
    assert_eq!(d.ip.map(|i| i.src.to_string()).as_deref(), Some("10.0.0.1"));
    assert!(d.tcp().is_some());
    // A pseudowire control word (0) after the stack is not opened, and says so.
    let mut pw = labels.to_vec();
    pw.extend_from_slice(&[0, 0, 0, 0]);
    let m = reencapsulate(&f, ETHERTYPE_MPLS, &pw);
    let d = dec(LinkType::ETHERNET, &m);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Mpls, StopReason::Unsupported)));
    // A stack that never ends is bounded.
    let endless = [0x00, 0x06, 0x40, 0x40].repeat(20);
    let m = reencapsulate(&f, ETHERTYPE_MPLS, &endless);
    let d = dec(LinkType::ETHERNET, &m);
    assert!(d.stop.is_some());
}

#[test]
fn gre_protocols_it_does_not_open_are_counted() {
    // Outer IPv4 (proto 47) carrying PPTP's GRE (version 1, PPP) whose PPP protocol (0x45, a
    // compressed field) is not IP, then an unknown GRE protocol.
    let inner = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    for (flags, proto, layer) in [(0x0001u16, 0x880bu16, Layer::Ppp), (0x0000, 0x1234, Layer::Gre)] {
        let mut gre = flags.to_be_bytes().to_vec();
        gre.extend_from_slice(&proto.to_be_bytes());
        gre.extend_from_slice(&inner[14..]);
        let mut f = inner[..14].to_vec();
        let total = (20 + gre.len()) as u16;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            47,
            0,
            0,
            192,
            0,
            2,
            1,
            192,
            0,
            2,
            2,
        ]);
        f.extend_from_slice(&gre);
        let d = dec(LinkType::ETHERNET, &f);
        assert_eq!(d.encap & ENCAP_GRE, ENCAP_GRE);
        assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((layer, StopReason::Unsupported)), "{flags:x} {proto:x}");
        assert!(d.tcp().is_none());
    }
}

/// `ip` (an IPv4 packet) inside an outer IPv4 header of protocol `proto`, in Ethernet.
fn in_ipv4(ip: &[u8], proto: u8) -> Vec<u8> {
    let total = (20 + ip.len()) as u16;
    let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    f.extend_from_slice(ip);
    f
}

#[test]
fn ip_in_ip_is_opened_and_a_third_tunnel_is_counted() {
    let inner = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    let one = in_ipv4(&inner[14..], IPPROTO_IPIP);
    let d = dec(LinkType::ETHERNET, &one);
    assert_eq!((d.encap, d.tunnels, d.stop), (ENCAP_IPIP, 1, None));
    assert_eq!(d.tcp().unwrap().dst_port, 80);
    assert_eq!(d.outer_ip.unwrap().src.to_string(), "192.0.2.1");
    assert_eq!(d.ip.unwrap().dst.to_string(), "10.0.0.2");
    // Two levels are opened; the third is a counted stop, never a silent skip.
    let two = in_ipv4(&one[14..], IPPROTO_IPIP);
    assert!(dec(LinkType::ETHERNET, &two).tcp().is_some());
    let three = in_ipv4(&two[14..], IPPROTO_IPIP);
    let d = dec(LinkType::ETHERNET, &three);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::IpInIp, StopReason::Unsupported)));
    assert!(d.tcp().is_none());
    // Protocol 41 must carry IPv6: an IPv4 packet there is malformed, and said so.
    let frame = in_ipv4(&inner[14..], IPPROTO_IPV6);
    let d = dec(LinkType::ETHERNET, &frame);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::IpInIp, StopReason::Malformed)));
}

#[test]
fn pppoe_with_a_compressed_protocol_field_or_an_unknown_protocol() {
    let f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    let ip = &f[14..];
    let mut pfc = vec![0x11, 0, 0x12, 0x34];
    pfc.extend_from_slice(&((ip.len() + 1) as u16).to_be_bytes());
    pfc.push(0x21);
    let m = reencapsulate(&f, ETHERTYPE_PPPOE_SESSION, &pfc);
    let d = dec(LinkType::ETHERNET, &m);
    assert_eq!((d.stop, d.tcp().map(|t| t.dst_port)), (None, Some(80)));
    // MPLS over PPP (0x0281) is not opened: counted.
    let mut other = vec![0x11, 0, 0x12, 0x34];
    other.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    other.extend_from_slice(&[0x02, 0x81]);
    let frame = reencapsulate(&f, ETHERTYPE_PPPOE_SESSION, &other);
    let d = dec(LinkType::ETHERNET, &frame);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Pppoe, StopReason::Unsupported)));
    // LCP is PPP's own: nothing left unopened.
    let mut lcp = vec![0x11, 0, 0x12, 0x34, 0, 6, 0xc0, 0x21];
    lcp.extend_from_slice(&[1, 1, 0, 4]);
    let mut frame = f[..12].to_vec();
    frame.extend_from_slice(&ETHERTYPE_PPPOE_SESSION.to_be_bytes());
    frame.extend_from_slice(&lcp);
    assert_eq!(dec(LinkType::ETHERNET, &frame).stop, None);
}

#[test]
fn gtp_u_extension_headers_and_messages_without_a_packet() {
    let f = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    let ip = &f[14..];
    let udp = |gtp: &[u8]| {
        let mut u = vec![0x08, 0x68, 0x08, 0x68];
        u.extend_from_slice(&((8 + gtp.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(gtp);
        in_ipv4(&u, 17)
    };
    // E flag: a PDU session container (type 0x85, one 4-byte unit), then the packet.
    let mut g = vec![0x34, 0xff, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0x85, 1, 0x10, 0x05, 0];
    g.extend_from_slice(ip);
    let frame = udp(&g);
    let d = dec(LinkType::ETHERNET, &frame);
    assert_eq!((d.encap, d.gtp_teid, d.stop), (ENCAP_GTP, Some(0x1234), None));
    assert_eq!(d.tcp().unwrap().dst_port, 80);
    // An echo request carries no packet: GTP, nothing stopped.
    let frame = udp(&[0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0]);
    let d = dec(LinkType::ETHERNET, &frame);
    assert_eq!((d.encap, d.stop), (ENCAP_GTP, None));
    // An extension chain that never ends is cut and said.
    let mut endless = vec![0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85];
    endless.extend_from_slice(&[1, 0, 0, 0x85].repeat(20));
    let frame = udp(&endless);
    let d = dec(LinkType::ETHERNET, &frame);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Gtp, StopReason::Malformed)));
}

#[test]
fn a_source_route_not_used_up_names_the_destination() {
    let route = |kind: u8, ptr: u8| [kind, 11, ptr, 10, 0, 0, 9, 10, 0, 0, 7, 0];
    assert_eq!(source_route_destination(&route(0x83, 4)), Some([10, 0, 0, 7]), "loose, first hop next");
    assert_eq!(source_route_destination(&route(0x89, 8)), Some([10, 0, 0, 7]), "strict, second hop next");
    assert_eq!(source_route_destination(&route(0x83, 12)), None, "used up: the header's destination");
    assert_eq!(source_route_destination(&route(0x83, 5)), None, "a pointer inside an address");
    assert_eq!(source_route_destination(&route(0x07, 4)), None, "record route is no source route");
    assert_eq!(source_route_destination(&[1, 1, 0x83, 7, 4, 10, 0, 0, 7, 0]), Some([10, 0, 0, 7]), "after NOPs");
    assert_eq!(source_route_destination(&[0x83, 40, 4, 10, 0, 0, 7, 0]), None, "a length past the options");
    assert_eq!(source_route_destination(&[0, 0x83, 7, 4, 10, 0, 0, 7]), None, "after the end of the list");
}

#[test]
fn ipv4_options_shorter_than_their_fields_are_malformed_as_tshark_reads_them() {
    // Each verdict checked with tshark 4.0.17 (option area as the header carries it).
    let malformed: &[&[u8]] = &[
        &[0x82, 2, 0, 0],                            // security without its level
        &[0x83, 2, 0, 0],                            // loose route without its pointer
        &[0x44, 3, 5, 0],                            // timestamp without its flags
        &[0x94, 3, 0, 0],                            // router alert of 3 bytes
        &[0x52, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   // traceroute of 11 bytes
        &[0x86, 5, 0, 0, 0, 0],                      // CIPSO without its whole DOI
        &[0x86, 7, 0x3a, 0x81, 0x67, 0x05, 0xc2, 0], // CIPSO: unknown tag in the last byte
        &[0x86, 11, 0, 0, 0, 1, 2, 6, 0, 1, 0, 0],   // CIPSO: a category 1 byte past
        &[1, 1, 0x88, 3, 0, 0, 0, 0],                // stream id after two NOPs
    ];
    let sound: &[&[u8]] = &[
        &[0x82, 3, 0, 0],                          // the walk's own checks pass, the fields fit
        &[0x94, 4, 0, 0],                          // router alert
        &[0x44, 40, 5, 0],                         // runs past the header: the walk ends, no more
        &[0x07, 1, 0, 0],                          // length below 2: the walk ends
        &[0x99, 2, 0, 0],                          // quick-start reads nothing it lacks
        &[0x95, 2, 0, 0],                          // selective broadcast neither
        &[0x86, 6, 0, 0, 0, 1, 0, 0],              // CIPSO with its DOI only
        &[0x86, 12, 0, 0, 0, 1, 2, 7, 0, 1, 0, 5], // categories within it
        &[0, 0x94, 3, 0],                          // after the end of options
    ];
    for o in malformed {
        assert!(ipv4_options_malformed(o), "{o:02x?}");
    }
    for o in sound {
        assert!(!ipv4_options_malformed(o), "{o:02x?}");
    }
}

#[test]
fn gre_as_packet_gre_reads_it() {
    // Version bits do not change the header; PPTP's enhanced GRE has its acknowledgment number
    // and PPP; WCCP v2 its redirect header; routing entries are skipped; Aruba carries 802.11.
    let inner = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    let ip = &inner[14..];
    let mut wlan = vec![0x88, 0x02, 0, 0];
    wlan.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0xaa, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x10, 0, 0, 0]);
    wlan.extend_from_slice(&[0xaa, 0xaa, 3, 0, 0, 0, 8, 0]);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            [&[0x30, 0x81, 0x88, 0x0b, 0, 0, 0x42, 0x42, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0x03, 0, 0x21][..], ip].concat(),
            ENCAP_PPP,
        ),
        ([&[0x20, 0x01, 0x88, 0x0b, 0, 0, 0x42, 0x42, 0x21][..], ip].concat(), ENCAP_PPP),
        ([&[0, 0, 0x88, 0x3e, 0, 0, 0, 3][..], ip].concat(), 0),
        ([&[0, 0, 0x88, 0x3e][..], ip].concat(), 0),
        ([&[0x40, 0, 0x08, 0, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0][..], ip].concat(), 0),
        ([&[0, 0, 0x82, 0x10][..], &wlan, ip].concat(), ENCAP_WLAN),
        ([&[0, 0, 0x88, 0x47, 0x00, 0x12, 0xc1, 0x40][..], ip].concat(), ENCAP_MPLS),
    ];
    for (gre, encap) in cases {
        let f = in_ipv4(&gre, 47);
        let d = dec(LinkType::ETHERNET, &f);
        assert_eq!(d.stop, None, "{gre:02x?}");
        assert_eq!(d.encap & encap, encap);
        assert_eq!(d.tcp().map(|t| t.src_port), Some(40000), "{gre:02x?}");
    }
    // A routing entry list that never ends is a counted stop, not a read past the packet.
    let f = in_ipv4(&[0x40, 0, 0x08, 0, 0, 0, 0, 0, 0, 1, 0, 200], 47);
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Gre, StopReason::Truncated)));
}

#[test]
fn serial_links_and_port_extender_tags() {
    let inner = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    let ip = &inner[14..];
    for (link, head) in [
        (LinkType::PPP, &[0xff, 0x03, 0x00, 0x21][..]),
        (LinkType::PPP_HDLC, &[0x21][..]),
        (LinkType::PPP, &[0x0f, 0x00, 0x08, 0x00][..]),
        (LinkType::C_HDLC, &[0x8f, 0x00, 0x08, 0x00][..]),
    ] {
        let f = [head, ip].concat();
        let d = dec(link, &f);
        assert_eq!((d.stop, d.tcp().map(|t| t.dst_port)), (None, Some(80)), "{head:02x?}");
    }
    // LCP on a PPP link: nothing left unopened; MPLS-in-PPP opened; another protocol counted.
    assert_eq!(dec(LinkType::PPP, &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4]).stop, None);
    let d = dec(LinkType::PPP, &[0xff, 0x03, 0x00, 0x2b, 0, 0]);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Ppp, StopReason::Unsupported)));
    // E-Tag and VN-Tag in front of the ethertype, stacked with a VLAN tag.
    let mut f = inner[..12].to_vec();
    f.extend_from_slice(&[0x89, 0x3f, 0, 0x12, 0, 0x34, 0, 0, 0x89, 0x26, 0, 0x25, 0, 0x11, 0x81, 0, 0, 10]);
    f.extend_from_slice(&inner[12..]);
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!((d.stop, d.vlan_count, d.tcp().is_some()), (None, 1, true));
}

#[test]
fn cisco_metadata_and_service_headers() {
    let inner = tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 7, 9, 0x18, 5);
    // TrustSec's inline SGT between the addresses and the ethertype.
    let mut f = inner[..12].to_vec();
    f.extend_from_slice(&[0x89, 0x09, 1, 1, 0, 1, 0x00, 0x10]);
    f.extend_from_slice(&inner[12..]);
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!((d.stop, d.tcp().is_some()), (None, true));
    // In GRE: the protocol after it, then the metadata.
    let gre = [&[0, 0, 0x89, 0x09, 0x08, 0x00, 1, 1, 0, 1, 0, 0x10][..], &inner[14..]].concat();
    let f = in_ipv4(&gre, 47);
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!((d.stop, d.tcp().is_some()), (None, true));
    // NSH (metadata type 1: 24 bytes) carrying the Ethernet frame, in Ethernet.
    let mut nsh = vec![0, 0, 0, 0, 0, 0, 0, 0];
    nsh[0..4].copy_from_slice(&[0x0f, 0xc6, 0x01, 0x03]);
    nsh.extend_from_slice(&[0; 16]);
    let f = [&inner[..12], &[0x89, 0x4f][..], &nsh, &inner].concat();
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!((d.stop, d.encap & ENCAP_NSH, d.tcp().is_some()), (None, ENCAP_NSH, true));
    // NSH in Ethernet in NSH in Ethernet…: bounded, counted.
    let mut f = inner.clone();
    for _ in 0..50 {
        f = [&inner[..12], &[0x89, 0x4f][..], &nsh, &f].concat();
    }
    let d = dec(LinkType::ETHERNET, &f);
    assert_eq!(d.stop.map(|s| (s.layer, s.reason)), Some((Layer::Nsh, StopReason::Unsupported)));
}
