//! Kerberos (RFC 4120) with the `kerberos-parser` crate: the client name and realm of AS-REQ,
//! the outcome from the AS-REP or KRB-ERROR that answers it, and the client name of TGS-REP.
//! A TGS-REQ names its client in the encrypted authenticator, and in clear only where its
//! request body carries the optional `cname` (tshark's `kerberos.CNameString`): that name is
//! taken, so a ticket request seen alone still binds a user. Machine accounts (`NAME$`)
//! and `host/…` principals name hosts, not users. Over TCP, messages have a 4-byte record mark
//! (RFC 4120 §7.2.2) and are joined across segments ([`Join`], in the flow). Encrypted parts
//! are never looked into.
//!
//! Credentials: the cipher text of PA-ENC-TIMESTAMP (the client's timestamp encrypted with its
//! password's key: crackable offline). It is found by its DER shape ([`secret_ranges`]), also in
//! a message still incomplete, so its bytes are masked in whatever segment they come.
//!
//! AS requests wait for their answer in a table of their own (keyed by client and KDC, not by
//! flow): a client retries from a new port, and the KDC answers the last try.

use crate::bounded::LruMap;
use std::net::IpAddr;

use kerberos_parser::krb5::{KdcRep, KdcReq, KrbError, PrincipalName};
use kerberos_parser::krb5_parser;

use super::join::Join;
use super::secrets::Secrets;
use super::{Here, TcpSeg};
use crate::capture::mask::Masks;
use crate::decode::Decoded;
use crate::identity::{name_from_wire, IdentityFact, Outcome, Source};

/// What a message says about identities (owned: the parser's borrowed values do not outlive it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    AsReq {
        cname: Option<String>,
        realm: String,
    },
    /// A TGS-REQ whose request body names the client.
    TgsReq {
        cname: String,
        realm: String,
    },
    AsRep {
        cname: String,
        realm: String,
    },
    TgsRep {
        cname: String,
        realm: String,
    },
    Error {
        code: i32,
    },
    Other,
}

/// The `kerberos.*` filter fields of one message, as Wireshark shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KrbFields {
    /// `kerberos.msg_type`: the message, plus 14 for the AP-REQ inside a TGS-REQ.
    pub msg_types: Vec<u8>,
    /// `kerberos.CNameString`: the components of the client name.
    pub cname: Vec<String>,
    /// `kerberos.realm`: request-body realm, ticket realm(s), or the error's realm.
    pub realms: Vec<String>,
    /// `kerberos.crealm`
    pub crealm: Option<String>,
    /// `kerberos.error_code`
    pub error_code: Option<i32>,
}

fn principal(p: &PrincipalName) -> String {
    p.name_string.join("/")
}

fn from_req(r: KdcReq<'_>) -> (Msg, KrbFields) {
    let f = KrbFields {
        msg_types: vec![10],
        cname: r.req_body.cname.as_ref().map(|c| c.name_string.clone()).unwrap_or_default(),
        realms: vec![r.req_body.realm.0.clone()],
        ..Default::default()
    };
    (Msg::AsReq { cname: r.req_body.cname.as_ref().map(principal), realm: r.req_body.realm.0.clone() }, f)
}

fn from_rep(r: &KdcRep<'_>, tgs: bool) -> (Msg, KrbFields) {
    let (cname, realm) = (principal(&r.cname), r.crealm.0.clone());
    let f = KrbFields {
        msg_types: vec![if tgs { 13 } else { 11 }],
        cname: r.cname.name_string.clone(),
        realms: vec![r.ticket.realm.0.clone()],
        crealm: Some(r.crealm.0.clone()),
        error_code: None,
    };
    let m = if tgs { Msg::TgsRep { cname, realm } } else { Msg::AsRep { cname, realm } };
    (m, f)
}

fn from_err(e: &KrbError<'_>) -> (Msg, KrbFields) {
    let f = KrbFields {
        msg_types: vec![30],
        cname: e.cname.as_ref().map(|c| c.name_string.clone()).unwrap_or_default(),
        realms: vec![e.realm.0.clone()],
        crealm: e.crealm.as_ref().map(|r| r.0.clone()),
        error_code: Some(e.error_code.0),
    };
    (Msg::Error { code: e.error_code.0 }, f)
}

