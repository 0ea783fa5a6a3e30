//! Telnet (RFC 854) logins: the server's `login:` prompt, the user name the client types, the
//! `Password:` prompt, and the verdict the server prints next (`Login incorrect`, or a session).
//!
//! Credentials: everything the client sends after a password prompt until it sends CR or LF —
//! typed one character per segment in the usual character mode, or as a line. Option
//! negotiation (IAC sequences) is skipped when reading prompts and names; it stays in clear.

use super::lines::InOrder;
use super::secrets::Secrets;
use super::{lines::Fresh, user_name, AppFacts, Attempt, Here, TcpSeg};
use crate::identity::{Outcome, Source, MAX_NAME};

const IAC: u8 = 255;

/// Server text remembered to find prompts cut across segments.
const TAIL: usize = 32;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Input {
    /// Client bytes are not a login field.
    #[default]
    Other,
    /// After `login:`: the user name, until CR or LF.
    User,
    /// After `Password:`: the secret, until CR or LF.
    Password,
}

/// Client segments held beyond a hole (a character typed and lost, then resent), and the most
/// bytes one may hold: typed input comes a few bytes at a time.
const MAX_HELD: usize = 4;
const HELD_BYTES: usize = 64;

#[derive(Debug, Default)]
pub struct Telnet {
    /// The client's next sequence number, and segments that came beyond a hole.
    client_next: Option<u32>,
    held: Vec<(u32, Vec<u8>)>,
    client_cmd: Cmd,
    server: InOrder,
    server_cmd: Cmd,
    input: Input,
    /// The user name typed so far.
    user: Vec<u8>,
    attempt: Option<Attempt>,
    /// The last bytes of server text (IAC sequences removed), newest last.
    tail: [u8; TAIL],
    /// A password was sent: the server's next words are the verdict.
    awaiting: bool,
    /// Something was typed into the field being read.
    typed: bool,
}

/// Where the server's byte stream is in the IAC command syntax (kept across segments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Cmd {
    #[default]
    Text,
    Iac,
    /// After WILL/WONT/DO/DONT: the option byte.
    Opt,
    /// Inside a subnegotiation, until IAC SE.
    Sb,
    SbIac,
}

impl Cmd {
    /// Steps over one byte; true when it is text.
    fn step(&mut self, b: u8) -> bool {
        let (next, is_text) = match (*self, b) {
            (Cmd::Text, IAC) => (Cmd::Iac, false),
            (Cmd::Text, _) => (Cmd::Text, true),
            (Cmd::Iac, IAC) => (Cmd::Text, true),
            (Cmd::Iac, 250) => (Cmd::Sb, false),
            (Cmd::Iac, 251..=254) => (Cmd::Opt, false),
            (Cmd::Iac, _) | (Cmd::Opt, _) => (Cmd::Text, false),
            (Cmd::Sb, IAC) => (Cmd::SbIac, false),
            (Cmd::Sb, _) => (Cmd::Sb, false),
            (Cmd::SbIac, 240) => (Cmd::Text, false),
            (Cmd::SbIac, _) => (Cmd::Sb, false),
        };
        *self = next;
        is_text
    }
}

/// `hay` ends with `needle` (case-insensitive), spaces after it aside (a prompt's line has no
/// line end yet).
fn ends_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    let n = hay.iter().rev().take_while(|b| **b == b' ').count();
    let t = &hay[..hay.len() - n];
    t.len() >= needle.len() && t[t.len() - needle.len()..].eq_ignore_ascii_case(needle)
}

