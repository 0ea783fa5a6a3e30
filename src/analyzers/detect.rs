//! Which analyzer a TCP flow gets, from its content (Zeek's dynamic protocol detection,
//! Suricata's probing parsers): the first bytes of a direction say the protocol and whether
//! their sender is the client or the server. Ports are only a hint ([`port_hint`]): they decide
//! when the connection's start was not seen (a capture that began while it was open) or when its
//! first bytes carry no signature.
//!
//! The probes are pure functions of a payload's first bytes, cheapest rejections first: they run
//! on a flow's first payloads only (and on every payload of a flow seen mid-stream until one
//! matches).

/// The analyzers a TCP flow can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Pop3,
    Imap,
    Smtp,
    Ftp,
    Telnet,
    Http,
    Tls,
    Pgsql,
    Mysql,
    Tds,
    Oracle,
    Kerberos,
    Dns,
    Ldap,
    Smb,
    Ssh,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Pop3 => "pop3",
            Proto::Imap => "imap",
            Proto::Smtp => "smtp",
            Proto::Ftp => "ftp",
            Proto::Telnet => "telnet",
            Proto::Http => "http",
            Proto::Tls => "tls",
            Proto::Pgsql => "postgresql",
            Proto::Mysql => "mysql",
            Proto::Tds => "tds",
            Proto::Oracle => "oracle",
            Proto::Kerberos => "kerberos",
            Proto::Dns => "dns",
            Proto::Ldap => "ldap",
            Proto::Smb => "smb",
            Proto::Ssh => "ssh",
        }
    }

    /// Protocols whose stream may start with bytes no probe knows (a database's server talking
    /// first with a framing shared by others, DNS's bare length): their port decides even at a
    /// connection's start.
    pub fn hint_only(self) -> bool {
        matches!(self, Proto::Pgsql | Proto::Mysql | Proto::Tds | Proto::Oracle | Proto::Dns | Proto::Ssh)
    }
}

/// Who sent the bytes a probe recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// The protocol, and the sender's role when the bytes tell it.
    Is(Proto, Option<Role>),
    /// A `220` greeting that does not say whether it is SMTP or FTP.
    Greeting220,
}

/// The protocol a well-known server port suggests, and whether that port is the destination.
pub fn port_hint(sport: u16, dport: u16) -> Option<(Proto, bool)> {
    let of = |p: u16| {
        Some(match p {
            110 => Proto::Pop3,
            143 => Proto::Imap,
            25 | 587 => Proto::Smtp,
            21 => Proto::Ftp,
            23 => Proto::Telnet,
            80 | 8080 | 8000 | 8008 | 8088 | 3128 | 5985 => Proto::Http,
            443 | 465 | 636 | 853 | 990 | 993 | 995 | 8443 => Proto::Tls,
            5432 => Proto::Pgsql,
            3306 => Proto::Mysql,
            1433 => Proto::Tds,
            1521 => Proto::Oracle,
            88 => Proto::Kerberos,
            53 => Proto::Dns,
            389 | 3268 => Proto::Ldap,
            445 | 139 => Proto::Smb,
            22 => Proto::Ssh,
            _ => return None,
        })
    };
    match (of(dport), of(sport)) {
        (Some(p), _) => Some((p, true)),
        (None, Some(p)) => Some((p, false)),
        _ => None,
    }
}

/// The first word of a line (up to a space or the line end), and the rest.
fn first_word(p: &[u8]) -> (&[u8], &[u8]) {
    let end = p.iter().take(32).position(|b| matches!(b, b' ' | b'\r' | b'\n')).unwrap_or(p.len().min(32));
    (&p[..end], &p[end..])
}

/// What a payload at the start of a direction (or of a segment, mid-stream) is.
pub fn probe(p: &[u8]) -> Option<Found> {
    let &b0 = p.first()?;
    let client = |proto| Some(Found::Is(proto, Some(Role::Client)));
    let server = |proto| Some(Found::Is(proto, Some(Role::Server)));
    match b0 {
        b'+' if p.starts_with(b"+OK") => return server(Proto::Pop3),
        b'*' if p.starts_with(b"* OK") || p.starts_with(b"* PREAUTH") => return server(Proto::Imap),
        b'2' if p.starts_with(b"220") && matches!(p.get(3), Some(b' ' | b'-')) => return Some(greeting_220(p)),
        b'H' if p.starts_with(b"HTTP/1.")
            && (super::http::message::first_line(p).is_some() || super::http::message::status_start(p).is_some()) =>
        {
            return server(Proto::Http)
        }
        b'S' if p.starts_with(b"SSH-") => return Some(Found::Is(Proto::Ssh, None)),
        0x16 if tls_hello(p) == Some(1) => return client(Proto::Tls),
        0x16 if tls_hello(p) == Some(2) => return server(Proto::Tls),
        0xff if p.len() >= 2 && (0xfb..=0xfe).contains(&p[1]) => return Some(Found::Is(Proto::Telnet, None)),
        _ => {}
    }
    if super::http::message::starts_request(p) {
        return client(Proto::Http);
    }
    if let Some(proto) = text_command(p) {
        return client(proto);
    }
    binary(p)
}