/// One Kerberos message (UDP payload, or a TCP record without its mark).
pub fn parse(b: &[u8]) -> Option<(Msg, KrbFields)> {
    let tag = *b.first()?;
    // APPLICATION tags: 10 AS-REQ, 11 AS-REP, 12 TGS-REQ, 13 TGS-REP, 30 KRB-ERROR.
    Some(match tag {
        0x6a => from_req(krb5_parser::parse_as_req(b).ok()?.1),
        0x6b => from_rep(&krb5_parser::parse_as_rep(b).ok()?.1, false),
        0x6c => {
            let r = krb5_parser::parse_tgs_req(b).ok()?.1;
            let mut f = KrbFields { msg_types: vec![12], realms: vec![], ..Default::default() };
            // PA-TGS-REQ (padata type 1) holds an AP-REQ with the ticket: its realm comes first.
            for pa in &r.padata {
                if pa.padata_type.0 == 1 {
                    f.msg_types.push(14);
                    #[allow(deprecated)] // = ApReq::from_der
                    if let Ok((_, ap)) = krb5_parser::parse_ap_req(pa.padata_value) {
                        f.realms.push(ap.ticket.realm.0.clone());
                    }
                }
            }
            f.realms.push(r.req_body.realm.0.clone());
            let realm = r.req_body.realm.0.clone();
            match &r.req_body.cname {
                Some(c) => {
                    f.cname = c.name_string.clone();
                    (Msg::TgsReq { cname: principal(c), realm }, f)
                }
                None => (Msg::Other, f),
            }
        }
        0x6d => from_rep(&krb5_parser::parse_tgs_rep(b).ok()?.1, true),
        // The crate marks its parse functions deprecated in favour of its FromDer impls; this one
        // is exactly `KrbError::from_der`.
        #[allow(deprecated)]
        0x7e => from_err(&krb5_parser::parse_krb_error(b).ok()?.1),
        _ => return None,
    })
}

/// The Kerberos message of a GSS-API token (RFC 4121 §4.1), bare or inside SPNEGO's
/// negotiation tokens (RFC 4178), as in SMB2 SESSION_SETUP blobs: the Kerberos mechanism's OID
/// (or Microsoft's variant of it) with a token id right after it — 01 00 AP-REQ, 02 00 AP-REP,
/// 03 00 KRB-ERROR — is the inner token (the OIDs of SPNEGO's mechanism list are followed by
/// another OID, never by a token id).
pub fn parse_gss(blob: &[u8]) -> Option<KrbFields> {
    const KRB5: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
    const MS_KRB5: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];
    let mut i = 0;
    while i + KRB5.len() + 3 <= blob.len() {
        let w = &blob[i..i + KRB5.len()];
        if w == KRB5 || w == MS_KRB5 {
            let tok = &blob[i + KRB5.len()..];
            let fields = match (tok[0], tok[1], tok[2]) {
                (1, 0, 0x6e) => {
                    #[allow(deprecated)] // = ApReq::from_der
                    let ap = krb5_parser::parse_ap_req(&tok[2..]).ok()?.1;
                    KrbFields { msg_types: vec![14], realms: vec![ap.ticket.realm.0.clone()], ..Default::default() }
                }
                (2, 0, 0x6f) => {
                    #[allow(deprecated)] // = ApRep::from_der
                    krb5_parser::parse_ap_rep(&tok[2..]).ok()?;
                    KrbFields { msg_types: vec![15], ..Default::default() }
                }
                #[allow(deprecated)]
                (3, 0, 0x7e) => from_err(&krb5_parser::parse_krb_error(&tok[2..]).ok()?.1).1,
                _ => {
                    i += 1;
                    continue;
                }
            };
            return Some(fields);
        }
        i += 1;
    }
    None
}

/// A TCP record: 4-byte length (high bit reserved) then the message, whole.
pub fn parse_tcp(b: &[u8]) -> Option<(Msg, KrbFields)> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) & 0x7fff_ffff;
    if b.len() != 4 + len as usize {
        return None;
    }
    parse(&b[4..])
}

/// Names that are hosts: `NAME$` machine accounts and `host/NAME` service principals.
fn host_of(cname: &str) -> Option<String> {
    if let Some(h) = cname.strip_suffix('$') {
        return Some(h.to_string());
    }
    cname.strip_prefix("host/").map(|h| h.split('/').next().unwrap_or(h).to_string())
}

/// RFC 4120 §7.5.9 names of the KDC errors an admin meets at login.
pub fn error_name(code: i32) -> Option<&'static str> {
    Some(match code {
        6 => "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        7 => "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        12 => "KDC_ERR_POLICY",
        14 => "KDC_ERR_ETYPE_NOSUPP",
        18 => "KDC_ERR_CLIENT_REVOKED",
        23 => "KDC_ERR_KEY_EXPIRED",
        24 => "KDC_ERR_PREAUTH_FAILED",
        25 => "KDC_ERR_PREAUTH_REQUIRED",
        37 => "KRB_AP_ERR_SKEW",
        52 => "KRB_ERR_RESPONSE_TOO_BIG",
        68 => "KDC_ERR_WRONG_REALM",
        _ => return None,
    })
}

/// Requests waiting for their answer, at most [`MAX_PENDING`].
pub const MAX_PENDING: usize = 256;

