//! PostgreSQL (frontend/backend protocol 3.0): the server's ErrorResponse messages
//! ([`framer`]), logins (the StartupMessage's `user`, with the outcome: ReadyForQuery, or a
//! FATAL error of class 28), and the client's password messages as credentials.
//!
//! Credentials: the body of every client message of type `p` — PasswordMessage (cleartext or
//! MD5), SASLInitialResponse and SASLResponse (SCRAM), GSSResponse. Client bytes of the login
//! phase that cannot be framed (a hole, a capture that starts mid-login) are masked whole.
//! After SSLRequest is accepted nothing more is read.

pub mod framer;

use super::budget::Lazy;
use super::errors::{Family, ServerStream};
use super::lines::InOrder;
use super::secrets::Secrets;
use super::{user_name, AppFacts, Attempt, Here, TcpSeg};
use crate::identity::{Outcome, Source};

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
const PROTOCOL_3: u32 = 0x0003_0000;
/// StartupMessage bytes kept to read the user name.
const MAX_STARTUP: usize = 1024;

#[derive(Debug, Default)]
pub struct Pgsql {
    server: ServerStream<framer::Framer>,
    client: InOrder,
    hdr: [u8; 8],
    hdr_len: usize,
    /// Bytes of the client message being read that are still to come.
    left: u64,
    secret: bool,
    /// The StartupMessage was read: typed messages follow.
    started: bool,
    startup: Option<Lazy>,
    attempt: Option<Attempt>,
    /// ReadyForQuery seen: the login phase is over.
    logged_in: bool,
    /// The client's framing is lost.
    lost: bool,
    /// The connection's start was not seen, and no client byte yet.
    mid_stream: bool,
    tls: bool,
}

impl Pgsql {
    /// `fresh`: the client's stream is read from its start. Else its first bytes decide: a
    /// StartupMessage (the capture began between the handshake and it), or typed messages of a
    /// session logged in before the capture.
    pub fn new(fresh: bool) -> Pgsql {
        Pgsql { mid_stream: !fresh, ..Default::default() }
    }

    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets, here: &mut Here<'_>) -> bool {
        if self.tls {
            return false;
        }
        if !s.from_client {
            let before = here.out.errors.len();
            self.server.segment(s, Family::Postgresql, here);
            let failed = here.out.errors[before..].iter().any(|e| e.code.starts_with("28"));
            if failed {
                if let Some(a) = self.attempt.take() {
                    a.report(Source::Postgresql, Outcome::Failure, &mut here.out.logins);
                }
            }
            if self.server.framer.take_ready() && !self.logged_in {
                self.logged_in = true;
                if let Some(a) = self.attempt.take() {
                    a.report(Source::Postgresql, Outcome::Success, &mut here.out.logins);
                }
            }
            if self.server.framer.is_tls() {
                self.tls = true;
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
        if std::mem::take(&mut self.mid_stream) && !p.is_empty() {
            let be = |k: usize| p.get(k..k + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let startup = matches!(be(4), Some(SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST | PROTOCOL_3));
            if !startup {
                self.started = true;
                self.logged_in = true;
            }
        }
        let at = |i: usize| seq.wrapping_add(i as u32);
        let mut i = 0;
        while i < p.len() {
            if self.left > 0 {
                let n = (self.left.min(p.len() as u64) as usize).min(p.len() - i);
                if self.secret {
                    secrets.add(at(i), at(i + n));
                }
                if let Some(buf) = self.startup.as_mut() {
                    buf.push(&p[i..i + n], MAX_STARTUP);
                }
                self.left -= n as u64;
                i += n;
                if self.left == 0 {
                    if let Some(buf) = self.startup.take() {
                        self.startup_done(buf.as_slice(), here);
                    }
                }
                continue;
            }
            let need = if self.started { 5 } else { 8 };
            let n = (need - self.hdr_len).min(p.len() - i);
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&p[i..i + n]);
            self.hdr_len += n;
            i += n;
            if self.hdr_len < need {
                break;
            }
            self.hdr_len = 0;
            let be = |k: usize| u32::from_be_bytes([self.hdr[k], self.hdr[k + 1], self.hdr[k + 2], self.hdr[k + 3]]);
            if !self.started {
                let (len, code) = (be(0), be(4));
                match code {
                    SSL_REQUEST | GSSENC_REQUEST if len == 8 => {} // the answer decides (framer)
                    CANCEL_REQUEST if len == 16 => self.left = 8,
                    PROTOCOL_3 if (8..=10_000).contains(&len) => {
                        self.started = true;
                        self.left = u64::from(len - 8);
                        self.startup = Some(Lazy::default());
                        self.secret = false;
                        if self.left == 0 {
                            self.startup = None;
                        }
                    }
                    _ => {
                        self.lost = true;
                        return self.client_bytes(&p[i..], at(i), secrets, here);
                    }
                }
                continue;
            }
            let (typ, len) = (self.hdr[0], be(1));
            if !(4..=1 << 30).contains(&len) || !typ.is_ascii_alphabetic() {
                self.lost = true;
                return self.client_bytes(&p[i..], at(i), secrets, here);
            }
            self.left = u64::from(len - 4);
            self.secret = typ == b'p';
        }
    }

    /// The StartupMessage's parameters: `user` names the login.
    fn startup_done(&mut self, params: &[u8], here: &mut Here<'_>) {
        let mut it = params.split(|b| *b == 0);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if k == b"user" {
                if let Some(u) = user_name(v) {
                    if let Some(old) = self.attempt.replace(Attempt::new(here, Some(u))) {
                        old.report(Source::Postgresql, Outcome::Unknown, &mut here.out.logins);
                    }
                }
                return;
            }
            if k.is_empty() {
                return;
            }
        }
    }

    pub fn end(&mut self, f: &mut AppFacts) {
        if let Some(a) = self.attempt.take() {
            a.report(Source::Postgresql, Outcome::Unknown, &mut f.logins);
        }
    }
}

#[cfg(test)]
mod tests;
