//! The diff as one self-contained HTML file (no script, no external resource: something to
//! attach to a mail to a vendor): the findings, and side by side the ladder (sequence) diagrams
//! of the first differing exchange in the normal and in the failure capture.

use std::fmt::Write;
use std::path::Path;

use super::Finding;
use crate::capture::file::FileSource;
use crate::capture::PacketSource;
use crate::decode::{self, Transport};
use crate::escape::E;
use crate::i18n::Lang;
use crate::transactions::{self as tx, CaptureTx, FlowTuple};

/// Frames drawn per side at most.
const MAX_ROWS: usize = 40;

/// One arrow of a ladder.
#[derive(Clone, Debug)]
pub struct Step {
    pub frame: u64,
    pub offset_ms: f64,
    pub from_client: bool,
    pub label: String,
    pub marked: bool,
}

/// The frames of `flow` in `file`, from its first up to a few after `mark` (the evidence).
pub fn ladder(file: &Path, flow: FlowTuple, mark: &[u64]) -> Vec<Step> {
    let Ok(mut src) = FileSource::open(file) else { return Vec::new() };
    let last_mark = mark.iter().copied().max().unwrap_or(0);
    let mut steps: Vec<Step> = Vec::new();
    let mut t0 = None;
    let mut after = 0usize;
    while let Ok(Some(pkt)) = src.next_packet() {
        let d = decode::decode(&pkt);
        let Some(ip) = d.ip else { continue };
        let (from_client, to_client) = match d.transport {
            Transport::Tcp(t) if flow.proto == 6 => ends(flow, (ip.src, t.src_port), (ip.dst, t.dst_port)),
            Transport::Udp(u) if flow.proto == 17 => ends(flow, (ip.src, u.src_port), (ip.dst, u.dst_port)),
            // An ICMP error about the exchange's packets: drawn as the server side's answer.
            Transport::Icmp(_) => match (d.quoted_ip, d.quoted_ports) {
                (Some(q), Some(p))
                    if p.proto == flow.proto && ends(flow, (q.src, p.src_port), (q.dst, p.dst_port)).0 =>
                {
                    (false, true)
                }
                _ => continue,
            },
            _ => continue,
        };
        if !from_client && !to_client {
            continue;
        }
        let t = *t0.get_or_insert(d.ts);
        let label = label(&d, from_client);
        steps.push(Step {
            frame: d.frame,
            offset_ms: d.ts.since(t) as f64 / 1e6,
            from_client,
            label,
            marked: mark.contains(&d.frame),
        });
        if d.frame >= last_mark && last_mark > 0 {
            after += 1;
            if after > 3 {
                break;
            }
        }
        if steps.len() >= MAX_ROWS * 4 {
            break;
        }
    }
    // Keep the start of the exchange and the frames around the evidence.
    if steps.len() > MAX_ROWS {
        let at = steps.iter().position(|s| s.marked).unwrap_or(0);
        let head: Vec<Step> = steps.iter().take(8).cloned().collect();
        let from = at.saturating_sub(MAX_ROWS - 12).max(8);
        let mut v = head;
        v.push(Step { frame: 0, offset_ms: 0.0, from_client: true, label: "…".into(), marked: false });
        v.extend(steps[from..].iter().take(MAX_ROWS - 9).cloned());
        steps = v;
    }
    steps
}

/// (from the client, to the client) for a packet between `src` and `dst`.
fn ends(flow: FlowTuple, src: (std::net::IpAddr, u16), dst: (std::net::IpAddr, u16)) -> (bool, bool) {
    (src == flow.client && dst == flow.server, src == flow.server && dst == flow.client)
}