impl Telnet {
    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets, here: &mut Here<'_>) -> bool {
        let seg = s.seg;
        let cap = seg.data.len().min(seg.seg_len as usize);
        let data = &seg.data[..cap];
        if !s.from_client {
            let from = match self.server.place(seg.seq, seg.seg_len) {
                Fresh::Old => return false,
                Fresh::From(k) => k.min(cap),
                Fresh::AfterHole(_) => 0,
            };
            self.server_bytes(&data[from..], here);
            return false;
        }
        let next = *self.client_next.get_or_insert(seg.seq);
        let rel = seg.seq.wrapping_sub(next) as i32;
        if rel > 0 {
            // Beyond a hole: kept until the hole is filled (typed input is read in order), and
            // masked now if a password is being typed.
            if self.input == Input::Password {
                secrets.add(seg.seq, seg.seq.wrapping_add(cap as u32));
            }
            if self.held.len() < MAX_HELD && cap <= HELD_BYTES {
                self.held.push((seg.seq, data.to_vec()));
            }
            return false;
        }
        let skip = rel.unsigned_abs() as usize;
        if skip >= cap {
            return false; // seen before
        }
        self.client_bytes(&data[skip..], seg.seq.wrapping_add(skip as u32), secrets, here);
        self.client_next = Some(seg.seq.wrapping_add(seg.seg_len));
        // Held segments the stream now reaches.
        while let Some(i) = self.held.iter().position(|(q, _)| Some(*q) == self.client_next) {
            let (q, d) = self.held.swap_remove(i);
            self.client_bytes(&d, q, secrets, here);
            self.client_next = Some(q.wrapping_add(d.len() as u32));
        }
        false
    }

    fn client_bytes(&mut self, p: &[u8], seq: u32, secrets: &mut Secrets, here: &mut Here<'_>) {
        for (i, &b) in p.iter().enumerate() {
            let at = seq.wrapping_add(i as u32);
            let text = self.client_cmd.step(b);
            // A field ends with CR or LF once something was typed into it: the LF (or NUL) of
            // an Enter pressed before the prompt came may arrive after it.
            let terminator = b == b'\r' || b == b'\n' || b == 0;
            let end_of_field = text && terminator && self.typed;
            if text && !terminator {
                self.typed = true;
            }
            match self.input {
                Input::Password if end_of_field => {
                    self.input = Input::Other;
                    self.awaiting = true;
                    self.typed = false;
                }
                // Everything while the password is typed, IAC sequences included.
                Input::Password => secrets.add(at, at.wrapping_add(1)),
                Input::User if end_of_field => {
                    self.input = Input::Other;
                    self.typed = false;
                    if let Some(u) = user_name(&self.user) {
                        if let Some(old) = self.attempt.replace(Attempt::new(here, Some(u))) {
                            old.report(Source::Telnet, Outcome::Unknown, &mut here.out.logins);
                        }
                    }
                    self.user.clear();
                }
                Input::User if text && (b == 0x7f || b == 0x08) => {
                    self.user.pop();
                }
                Input::User if text && !terminator && self.user.len() < MAX_NAME => self.user.push(b),
                _ => {}
            }
        }
    }

    fn server_bytes(&mut self, p: &[u8], here: &mut Here<'_>) {
        for &b in p {
            if !self.server_cmd.step(b) {
                continue;
            }
            self.tail.copy_within(1.., 0);
            self.tail[TAIL - 1] = b;
            if self.awaiting {
                // The first words after the password: a refusal, or the session.
                let failed = [&b"incorrect"[..], b"failed", b"denied"].iter().any(|w| ends_with_ci(&self.tail, w));
                let session = b == b'$' || b == b'#' || b == b'>' || ends_with_ci(&self.tail, b"last login");
                if failed || session {
                    let outcome = if failed { Outcome::Failure } else { Outcome::Success };
                    if let Some(a) = self.attempt.take() {
                        a.report(Source::Telnet, outcome, &mut here.out.logins);
                    }
                    self.awaiting = false;
                }
            }
        }
        // A prompt is what the server's output ends with: then it waits for what is typed.
        if ends_with_ci(&self.tail, b"password:") || ends_with_ci(&self.tail, b"passcode:") {
            self.input = Input::Password;
            self.typed = false;
        } else if ends_with_ci(&self.tail, b"login:") || ends_with_ci(&self.tail, b"username:") {
            self.input = Input::User;
            self.typed = false;
            self.user.clear();
        }
    }

    pub fn end(&mut self, f: &mut AppFacts) {
        if let Some(a) = self.attempt.take() {
            a.report(Source::Telnet, Outcome::Unknown, &mut f.logins);
        }
    }
}

#[cfg(test)]
mod tests;
