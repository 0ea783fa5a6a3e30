//! SMTP and submission (RFC 5321, 4954): `AUTH PLAIN` and `AUTH LOGIN` logins with the `235`
//! or `4xx`/`5xx` verdict, and command exchanges (verb → reply code) for the diff.
//!
//! Credentials: a SASL initial response after `AUTH mechanism`, and every client line of the SASL
//! dialogue that follows (LOGIN's user name and password, CRAM-MD5's digest); a client line whose
//! command is not SMTP's is masked whole. The message after `DATA` (and `BDAT` chunks) is read
//! past, not masked. After `STARTTLS` is accepted nothing more is read.

use std::collections::VecDeque;

use super::lines::{After, Dialog, LineHandler, Verdict};
use super::{sasl, AppFacts, Attempt, Here, Request};
use crate::identity::{Outcome, Source};

const MAX_PENDING: usize = 8;

/// SMTP commands (RFC 5321 and the common extensions) whose arguments are not secret.
const CLEAR: &[&str] = &[
    "HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN", "HELP", "NOOP", "QUIT", "STARTTLS",
    "ETRN", "ATRN", "TURN", "XCLIENT", "XFORWARD", "SEND", "SOML", "SAML",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sasl {
    /// PLAIN without an initial response: the next line has the credentials.
    Plain,
    /// LOGIN: the next line is the user name (base64), then the password.
    LoginUser,
    LoginPass,
    /// Another mechanism's lines.
    Other,
}

#[derive(Debug, Default)]
pub struct Handler {
    attempt: Option<Attempt>,
    sasl: Option<Sasl>,
    /// In the message after DATA: lines until ".".
    data: bool,
    cmds: VecDeque<Request>,
    starttls: bool,
    tls: bool,
}

/// Both directions of a SMTP connection.
pub type Smtp = Dialog<Handler>;

fn word(l: &[u8]) -> (&[u8], &[u8]) {
    match l.iter().position(|b| *b == b' ') {
        Some(i) => (&l[..i], &l[i + 1..]),
        None => (l, &[]),
    }
}

fn known(cmd: &[u8]) -> bool {
    CLEAR.iter().chain(&["AUTH"]).any(|v| cmd.eq_ignore_ascii_case(v.as_bytes()))
}

impl Handler {
    fn server_line(&mut self, line: &[u8], here: &mut Here<'_>) -> After {
        // The last line of a reply is "NNN text"; "NNN-" continues it.
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) || line.get(3) == Some(&b'-') {
            return After::Lines;
        }
        let code = &line[..3];
        let good = matches!(code[0], b'1' | b'2' | b'3');
        if code == b"334" {
            // A SASL challenge: the client's next line answers it.
            if self.sasl.is_none() {
                self.sasl = Some(Sasl::Other);
            }
            return After::Lines;
        }
        if let Some(req) = self.cmds.pop_front() {
            if req.name == "DATA" && code != b"354" {
                self.data = false; // refused: no message follows
            }
            if here.exchanges {
                here.exchange("smtp", &req, String::from_utf8_lossy(code).into_owned(), good, true);
            }
        }
        let verdict = match code[0] {
            _ if code == b"235" => Some(Outcome::Success),
            b'4' | b'5' => Some(Outcome::Failure),
            _ => None,
        };
        if let Some(v) = verdict {
            if let Some(a) = self.attempt.take() {
                a.report(Source::Smtp, v, &mut here.out.logins);
            }
            self.sasl = None;
        }
        if code == b"354" {
            self.data = true;
        }
        if std::mem::take(&mut self.starttls) && code == b"220" {
            self.tls = true;
            return After::Stop;
        }
        After::Lines
    }

    fn start(&mut self, a: Attempt, out: &mut AppFacts) {
        if let Some(old) = self.attempt.replace(a) {
            old.report(Source::Smtp, Outcome::Unknown, &mut out.logins);
        }
    }
}

impl LineHandler for Handler {
    fn tls(&self) -> bool {
        self.tls
    }

    fn end(&mut self, f: &mut AppFacts) {
        if let Some(a) = self.attempt.take() {
            a.report(Source::Smtp, Outcome::Unknown, &mut f.logins);
        }
    }

    fn classify(&self, line: &[u8], complete: bool) -> Verdict {
        if self.data {
            return Verdict::CLEAR;
        }
        if self.sasl.is_some() {
            return Verdict::secret_from(0);
        }
        let Some(sp) = line.iter().position(|b| *b == b' ') else {
            return match complete {
                true if known(line) => Verdict::CLEAR,
                true => Verdict::secret_from(0),
                false => Verdict::UNDECIDED,
            };
        };
        let cmd = &line[..sp];
        if cmd.eq_ignore_ascii_case(b"AUTH") {
            return match line[sp + 1..].iter().position(|b| *b == b' ') {
                Some(k) => Verdict::secret_from(sp + 1 + k + 1),
                None if complete => Verdict::CLEAR,
                None => Verdict::CLEAR.decided_to(line.len()),
            };
        }
        if known(cmd) {
            Verdict::CLEAR
        } else {
            Verdict::secret_from(0)
        }
    }

    fn line(&mut self, line: &[u8], from_client: bool, here: &mut Here<'_>) -> After {
        if !from_client {
            return self.server_line(line, here);
        }
        if self.data {
            if line == b"." {
                self.data = false;
            }
            return After::Lines;
        }
        if let Some(s) = self.sasl {
            if line == b"*" {
                self.sasl = None;
                return After::Lines;
            }
            self.sasl = Some(match s {
                Sasl::Plain => {
                    if let Some(a) = self.attempt.as_mut() {
                        a.user = sasl::plain_user(line);
                    }
                    Sasl::Other
                }
                Sasl::LoginUser => {
                    if let Some(a) = self.attempt.as_mut() {
                        a.user = sasl::login_user(line);
                    }
                    Sasl::LoginPass
                }
                _ => Sasl::Other,
            });
            return After::Lines;
        }
        let (cmd, arg) = word(line);
        // Kept also without exchanges: the reply to DATA says whether a message follows.
        if known(cmd) && cmd.len() <= 12 {
            if self.cmds.len() == MAX_PENDING {
                self.cmds.pop_front();
            }
            self.cmds.push_back(Request::new(String::from_utf8_lossy(cmd).to_ascii_uppercase(), here));
        }
        let is = |v: &[u8]| cmd.eq_ignore_ascii_case(v);
        if is(b"AUTH") {
            let (mech, ir) = word(arg);
            let (user, next) = if mech.eq_ignore_ascii_case(b"LOGIN") {
                match ir.is_empty() {
                    true => (None, Sasl::LoginUser),
                    false => (sasl::login_user(ir), Sasl::LoginPass),
                }
            } else if mech.eq_ignore_ascii_case(b"PLAIN") {
                match ir.is_empty() {
                    true => (None, Sasl::Plain),
                    false => (sasl::plain_user(ir), Sasl::Other),
                }
            } else {
                (None, Sasl::Other)
            };
            self.start(Attempt::new(here, user), here.out);
            self.sasl = Some(next);
        } else if is(b"DATA") {
            // Pipelining clients send the message right after 354; it is read past from here.
            self.data = true;
        } else if is(b"BDAT") {
            let n = word(arg).0;
            if let Some(n) = std::str::from_utf8(n).ok().and_then(|n| n.parse::<u64>().ok()) {
                return After::Raw { len: n, secret: false };
            }
        } else if is(b"STARTTLS") {
            self.starttls = true;
        }
        After::Lines
    }
}

#[cfg(test)]
mod tests;
