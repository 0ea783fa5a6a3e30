//! The diff of a normal and a failure capture taken under the same conditions: which exchange
//! ended differently, with which response, at which frame.
//!
//! Both captures are summarised as transactions ([`crate::transactions`]) and aligned by service
//! (protocol, server, name), never by packet: two runs of the same work have different client
//! ports, ids and times but the same services. Findings, most important first:
//! - `changed_outcome`: a service whose exchanges end in a way the normal capture never saw
//!   (NOERROR → NXDOMAIN, handshake → RST, HTTP 200 → 502, AS-REP → KRB-ERROR 24), or that no
//!   longer ends well at all;
//! - `error_only_in_failure`: an application error (40P01, 1045, HTTP 5xx…) absent from normal;
//! - `only_in_failure` with a bad outcome (an ICMP unreachable, a request that got no answer);
//! - `retransmissions`: a retransmission rate beyond twice the normal one (whole capture or one
//!   server);
//! - `only_in_normal`: an exchange that worked in normal and never happened in the failure;
//! - `more_errors`, `slower`: the same error much more often, round trips much longer.
//!
//! A capture diffed against itself gives no findings; rate and timing findings need enough
//! packets that noise does not make them.

pub mod html;
pub mod stored;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::transactions::{CaptureTx, FlowTuple, OutcomeStat, Service, ServiceKey};

/// One difference between the captures.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub service: String,
    pub normal: String,
    pub failure: String,
    pub normal_frames: Vec<u64>,
    pub failure_frames: Vec<u64>,
    pub severity: &'static str,
    /// The exchanges to draw in the ladder diagram (normal, failure).
    #[serde(skip)]
    pub flows: (Option<FlowTuple>, Option<FlowTuple>),
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "high" => 0,
        "medium" => 1,
        _ => 2,
    }
}

fn kind_rank(k: &str) -> u8 {
    match k {
        "changed_outcome" => 0,
        "error_only_in_failure" => 1,
        "only_in_failure" => 2,
        "retransmissions" => 3,
        "only_in_normal" => 4,
        "more_errors" => 5,
        _ => 6,
    }
}

/// "NXDOMAIN ×3; NOERROR ×1", most frequent first, at most three.
fn outcomes_text(s: &Service) -> String {
    let mut v: Vec<(&String, &OutcomeStat)> = s.outcomes.iter().collect();
    v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = v.iter().take(3).map(|(k, o)| format!("{k} ×{}", o.count)).collect();
    if v.len() > 3 {
        parts.push(format!("{} more", v.len() - 3));
    }
    parts.join("; ")
}

fn first_frames(s: &Service, pick: impl Fn(&str, &OutcomeStat) -> bool) -> Option<(&String, &OutcomeStat)> {
    let mut v: Vec<(&String, &OutcomeStat)> = s.outcomes.iter().filter(|(k, o)| pick(k, o)).collect();
    v.sort_by_key(|(_, o)| o.frames.first().copied().unwrap_or(u64::MAX));
    v.into_iter().next()
}

/// Frames of one outcome, the request first when it is another frame.
fn evidence(o: &OutcomeStat) -> Vec<u64> {
    let mut f = Vec::with_capacity(o.frames.len() + 1);
    if o.request_frame != 0 && o.frames.first() != Some(&o.request_frame) {
        f.push(o.request_frame);
    }
    let mut rest = o.frames.clone();
    rest.sort_unstable();
    f.extend(rest);
    f
}

fn sorted(v: &[u64]) -> Vec<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

fn rate(retrans: u64, packets: u64) -> f64 {
    if packets == 0 {
        0.0
    } else {
        100.0 * retrans as f64 / packets as f64
    }
}

/// Whether the failure's retransmissions stand out from normal's: at least `min` of them, at
/// least 1 % of the packets, and more than twice the normal rate plus half a point.
fn retrans_worse(n: (u64, u64), f: (u64, u64), min: u64) -> bool {
    let (nr, fr) = (rate(n.0, n.1), rate(f.0, f.1));
    f.0 >= min && fr >= 1.0 && fr > 2.0 * nr + 0.5
}