/// AS requests waiting for their answer, by (client, KDC); when full, the oldest is reported
/// without a verdict.
pub struct Kerberos {
    pending: LruMap<(IpAddr, IpAddr), IdentityFact>,
}

impl Default for Kerberos {
    fn default() -> Self {
        Kerberos { pending: LruMap::new(MAX_PENDING) }
    }
}

impl Kerberos {
    pub fn message(&mut self, msg: Msg, d: &Decoded<'_>, out: &mut Vec<IdentityFact>) {
        let Some(ip) = d.ip else { return };
        let fact = |cname: &str, realm: &str, mac: Option<[u8; 6]>, client: IpAddr, outcome: Outcome| {
            let (user, hostname) = match host_of(cname) {
                Some(h) => (None, Some(name_from_wire(h.as_bytes()))),
                None => (Some(name_from_wire(cname.as_bytes())), None),
            };
            IdentityFact {
                source: Source::Kerberos,
                mac,
                ip: Some(client),
                user,
                realm: Some(name_from_wire(realm.as_bytes())),
                hostname,
                outcome,
                error: None,
                ts: d.ts,
                frame: d.frame,
            }
        };
        match msg {
            Msg::AsReq { cname: Some(c), realm } | Msg::TgsReq { cname: c, realm } => {
                let f = fact(&c, &realm, d.eth_src, ip.src, Outcome::Unknown);
                // A retried request replaces the one before (the KDC answers the last).
                let conv = (ip.src, ip.dst);
                if let Some(old) = self.pending.remove(&conv) {
                    if old.user != f.user || old.hostname != f.hostname {
                        out.push(old);
                    }
                }
                if let Some((_, oldest)) = self.pending.insert(conv, f) {
                    out.push(oldest);
                }
            }
            Msg::AsRep { .. } | Msg::Error { .. } => {
                let conv = (ip.dst, ip.src);
                if !self.pending.contains_key(&conv) {
                    return;
                }
                match msg {
                    // Not verdicts: the KDC asks for pre-authentication (25, the usual first round)
                    // or for the request again over TCP (52, response too big for UDP); the
                    // retried request gets the verdict.
                    Msg::Error { code: 25 } | Msg::Error { code: 52 } => {}
                    Msg::Error { code } => {
                        let Some(mut f) = self.pending.remove(&conv) else { return };
                        f.outcome = Outcome::Failure;
                        f.error = Some(match error_name(code) {
                            Some(n) => format!("{n} ({code})"),
                            None => format!("error {code}"),
                        });
                        out.push(f);
                    }
                    _ => {
                        let Some(mut f) = self.pending.remove(&conv) else { return };
                        f.outcome = Outcome::Success;
                        out.push(f);
                    }
                }
            }
            Msg::TgsRep { cname, realm } => {
                let f = fact(&cname, &realm, d.eth_dst, ip.dst, Outcome::Success);
                // The request it answers, if it named its client, is this success.
                if let Some(req) = self.pending.remove(&(ip.dst, ip.src)) {
                    if req.user != f.user || req.hostname != f.hostname {
                        out.push(req);
                    }
                }
                out.push(f);
            }
            _ => {}
        }
    }

    /// End of input: requests without an answer.
    pub fn flush(&mut self, out: &mut Vec<IdentityFact>) {
        out.extend(self.pending.drain().map(|(_, f)| f));
    }
}

/// Kerberos over TCP: messages joined per direction, and the PA-ENC-TIMESTAMP of the client's.
#[derive(Debug, Default)]
pub struct KrbTcp {
    join: [Join; 2],
}

impl KrbTcp {
    pub fn segment(
        &mut self,
        s: TcpSeg<'_>,
        secrets: &mut Secrets,
        d: &Decoded<'_>,
        kerberos: &mut Kerberos,
        here: &mut Here<'_>,
    ) -> bool {
        // Retransmitted data goes to no dissector (Wireshark); the secrets recorded from the
        // original mask the copy.
        if s.retrans || s.seg.data.is_empty() {
            return false;
        }
        let j = &mut self.join[usize::from(!s.from_client)];
        let got = j.feed(s.seg.seq, s.seg.seg_len, s.seg.data, parse_tcp);
        if s.from_client {
            // The message so far (joined, or this segment alone): where its cipher lies.
            let (start, bytes) = j.pending().unwrap_or((s.seg.seq, s.seg.data));
            // (A message this segment completed was scanned with each earlier part: its ranges
            // reach into this one.)
            secret_ranges(bytes, &mut |a, b| secrets.add(start.wrapping_add(a as u32), start.wrapping_add(b as u32)));
        }
        if let Some((msg, fields)) = got {
            here.out.krb = Some(fields);
            kerberos.message(msg, d, &mut here.out.logins);
        }
        false
    }
}

