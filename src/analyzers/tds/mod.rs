//! SQL Server (TDS 7.x): the server's ERROR tokens ([`framer`]), logins (LOGIN7's user name, with
//! the outcome: a LOGINACK token, or error 18456), and LOGIN7's secrets as credentials.
//!
//! Credentials: LOGIN7's password and new password (obfuscated by a nibble swap and XOR, i.e. in
//! clear to anyone) and its SSPI blob (NTLM or Kerberos), and every SSPI message (packet type
//! 0x11). A LOGIN7 spread over several TDS packets is masked whole past its fixed part. When the
//! client and server negotiated encryption, LOGIN7 travels inside TLS and nothing of it is
//! readable.

pub mod framer;

use super::budget::Lazy;
use super::errors::{Family, ServerStream};
use super::lines::InOrder;
use super::secrets::Secrets;
use super::{AppFacts, Attempt, Here, TcpSeg};
use crate::identity::{name_from_wire, Outcome, Source};

const LOGIN7: u8 = 0x10;
const SSPI: u8 = 0x11;
/// LOGIN7's fixed part: lengths and the offset/length table (TDS 7.2+).
const FIXED: usize = 94;
/// LOGIN7 bytes kept to read the user name and the secrets' places.
const MAX_LOGIN: usize = 2048;

#[derive(Debug, Default)]
pub struct Tds {
    server: ServerStream<framer::Framer>,
    client: InOrder,
    hdr: [u8; 8],
    hdr_len: usize,
    /// Body bytes of the client packet being read still to come.
    left: u64,
    /// The packet being read: its type, where its body starts (sequence number), how much of
    /// the body has been read.
    typ: u8,
    body_seq: u32,
    read: u64,
    /// LOGIN7's body so far (its first packet), and whether more packets of it follow.
    login: Option<Lazy>,
    /// A LOGIN7 continues in a further packet: those bytes are secret.
    login_continues: bool,
    /// A LOGIN7 message continues in the next packet.
    in_login: bool,
    /// A LOGIN7 was sent: the server's next answer is the verdict.
    login_done: bool,
    attempt: Option<Attempt>,
    lost: bool,
    logged_in: bool,
}

/// What LOGIN7 says once its fixed part is in: the secret ranges (offsets in its body) and the
/// user name.
struct Login7 {
    secrets: Vec<(usize, usize)>,
    user: Option<String>,
}

fn login7(b: &[u8]) -> Option<Login7> {
    if b.len() < FIXED {
        return None;
    }
    let u16le = |k: usize| u16::from_le_bytes([b[k], b[k + 1]]) as usize;
    // (offset, length) pairs from byte 36: HostName, UserName, Password, AppName, ServerName,
    // Extension, CltIntName, Language, Database; then ClientID (6), SSPI (offset, byte length),
    // AtchDBFile, ChangePassword (offset, chars).
    let user = (u16le(40), u16le(42) * 2);
    let password = (u16le(44), u16le(46) * 2);
    let sspi = (u16le(78), u16le(80));
    let change = (u16le(86), u16le(88) * 2);
    let ranges = [password, sspi, change].into_iter().filter(|r| r.1 > 0).map(|(o, l)| (o, o + l)).collect();
    let name = b.get(user.0..user.0 + user.1).map(|u| {
        let units: Vec<u16> = u.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        name_from_wire(String::from_utf16_lossy(&units).as_bytes())
    });
    Some(Login7 { secrets: ranges, user: name.filter(|n| !n.is_empty()) })
}

/// A LOGINACK token in a server segment: 0xAD, its length, the interface (0 or 1) and a TDS 7.x
/// version (big-endian).
fn login_ack(p: &[u8]) -> bool {
    p.first() == Some(&0x04)
        && memchr::memchr_iter(0xad, p)
            .any(|k| p.get(k + 3).is_some_and(|i| *i <= 1) && p.get(k + 4).is_some_and(|v| (0x70..=0x74).contains(v)))
}

