//! MySQL and MariaDB: the server's ERR packets ([`framer`]), logins (the HandshakeResponse's user
//! name, with the outcome: the server's OK or ERR), and the client's authentication data as
//! credentials.
//!
//! Credentials: everything after the user name in the HandshakeResponse (the scrambled password,
//! crackable offline with the greeting's salt), every client packet of the authentication
//! exchange that follows (AuthSwitchResponse, `mysql_clear_password`'s clear text, caching_sha2's
//! password), and the authentication data of COM_CHANGE_USER. Client bytes of the login phase
//! that cannot be framed are masked whole. After an SSL request nothing more is read.

pub mod framer;

use super::budget::Lazy;
use super::errors::{Family, ServerStream};
use super::lines::InOrder;
use super::secrets::Secrets;
use super::{user_name, AppFacts, Attempt, Here, TcpSeg};
use crate::identity::{Outcome, Source};

const CLIENT_PROTOCOL_41: u32 = 0x0200;
const CLIENT_SSL: u32 = 0x0800;
const COM_CHANGE_USER: u8 = 0x11;
/// Packet bytes kept to find the user name.
const MAX_HEAD: usize = 300;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// The client's next packet is its HandshakeResponse (or an SSL request).
    #[default]
    Handshake,
    /// Authentication under way: every client packet is secret.
    Auth,
    Command,
}

#[derive(Debug, Default)]
pub struct Mysql {
    server: ServerStream<framer::Framer>,
    client: InOrder,
    phase: Phase,
    hdr: [u8; 4],
    hdr_len: usize,
    /// Payload bytes of the client packet being read still to come.
    left: u64,
    /// Where, in the packet being read, the secret begins (its payload offset); None: clear.
    secret_from: Option<u64>,
    read: u64,
    /// The packet's first bytes, while the user name is looked for.
    head: Option<Lazy>,
    attempt: Option<Attempt>,
    lost: bool,
    tls: bool,
    mid_stream: bool,
}

impl Mysql {
    /// `fresh`: the client's stream is read from its start. Else its first packet decides: a
    /// HandshakeResponse (sequence id 1 or more) or a command (sequence id 0) of a session
    /// logged in before the capture.
    pub fn new(fresh: bool) -> Mysql {
        Mysql { mid_stream: !fresh, ..Default::default() }
    }

    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets, here: &mut Here<'_>) -> bool {
        if self.tls {
            return false;
        }
        if !s.from_client {
            self.server.segment(s, Family::Mysql, here);
            let firsts = self.server.framer.take_firsts();
            if self.phase == Phase::Auth {
                let verdict = if firsts & framer::SAW_ERR != 0 {
                    Some(Outcome::Failure)
                } else if firsts & framer::SAW_OK != 0 {
                    Some(Outcome::Success)
                } else {
                    None
                };
                if let Some(v) = verdict {
                    self.phase = Phase::Command;
                    if let Some(a) = self.attempt.take() {
                        a.report(Source::Mysql, v, &mut here.out.logins);
                    }
                }
            }
            return false;
        }
        let in_login = self.phase != Phase::Command;
        if let Some((p, seq)) = self.client.login_bytes(&s, in_login, &mut self.lost, secrets) {
            self.client_bytes(p, seq, secrets, here);
        }
        self.tls
    }

    fn client_bytes(&mut self, p: &[u8], seq: u32, secrets: &mut Secrets, here: &mut Here<'_>) {
        if self.lost {
            if self.phase != Phase::Command {
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
                if let Some(h) = self.head.as_mut() {
                    h.push(chunk, MAX_HEAD);
                    self.look_at_head(here);
                }
                if let Some(k) = self.secret_from {
                    // The part of this chunk at or after the secret's start.
                    let skip = k.saturating_sub(self.read).min(n as u64) as usize;
                    secrets.add(at(i + skip), at(i + n));
                }
                self.read += n as u64;
                self.left -= n as u64;
                i += n;
                if self.left == 0 {
                    self.head = None;
                }
                continue;
            }
            let n = (4 - self.hdr_len).min(p.len() - i);
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&p[i..i + n]);
            self.hdr_len += n;
            i += n;
            if self.hdr_len < 4 {
                break;
            }
            self.hdr_len = 0;
            if std::mem::take(&mut self.mid_stream) && self.hdr[3] == 0 {
                self.phase = Phase::Command;
            }
            self.left = u64::from(u32::from_le_bytes([self.hdr[0], self.hdr[1], self.hdr[2], 0]));
            self.read = 0;
            self.secret_from = match self.phase {
                // Decided once the packet's head is read.
                Phase::Handshake => None,
                Phase::Auth => Some(0),
                Phase::Command => None,
            };
            self.head = (self.phase != Phase::Auth).then(Lazy::default);
        }
    }

    /// Reads the head of the client packet being read: the HandshakeResponse's user name, an
    /// SSL request, COM_CHANGE_USER.
    fn look_at_head(&mut self, here: &mut Here<'_>) {
        let Some(h) = self.head.as_ref() else { return };
        let b = h.as_slice();
        match self.phase {
            Phase::Command => {
                if b.first() == Some(&COM_CHANGE_USER) {
                    // COM_CHANGE_USER user NUL auth…: the rest after the user is secret.
                    if let Some(nul) = b[1..].iter().position(|x| *x == 0) {
                        self.secret_from = Some((1 + nul + 1) as u64);
                        self.head = None;
                    } else if b.len() >= MAX_HEAD {
                        self.secret_from = Some(1);
                        self.head = None;
                    }
                } else if !b.is_empty() {
                    self.head = None;
                }
            }
            Phase::Handshake => {
                if b.len() < 4 {
                    return;
                }
                let caps = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let name_at = if caps & CLIENT_PROTOCOL_41 != 0 { 32 } else { 5 };
                let total = self.read + self.left;
                if caps & CLIENT_SSL != 0 && total <= 32 {
                    // An SSL request: the handshake goes on in TLS.
                    self.tls = true;
                    self.head = None;
                    return;
                }
                if b.len() <= name_at {
                    return;
                }
                match b[name_at..].iter().position(|x| *x == 0) {
                    Some(nul) => {
                        let user = user_name(&b[name_at..name_at + nul]);
                        if let Some(old) = self.attempt.replace(Attempt::new(here, user)) {
                            old.report(Source::Mysql, Outcome::Unknown, &mut here.out.logins);
                        }
                        self.secret_from = Some((name_at + nul + 1) as u64);
                        self.phase = Phase::Auth;
                        self.head = None;
                    }
                    None if b.len() >= MAX_HEAD => {
                        self.secret_from = Some(name_at as u64);
                        self.phase = Phase::Auth;
                        self.head = None;
                    }
                    None => {}
                }
            }
            Phase::Auth => self.head = None,
        }
    }

    pub fn end(&mut self, f: &mut AppFacts) {
        if let Some(a) = self.attempt.take() {
            a.report(Source::Mysql, Outcome::Unknown, &mut f.logins);
        }
    }
}

#[cfg(test)]
mod tests;
