//! FTP control connections (RFC 959, 2228, 4217): `USER`/`PASS` logins with the `230`/`530`
//! verdict, and command exchanges (verb → reply code) for the diff.
//!
//! Credentials: the arguments of `PASS` and `ACCT`; a client line whose command is not FTP's is
//! masked whole. After `AUTH TLS` is accepted (234) nothing more is read. Data connections are
//! flows of their own and are not FTP's to read.

use std::collections::VecDeque;

use super::lines::{After, Dialog, LineHandler, Verdict};
use super::{user_name, AppFacts, Attempt, Here, Request};
use crate::identity::{Outcome, Source};

const MAX_PENDING: usize = 8;

/// FTP commands (RFC 959 and extensions) whose arguments are not secret.
const CLEAR: &[&str] = &[
    "USER", "CWD", "CDUP", "SMNT", "REIN", "QUIT", "PORT", "PASV", "TYPE", "STRU", "MODE", "RETR", "STOR", "STOU",
    "APPE", "ALLO", "REST", "RNFR", "RNTO", "ABOR", "DELE", "RMD", "MKD", "PWD", "LIST", "NLST", "SITE", "SYST",
    "STAT", "HELP", "NOOP", "FEAT", "OPTS", "AUTH", "PBSZ", "PROT", "CCC", "EPRT", "EPSV", "LPRT", "LPSV", "MDTM",
    "SIZE", "MLST", "MLSD", "LANG", "HOST", "XCWD", "XCUP", "XPWD", "XMKD", "XRMD", "CLNT", "MFMT",
];

#[derive(Debug, Default)]
pub struct Handler {
    attempt: Option<Attempt>,
    cmds: VecDeque<Request>,
    /// AUTH TLS/SSL was sent: 234 turns the connection into TLS.
    auth_tls: bool,
    tls: bool,
}

/// Both directions of a FTP connection.
pub type Ftp = Dialog<Handler>;

fn word(l: &[u8]) -> (&[u8], &[u8]) {
    match l.iter().position(|b| *b == b' ') {
        Some(i) => (&l[..i], &l[i + 1..]),
        None => (l, &[]),
    }
}

fn known(cmd: &[u8]) -> bool {
    CLEAR.iter().chain(&["PASS", "ACCT"]).any(|v| cmd.eq_ignore_ascii_case(v.as_bytes()))
}

impl LineHandler for Handler {
    fn tls(&self) -> bool {
        self.tls
    }

    fn end(&mut self, f: &mut AppFacts) {
        if let Some(a) = self.attempt.take() {
            a.report(Source::Ftp, Outcome::Unknown, &mut f.logins);
        }
    }

    fn classify(&self, line: &[u8], complete: bool) -> Verdict {
        let Some(sp) = line.iter().position(|b| *b == b' ') else {
            return match complete {
                true if known(line) => Verdict::CLEAR,
                true => Verdict::secret_from(0),
                false => Verdict::UNDECIDED,
            };
        };
        let cmd = &line[..sp];
        if cmd.eq_ignore_ascii_case(b"PASS") || cmd.eq_ignore_ascii_case(b"ACCT") {
            Verdict::secret_from(sp + 1)
        } else if known(cmd) {
            Verdict::CLEAR
        } else {
            Verdict::secret_from(0)
        }
    }

    fn line(&mut self, line: &[u8], from_client: bool, here: &mut Here<'_>) -> After {
        if from_client {
            let (cmd, arg) = word(line);
            if known(cmd) && here.exchanges {
                if self.cmds.len() == MAX_PENDING {
                    self.cmds.pop_front();
                }
                self.cmds.push_back(Request::new(String::from_utf8_lossy(cmd).to_ascii_uppercase(), here));
            }
            let is = |v: &[u8]| cmd.eq_ignore_ascii_case(v);
            if is(b"USER") {
                if let Some(u) = user_name(arg) {
                    if let Some(old) = self.attempt.replace(Attempt::new(here, Some(u))) {
                        old.report(Source::Ftp, Outcome::Unknown, &mut here.out.logins);
                    }
                }
            } else if is(b"AUTH") {
                self.auth_tls = true;
            }
            return After::Lines;
        }
        // The last line of a reply is "NNN text"; "NNN-" continues it.
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) || line.get(3) == Some(&b'-') {
            return After::Lines;
        }
        let code = &line[..3];
        // A 1xx preliminary reply is followed by the command's final one.
        if code[0] != b'1' {
            if let Some(req) = self.cmds.pop_front() {
                let good = matches!(code[0], b'1' | b'2' | b'3');
                here.exchange("ftp", &req, String::from_utf8_lossy(code).into_owned(), good, true);
            }
        }
        let verdict = match code {
            b"230" => Some(Outcome::Success),
            b"530" => Some(Outcome::Failure),
            _ => None,
        };
        if let Some(v) = verdict {
            if let Some(a) = self.attempt.take() {
                a.report(Source::Ftp, v, &mut here.out.logins);
            }
        }
        if std::mem::take(&mut self.auth_tls) && code == b"234" {
            self.tls = true;
            return After::Stop;
        }
        After::Lines
    }
}

#[cfg(test)]
mod tests;