/// A `220 host ESMTP …` or `220 (vsFTPd 3.0.3)` greeting.
fn greeting_220(p: &[u8]) -> Found {
    let line = &p[..p.iter().take(512).position(|b| *b == b'\n').unwrap_or(p.len().min(512))];
    let has = |w: &[u8]| line.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
    if has(b"SMTP") || has(b"mail") || has(b"Postfix") || has(b"Exim") || has(b"Sendmail") {
        Found::Is(Proto::Smtp, Some(Role::Server))
    } else if has(b"FTP") {
        Found::Is(Proto::Ftp, Some(Role::Server))
    } else {
        Found::Greeting220
    }
}

/// The client's first line after an undecided `220` greeting: SMTP or FTP (the port's choice,
/// else SMTP, whose analyzer masks what it does not know).
pub fn after_220(p: &[u8], hint: Option<Proto>) -> Found {
    let (w, _) = first_word(p);
    let is = |v: &[u8]| w.eq_ignore_ascii_case(v);
    let proto = if is(b"EHLO") || is(b"HELO") || is(b"MAIL") || is(b"STARTTLS") {
        Proto::Smtp
    } else if is(b"USER") || is(b"PASS") || is(b"SYST") || is(b"FEAT") || is(b"OPTS") || is(b"PBSZ") {
        Proto::Ftp
    } else {
        match hint {
            Some(p @ (Proto::Smtp | Proto::Ftp)) => p,
            _ => Proto::Smtp,
        }
    };
    Found::Is(proto, Some(Role::Client))
}

/// A client command of the text login protocols, for a flow seen mid-stream (or a client that
/// speaks first): POP3, IMAP (tagged), SMTP, FTP.
fn text_command(p: &[u8]) -> Option<Proto> {
    if !p[0].is_ascii_alphanumeric() {
        return None;
    }
    let (w, rest) = first_word(p);
    let is = |v: &[u8]| w.eq_ignore_ascii_case(v);
    if is(b"USER") || is(b"PASS") || is(b"APOP") || is(b"STAT") || is(b"CAPA") || is(b"STLS") || is(b"UIDL") {
        return Some(Proto::Pop3);
    }
    if is(b"EHLO") || is(b"HELO") {
        return Some(Proto::Smtp);
    }
    if is(b"AUTH") {
        return Some(Proto::Smtp);
    }
    if is(b"SYST") || is(b"FEAT") || is(b"PASV") || is(b"EPSV") {
        return Some(Proto::Ftp);
    }
    // IMAP: a tag, then a command.
    let (cmd, _) = first_word(rest.strip_prefix(b" ")?);
    let is = |v: &[u8]| cmd.eq_ignore_ascii_case(v);
    if w.iter().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(b))
        && (is(b"LOGIN") || is(b"AUTHENTICATE") || is(b"CAPABILITY") || is(b"STARTTLS") || is(b"SELECT"))
    {
        return Some(Proto::Imap);
    }
    None
}

/// The handshake type of a TLS record that starts `p` (1 ClientHello, 2 ServerHello).
pub fn tls_hello(p: &[u8]) -> Option<u8> {
    (p.len() >= 6 && p[0] == 0x16 && p[1] == 3 && p[2] <= 4).then(|| p[5])
}