/// Everything that differs, most important first.
pub fn compare(n: &CaptureTx, f: &CaptureTx) -> Vec<Finding> {
    let mut out = Vec::new();
    let keys: BTreeSet<&ServiceKey> = n.services.keys().chain(f.services.keys()).collect();
    for k in keys {
        let (ns, fs) = (n.services.get(k), f.services.get(k));
        let service = k.to_string();
        if k.proto == "error" {
            errors(&mut out, &service, ns, fs);
            continue;
        }
        let (ne, fe) = (ns.map(Service::exchanges).unwrap_or(0), fs.map(Service::exchanges).unwrap_or(0));
        match (ns.filter(|_| ne > 0), fs.filter(|_| fe > 0)) {
            (Some(a), Some(b)) => {
                let seen: BTreeSet<&String> = a.outcomes.keys().collect();
                let new_bad = first_frames(b, |k, o| !o.good && !seen.contains(&k.to_string()));
                let a_good = a.outcomes.values().any(|o| o.good);
                let b_good = b.outcomes.values().any(|o| o.good);
                let lost_good = a_good && !b_good;
                if new_bad.is_some() || lost_good {
                    let (_, fo) = new_bad.or_else(|| first_frames(b, |_, _| true)).expect("outcomes");
                    let (_, no) =
                        first_frames(a, |_, o| o.good).or_else(|| first_frames(a, |_, _| true)).expect("outcomes");
                    out.push(Finding {
                        kind: "changed_outcome",
                        service: service.clone(),
                        normal: outcomes_text(a),
                        failure: outcomes_text(b),
                        normal_frames: evidence(no),
                        failure_frames: evidence(fo),
                        severity: "high",
                        flows: (no.flow, fo.flow),
                    });
                }
            }
            (Some(a), None) => {
                if let Some((_, no)) = first_frames(a, |_, o| o.good) {
                    // A plain TCP service is "missing" only when nothing at all reached it.
                    if k.proto == "tcp" && fs.is_some_and(|s| s.packets > 0) {
                        continue;
                    }
                    out.push(Finding {
                        kind: "only_in_normal",
                        service: service.clone(),
                        normal: outcomes_text(a),
                        failure: "never happened".into(),
                        normal_frames: evidence(no),
                        failure_frames: Vec::new(),
                        severity: if k.proto == "tcp" { "low" } else { "medium" },
                        flows: (no.flow, None),
                    });
                }
            }
            (None, Some(b)) => {
                if let Some((_, fo)) = first_frames(b, |_, o| !o.good) {
                    out.push(Finding {
                        kind: "only_in_failure",
                        service: service.clone(),
                        normal: "never happened".into(),
                        failure: outcomes_text(b),
                        normal_frames: Vec::new(),
                        failure_frames: evidence(fo),
                        severity: "high",
                        flows: (None, fo.flow),
                    });
                }
            }
            (None, None) => {}
        }
        if let (Some(a), Some(b)) = (ns, fs) {
            if k.proto == "tcp" && retrans_worse((a.retransmissions, a.packets), (b.retransmissions, b.packets), 5) {
                out.push(Finding {
                    kind: "retransmissions",
                    service: service.clone(),
                    normal: format!(
                        "{} of {} packets ({:.1} %)",
                        a.retransmissions,
                        a.packets,
                        rate(a.retransmissions, a.packets)
                    ),
                    failure: format!(
                        "{} of {} packets ({:.1} %)",
                        b.retransmissions,
                        b.packets,
                        rate(b.retransmissions, b.packets)
                    ),
                    normal_frames: sorted(&a.retrans_frames),
                    failure_frames: sorted(&b.retrans_frames),
                    severity: "medium",
                    flows: (None, None),
                });
            }
            if let (Some(nm), Some(fm)) = (a.median_rtt_us(), b.median_rtt_us()) {
                if a.rtt_us.len() >= 3 && b.rtt_us.len() >= 3 && fm > 3 * nm.max(1) && fm - nm > 20_000 {
                    out.push(Finding {
                        kind: "slower",
                        service: service.clone(),
                        normal: format!("median round trip {:.1} ms", nm as f64 / 1000.0),
                        failure: format!("median round trip {:.1} ms", fm as f64 / 1000.0),
                        normal_frames: Vec::new(),
                        failure_frames: Vec::new(),
                        severity: "low",
                        flows: (None, None),
                    });
                }
            }
        }
    }
    // The whole capture: retransmissions are the bad cable and the lossy link.
    let (n_all, f_all) = ((n.tcp_retransmissions, n.tcp_packets), (f.tcp_retransmissions, f.tcp_packets));
    if retrans_worse(n_all, f_all, 10) {
        out.push(Finding {
            kind: "retransmissions",
            service: "TCP, all connections".into(),
            normal: format!("{} of {} packets ({:.1} %)", n_all.0, n_all.1, rate(n_all.0, n_all.1)),
            failure: format!("{} of {} packets ({:.1} %)", f_all.0, f_all.1, rate(f_all.0, f_all.1)),
            normal_frames: sorted(&n.retrans_frames),
            failure_frames: sorted(&f.retrans_frames),
            severity: if rate(f_all.0, f_all.1) >= 2.0 { "high" } else { "medium" },
            flows: (None, None),
        });
    }
    // One server's retransmissions that are the whole capture's say nothing more.
    if let Some(all) =
        out.iter().find(|x| x.service == "TCP, all connections").map(|x| (x.normal.clone(), x.failure.clone()))
    {
        out.retain(|x| {
            x.kind != "retransmissions"
                || x.service == "TCP, all connections"
                || (x.normal.clone(), x.failure.clone()) != all
        });
    }
    out.sort_by(|a, b| {
        (severity_rank(a.severity), kind_rank(a.kind), &a.service).cmp(&(
            severity_rank(b.severity),
            kind_rank(b.kind),
            &b.service,
        ))
    });
    out
}

