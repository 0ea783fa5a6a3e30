//! Kerberos (RFC 4120) with the `kerberos-parser` crate: the client name and realm of AS-REQ,
//! the outcome from the AS-REP or KRB-ERROR that answers it, and the client name of TGS-REP
//! (a TGS-REQ carries it only inside the encrypted authenticator). Machine accounts (`NAME$`)
//! and `host/…` principals name hosts, not users. Over TCP, messages have a 4-byte record mark
//! (RFC 4120 §7.2.2) and are joined across segments by [`crate::dissect::SegmentJoin`].
//! Encrypted parts are never looked into.

use crate::bounded::LruMap;
use std::net::IpAddr;

use kerberos_parser::krb5::{KdcRep, KdcReq, KrbError, PrincipalName};
use kerberos_parser::krb5_parser;

use super::{name_from_wire, IdentityFact, Outcome, Source};
use crate::decode::Decoded;

/// What a message says about identities (owned: the parser's borrowed values do not outlive it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    AsReq { cname: Option<String>, realm: String },
    AsRep { cname: String, realm: String },
    TgsRep { cname: String, realm: String },
    Error { code: i32 },
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
            (Msg::Other, f)
        }
        0x6d => from_rep(&krb5_parser::parse_tgs_rep(b).ok()?.1, true),
        // The crate marks its parse functions deprecated in favour of its FromDer impls; this one
        // is exactly `KrbError::from_der`.
        #[allow(deprecated)]
        0x7e => from_err(&krb5_parser::parse_krb_error(b).ok()?.1),
        _ => return None,
    })
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
            Msg::AsReq { cname: Some(c), realm } => {
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
                out.push(fact(&cname, &realm, d.eth_dst, ip.dst, Outcome::Success));
            }
            _ => {}
        }
    }

    /// End of input: requests without an answer.
    pub fn flush(&mut self, out: &mut Vec<IdentityFact>) {
        out.extend(self.pending.drain().map(|(_, f)| f));
    }
}
