//! Turns an outbox row into a mail: a plain-text part, an HTML part (every wire string
//! escaped) and, for alerts, the evidence frames as a pcapng attachment when small enough.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use serde_json::Value;

use super::{header_text, html_escape, OutboxRow};
use crate::config::MailConfig;

/// Longest subject, in characters.
const SUBJECT_MAX: usize = 150;
/// Longest wire string in a body line.
const FIELD_MAX: usize = 500;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// (label, value) lines of a mail body; values are raw (escaped when rendered).
struct Body {
    title: String,
    lines: Vec<(String, String)>,
    list: Vec<String>,
    link: String,
    footer: String,
}

impl Body {
    fn text(&self) -> String {
        let mut t = format!("{}\n\n", header_text(&self.title, FIELD_MAX));
        for (k, v) in &self.lines {
            t.push_str(&format!("{k:<10} {}\n", header_text(v, FIELD_MAX)));
        }
        if !self.list.is_empty() {
            t.push('\n');
            for l in &self.list {
                t.push_str(&format!("- {}\n", header_text(l, FIELD_MAX)));
            }
        }
        t.push_str(&format!("\nDashboard: {}\n\n-- \n{}\n", self.link, self.footer));
        t
    }

    fn html(&self) -> String {
        let e = |x: &str| html_escape(&header_text(x, FIELD_MAX));
        let mut h =
            format!("<!doctype html><html><body style=\"font-family:sans-serif\"><h2>{}</h2><table>", e(&self.title));
        for (k, v) in &self.lines {
            h.push_str(&format!("<tr><th align=\"left\">{}</th><td>{}</td></tr>", e(k), e(v)));
        }
        h.push_str("</table>");
        if !self.list.is_empty() {
            h.push_str("<ul>");
            for l in &self.list {
                h.push_str(&format!("<li>{}</li>", e(l)));
            }
            h.push_str("</ul>");
        }
        h.push_str(&format!(
            "<p><a href=\"{0}\">{0}</a></p><p style=\"color:#777\">{1}</p></body></html>",
            html_escape(&self.link),
            e(&self.footer)
        ));
        h
    }
}

fn dashboard(cfg: &MailConfig, path: &str) -> String {
    format!("{}{path}", cfg.dashboard_url.trim_end_matches('/'))
}

fn alert_body(v: &Value, cfg: &MailConfig, users: &dyn Fn(&str) -> Option<String>, id: i64) -> (String, Body) {
    let ctx = &v["context"];
    let sev = s(v, "severity").to_uppercase();
    let title = if s(v, "description").is_empty() { s(v, "rule") } else { s(v, "description") };
    let subject = format!("[mirrorwatch] {sev} {title}: {}", s(v, "summary"));
    let mut lines = vec![("What".to_string(), s(v, "summary").to_string())];
    let mut wher = Vec::new();
    if let Some(ip) = ctx["ip"].as_str() {
        wher.push(format!("client {ip}"));
    }
    if let Some(mac) = ctx["mac"].as_str() {
        wher.push(format!("MAC {mac}"));
    }
    let user = ctx["user"].as_str().map(String::from).or_else(|| ctx["ip"].as_str().and_then(users));
    if let Some(u) = user {
        wher.push(format!("user {u}"));
    }
    if let Some(p) = ctx["peer"].as_str() {
        wher.push(format!("server {p}"));
    }
    if !s(v, "key").is_empty() {
        wher.push(format!("key {}", s(v, "key")));
    }
    if !wher.is_empty() {
        lines.push(("Where".into(), wher.join(", ")));
    }
    lines.push(("Since".into(), format!("{} (capture time)", s(v, "since"))));
    let mut much = format!("{}", v["count"]);
    if let Some(b) = v["baseline"].as_f64() {
        much = format!(
            "{} in the last {} min; usual (7-day median) {b:.1}; threshold {:.1}",
            v["value"],
            v["window_secs"].as_u64().unwrap_or(0) / 60,
            v["threshold"].as_f64().unwrap_or(0.0)
        );
    } else if let Some(t) = v["threshold"].as_f64() {
        much =
            format!("{} in the last {} min (threshold {t})", v["value"], v["window_secs"].as_u64().unwrap_or(0) / 60);
    }
    lines.push(("How much".into(), much));
    if let (Some(file), Some(frame)) = (ctx["file"].as_str(), ctx["frame"].as_u64()) {
        lines.push(("Frame".into(), format!("{frame} of {file}")));
    } else if let Some(frame) = ctx["frame"].as_u64() {
        lines.push(("Frame".into(), frame.to_string()));
    }
    lines.push(("Severity".into(), s(v, "severity").into()));
    lines.push(("Rule".into(), s(v, "rule").into()));
    let body = Body {
        title: format!("{sev}: {title}"),
        lines,
        list: Vec::new(),
        link: dashboard(cfg, &format!("/alerts?id={id}")),
        footer: "Repeats of this alert are rolled into the digest; no new mail for it until its suppression time has passed."
            .into(),
    };
    (subject, body)
}

