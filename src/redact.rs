//! Credential redaction for everything mirrorwatch writes from captured bytes: evidence pcapng
//! files (mail attachments, outbox rows), pattern-error messages, filter fields.
//!
//! A frame keeps its length and every header, so the evidence still opens in Wireshark with the
//! same frame numbers and TCP analysis; only the bytes that carry a credential are overwritten
//! with `*`: POP/IMAP/SMTP/FTP passwords and SASL responses (with `AUTH`/`AUTHENTICATE`, or on a
//! line of their own), IMAP `LOGIN` arguments, HTTP `Authorization`/`Proxy-Authorization` values,
//! and the cipher text of Kerberos PA-ENC-TIMESTAMP. On the text login ports a client line whose
//! command the redactor does not know (a SASL continuation, a line split across segments, data
//! it cannot classify) is overwritten whole: redacting too much is the safe error.

use crate::capture::{LinkType, RawPacket};
use crate::decode::{self, Transport};
use crate::time::Ts;

const MASK: u8 = b'*';

/// Client ports of the plaintext login protocols (POP3, IMAP, SMTP and submission, FTP).
const LOGIN_PORTS: [u16; 5] = [110, 143, 25, 587, 21];
const KERBEROS_PORT: u16 = 88;

/// Commands whose arguments carry no secret (all protocols together; a verb of one protocol
/// seen on another port is still not a credential).
const SAFE_VERBS: &[&str] = &[
    // POP3
    "USER",
    "STAT",
    "LIST",
    "RETR",
    "DELE",
    "NOOP",
    "RSET",
    "QUIT",
    "TOP",
    "UIDL",
    "CAPA",
    "STLS",
    "UTF8",
    // SMTP
    "HELO",
    "EHLO",
    "MAIL",
    "RCPT",
    "DATA",
    "STARTTLS",
    "VRFY",
    "EXPN",
    "HELP",
    "BDAT",
    // IMAP
    "CAPABILITY",
    "LOGOUT",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "IDLE",
    "DONE",
    "ENABLE",
    "ID",
    "NAMESPACE",
    "UNSELECT",
    // FTP
    "CWD",
    "CDUP",
    "PWD",
    "TYPE",
    "PASV",
    "EPSV",
    "PORT",
    "EPRT",
    "STOR",
    "NLST",
    "SYST",
    "FEAT",
    "SIZE",
    "MDTM",
    "MKD",
    "RMD",
    "OPTS",
    "PBSZ",
    "PROT",
    "REST",
    "RNFR",
    "RNTO",
    "ABOR",
    "MODE",
    "STRU",
    "ALLO",
    "MLSD",
    "MLST",
    "APPE",
    "STOU",
];

/// Commands whose whole argument is a secret (or holds one: IMAP LOGIN user password).
const SECRET_VERBS: &[&str] = &["PASS", "APOP", "LOGIN", "ACCT"];

/// Commands followed by a mechanism name and then (optionally) a SASL response.
const SASL_VERBS: &[&str] = &["AUTH", "AUTHENTICATE"];

/// Overwrites the credential bytes of one captured frame in place.
pub fn frame(link: u16, orig_len: u32, ts: Ts, data: &mut [u8]) {
    let (start, len, ports, tcp) = {
        let pkt = RawPacket { frame: 0, ts, orig_len, link: LinkType(link), interface: 0, data };
        let d = decode::decode(&pkt);
        let (ports, tcp) = match d.transport {
            Transport::Tcp(t) => ((t.src_port, t.dst_port), true),
            Transport::Udp(u) => ((u.src_port, u.dst_port), false),
            _ => return,
        };
        if d.payload.is_empty() {
            return;
        }
        // The payload is a slice of `data`: its offset is the distance between the two.
        let start = d.payload.as_ptr() as usize - data.as_ptr() as usize;
        (start, d.payload.len(), ports, tcp)
    };
    payload(ports.0, ports.1, tcp, &mut data[start..start + len]);
}

/// Overwrites the credential bytes of one transport payload (source and destination port).
pub fn payload(sport: u16, dport: u16, tcp: bool, p: &mut [u8]) {
    if sport == KERBEROS_PORT || dport == KERBEROS_PORT {
        kerberos(p);
        return;
    }
    if !tcp {
        return;
    }
    if LOGIN_PORTS.contains(&dport) {
        login_lines(p, dport == 143);
    }
    http_authorization(p);
}