/// What a frame says, for the arrow: TCP flags and length, and the application's words (never
/// arguments that could be credentials).
fn label(d: &decode::Decoded<'_>, from_client: bool) -> String {
    match d.transport {
        Transport::Tcp(t) => {
            let mut flags = Vec::new();
            for (bit, name) in [(0x002, "SYN"), (0x001, "FIN"), (0x004, "RST"), (0x008, "PSH"), (0x010, "ACK")] {
                if t.has(bit) {
                    flags.push(name);
                }
            }
            let mut s = format!("[{}]", flags.join(", "));
            if t.seg_len > 0 {
                let _ = write!(s, " len {}", t.seg_len);
            }
            // The analyzers' own parsers name what the segment starts with.
            let p = d.payload;
            use crate::analyzers::{http, tls};
            if let Some(http::message::Line::Request { method, uri }) = http::message::first_line(p) {
                let _ = write!(s, " {method} {}", http::shown_target(uri));
            } else if let Some(http::message::Line::Status { code, .. }) = http::message::first_line(p) {
                let _ = write!(s, " HTTP {code}");
            } else if tls::client_hello_sni(p).is_some() {
                s.push_str(" TLS ClientHello");
            } else if let Some((what, _)) = tls::server_answer(p) {
                let _ = write!(s, " TLS {what}");
            } else if !p.is_empty() && !from_client && p.len() >= 3 && p[..3].iter().all(u8::is_ascii_digit) {
                let _ = write!(s, " {}", String::from_utf8_lossy(&p[..3]));
            } else if !p.is_empty() && !from_client && (p.starts_with(b"+OK") || p.starts_with(b"-ERR")) {
                s.push_str(if p.starts_with(b"+OK") { " +OK" } else { " -ERR" });
            }
            s
        }
        Transport::Udp(u) => {
            let kind = crate::analyzers::dns::Kind::for_ports(u.src_port, u.dst_port);
            match kind.and_then(|k| crate::analyzers::dns::parse(d.payload, k)) {
                Some(i) if i.has_header => {
                    let name = i.qname().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
                    if i.response {
                        format!("DNS response {} {name}", tx::rcode_name(i.rcode))
                    } else {
                        format!("DNS query {name}")
                    }
                }
                _ => format!("UDP len {}", d.payload.len()),
            }
        }
        Transport::Icmp(i) => tx::icmp_error_text(i.v6, i.icmp_type, i.code),
        _ => String::new(),
    }
}