/// Binary protocols recognised by their first message.
fn binary(p: &[u8]) -> Option<Found> {
    let client = |proto| Some(Found::Is(proto, Some(Role::Client)));
    let server = |proto| Some(Found::Is(proto, Some(Role::Server)));
    let be32 = |i: usize| p.get(i..i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    // PostgreSQL: SSLRequest / GSSENCRequest / CancelRequest (length 8 or 16 and a magic code),
    // or a StartupMessage of protocol 3.0.
    if let (Some(len), Some(code)) = (be32(0), be32(4)) {
        if (len == 8 && (code == 80_877_103 || code == 80_877_104))
            || (len == 16 && code == 80_877_102)
            || ((9..=10_000).contains(&len) && code == 0x0003_0000)
        {
            return client(Proto::Pgsql);
        }
    }
    // Kerberos over TCP: a record mark, then an AS-REQ or TGS-REQ.
    if let Some(len) = be32(0) {
        if p.len() > 4 && matches!(p[4], 0x6a | 0x6c) && (len as usize) < (1 << 20) && len > 16 {
            return client(Proto::Kerberos);
        }
    }
    // MySQL/MariaDB server greeting: 3-byte length, sequence 0, protocol 10, a version text.
    if p.len() >= 6 && p[3] == 0 && p[4] == 10 && p[5].is_ascii_digit() {
        let len = u32::from_le_bytes([p[0], p[1], p[2], 0]) as usize;
        if (20..=1024).contains(&len) {
            return server(Proto::Mysql);
        }
    }
    // TDS: PRELOGIN (0x12) or LOGIN7 (0x10), status EOM, a length that fits.
    if p.len() >= 8 && matches!(p[0], 0x12 | 0x10) && p[1] & !0x09 == 0 {
        let len = u16::from_be_bytes([p[2], p[3]]) as usize;
        if (8..=32_768).contains(&len) && p[6] <= 1 {
            return client(Proto::Tds);
        }
    }
    // Oracle TNS CONNECT: length, checksum 0, type 1.
    if p.len() >= 10 && p[2] == 0 && p[3] == 0 && p[4] == 1 && p[5] == 0 {
        let len = u16::from_be_bytes([p[0], p[1]]) as usize;
        if (34..=8_192).contains(&len) {
            return client(Proto::Oracle);
        }
    }
    // SMB over NetBIOS session service (or direct TCP): a session message with an SMB header.
    if p.len() >= 8 && p[0] == 0 && (&p[4..8] == b"\xfeSMB" || &p[4..8] == b"\xffSMB") {
        return Some(Found::Is(Proto::Smb, None));
    }
    // LDAP: SEQUENCE { messageID INTEGER, BindRequest / SearchRequest / ExtendedRequest }.
    if super::ldap::is_request(p) {
        return client(Proto::Ldap);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(p: &[u8]) -> Option<(Proto, Option<Role>)> {
        match probe(p)? {
            Found::Is(proto, r) => Some((proto, r)),
            Found::Greeting220 => None,
        }
    }

    #[test]
    fn banners_and_requests_name_their_protocol_and_side() {
        use Role::*;
        assert_eq!(is(b"+OK Dovecot ready.\r\n"), Some((Proto::Pop3, Some(Server))));
        assert_eq!(is(b"* OK [CAPABILITY IMAP4rev1] ready\r\n"), Some((Proto::Imap, Some(Server))));
        assert_eq!(is(b"220 mail.branch.lan ESMTP Postfix\r\n"), Some((Proto::Smtp, Some(Server))));
        assert_eq!(is(b"220 (vsFTPd 3.0.3)\r\n"), Some((Proto::Ftp, Some(Server))));
        assert_eq!(probe(b"220 ready\r\n"), Some(Found::Greeting220));
        assert_eq!(after_220(b"EHLO x\r\n", None), Found::Is(Proto::Smtp, Some(Client)));
        assert_eq!(after_220(b"USER bob\r\n", None), Found::Is(Proto::Ftp, Some(Client)));
        assert_eq!(is(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Some((Proto::Http, Some(Client))));
        assert_eq!(is(b"HTTP/1.1 200 OK\r\n\r\n"), Some((Proto::Http, Some(Server))));
        assert_eq!(is(b"a1 LOGIN bob secret\r\n"), Some((Proto::Imap, Some(Client))));
        assert_eq!(is(b"PASS secret\r\n"), Some((Proto::Pop3, Some(Client))));
        assert_eq!(is(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"), Some((Proto::Pgsql, Some(Client))));
        assert_eq!(is(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03"), Some((Proto::Tls, Some(Client))));
        assert_eq!(is(b"\x4a\x00\x00\x00\x0a10.11.6-MariaDB\x00"), Some((Proto::Mysql, Some(Server))));
        assert_eq!(is(b"\xff\xfd\x18\xff\xfd\x20"), Some((Proto::Telnet, None)));
        assert_eq!(is(b"random bytes"), None);
        assert_eq!(is(b""), None);
        assert_eq!(port_hint(40000, 110), Some((Proto::Pop3, true)));
        assert_eq!(port_hint(5432, 40000), Some((Proto::Pgsql, false)));
    }

    #[test]
    fn probes_take_any_bytes() {
        let mut x: u32 = 7;
        for len in 0..64 {
            for _ in 0..200 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (x >> 16) as u8
                    })
                    .collect();
                let _ = probe(&v);
                let _ = after_220(&v, None);
            }
        }
    }
}
