//! IMAP (RFC 9051, 3501): logins (`LOGIN`, with quoted strings or literals, and `AUTHENTICATE
//! PLAIN`, with or without an initial response) with the tagged `OK`/`NO`/`BAD` verdict, and
//! command exchanges for the diff.
//!
//! Credentials: the arguments of `LOGIN` (literals included, in whatever segments they come), a
//! SASL initial response and every client line of a SASL dialogue; a client line whose command
//! this analyzer does not know is masked whole. Literals of other commands (`APPEND`'s message)
//! are read past. After `STARTTLS` is accepted nothing more is read.

mod parser;

use super::lines::{After, Dialog, LineHandler, Verdict};
use super::secrets::Secrets;
use super::{sasl, AppFacts, Attempt, Here, Request};
use crate::identity::{name_from_wire, Outcome, Source, MAX_NAME};

/// Tagged commands waiting for their completion.
const MAX_PENDING: usize = 8;

/// Where a command that spans lines (through literals or a SASL dialogue) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cont {
    /// LOGIN's arguments continue after a literal.
    Login,
    /// AUTHENTICATE PLAIN without an initial response: the next line has the credentials.
    Plain,
    /// Any other line of a SASL dialogue.
    Sasl,
    /// Another command's literal (APPEND): clear.
    Other,
}

#[derive(Debug, Default)]
pub struct Handler {
    /// Login attempt waiting for the verdict tagged with `tag`.
    attempt: Option<(Attempt, Vec<u8>)>,
    cont: Option<Cont>,
    /// LOGIN's user name given as a literal (the first one), being read.
    literal_user: Option<Vec<u8>>,
    cmds: Vec<(Vec<u8>, Request)>,
    /// The tag of a STARTTLS command.
    starttls: Option<Vec<u8>>,
    tls: bool,
}

/// Both directions of a IMAP connection.
pub type Imap = Dialog<Handler>;

impl Handler {
    fn start(&mut self, a: Attempt, tag: &[u8], out: &mut AppFacts) {
        let tag = tag[..tag.len().min(32)].to_vec();
        if let Some((old, _)) = self.attempt.replace((a, tag)) {
            old.report(Source::Imap, Outcome::Unknown, &mut out.logins);
        }
    }

    fn server_line(&mut self, line: &[u8], here: &mut Here<'_>) -> After {
        let (tag, rest) = parser::word(line);
        if tag == b"*" || tag == b"+" || tag.is_empty() {
            return After::Lines;
        }
        let (status, _) = parser::word(rest);
        let ok = status.eq_ignore_ascii_case(b"OK");
        let failed = status.eq_ignore_ascii_case(b"NO") || status.eq_ignore_ascii_case(b"BAD");
        if !ok && !failed {
            return After::Lines;
        }
        if let Some(i) = self.cmds.iter().position(|(t, _)| t == tag) {
            let (_, req) = self.cmds.remove(i);
            here.exchange("imap", &req, String::from_utf8_lossy(status).to_ascii_uppercase(), ok, true);
        }
        if self.attempt.as_ref().is_some_and(|(_, t)| t == tag) {
            if let Some((a, _)) = self.attempt.take() {
                let v = if ok { Outcome::Success } else { Outcome::Failure };
                a.report(Source::Imap, v, &mut here.out.logins);
            }
        }
        if matches!(self.cont, Some(Cont::Plain | Cont::Sasl)) {
            self.cont = None;
        }
        if self.starttls.as_deref() == Some(tag) {
            self.starttls = None;
            if ok {
                self.tls = true;
                return After::Stop;
            }
        }
        After::Lines
    }

    /// What follows a client line that ends with a literal `{n}`: `n` raw bytes.
    fn literal(&mut self, line: &[u8], cont: Cont) -> After {
        match parser::literal(line) {
            Some(n) => {
                self.cont = Some(cont);
                After::Raw { len: n, secret: cont != Cont::Other }
            }
            None => {
                self.cont = None;
                After::Lines
            }
        }
    }
}

impl LineHandler for Handler {
    fn tls(&self) -> bool {
        self.tls
    }

    fn end(&mut self, f: &mut AppFacts) {
        if let Some((a, _)) = self.attempt.take() {
            a.report(Source::Imap, Outcome::Unknown, &mut f.logins);
        }
    }

    fn classify(&self, line: &[u8], complete: bool) -> Verdict {
        match self.cont {
            Some(Cont::Login | Cont::Plain | Cont::Sasl) => Verdict::secret_from(0),
            Some(Cont::Other) => Verdict::CLEAR,
            None => parser::classify(line, complete),
        }
    }

    fn raw(&mut self, bytes: &[u8], _seq: u32, from_client: bool, _secrets: &mut Secrets) {
        if let (true, Some(u)) = (from_client, self.literal_user.as_mut()) {
            let n = bytes.len().min(MAX_NAME.saturating_sub(u.len()));
            u.extend_from_slice(&bytes[..n]);
        }
    }

    fn line(&mut self, line: &[u8], from_client: bool, here: &mut Here<'_>) -> After {
        if !from_client {
            return self.server_line(line, here);
        }
        match self.cont {
            Some(Cont::Login) => {
                // After LOGIN's first literal: the user name is complete.
                if let Some(u) = self.literal_user.take() {
                    if let Some((a, _)) = self.attempt.as_mut() {
                        a.user = (!u.is_empty()).then(|| name_from_wire(&u));
                    }
                }
                return self.literal(line, Cont::Login);
            }
            Some(Cont::Plain) => {
                if let Some((a, _)) = self.attempt.as_mut() {
                    a.user = sasl::plain_user(line);
                }
                self.cont = Some(Cont::Sasl);
                return After::Lines;
            }
            Some(Cont::Sasl) => return After::Lines,
            Some(Cont::Other) => return self.literal(line, Cont::Other),
            None => {}
        }
        let (tag, rest) = parser::word(line);
        let (cmd, args) = parser::word(rest);
        if cmd.is_empty() {
            return After::Lines;
        }
        if let Some(verb) = parser::verb(cmd).filter(|_| here.exchanges) {
            if self.cmds.len() == MAX_PENDING {
                self.cmds.remove(0);
            }
            self.cmds.push((tag[..tag.len().min(32)].to_vec(), Request::new(verb, here)));
        }
        let is = |v: &[u8]| cmd.eq_ignore_ascii_case(v);
        if is(b"LOGIN") {
            let user = parser::astring(args);
            let literal_user = args.starts_with(b"{");
            self.start(Attempt::new(here, user.and_then(super::user_name)), tag, here.out);
            self.literal_user = literal_user.then(Vec::new);
            return self.literal(line, Cont::Login);
        }
        if is(b"AUTHENTICATE") {
            let (mech, ir) = parser::word(args);
            let plain = mech.eq_ignore_ascii_case(b"PLAIN");
            let user = if plain && !ir.is_empty() { sasl::plain_user(ir) } else { None };
            self.start(Attempt::new(here, user), tag, here.out);
            self.cont = Some(if plain && ir.is_empty() { Cont::Plain } else { Cont::Sasl });
            return After::Lines;
        }
        if is(b"STARTTLS") {
            self.starttls = Some(tag.to_vec());
        }
        self.literal(line, Cont::Other)
    }
}

#[cfg(test)]
mod tests;
