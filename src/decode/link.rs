//! Link layers: Ethernet (with 802.1Q/802.1ad stacks, E-Tag and VN-Tag, Cisco FabricPath in
//! front), BSD loopback, Linux cooked (SLL, SLL2), raw IP, PPP, Cisco HDLC and bare PPPoE. Each
//! returns the ethertype of the network layer and its offset.

use super::{
    chdlc, ppp_hdlc, stop, Decoded, Layer, StopReason, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_PPPOE_SESSION,
    MAX_VLAN_TAGS,
};
use crate::capture::LinkType;

pub fn decode_link(d: &mut Decoded<'_>, b: &[u8]) -> Option<(u16, usize)> {
    match d.link {
        LinkType::ETHERNET => {
            if b.len() < 14 {
                stop(d, Layer::Link, StopReason::Truncated, 0);
                return None;
            }
            ethernet_addresses(d, b);
            let ty = u16::from_be_bytes([b[12], b[13]]);
            d.eth_type = Some(ty);
            if ty <= 1500 {
                return None; // IEEE 802.3 length field: LLC/SNAP frames carry no IP here
            }
            if ty == ETHERTYPE_IPV4 || ty == ETHERTYPE_IPV6 {
                return Some((ty, 14)); // the usual frame: nothing in front of the packet
            }
            if let Some(r) = fabricpath(d, b, ty) {
                return r;
            }
            decode_tags(d, b, ty, 14)
        }
        LinkType::PPP | LinkType::PPP_HDLC => ppp_hdlc(d, b, 0),
        LinkType::C_HDLC | LinkType::C_HDLC_NETBSD => chdlc(d, b, 0),
        LinkType::PPP_ETHER => Some((ETHERTYPE_PPPOE_SESSION, 0)),
        LinkType::NULL | LinkType::LOOP => {
            if b.len() < 4 {
                stop(d, Layer::Link, StopReason::Truncated, 0);
                return None;
            }
            // The address family is in host byte order for NULL and network order for LOOP;
            // accept either, as Wireshark does. AF_INET6 differs per BSD (24, 28, 30).
            let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let be = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let fam = if le < 256 { le } else { be };
            match fam {
                2 => Some((ETHERTYPE_IPV4, 4)),
                10 | 24 | 28 | 30 => Some((ETHERTYPE_IPV6, 4)),
                _ => None,
            }
        }
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => match b.first().map(|v| v >> 4) {
            Some(4) => Some((ETHERTYPE_IPV4, 0)),
            Some(6) => Some((ETHERTYPE_IPV6, 0)),
            Some(_) => {
                stop(d, Layer::Ipv4, StopReason::Malformed, 0);
                None
            }
            None => {
                stop(d, Layer::Link, StopReason::Truncated, 0);
                None
            }
        },
        LinkType::LINUX_SLL => {
            if b.len() < 16 {
                stop(d, Layer::Link, StopReason::Truncated, 0);
                return None;
            }
            let arphrd = u16::from_be_bytes([b[2], b[3]]);
            let alen = u16::from_be_bytes([b[4], b[5]]);
            if arphrd == 1 && alen == 6 {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&b[6..12]);
                d.eth_src = Some(mac);
            }
            let ty = u16::from_be_bytes([b[14], b[15]]);
            d.eth_type = Some(ty);
            decode_tags(d, b, ty, 16)
        }
        LinkType::LINUX_SLL2 => {
            if b.len() < 20 {
                stop(d, Layer::Link, StopReason::Truncated, 0);
                return None;
            }
            let ty = u16::from_be_bytes([b[0], b[1]]);
            let arphrd = u16::from_be_bytes([b[8], b[9]]);
            if arphrd == 1 && b[11] == 6 {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&b[12..18]);
                d.eth_src = Some(mac);
            }
            d.eth_type = Some(ty);
            decode_tags(d, b, ty, 20)
        }
        _ => {
            stop(d, Layer::Link, StopReason::UnsupportedLink, 0);
            None
        }
    }
}

/// The destination and source addresses of the Ethernet header at the start of `b` (at least 12
/// bytes: callers have checked the header's length).
pub(super) fn ethernet_addresses(d: &mut Decoded<'_>, b: &[u8]) {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&b[0..6]);
    d.eth_dst = Some(mac);
    mac.copy_from_slice(&b[6..12]);
    d.eth_src = Some(mac);
}

/// Cisco FabricPath, which Wireshark finds by a heuristic on every Ethernet frame: type 0x8903
/// after the outer addresses (or after an 802.1Q/802.1ad tag), 16 (20) bytes of outer header,
/// then the host's Ethernet frame, taken to end 4 bytes before the frame (its FCS).
fn fabricpath(d: &mut Decoded<'_>, b: &[u8], ty: u16) -> Option<Option<(u16, usize)>> {
    const DCE: [u8; 2] = [0x89, 0x03];
    let h = match ty {
        0x8903 => 16,
        super::ETHERTYPE_VLAN | super::ETHERTYPE_QINQ if b.get(16..18) == Some(&DCE[..]) => 20,
        _ => return None,
    };
    let end = (d.frame_len as usize).saturating_sub(4).min(b.len());
    if end < h + 14 {
        stop(d, Layer::Link, StopReason::Truncated, 0);
        return Some(None);
    }
    d.trailer = 4;
    ethernet_addresses(d, &b[h..]);
    let inner = u16::from_be_bytes([b[h + 12], b[h + 13]]);
    if inner <= 1500 {
        return Some(None);
    }
    Some(decode_tags(d, &b[..end], inner, h + 14))
}

/// Walks 802.1Q / 802.1ad tags starting at `off`, whose type field said `ty`, the E-Tag
/// (802.1BR, 6 bytes after its type) and VN-Tag (4 bytes) a port extender puts in front, and
/// Cisco's inline metadata (TrustSec SGT, 6 bytes).
pub(super) fn decode_tags(d: &mut Decoded<'_>, b: &[u8], mut ty: u16, mut off: usize) -> Option<(u16, usize)> {
    loop {
        if ty == ETHERTYPE_IPV4 || ty == ETHERTYPE_IPV6 {
            return Some((ty, off));
        }
        let skip = match ty {
            0x893f | super::ETHERTYPE_CMD => 6,
            0x8926 => 4,
            _ => 0,
        };
        if skip > 0 {
            let Some(t) = b.get(off + skip..off + skip + 2) else {
                stop(d, Layer::Vlan, StopReason::Truncated, off as u32);
                return None;
            };
            ty = u16::from_be_bytes([t[0], t[1]]);
            off += skip + 2;
            continue;
        }
        let svlan = match ty {
            super::ETHERTYPE_VLAN | super::ETHERTYPE_QINQ_OLD => false,
            super::ETHERTYPE_QINQ => true,
            _ => return Some((ty, off)),
        };
        if b.len() < off + 4 {
            stop(d, Layer::Vlan, StopReason::Truncated, off as u32);
            return None;
        }
        let id = u16::from_be_bytes([b[off], b[off + 1]]) & 0x0fff;
        let (ids, count) =
            if svlan { (&mut d.svlan_ids, &mut d.svlan_count) } else { (&mut d.vlan_ids, &mut d.vlan_count) };
        if *count as usize >= MAX_VLAN_TAGS {
            stop(d, Layer::Vlan, StopReason::TooManyTags, off as u32);
            return None;
        }
        ids[*count as usize] = id;
        *count += 1;
        ty = u16::from_be_bytes([b[off + 2], b[off + 3]]);
        off += 4;
    }
}
