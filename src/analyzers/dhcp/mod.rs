//! DHCP (RFC 2131/2132): host names (option 12) tied to the client hardware address (chaddr)
//! and the address it asks for (option 50) or is given (yiaddr of the ACK). The ACK usually
//! carries no host name; the name of the request with the same transaction id is used (at most
//! [`MAX_XIDS`] remembered).

use crate::bounded::LruMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::identity::{name_from_wire, IdentityFact, Outcome, Source};
use crate::time::Ts;

pub const MAX_XIDS: usize = 256;

pub struct Dhcp {
    /// Host names of recent requests by (xid, chaddr); the oldest forgotten when full.
    names: LruMap<(u32, [u8; 6]), String>,
}

impl Default for Dhcp {
    fn default() -> Self {
        Dhcp { names: LruMap::new(MAX_XIDS) }
    }
}

/// Parsed fields of one BOOTP/DHCP message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub xid: u32,
    pub ciaddr: [u8; 4],
    pub yiaddr: [u8; 4],
    pub chaddr: Option<[u8; 6]>,
    pub msg_type: Option<u8>,
    pub hostname: Option<String>,
    pub requested: Option<[u8; 4]>,
}

pub fn parse(p: &[u8]) -> Option<Message> {
    if p.len() < 240 || p[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let mut m = Message {
        op: p[0],
        xid: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ciaddr: [p[12], p[13], p[14], p[15]],
        yiaddr: [p[16], p[17], p[18], p[19]],
        ..Default::default()
    };
    if p[1] == 1 && p[2] == 6 {
        m.chaddr = Some([p[28], p[29], p[30], p[31], p[32], p[33]]);
    }
    let mut i = 240;
    while i < p.len() {
        let code = p[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let Some(&len) = p.get(i + 1) else { break };
        let Some(v) = p.get(i + 2..i + 2 + len as usize) else { break };
        match code {
            // A string ends at its first NUL, as Wireshark reads it (some clients send "nas1\0").
            12 => {
                let v = &v[..memchr::memchr(0, v).unwrap_or(v.len())];
                if !v.is_empty() {
                    m.hostname = Some(name_from_wire(v));
                }
            }
            50 if v.len() == 4 => m.requested = Some([v[0], v[1], v[2], v[3]]),
            53 if v.len() == 1 => m.msg_type = Some(v[0]),
            _ => {}
        }
        i += 2 + len as usize;
    }
    Some(m)
}

impl Dhcp {
    pub fn message(&mut self, payload: &[u8], ts: Ts, frame: u64, out: &mut Vec<IdentityFact>) {
        let Some(m) = parse(payload) else { return };
        let Some(mac) = m.chaddr else { return };
        let nonzero = |a: [u8; 4]| (a != [0; 4]).then(|| IpAddr::V4(Ipv4Addr::from(a)));
        match m.msg_type {
            // ACK / NAK from the server: the lease (or its refusal) for the name asked with.
            Some(5) | Some(6) => {
                let name = self.names.peek(&(m.xid, mac)).cloned();
                let outcome = if m.msg_type == Some(5) { Outcome::Success } else { Outcome::Failure };
                if name.is_some() || outcome == Outcome::Success {
                    out.push(IdentityFact {
                        source: Source::Dhcp,
                        mac: Some(mac),
                        ip: nonzero(m.yiaddr).or(nonzero(m.ciaddr)),
                        user: None,
                        realm: None,
                        hostname: name,
                        outcome,
                        error: None,
                        ts,
                        frame,
                    });
                }
            }
            // Client messages naming the host (DISCOVER, REQUEST, INFORM, RELEASE…).
            _ if m.op == 1 => {
                if let Some(h) = m.hostname {
                    self.names.insert((m.xid, mac), h.clone());
                    out.push(IdentityFact {
                        source: Source::Dhcp,
                        mac: Some(mac),
                        ip: m.requested.and_then(nonzero).or(nonzero(m.ciaddr)),
                        user: None,
                        realm: None,
                        hostname: Some(h),
                        outcome: Outcome::Unknown,
                        error: None,
                        ts,
                        frame,
                    });
                }
            }
            _ => {}
        }
    }
}