fn mask(b: &mut [u8]) {
    for x in b.iter_mut().filter(|x| **x != b'\r' && **x != b'\n') {
        *x = MASK;
    }
}

/// Client lines of POP3, IMAP, SMTP and FTP.
fn login_lines(p: &mut [u8], imap: bool) {
    let mut start = 0;
    while start < p.len() {
        let end = p[start..].iter().position(|b| *b == b'\n').map_or(p.len(), |i| start + i + 1);
        login_line(&mut p[start..end], imap);
        start = end;
    }
}

/// Splits off the next space-separated word: (word, rest after the space).
fn word(l: &[u8]) -> (&[u8], usize) {
    let n = l.iter().position(|b| *b == b' ').unwrap_or(l.len());
    (&l[..n], (n + 1).min(l.len()))
}

fn login_line(line: &mut [u8], imap: bool) {
    let body_len = line.iter().rposition(|b| *b != b'\r' && *b != b'\n').map_or(0, |i| i + 1);
    let l = &line[..body_len];
    if l.is_empty() {
        return;
    }
    // IMAP commands start with a tag.
    let (tag_end, l2) = if imap {
        let (_, r) = word(l);
        (r, &l[r..])
    } else {
        (0, l)
    };
    let (verb, arg_at) = word(l2);
    let is = |list: &[&str]| list.iter().any(|v| verb.eq_ignore_ascii_case(v.as_bytes()));
    let args = tag_end + arg_at;
    if is(SAFE_VERBS) {
        return;
    }
    if is(SASL_VERBS) {
        // Keep the mechanism, overwrite an initial response.
        if let Some(sp) = l[args..].iter().position(|b| *b == b' ') {
            mask(&mut line[args + sp + 1..body_len]);
        }
        return;
    }
    if is(SECRET_VERBS) {
        mask(&mut line[args..body_len]);
        return;
    }
    // An unknown line: a SASL continuation, the tail of a split command, anything else.
    mask(&mut line[..body_len]);
}

/// Values of `Authorization:` and `Proxy-Authorization:` header lines, wherever they appear.
fn http_authorization(p: &mut [u8]) {
    const NAMES: [&[u8]; 2] = [b"authorization:", b"proxy-authorization:"];
    let mut start = 0;
    while start < p.len() {
        let end = p[start..].iter().position(|b| *b == b'\n').map_or(p.len(), |i| start + i + 1);
        let line = &p[start..end];
        for n in NAMES {
            if line.len() >= n.len() && line[..n.len()].eq_ignore_ascii_case(n) {
                let from = start + n.len();
                mask(&mut p[from..end]);
                break;
            }
        }
        start = end;
    }
}