fn svg(steps: &[Step], client: &str, server: &str) -> String {
    let (w, row, top) = (520.0, 30.0, 50.0);
    let (xc, xs) = (110.0, 430.0);
    let h = top + row * steps.len() as f64 + 20.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">\
         <defs><marker id=\"a\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\">\
         <path d=\"M0,0 L8,4 L0,8 z\" fill=\"#333\"/></marker></defs>\
         <text x=\"{xc}\" y=\"20\" text-anchor=\"middle\" class=\"end\">{}</text>\
         <text x=\"{xs}\" y=\"20\" text-anchor=\"middle\" class=\"end\">{}</text>\
         <line x1=\"{xc}\" y1=\"30\" x2=\"{xc}\" y2=\"{h}\" class=\"life\"/><line x1=\"{xs}\" y1=\"30\" x2=\"{xs}\" y2=\"{h}\" class=\"life\"/>",
        E(client),
        E(server)
    );
    for (i, st) in steps.iter().enumerate() {
        let y = top + row * i as f64;
        if st.frame == 0 {
            let _ = write!(s, "<text x=\"{}\" y=\"{y}\" text-anchor=\"middle\">…</text>", (xc + xs) / 2.0);
            continue;
        }
        let (x1, x2) = if st.from_client { (xc, xs) } else { (xs, xc) };
        let cls = if st.marked { "arrow mark" } else { "arrow" };
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{}\" class=\"meta\">#{} +{:.1} ms</text>\
             <line x1=\"{x1}\" y1=\"{}\" x2=\"{x2}\" y2=\"{}\" class=\"{cls}\" marker-end=\"url(#a)\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"{}\">{}</text>",
            y + 4.0,
            st.frame,
            st.offset_ms,
            y + 6.0,
            y + 6.0,
            (xc + xs) / 2.0,
            y,
            if st.marked { "lbl mark" } else { "lbl" },
            E(&st.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// A finding's kind ("changed_outcome") in the report's language.
fn kind_text(l: Lang, kind: &str) -> String {
    let key = format!("diff_kind_{kind}");
    if crate::i18n::TEXTS.iter().any(|(k, _, _)| *k == key) {
        l.t(&key).to_string()
    } else {
        kind.replace('_', " ")
    }
}

fn severity_text(l: Lang, sev: &str) -> String {
    match sev {
        "high" | "medium" | "low" => l.t(&format!("sev_{sev}")).to_string(),
        other => other.to_string(),
    }
}

/// The whole HTML report, its words in `l` (what the captures say stays as they say it).
pub fn report(
    l: Lang,
    n: &CaptureTx,
    f: &CaptureTx,
    findings: &[Finding],
    normal_file: &Path,
    failure_file: &Path,
) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>mirrorwatch diff</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{}</style></head><body>\
         <h1>{}</h1><table class=\"files\"><tr><th>{}</th><td>{}</td><td>{} {}</td></tr>\
         <tr><th>{}</th><td>{}</td><td>{} {}</td></tr></table>",
        l.code(),
        STYLE,
        E(l.t("diff_title")),
        E(l.t("diff_normal")),
        E(&n.file),
        n.frames,
        E(l.t("frames")),
        E(l.t("diff_failure")),
        E(&f.file),
        f.frames,
        E(l.t("frames")),
    );
    if findings.is_empty() {
        let _ = write!(b, "<p class=\"ok\">{}</p>", E(l.t("diff_no_differences")));
    } else {
        // The first finding with an exchange to draw on both sides (or at least one).
        let drawn = findings
            .iter()
            .find(|x| x.flows.0.is_some() && x.flows.1.is_some())
            .or_else(|| findings.iter().find(|x| x.flows.0.is_some() || x.flows.1.is_some()));
        if let Some(x) = drawn {
            let _ = write!(
                b,
                "<h2>{}</h2><p>{}</p><div class=\"ladders\">",
                E(&l.t("diff_first").replacen("{}", &x.service, 1)),
                E(&kind_text(l, x.kind))
            );
            for (title, file, flow, frames, outcome) in [
                (l.t("diff_normal"), normal_file, x.flows.0, &x.normal_frames, &x.normal),
                (l.t("diff_failure"), failure_file, x.flows.1, &x.failure_frames, &x.failure),
            ] {
                let _ = write!(b, "<section><h3>{}: {}</h3>", E(title), E(outcome));
                match flow {
                    Some(fl) => {
                        let steps = ladder(file, fl, frames);
                        b.push_str(&svg(
                            &steps,
                            &tx::addr(fl.client.0, fl.client.1),
                            &tx::addr(fl.server.0, fl.server.1),
                        ));
                    }
                    None => {
                        let _ = write!(b, "<p class=\"none\">{}</p>", E(l.t("diff_not_here")));
                    }
                }
                b.push_str("</section>");
            }
            b.push_str("</div>");
        }
        let _ = write!(
            b,
            "<h2>{}</h2><div class=\"tw\"><table class=\"findings\"><thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            E(&l.t("diff_count").replacen("{}", &findings.len().to_string(), 1)),
            E(l.t("severity")),
            E(l.t("diff_what")),
            E(l.t("diff_service")),
            E(l.t("diff_normal")),
            E(l.t("diff_failure")),
        );
        for (i, x) in findings.iter().enumerate() {
            let frames = |v: &[u64]| {
                if v.is_empty() {
                    String::new()
                } else {
                    format!(
                        " <span class=\"frames\">({} {})</span>",
                        E(l.t("diff_frame")),
                        v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                    )
                }
            };
            let _ = write!(
                b,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}{}</td></tr>",
                E(x.severity),
                i + 1,
                E(&severity_text(l, x.severity)),
                E(&kind_text(l, x.kind)),
                E(&x.service),
                E(&x.normal),
                frames(&x.normal_frames),
                E(&x.failure),
                frames(&x.failure_frames)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    let _ = write!(b, "<p class=\"foot\">{}</p></body></html>", E(l.t("diff_foot")));
    b
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2330}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}h3{font-size:.95rem}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border-bottom:1px solid #dde1e8;padding:.3rem .5rem;text-align:left;vertical-align:top}\
tr.high td:nth-child(2){color:#b3261e;font-weight:700}tr.medium td:nth-child(2){color:#9a6700;font-weight:700}\
.frames{color:#5d6678;font-size:.85em}.ladders{display:flex;flex-wrap:wrap;gap:1.5rem}\
.ladders section{border:1px solid #dde1e8;border-radius:6px;padding:.5rem;max-width:100%;overflow-x:auto}\
.tw{overflow-x:auto}svg{max-width:100%;height:auto}@media(max-width:600px){body{margin:.6rem}}\
svg text{font:11px ui-monospace,monospace;fill:#1d2330}svg .end{font-weight:700}svg .meta{fill:#5d6678}\
svg .life{stroke:#aab2c0;stroke-dasharray:4 3}svg .arrow{stroke:#333;stroke-width:1.2}\
svg line.mark{stroke:#b3261e;stroke-width:2}svg text.mark{fill:#b3261e;font-weight:700}.ok{color:#1a7f37}.none{color:#5d6678}.foot{color:#5d6678;font-size:.85em}";
