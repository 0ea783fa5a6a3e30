//! POP3 lines: commands, which part of a client line is secret, and the `pop.request.*` fields.

use crate::analyzers::lines::Verdict;
use crate::analyzers::{user_name, PopFrame, REDACTED};
use crate::identity::name_from_wire;

/// POP3 commands (RFC 1939, 2449, 5034, 6856, 2595); anything else on a client line is not
/// POP3 and is treated as a secret.
const VERBS: &[&str] = &[
    "USER", "PASS", "APOP", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT", "TOP", "UIDL", "CAPA", "STLS",
    "AUTH", "UTF8", "LANG",
];

/// Splits a line into its first word and the rest (after one space).
pub fn command(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|b| *b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}

fn known(cmd: &[u8]) -> bool {
    VERBS.iter().any(|v| cmd.eq_ignore_ascii_case(v.as_bytes()))
}

/// The command's name for the diff's exchanges (upper case), when it is one.
pub fn verb(cmd: &[u8]) -> Option<String> {
    known(cmd).then(|| String::from_utf8_lossy(cmd).to_ascii_uppercase())
}

/// Which part of a client line is secret.
pub fn classify(line: &[u8], complete: bool) -> Verdict {
    let Some(sp) = line.iter().position(|b| *b == b' ') else {
        // The command word is not complete yet; complete, an argument-less command is clear
        // when it is POP3's (`STAT`), secret otherwise (a SASL response on a line of its own).
        return match complete {
            true if known(line) => Verdict::CLEAR,
            true => Verdict::secret_from(0),
            false => Verdict::UNDECIDED,
        };
    };
    let cmd = &line[..sp];
    let is = |v: &[u8]| cmd.eq_ignore_ascii_case(v);
    if is(b"PASS") {
        return Verdict::secret_from(sp + 1);
    }
    if is(b"APOP") {
        // APOP name digest: the digest is crackable offline.
        return match line[sp + 1..].iter().position(|b| *b == b' ') {
            Some(k) => Verdict::secret_from(sp + 1 + k + 1),
            None if complete => Verdict::CLEAR,
            None => Verdict::CLEAR.decided_to(line.len()),
        };
    }
    if is(b"AUTH") {
        // AUTH mechanism [initial-response]: the response is a credential.
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

/// `pop.request.*` of a client segment: the first line's command and argument. The argument of
/// PASS (and APOP's digest) is left out: passwords are never kept, not even for a filter, since a
/// counter grouped by the field would store it.
pub fn frame_fields(payload: &[u8], from_client: bool) -> PopFrame {
    if !from_client {
        return PopFrame::default();
    }
    let line = payload.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (cmd, arg) = match line.iter().position(|b| *b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let secret = cmd.eq_ignore_ascii_case(b"PASS") || cmd.eq_ignore_ascii_case(b"APOP");
    if !cmd.is_empty() && !known(cmd) {
        // Not a POP3 command: a SASL response on its own line, or the tail of a split line. The
        // field is present (as in Wireshark) but its value is never the wire's.
        return PopFrame { command: Some(REDACTED.to_string()), parameter: None };
    }
    // AUTH keeps its mechanism; an initial response after it is a credential.
    if let Some(a) = arg.filter(|_| cmd.eq_ignore_ascii_case(b"AUTH")) {
        if let Some(i) = a.iter().position(|b| *b == b' ') {
            return PopFrame {
                command: Some(name_from_wire(cmd)),
                parameter: Some(format!("{} {REDACTED}", name_from_wire(&a[..i]))),
            };
        }
    }
    PopFrame {
        command: (!cmd.is_empty()).then(|| name_from_wire(cmd)),
        parameter: arg.filter(|a| !a.is_empty() && !secret).and_then(user_name),
    }
}
