//! POP3 (RFC 1939, 2449, 5034, 2595): logins (`USER`/`PASS`, `APOP`, `AUTH PLAIN`/`LOGIN`) with
//! the server's `+OK`/`-ERR` verdict, command exchanges for the diff, and the `pop.request.*`
//! filter fields.
//!
//! Credentials: the argument of `PASS`, the digest of `APOP`, a SASL initial response and every
//! client line of a SASL dialogue; a client line whose command is not POP3's is masked whole.
//! After `STLS` is accepted the connection is TLS and nothing more is read.

mod parser;

pub use parser::frame_fields;

use super::lines::{After, Dialog, LineHandler, Verdict};
use super::{sasl, user_name, AppFacts, Attempt, Here, Request};
use crate::identity::{Outcome, Source};

/// Commands waiting for their reply (POP3 answers in order; a client may pipeline).
const MAX_PENDING: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// USER sent: the server's +OK accepts the name.
    UserReply,
    /// The name is accepted, the password comes next.
    AwaitPass,
    /// Password (or whole credentials) sent: the next verdict is the outcome.
    Final,
}

/// A SASL dialogue: what the client's next line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sasl {
    /// PLAIN without an initial response: the credentials.
    Plain,
    /// LOGIN: the user name (base64), then the password.
    LoginUser,
    /// Anything else of the dialogue (a password, a digest).
    Other,
}

#[derive(Debug, Default)]
pub struct Handler {
    attempt: Option<(Attempt, Stage)>,
    sasl: Option<Sasl>,
    cmds: std::collections::VecDeque<Request>,
    /// STLS was sent; its +OK turns the connection into TLS.
    stls: bool,
    tls: bool,
}

/// Both directions of a POP3 connection.
pub type Pop3 = Dialog<Handler>;

impl Handler {
    fn start(&mut self, a: Attempt, stage: Stage, out: &mut AppFacts) {
        // A new attempt before the previous one got its verdict: the old one stays unknown.
        if let Some((old, _)) = self.attempt.replace((a, stage)) {
            old.report(Source::Pop3, Outcome::Unknown, &mut out.logins);
        }
    }
}

impl LineHandler for Handler {
    fn tls(&self) -> bool {
        self.tls
    }

    fn end(&mut self, f: &mut AppFacts) {
        if let Some((a, _)) = self.attempt.take() {
            a.report(Source::Pop3, Outcome::Unknown, &mut f.logins);
        }
    }

    fn classify(&self, line: &[u8], complete: bool) -> Verdict {
        if self.sasl.is_some() {
            return Verdict::secret_from(0);
        }
        parser::classify(line, complete)
    }

    fn line(&mut self, line: &[u8], from_client: bool, here: &mut Here<'_>) -> After {
        if !from_client {
            return self.server_line(line, here);
        }
        if let Some(s) = self.sasl {
            // A continuation of the SASL dialogue ("*" cancels it).
            if line == b"*" {
                self.sasl = None;
                return After::Lines;
            }
            match s {
                Sasl::Plain => {
                    if let Some((a, st)) = self.attempt.as_mut() {
                        a.user = sasl::plain_user(line);
                        *st = Stage::Final;
                    }
                    self.sasl = Some(Sasl::Other);
                }
                Sasl::LoginUser => {
                    if let Some((a, st)) = self.attempt.as_mut() {
                        a.user = sasl::login_user(line);
                        *st = Stage::Final;
                    }
                    self.sasl = Some(Sasl::Other);
                }
                Sasl::Other => {}
            }
            return After::Lines;
        }
        let (cmd, arg) = parser::command(line);
        if cmd.is_empty() {
            return After::Lines;
        }
        if let Some(verb) = parser::verb(cmd).filter(|_| here.exchanges) {
            if self.cmds.len() == MAX_PENDING {
                self.cmds.pop_front();
            }
            self.cmds.push_back(Request::new(verb, here));
        }
        let is = |v: &[u8]| cmd.eq_ignore_ascii_case(v);
        if is(b"USER") {
            if let Some(u) = user_name(arg) {
                self.start(Attempt::new(here, Some(u)), Stage::UserReply, here.out);
            }
        } else if is(b"PASS") {
            if let Some((_, st)) = self.attempt.as_mut() {
                *st = Stage::Final;
            }
        } else if is(b"APOP") {
            let name = arg.split(|b| *b == b' ').next().unwrap_or_default();
            self.start(Attempt::new(here, user_name(name)), Stage::Final, here.out);
        } else if is(b"AUTH") {
            let (mech, ir) = parser::command(arg);
            if mech.is_empty() {
                return After::Lines; // AUTH alone lists the mechanisms
            }
            let plain = mech.eq_ignore_ascii_case(b"PLAIN");
            let login = mech.eq_ignore_ascii_case(b"LOGIN");
            let (user, next) = match (plain, login, ir.is_empty()) {
                (true, _, false) => (sasl::plain_user(ir), Sasl::Other),
                (true, _, true) => (None, Sasl::Plain),
                (_, true, false) => (sasl::login_user(ir), Sasl::Other),
                (_, true, true) => (None, Sasl::LoginUser),
                _ => (None, Sasl::Other),
            };
            self.start(Attempt::new(here, user), Stage::Final, here.out);
            self.sasl = Some(next);
        } else if is(b"STLS") {
            self.stls = true;
        }
        After::Lines
    }
}

impl Handler {
    fn server_line(&mut self, line: &[u8], here: &mut Here<'_>) -> After {
        let ok = line.starts_with(b"+OK");
        let err = line.starts_with(b"-ERR");
        if !ok && !err {
            return After::Lines; // a SASL challenge ("+ …"), a multi-line answer's body
        }
        if let Some(req) = self.cmds.pop_front() {
            here.exchange("pop3", &req, if ok { "+OK" } else { "-ERR" }.into(), ok, true);
        }
        self.sasl = None;
        if let Some((_, stage)) = self.attempt.as_mut() {
            let verdict = match (ok, *stage) {
                (true, Stage::UserReply) => {
                    *stage = Stage::AwaitPass;
                    None
                }
                (true, Stage::Final) => Some(Outcome::Success),
                (true, Stage::AwaitPass) => None,
                (false, _) => Some(Outcome::Failure),
            };
            if let Some(v) = verdict {
                if let Some((a, _)) = self.attempt.take() {
                    a.report(Source::Pop3, v, &mut here.out.logins);
                }
            }
        }
        if self.stls {
            self.stls = false;
            if ok {
                self.tls = true;
                return After::Stop;
            }
        }
        After::Lines
    }
}

#[cfg(test)]
mod tests;