fn digest_body(v: &Value, cfg: &MailConfig) -> (String, Body) {
    let lines = v["lines"].as_array().cloned().unwrap_or_default();
    let subject = format!("[mirrorwatch] digest: {} alert(s) since {}", lines.len(), s(v, "from"));
    let list = lines
        .iter()
        .map(|l| {
            let state = if l["ongoing"].as_bool().unwrap_or(false) { "still occurring" } else { "cleared" };
            format!(
                "[{}] {} — {} more (total {}) since {}, last {}; {state}",
                s(l, "severity"),
                s(l, "summary"),
                l["new"],
                l["total"],
                s(l, "since"),
                s(l, "last")
            )
        })
        .collect();
    let body = Body {
        title: format!("Alerts still occurring or cleared, {} to {}", s(v, "from"), s(v, "to")),
        lines: Vec::new(),
        list,
        link: dashboard(cfg, "/alerts"),
        footer: "One digest per interval: ongoing alerts are summed here instead of one mail each.".into(),
    };
    (subject, body)
}

fn daily_body(v: &Value, cfg: &MailConfig) -> (String, Body) {
    let subject = format!("[mirrorwatch] daily report {}", s(v, "day"));
    let mut lines = Vec::new();
    for (k, label) in [
        ("packets", "Packets"),
        ("bytes", "Bytes"),
        ("retransmissions", "TCP retransmissions"),
        ("private_retransmissions", "LAN retransmissions"),
        ("drops", "Capture drops"),
        ("app_errors", "App errors"),
        ("alerts", "Alerts"),
        ("new_identities", "New identities"),
    ] {
        lines.push((label.to_string(), v[k].to_string()));
    }
    let list = v["top"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(String::from)).collect();
    let body = Body {
        title: format!("The day on the mirror port: {}", s(v, "day")),
        lines,
        list,
        link: dashboard(cfg, "/"),
        footer: "Sent by the daily digest job ([jobs] digest).".into(),
    };
    (subject, body)
}

/// Builds the mail for `row`. `users` names the user last seen on an address.
pub fn message(
    row: &OutboxRow,
    cfg: &MailConfig,
    from: &Mailbox,
    to: &[Mailbox],
    users: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Message> {
    let v: Value = serde_json::from_str(&row.payload)?;
    let (subject, body) = match row.kind.as_str() {
        "digest" => digest_body(&v, cfg),
        "daily" => daily_body(&v, cfg),
        _ => alert_body(&v, cfg, &users, row.alert_id.unwrap_or(row.id)),
    };
    let mut b = Message::builder()
        .from(from.clone())
        .subject(header_text(&subject, SUBJECT_MAX))
        .message_id(Some(format!("<outbox-{}.{}@mirrorwatch>", row.id, row.created_us)));
    for t in to {
        b = b.to(t.clone());
    }
    let alternative =
        MultiPart::alternative().singlepart(SinglePart::plain(body.text())).singlepart(SinglePart::html(body.html()));
    let evidence = row.evidence.as_ref().filter(|e| e.len() as u64 <= cfg.attach_max_bytes);
    let msg = match evidence {
        Some(pcap) => b.multipart(
            MultiPart::mixed().multipart(alternative).singlepart(
                Attachment::new(format!("evidence-{}.pcapng", row.alert_id.unwrap_or(row.id)))
                    .body(pcap.clone(), ContentType::parse("application/vnd.tcpdump.pcap")?),
            ),
        )?,
        None => b.multipart(alternative)?,
    };
    Ok(msg)
}
