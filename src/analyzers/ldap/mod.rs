//! LDAP (RFC 4511) over TCP: bind logins (the bind DN, with the BindResponse's result) and the
//! credentials of BindRequests.
//!
//! Credentials: a simple bind's password, a SASL bind's credentials (DIGEST-MD5 responses,
//! NTLM messages of GSS-SPNEGO, Kerberos tickets of GSSAPI), and whatever any other
//! authentication choice carries (Microsoft's "sicily" NTLM binds). Their place is known from the
//! message's BER header, so they are masked in whatever segment they come. Client bytes whose
//! framing is lost (a hole) are masked until a segment starts a message again. After StartTLS
//! succeeds nothing more is read.

use super::frames::{Event, Framing, MsgReader};
use super::secrets::Secrets;
use super::{user_name, AppFacts, Attempt, Here, TcpSeg};
use crate::identity::{Outcome, Source};

/// Bytes of a client message kept to find a bind's credentials (a DN is short).
const CLIENT_HEAD: usize = 1024;
/// Bytes of a server message kept to read a result code.
const SERVER_HEAD: usize = 64;
const START_TLS: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// A BER tag and length at `i`: (tag, content start, content length).
fn tlv(p: &[u8], i: usize) -> Option<(u8, usize, usize)> {
    let tag = *p.get(i)?;
    let l0 = *p.get(i + 1)? as usize;
    if l0 < 0x80 {
        return Some((tag, i + 2, l0));
    }
    let n = l0 & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for k in 0..n {
        len = (len << 8) | *p.get(i + 2 + k)? as usize;
    }
    Some((tag, i + 2 + n, len))
}

struct Ber;

impl Framing for Ber {
    fn total_len(head: &[u8]) -> Option<Option<u64>> {
        if head.is_empty() {
            return None;
        }
        if head[0] != 0x30 {
            return Some(None);
        }
        match tlv(head, 0) {
            Some((_, start, len)) if len <= 1 << 24 => Some(Some((start + len) as u64)),
            Some(_) => Some(None),
            None if head.len() < 6 => None,
            None => Some(None),
        }
    }
}

/// Whether `p` starts an LDAP request: SEQUENCE { INTEGER messageID, a request operation }.
pub fn is_request(p: &[u8]) -> bool {
    let Some((0x30, c, _)) = tlv(p, 0) else { return false };
    let Some((0x02, id, idlen)) = tlv(p, c) else { return false };
    (1..=4).contains(&idlen)
        && p.get(id + idlen)
            .is_some_and(|op| matches!(op, 0x60 | 0x63 | 0x77 | 0x42 | 0x66 | 0x68 | 0x6c | 0x4a | 0x50))
}

/// The operation of a message: (tag, content start, content length).
fn op(m: &[u8]) -> Option<(u8, usize, usize)> {
    let (_, c, _) = tlv(m, 0)?;
    let (_, id, idlen) = tlv(m, c)?;
    tlv(m, id + idlen)
}

/// A BindRequest: its DN, and where its credentials are (offsets in the message; the end may
/// lie beyond what is in).
type Bind<'a> = (Option<&'a [u8]>, Option<(usize, usize)>);

fn bind(m: &[u8]) -> Option<Bind<'_>> {
    let (0x60, b, _) = op(m)? else { return None };
    let (0x02, v, vl) = tlv(m, b)? else { return None };
    let (0x04, n, nl) = tlv(m, v + vl)? else { return None };
    let dn = m.get(n..n + nl);
    let auth = tlv(m, n + nl).map(|(tag, a, al)| match tag {
        // sasl [3] SEQUENCE { mechanism, credentials }: all after the mechanism
        0xa3 => {
            let after_mech = match tlv(m, a) {
                Some((0x04, mc, ml)) => mc + ml,
                _ => a,
            };
            (after_mech, a + al)
        }
        // simple [0] OCTET STRING: the password. Any other choice is secret whole too:
        // Microsoft's sicilyNegotiate [10] and sicilyResponse [11] carry NTLM messages (the
        // response is crackable offline), the old krbv42 choices [1] [2] Kerberos tickets.
        _ => (a, a + al),
    });
    Some((dn, auth))
}

#[derive(Debug)]
pub struct Ldap {
    client: MsgReader,
    server: MsgReader,
    /// The secret of the client message being read has been recorded.
    recorded: bool,
    attempt: Option<Attempt>,
    start_tls: bool,
    tls: bool,
}

impl Default for Ldap {
    fn default() -> Self {
        Ldap::new([true, true])
    }
}