impl Tds {
    /// `fresh`: the client's stream is read from its start (else its login was earlier).
    pub fn new(fresh: bool) -> Tds {
        Tds { login_done: !fresh, logged_in: !fresh, ..Default::default() }
    }

    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets, here: &mut Here<'_>) -> bool {
        if !s.from_client {
            let before = here.out.errors.len();
            self.server.segment(s, Family::Tds, here);
            if self.login_done && !self.logged_in {
                let failed = here.out.errors[before..].iter().any(|e| e.code == "18456");
                let ok = login_ack(s.seg.data);
                if failed || ok {
                    self.logged_in = true;
                    if let Some(a) = self.attempt.take() {
                        let v = if failed { Outcome::Failure } else { Outcome::Success };
                        a.report(Source::Tds, v, &mut here.out.logins);
                    }
                }
            }
            return false;
        }
        if let Some((p, seq)) = self.client.login_bytes(&s, !self.logged_in, &mut self.lost, secrets) {
            self.client_bytes(p, seq, secrets, here);
        }
        false
    }

    fn client_bytes(&mut self, p: &[u8], seq: u32, secrets: &mut Secrets, here: &mut Here<'_>) {
        if self.lost {
            if !self.logged_in {
                secrets.add(seq, seq.wrapping_add(p.len() as u32));
            }
            return;
        }
        let at = |i: usize| seq.wrapping_add(i as u32);
        let mut i = 0;
        while i < p.len() {
            if self.left > 0 {
                let n = (self.left.min(p.len() as u64) as usize).min(p.len() - i);
                let chunk = &p[i..i + n];
                match self.typ {
                    SSPI => secrets.add(at(i), at(i + n)),
                    LOGIN7 if self.login_continues => secrets.add(at(i), at(i + n)),
                    LOGIN7 => {
                        if let Some(l) = self.login.as_mut() {
                            l.push(chunk, MAX_LOGIN);
                            if let Some(Login7 { secrets: ranges, user }) = login7(l.as_slice()) {
                                for (a, b) in ranges {
                                    secrets.add(
                                        self.body_seq.wrapping_add(a as u32),
                                        self.body_seq.wrapping_add(b as u32),
                                    );
                                }
                                if let Some(old) = self.attempt.replace(Attempt::new(here, user)) {
                                    old.report(Source::Tds, Outcome::Unknown, &mut here.out.logins);
                                }
                                self.login = None;
                            }
                        }
                    }
                    _ => {}
                }
                self.read += n as u64;
                self.left -= n as u64;
                i += n;
                continue;
            }
            let n = (8 - self.hdr_len).min(p.len() - i);
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&p[i..i + n]);
            self.hdr_len += n;
            i += n;
            if self.hdr_len < 8 {
                break;
            }
            self.hdr_len = 0;
            let len = u16::from_be_bytes([self.hdr[2], self.hdr[3]]) as u64;
            if len < 8 || self.hdr[0] == 0 || self.hdr[0] > 0x12 {
                self.lost = true;
                return self.client_bytes(&p[i..], at(i), secrets, here);
            }
            let eom = self.hdr[1] & 1 != 0;
            let typ = self.hdr[0];
            self.left = len - 8;
            self.read = 0;
            self.body_seq = at(i);
            if typ == LOGIN7 {
                if self.in_login {
                    // A further packet of the same LOGIN7: its place table was in the first.
                    self.login_continues = true;
                    self.login = None;
                } else {
                    self.login = Some(Lazy::default());
                    self.login_continues = false;
                }
                self.in_login = !eom;
                self.login_done = true;
                self.logged_in = false;
            }
            self.typ = typ;
        }
    }

    pub fn end(&mut self, f: &mut AppFacts) {
        if let Some(a) = self.attempt.take() {
            a.report(Source::Tds, Outcome::Unknown, &mut f.logins);
        }
    }
}

#[cfg(test)]
mod tests;