fn errors(out: &mut Vec<Finding>, service: &str, ns: Option<&Service>, fs: Option<&Service>) {
    let count = |s: Option<&Service>| s.map(Service::exchanges).unwrap_or(0);
    let (nc, fc) = (count(ns), count(fs));
    let Some(b) = fs.filter(|_| fc > 0) else { return };
    let Some((msg, fo)) = first_frames(b, |_, _| true) else { return };
    if nc == 0 {
        out.push(Finding {
            kind: "error_only_in_failure",
            service: service.to_string(),
            normal: "no such error".into(),
            failure: format!("{fc} × \"{msg}\""),
            normal_frames: Vec::new(),
            failure_frames: sorted(&fo.frames),
            severity: "high",
            flows: (None, fo.flow),
        });
    } else if fc >= 3 * nc && fc >= nc + 3 {
        let (_, no) = first_frames(ns.expect("counted"), |_, _| true).expect("outcomes");
        out.push(Finding {
            kind: "more_errors",
            service: service.to_string(),
            normal: format!("{nc} times"),
            failure: format!("{fc} times"),
            normal_frames: sorted(&no.frames),
            failure_frames: sorted(&fo.frames),
            severity: "medium",
            flows: (no.flow, fo.flow),
        });
    }
}

/// The report for a terminal: most important first, lines within 80 columns.
pub fn text(n: &CaptureTx, f: &CaptureTx, findings: &[Finding]) -> String {
    let mut t = String::new();
    let head = |tx: &CaptureTx| {
        let ex: u64 = tx.services.values().map(Service::exchanges).sum();
        let n = tx.services.len();
        format!("{} frames, {ex} exchanges with {n} service{}", tx.frames, if n == 1 { "" } else { "s" })
    };
    wrap(&mut t, &format!("normal:  {} ({})", n.file, head(n)), "         ");
    wrap(&mut t, &format!("failure: {} ({})", f.file, head(f)), "         ");
    t.push('\n');
    if findings.is_empty() {
        t.push_str("No differences: every service ended its exchanges as in the normal capture.\n");
        return t;
    }
    t.push_str(&match findings.len() {
        1 => "1 difference:\n\n".to_string(),
        n => format!("{n} differences, most important first:\n\n"),
    });
    for (i, x) in findings.iter().enumerate().take(TEXT_MAX) {
        wrap(&mut t, &format!("{}. [{}] {}: {}", i + 1, x.severity, x.kind.replace('_', " "), x.service), "   ");
        wrap(&mut t, &format!("   normal:  {}{}", x.normal, frames_text(&x.normal_frames)), "            ");
        wrap(&mut t, &format!("   failure: {}{}", x.failure, frames_text(&x.failure_frames)), "            ");
        t.push('\n');
    }
    if findings.len() > TEXT_MAX {
        t.push_str(&format!("… and {} more (all of them: --format json or html)\n", findings.len() - TEXT_MAX));
    }
    t
}

/// Findings the text report lists (the rest are in the JSON and HTML reports).
const TEXT_MAX: usize = 25;

fn frames_text(f: &[u64]) -> String {
    match f {
        [] => String::new(),
        [one] => format!(" (frame {one})"),
        many => format!(" (frames {})", many.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// Appends `line` wrapped at 80 columns, continuation lines indented by `indent`.
fn wrap(out: &mut String, line: &str, indent: &str) {
    const WIDTH: usize = 80;
    let lead = line.len() - line.trim_start_matches(' ').len();
    let mut cur = line[..lead].to_string();
    let mut empty = true;
    // Runs of spaces inside the line (aligned labels) stay as they are.
    for word in line[lead..].split(' ') {
        let cur_len = cur.chars().count();
        if !empty && cur_len + 1 + word.chars().count() > WIDTH {
            out.push_str(cur.trim_end());
            out.push('\n');
            cur = indent.to_string();
        } else if !empty {
            cur.push(' ');
        }
        // A word longer than a line (a long URL path) is cut where the line ends.
        let mut rest: Vec<char> = word.chars().collect();
        while cur.chars().count() + rest.len() > WIDTH && cur.chars().count() < WIDTH {
            let room = WIDTH - cur.chars().count();
            cur.extend(rest.drain(..room));
            out.push_str(&cur);
            out.push('\n');
            cur = indent.to_string();
        }
        cur.extend(rest);
        empty = false;
    }
    out.push_str(cur.trim_end());
    out.push('\n');
}

/// The JSON report: `{normal, failure, findings[]}`.
pub fn json(n: &CaptureTx, f: &CaptureTx, findings: &[Finding]) -> serde_json::Value {
    let side = |tx: &CaptureTx| {
        serde_json::json!({
            "file": tx.file,
            "frames": tx.frames,
            "services": tx.services.len(),
            "exchanges": tx.services.values().map(Service::exchanges).sum::<u64>(),
            "tcp_packets": tx.tcp_packets,
            "tcp_retransmissions": tx.tcp_retransmissions,
        })
    };
    serde_json::json!({ "normal": side(n), "failure": side(f), "findings": findings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_80_columns() {
        let mut s = String::new();
        wrap(&mut s, &"word ".repeat(40), "   ");
        wrap(&mut s, &format!("   {}", "x".repeat(200)), "   ");
        assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
        assert!(s.lines().skip(1).all(|l| l.starts_with("   ")));
    }
}