impl Ldap {
    pub fn new(fresh: [bool; 2]) -> Ldap {
        Ldap {
            client: MsgReader::new(CLIENT_HEAD, fresh[0]),
            server: MsgReader::new(SERVER_HEAD, fresh[1]),
            recorded: false,
            attempt: None,
            start_tls: false,
            tls: false,
        }
    }

    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets, here: &mut Here<'_>) -> bool {
        if self.tls {
            return false;
        }
        if s.from_client {
            let (recorded, attempt, start_tls) = (&mut self.recorded, &mut self.attempt, &mut self.start_tls);
            self.client.feed::<Ber>(s.seg, &mut |e| match e {
                Event::Lost { seq, len } => secrets.add(seq, seq.wrapping_add(len as u32)),
                Event::Head { start, head } => {
                    if !*recorded {
                        if let Some((_, Some((a, b)))) = bind(head) {
                            secrets.add(start.wrapping_add(a as u32), start.wrapping_add(b as u32));
                            *recorded = true;
                        }
                    }
                }
                Event::End { head, .. } => {
                    *recorded = false;
                    if let Some((dn, auth)) = bind(head) {
                        let user = dn.and_then(user_name);
                        // An anonymous bind names nobody.
                        if user.is_some() || auth.is_some_and(|(a, b)| b > a) {
                            if let Some(old) = attempt.replace(Attempt::new(here, user)) {
                                old.report(Source::Ldap, Outcome::Unknown, &mut here.out.logins);
                            }
                        }
                    } else if let Some((0x77, c, l)) = op(head) {
                        *start_tls |=
                            head.get(c..c + l).is_some_and(|x| x.windows(START_TLS.len()).any(|w| w == START_TLS));
                    }
                }
            });
        } else {
            let (attempt, start_tls, tls) = (&mut self.attempt, &mut self.start_tls, &mut self.tls);
            self.server.feed::<Ber>(s.seg, &mut |e| {
                let Event::End { head, .. } = e else { return };
                let Some((tag, c, _)) = op(head) else { return };
                let result = match tlv(head, c) {
                    Some((0x0a, r, 1)) => head.get(r).copied(),
                    _ => None,
                };
                match (tag, result) {
                    (0x61, Some(r)) => {
                        if let Some(a) = attempt.take() {
                            let v = match r {
                                0 => Outcome::Success,
                                // saslBindInProgress: the dialogue goes on.
                                14 => {
                                    *attempt = Some(a);
                                    return;
                                }
                                _ => Outcome::Failure,
                            };
                            a.report(Source::Ldap, v, &mut here.out.logins);
                        }
                    }
                    (0x78, Some(r)) if *start_tls => {
                        *start_tls = false;
                        *tls = r == 0;
                    }
                    _ => {}
                }
            });
        }
        false
    }

    pub fn end(&mut self, f: &mut AppFacts) {
        if let Some(a) = self.attempt.take() {
            a.report(Source::Ldap, Outcome::Unknown, &mut f.logins);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simple bind of `cn=alice` with password `s3cret`, message id 1.
    pub fn simple_bind() -> Vec<u8> {
        bind_with(0x80, b"s3cret")
    }

    /// A bind of `cn=alice` whose authentication choice is `tag` with content `pw`.
    fn bind_with(tag: u8, pw: &[u8]) -> Vec<u8> {
        let dn = b"cn=alice,dc=branch,dc=lan";
        let mut op = vec![0x02, 0x01, 0x03, 0x04, dn.len() as u8];
        op.extend_from_slice(dn);
        op.extend_from_slice(&[tag, pw.len() as u8]);
        op.extend_from_slice(pw);
        let mut m = vec![0x02, 0x01, 0x01, 0x60, op.len() as u8];
        m.extend(op);
        let mut out = vec![0x30, m.len() as u8];
        out.extend(m);
        out
    }

    #[test]
    fn simple_bind_password_is_found() {
        let m = simple_bind();
        assert!(is_request(&m));
        let (dn, auth) = bind(&m).unwrap();
        assert_eq!(dn, Some(&b"cn=alice,dc=branch,dc=lan"[..]));
        let (a, b) = auth.unwrap();
        assert_eq!(&m[a..b], b"s3cret");
        // Cut anywhere: no panic, and once the password's header is in, its place is known.
        for cut in 0..m.len() {
            if let Some((_, Some((a, b)))) = bind(&m[..cut]) {
                assert_eq!((a, b), (m.len() - 6, m.len()));
            }
        }
    }

    #[test]
    fn other_authentication_choices_are_secret_whole() {
        // sicilyResponse [11]: an NTLMSSP AUTHENTICATE message (Active Directory's NTLM bind).
        let ntlm = b"NTLMSSP\0\x03\0\0\0 lm and nt responses";
        let m = bind_with(0x8b, ntlm);
        let (_, auth) = bind(&m).unwrap();
        let (a, b) = auth.unwrap();
        assert_eq!(&m[a..b], &ntlm[..]);
    }
}