/// DER length at `i`: (length, header bytes).
fn der_len(p: &[u8], i: usize) -> Option<(usize, usize)> {
    let b = *p.get(i)?;
    if b < 0x80 {
        return Some((b as usize, 1));
    }
    let n = (b & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut v = 0usize;
    for k in 0..n {
        v = (v << 8) | *p.get(i + 1 + k)? as usize;
    }
    Some((v, 1 + n))
}

/// The ranges of `p` holding PA-DATA of type 2 (PA-ENC-TIMESTAMP): `[1] INTEGER 2` then
/// `[2] OCTET STRING { EncryptedData }`, whose `cipher [2] OCTET STRING` is the secret (its
/// etype stays readable). Ranges may run past the end of `p` (a message still incomplete); an
/// EncryptedData that does not parse is secret whole.
pub fn secret_ranges(p: &[u8], out: &mut dyn FnMut(usize, usize)) {
    const TYPE2: [u8; 5] = [0xa1, 0x03, 0x02, 0x01, 0x02];
    let mut from = 0;
    while let Some(k) = memchr::memmem::find(&p[from..], &TYPE2) {
        let i = from + k;
        from = i + 1;
        if p.get(i + TYPE2.len()) != Some(&0xa2) {
            continue;
        }
        let at = i + TYPE2.len() + 1;
        let Some((_, h1)) = der_len(p, at) else { continue };
        let os = at + h1;
        match p.get(os) {
            Some(0x04) => {}
            Some(_) => continue,
            None => {
                // The rest has not come yet: all of it may be the secret.
                out(os, usize::MAX / 2);
                return;
            }
        }
        let Some((n, h2)) = der_len(p, os + 1) else {
            out(os + 1, usize::MAX / 2);
            return;
        };
        let v0 = os + 1 + h2;
        let (a, b) = cipher_in(&p[v0.min(p.len())..]).map_or((0, n), |(a, b)| (a, b.min(n)));
        out(v0 + a, v0 + b);
        from = (v0 + b).min(p.len());
    }
}

/// EncryptedData ::= SEQUENCE { etype [0], kvno [1] OPTIONAL, cipher [2] OCTET STRING }: where
/// the cipher bytes are (possibly beyond `v`'s end).
fn cipher_in(v: &[u8]) -> Option<(usize, usize)> {
    if *v.first()? != 0x30 {
        return None;
    }
    let (_, h) = der_len(v, 1)?;
    let mut i = 1 + h;
    loop {
        let tag = *v.get(i)?;
        let (n, h) = der_len(v, i + 1)?;
        let body = i + 1 + h;
        if tag == 0xa2 {
            if *v.get(body)? != 0x04 {
                return None;
            }
            let (m, h2) = der_len(v, body + 1)?;
            let from = body + 1 + h2;
            return Some((from, from + m));
        }
        i = body.checked_add(n)?;
    }
}

/// The PA-ENC-TIMESTAMP cipher bytes of one datagram, as masks from offset 0.
pub fn secret_spans(p: &[u8], out: &mut Masks) {
    secret_ranges(p, &mut |a, b| out.add(a.min(p.len()), b.min(p.len())));
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    fn masked(p: &[u8]) -> Vec<u8> {
        let mut m = Masks::default();
        secret_spans(p, &mut m);
        let mut v = p.to_vec();
        m.apply(&mut v);
        v
    }

    #[test]
    fn pa_enc_timestamp_cipher_is_masked_and_the_etype_kept() {
        // padata { padata-type [1] 2, padata-value [2] OCTET STRING { EncryptedData {
        //   etype [0] 18, cipher [2] OCTET STRING (4 bytes) } } }
        let p = vec![
            0x30, 0x18, 0xa1, 0x03, 0x02, 0x01, 0x02, 0xa2, 0x11, 0x04, 0x0f, 0x30, 0x0d, 0xa0, 0x03, 0x02, 0x01, 0x12,
            0xa2, 0x06, 0x04, 0x04, 0xde, 0xad, 0xbe, 0xef, 0xff,
        ];
        let m = masked(&p);
        assert_eq!(&m[22..26], b"****", "cipher masked");
        assert_eq!(m[17], 0x12, "etype kept");
        assert_eq!(m[26], 0xff);
        // Cut anywhere: the ranges found in the part cover what of the cipher it holds.
        for cut in 0..p.len() {
            let mut ranges = Vec::new();
            secret_ranges(&p[..cut], &mut |a, b| ranges.push((a, b)));
            for k in 22..26.min(cut) {
                assert!(ranges.iter().any(|&(a, b)| a <= k && k < b), "cut {cut}: byte {k} not covered by {ranges:?}");
            }
        }
    }
}