/// DER length at `i`: (length, header bytes).
fn der_len(p: &[u8], i: usize) -> Option<(usize, usize)> {
    let b = *p.get(i)?;
    if b < 0x80 {
        return Some((b as usize, 1));
    }
    let n = (b & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut v = 0usize;
    for k in 0..n {
        v = (v << 8) | *p.get(i + 1 + k)? as usize;
    }
    Some((v, 1 + n))
}

/// Kerberos PA-DATA of type 2 (PA-ENC-TIMESTAMP): `[1] INTEGER 2` then `[2] OCTET STRING`; the
/// octets (the encrypted timestamp, crackable offline) are overwritten.
fn kerberos(p: &mut [u8]) {
    const TYPE2: [u8; 5] = [0xa1, 0x03, 0x02, 0x01, 0x02];
    let mut i = 0;
    while i + TYPE2.len() < p.len() {
        if p[i..i + TYPE2.len()] != TYPE2 || p[i + TYPE2.len()] != 0xa2 {
            i += 1;
            continue;
        }
        let at = i + TYPE2.len() + 1;
        let Some((_, h1)) = der_len(p, at) else { return };
        let os = at + h1;
        if p.get(os) != Some(&0x04) {
            i += 1;
            continue;
        }
        let Some((n, h2)) = der_len(p, os + 1) else { return };
        let from = os + 1 + h2;
        let to = from.saturating_add(n).min(p.len());
        encrypted_data_cipher(&mut p[from.min(to)..to]);
        i = to;
    }
}

/// EncryptedData ::= SEQUENCE { etype [0], kvno [1] OPTIONAL, cipher [2] OCTET STRING }: the
/// cipher bytes are zeroed, the structure kept (Wireshark still shows the etype). Anything that
/// does not parse is zeroed whole.
fn encrypted_data_cipher(v: &mut [u8]) {
    let cipher = (|| {
        if *v.first()? != 0x30 {
            return None;
        }
        let (_, h) = der_len(v, 1)?;
        let mut i = 1 + h;
        while i < v.len() {
            let tag = v[i];
            let (n, h) = der_len(v, i + 1)?;
            let body = i + 1 + h;
            if tag == 0xa2 {
                if *v.get(body)? != 0x04 {
                    return None;
                }
                let (m, h2) = der_len(v, body + 1)?;
                let from = body + 1 + h2;
                return Some(from.min(v.len())..from.saturating_add(m).min(v.len()));
            }
            i = body.checked_add(n)?;
        }
        None
    })();
    match cipher {
        Some(r) => v[r].fill(0),
        None => v.fill(0),
    }
}

/// A copy of `p` with its credentials overwritten (for text built from payload bytes).
pub fn copy(sport: u16, dport: u16, tcp: bool, p: &[u8]) -> Vec<u8> {
    let mut v = p.to_vec();
    payload(sport, dport, tcp, &mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(dport: u16, s: &str) -> String {
        String::from_utf8(copy(40000, dport, true, s.as_bytes())).unwrap()
    }

    #[test]
    fn text_logins() {
        assert_eq!(red(110, "USER alice\r\n"), "USER alice\r\n");
        assert_eq!(red(110, "PASS s3cret\r\n"), "PASS ******\r\n");
        assert_eq!(red(110, "pass s3cret\r\n"), "pass ******\r\n");
        assert_eq!(red(110, "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"), "AUTH PLAIN ********************\r\n");
        assert_eq!(red(110, "AUTH PLAIN\r\n"), "AUTH PLAIN\r\n");
        assert_eq!(red(110, "AGFsaWNlAHMzY3JldA==\r\n"), "********************\r\n");
        assert_eq!(red(143, "a1 LOGIN alice \"s3 cret\"\r\n"), "a1 LOGIN ***************\r\n");
        assert_eq!(red(143, "a2 AUTHENTICATE PLAIN AGFs\r\n"), "a2 AUTHENTICATE PLAIN ****\r\n");
        assert_eq!(red(143, "a3 SELECT INBOX\r\n"), "a3 SELECT INBOX\r\n");
        assert_eq!(red(587, "AUTH LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\n"), "AUTH LOGIN\r\n********\r\n********\r\n");
        assert_eq!(red(21, "USER bob\r\nPASS hunter2\r\n"), "USER bob\r\nPASS *******\r\n");
        // The tail of a PASS split across two segments.
        assert_eq!(red(110, "cret\r\n"), "****\r\n");
        // Server lines are not touched (sport is the login port).
        assert_eq!(String::from_utf8(copy(110, 40000, true, b"+OK hello\r\n")).unwrap(), "+OK hello\r\n");
    }

    #[test]
    fn http_authorization_on_any_port() {
        let r = red(8080, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n");
        assert_eq!(r, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization:***********************\r\n\r\n");
        let r = red(3128, "GET http://x/ HTTP/1.1\r\nproxy-authorization: Basic Zm9v\r\n\r\n");
        assert!(!r.contains("Zm9v"), "{r}");
    }

    #[test]
    fn kerberos_pa_enc_timestamp() {
        // padata { padata-type [1] 2, padata-value [2] OCTET STRING { EncryptedData {
        //   etype [0] 18, cipher [2] OCTET STRING (4 bytes) } } }
        let mut p = vec![
            0x30, 0x16, 0xa1, 0x03, 0x02, 0x01, 0x02, 0xa2, 0x0f, 0x04, 0x0d, 0x30, 0x0b, 0xa0, 0x03, 0x02, 0x01, 0x12,
            0xa2, 0x04, 0x04, 0x02, 0xde, 0xad, 0xff,
        ];
        payload(88, 40000, false, &mut p);
        assert_eq!(&p[22..24], &[0, 0], "cipher zeroed");
        assert_eq!(p[17], 0x12, "etype kept");
        assert_eq!(p[24], 0xff);
        // Cut or malformed DER: no panic.
        for cut in 0..p.len() {
            let mut q = p[..cut].to_vec();
            payload(40000, 88, true, &mut q);
        }
    }
}
