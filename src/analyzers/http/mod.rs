//! HTTP/1.x on any port: the `http.*` filter fields and 5xx application errors at the frame that
//! completes each message ([`message`]), HTTP Basic logins with the status that answers them,
//! request → status exchanges for the diff, and the credentials of requests ([`creds`]): URL
//! user-info, password-like query parameters, `Authorization`/`Proxy-Authorization` values and
//! password-like form, multipart and JSON fields.

pub mod creds;
pub mod message;

use std::collections::VecDeque;

use super::budget::Claim;
use super::lines::LineReader;
use super::secrets::Secrets;
use super::{Attempt, Family, Here, Request, TcpSeg};
use crate::identity::{Outcome, Source};

/// Requests waiting for their response on one connection (pipelining).
const MAX_PENDING: usize = 32;

#[derive(Debug)]
pub struct Http {
    tracker: message::Tracker,
    requests: LineReader,
    creds: creds::Requests,
    /// Requests waiting for their response, with the HTTP Basic login each carried.
    pending: VecDeque<Pend>,
    /// A Basic login in a request whose start was not seen (reading began inside it): the
    /// next response answers it.
    orphan: Option<Attempt>,
    /// FIN or RST seen: what is still waiting has no answer.
    done: bool,
}

impl Default for Http {
    fn default() -> Self {
        Http::new(true)
    }
}

impl Http {
    /// `fresh`: the client's bytes are read from a request's start (its stream's start, or a
    /// segment that begins a request, which is how HTTP is found mid-stream).
    pub fn new(fresh: bool) -> Http {
        Http {
            tracker: message::Tracker::default(),
            requests: LineReader::new(fresh),
            creds: creds::Requests::default(),
            pending: VecDeque::new(),
            orphan: None,
            done: false,
        }
    }
}

/// A request waiting for its response: its name (when exchanges are followed, for the diff)
/// and the Basic login it carried, on bytes claimed from the budget.
#[derive(Debug)]
struct Pend {
    req: Option<Request>,
    basic: Option<Attempt>,
    _claim: Claim,
}

impl Pend {
    /// What the budget is told a queued request takes: the entry, its name, a user name.
    fn cost(name: usize) -> usize {
        std::mem::size_of::<Pend>() + name + crate::identity::MAX_NAME
    }
}

/// A request target as it may be shown: no query, no URL user-info (they carry secrets, ids
/// and times that differ between runs), printable, at most 200 characters.
pub fn shown_target(uri: &[u8]) -> String {
    let uri = &uri[..uri.iter().position(|b| *b == b'?').unwrap_or(uri.len())];
    // scheme://user:password@host/… → scheme://host/…
    let uri: Vec<u8> = match uri.windows(3).position(|w| w == b"://") {
        Some(k) => {
            let a0 = k + 3;
            let a_end = uri[a0..].iter().position(|b| *b == b'/').map_or(uri.len(), |e| a0 + e);
            match uri[a0..a_end].iter().rposition(|b| *b == b'@') {
                Some(at) => [&uri[..a0], &uri[a0 + at + 1..]].concat(),
                None => uri.to_vec(),
            }
        }
        None => uri.to_vec(),
    };
    clean(&uri, 200)
}

fn clean(b: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(n)]).chars().filter(|c| !c.is_control()).collect()
}

/// "METHOD host/path" of a request starting `p`.
fn request_name(method: &str, p: &[u8]) -> String {
    let uri = match message::first_line(p) {
        Some(message::Line::Request { uri, .. }) => uri,
        _ => &[][..],
    };
    let host = message::header(&p[..p.len().min(4096)], "host").map(|h| clean(h, 100)).unwrap_or_default();
    format!("{method} {host}{}", shown_target(uri))
}

impl Http {
    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets, here: &mut Here<'_>) -> bool {
        let seg = s.seg;
        if !seg.data.is_empty() {
            let dir = usize::from(!s.from_client);
            let (pending, orphan, done) = (&mut self.pending, &mut self.orphan, self.done);
            let mut started = |m: &message::Pending, p: &[u8]| {
                if done {
                    return;
                }
                if let Some(method) = m.method() {
                    if s.from_client && pending.len() < MAX_PENDING {
                        // Named only for the diff: the daemon pairs responses for Basic logins.
                        let req = here.exchanges.then(|| Request::new(request_name(method, p), here));
                        let cost = Pend::cost(req.as_ref().map_or(0, |r| r.name.len()));
                        if let Some(claim) = Claim::new(cost) {
                            pending.push_back(Pend { req, basic: None, _claim: claim });
                        }
                    }
                    return;
                }
                let Some(code) = m.code() else { return };
                if s.from_client || !(code >= 200 || code == 101) {
                    return;
                }
                let basic = match pending.pop_front() {
                    Some(p) => {
                        if let Some(req) = &p.req {
                            here.exchange("http", req, format!("HTTP {code}"), code < 400, true);
                        }
                        p.basic
                    }
                    None => None,
                };
                let verdict = match code {
                    200..=399 => Outcome::Success,
                    401 | 403 => Outcome::Failure,
                    _ => Outcome::Unknown,
                };
                if let Some(a) = basic.or_else(|| orphan.take()) {
                    a.report(Source::HttpBasic, verdict, &mut here.out.logins);
                }
            };
            let retrans = s.retrans || s.ooo;
            if let Some(m) = self.tracker.segment(dir, seg.data, seg.seq, seg.seg_len, retrans, &mut started) {
                here.out.set_http(&m);
                if let Some(e) = m.error() {
                    here.error(Family::Http, e);
                }
            }
            if s.from_client {
                self.requests.feed(seg, true, secrets, &mut self.creds, here);
                if let Some(user) = self.creds.basic.take() {
                    let a = Attempt::new(here, user);
                    match self.pending.back_mut().filter(|p| p.basic.is_none()) {
                        Some(p) => p.basic = Some(a),
                        None => {
                            if let Some(old) = self.orphan.replace(a) {
                                old.report(Source::HttpBasic, Outcome::Unknown, &mut here.out.logins);
                            }
                        }
                    }
                }
            }
        }
        if s.fin || s.rst {
            // A response the close ends before its headers or body did (a bare status line and
            // FIN): its 5xx is an application error all the same, on this frame. Its fields are
            // not shown (tshark does not dissect it either).
            if let Some(e) = self.tracker.close(1).and_then(|m| m.error()) {
                here.error(Family::Http, e);
            }
        }
        if (s.fin || s.rst) && !self.done {
            self.done = true;
            for p in std::mem::take(&mut self.pending) {
                if let Some(req) = &p.req {
                    here.exchange("http", req, "no response".into(), false, false);
                }
                if let Some(a) = p.basic {
                    a.report(Source::HttpBasic, Outcome::Unknown, &mut here.out.logins);
                }
            }
        }
        false
    }

    pub fn end(&mut self, f: &mut super::AppFacts) {
        if let Some(a) = self.orphan.take() {
            a.report(Source::HttpBasic, Outcome::Unknown, &mut f.logins);
        }
        for p in self.pending.drain(..) {
            if let Some(a) = p.basic {
                a.report(Source::HttpBasic, Outcome::Unknown, &mut f.logins);
            }
            if let Some(req) = p.req {
                f.exchanges.push(super::Exchange::unanswered("http", req, "no response"));
            }
        }
    }
}

#[cfg(test)]
mod tests;
