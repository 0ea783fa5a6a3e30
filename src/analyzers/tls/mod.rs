//! TLS handshakes, for the diff: the server name of the ClientHello and what the server answered
//! (ServerHello, or an alert), on any port and after STARTTLS. Nothing after the handshake is
//! readable, and nothing in it is a credential.

use super::{AppFacts, Exchange, Here, Request, TcpSeg};

#[derive(Debug, Default)]
pub struct Tls {
    hello: Option<Request>,
    done: bool,
}

impl Tls {
    pub fn segment(&mut self, s: TcpSeg<'_>, here: &mut Here<'_>) -> bool {
        let p = s.seg.data;
        if self.done || s.retrans || !here.exchanges {
            return false;
        }
        if s.fin || s.rst {
            if let Some(req) = self.hello.take() {
                here.exchange("tls", &req, "no ServerHello".into(), false, false);
            }
            self.done = true;
            return false;
        }
        if p.is_empty() {
            return false;
        }
        if s.from_client {
            if let Some(sni) = client_hello_sni(p) {
                self.hello = Some(Request::new(sni, here));
            }
        } else if let Some(req) = self.hello.as_ref() {
            if let Some((outcome, good)) = server_answer(p) {
                let req = req.clone();
                self.hello = None;
                here.exchange("tls", &req, outcome, good, true);
            }
        }
        false
    }

    pub fn end(&mut self, f: &mut AppFacts) {
        if let Some(req) = self.hello.take() {
            f.exchanges.push(Exchange::unanswered("tls", req, "no ServerHello"));
        }
    }
}

/// The SNI of a TLS ClientHello that starts a segment ("" when it has none).
pub fn client_hello_sni(p: &[u8]) -> Option<String> {
    if p.len() < 43 || p[0] != 0x16 || p[1] != 3 || p[5] != 1 {
        return None;
    }
    let get = |i: usize| p.get(i).copied().map(usize::from);
    // record(5) handshake(4) version(2) random(32) = 43, then session id.
    let mut i = 43;
    i += 1 + get(i)?;
    let cs = (get(i)? << 8) | get(i + 1)?;
    i += 2 + cs;
    i += 1 + get(i)?;
    let ext_end = i + 2 + ((get(i)? << 8) | get(i + 1)?);
    i += 2;
    while i + 4 <= ext_end.min(p.len()) {
        let typ = (get(i)? << 8) | get(i + 1)?;
        let len = (get(i + 2)? << 8) | get(i + 3)?;
        if typ == 0 {
            // server_name list: len(2) type(1) name_len(2) name
            let n = (get(i + 7)? << 8) | get(i + 8)?;
            let name = p.get(i + 9..i + 9 + n)?;
            return Some(String::from_utf8_lossy(&name[..name.len().min(200)]).into_owned());
        }
        i += 4 + len;
    }
    Some(String::new())
}

/// A server's first TLS record: ServerHello, or an alert with its description.
pub fn server_answer(p: &[u8]) -> Option<(String, bool)> {
    if p.len() < 7 || p[1] != 3 {
        return None;
    }
    match (p[0], p[5]) {
        (0x16, 2) => Some(("ServerHello".into(), true)),
        (0x15, _) => Some((format!("alert {}", alert_name(p[6])), false)),
        _ => None,
    }
}

fn alert_name(d: u8) -> String {
    let n = match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return d.to_string(),
    };
    format!("{d} {n}")
}
