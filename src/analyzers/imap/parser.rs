//! IMAP lines: tags, commands, astrings, literals, and which part of a client line is secret.

use crate::analyzers::lines::Verdict;

/// IMAP4rev1/rev2 commands and common extensions whose arguments carry no secret.
const CLEAR: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "IDLE",
    "ENABLE",
    "ID",
    "NAMESPACE",
    "GETQUOTA",
    "GETQUOTAROOT",
    "SETQUOTA",
    "GETACL",
    "MYRIGHTS",
    "XLIST",
    "COMPRESS",
    "NOTIFY",
    "SORT",
    "THREAD",
];

/// The first space-separated word and the rest.
pub fn word(l: &[u8]) -> (&[u8], &[u8]) {
    match l.iter().position(|b| *b == b' ') {
        Some(i) => (&l[..i], &l[i + 1..]),
        None => (l, &[]),
    }
}

/// The command name for the diff (upper case): letters only, at most 12.
pub fn verb(cmd: &[u8]) -> Option<String> {
    (!cmd.is_empty() && cmd.len() <= 12 && cmd.iter().all(u8::is_ascii_alphabetic))
        .then(|| String::from_utf8_lossy(cmd).to_ascii_uppercase())
}

/// An astring at the start of `s`: quoted (quotes removed, escapes left as they are) or an atom.
/// None for a literal (its bytes follow the line).
pub fn astring(s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"\"") {
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                b'\\' => i += 2,
                b'"' => return Some(&rest[..i]),
                _ => i += 1,
            }
        }
        None
    } else {
        let end = s.iter().position(|b| *b == b' ').unwrap_or(s.len());
        (end > 0 && !s.starts_with(b"{")).then(|| &s[..end])
    }
}

/// The length of a literal announced at the end of a line (`{n}` or `{n+}`).
pub fn literal(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Which part of a client command line (`tag command args`) is secret.
pub fn classify(line: &[u8], complete: bool) -> Verdict {
    if line.eq_ignore_ascii_case(b"DONE") && complete {
        return Verdict::CLEAR; // the end of IDLE, untagged
    }
    let Some(t) = line.iter().position(|b| *b == b' ') else {
        return if complete { Verdict::secret_from(0) } else { Verdict::UNDECIDED };
    };
    let rest = &line[t + 1..];
    let (cmd, cmd_end) = match rest.iter().position(|b| *b == b' ') {
        Some(c) => (&rest[..c], Some(t + 1 + c)),
        None if complete => (rest, None),
        None => return Verdict::UNDECIDED,
    };
    let is = |v: &[u8]| cmd.eq_ignore_ascii_case(v);
    if is(b"LOGIN") {
        return match cmd_end {
            Some(e) => Verdict::secret_from(e + 1),
            None => Verdict::CLEAR,
        };
    }
    if is(b"AUTHENTICATE") {
        // AUTHENTICATE mechanism [initial-response]
        let Some(e) = cmd_end else { return Verdict::CLEAR };
        return match line[e + 1..].iter().position(|b| *b == b' ') {
            Some(k) => Verdict::secret_from(e + 1 + k + 1),
            None if complete => Verdict::CLEAR,
            None => Verdict::CLEAR.decided_to(line.len()),
        };
    }
    if CLEAR.iter().any(|v| is(v.as_bytes())) {
        Verdict::CLEAR
    } else {
        Verdict::secret_from(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn astrings_and_literals() {
        assert_eq!(astring(b"\"al\\\"ice\" pw"), Some(&b"al\\\"ice"[..]));
        assert_eq!(astring(b"bob pw"), Some(&b"bob"[..]));
        assert_eq!(astring(b"{5}"), None);
        assert_eq!(literal(b"a1 LOGIN {5}"), Some(5));
        assert_eq!(literal(b"a1 LOGIN bob {12+}"), Some(12));
        assert_eq!(literal(b"a1 SELECT {x}"), None);
        assert_eq!(literal(b"a1 NOOP"), None);
    }

    #[test]
    fn login_arguments_are_secret_select_is_not() {
        let l = b"a1 LOGIN bob secret";
        let v = classify(l, true);
        assert_eq!(v.spans().collect::<Vec<_>>(), [(9, usize::MAX)]);
        assert!(classify(b"a2 SELECT INBOX", true).is_clear());
        assert_eq!(classify(b"a1 LOG", false), Verdict::UNDECIDED);
        assert_eq!(classify(b"a3 XYZZY foo", true).spans().collect::<Vec<_>>(), [(0, usize::MAX)]);
    }
}
