//! Turns an outbox row into a mail: a plain-text part, an HTML part (every wire string
//! escaped) and, for alerts, the evidence frames as a pcapng attachment when small enough.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use serde_json::Value;

use super::{header_text, html_escape, OutboxRow};
use crate::config::MailConfig;
use crate::i18n::Lang;

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
    /// "Dashboard" in the mail's language.
    link_label: &'static str,
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
        t.push_str(&format!("\n{}: {}\n\n-- \n{}\n", self.link_label, self.link, self.footer));
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

/// The language of the mails (`[mail] language`; checked when the mailer starts).
fn lang(cfg: &MailConfig) -> Lang {
    Lang::parse(&cfg.language).unwrap_or_default()
}

/// `en` or `ja` by language: sentences whose word order differs.
fn by(l: Lang, en: String, ja: String) -> String {
    match l {
        Lang::En => en,
        Lang::Ja => ja,
    }
}

fn alert_body(v: &Value, cfg: &MailConfig, users: &dyn Fn(&str) -> Option<String>, id: i64) -> (String, Body) {
    let l = lang(cfg);
    let ctx = &v["context"];
    let sev = s(v, "severity").to_uppercase();
    let title = if s(v, "description").is_empty() { s(v, "rule") } else { s(v, "description") };
    let summary = crate::i18n::summary::summary(l, s(v, "summary"));
    let subject = format!("[mirrorwatch] {sev} {title}: {summary}");
    let mut lines = vec![(l.t("mail_what").to_string(), summary.to_string())];
    let mut wher = Vec::new();
    if let Some(ip) = ctx["ip"].as_str() {
        wher.push(format!("{} {ip}", l.t("mail_client")));
    }
    if let Some(mac) = ctx["mac"].as_str() {
        wher.push(format!("MAC {mac}"));
    }
    let user = ctx["user"].as_str().map(String::from).or_else(|| ctx["ip"].as_str().and_then(users));
    if let Some(u) = user {
        wher.push(format!("{} {u}", l.t("mail_user")));
    }
    if let Some(p) = ctx["peer"].as_str() {
        wher.push(format!("{} {p}", l.t("mail_server")));
    }
    if !s(v, "key").is_empty() {
        wher.push(format!("{} {}", l.t("mail_key"), s(v, "key")));
    }
    if !wher.is_empty() {
        lines.push((l.t("mail_where").into(), wher.join(", ")));
    }
    lines.push((l.t("mail_since").into(), format!("{} ({})", s(v, "since"), l.t("mail_capture_time"))));
    let mut much = format!("{}", v["count"]);
    let (value, mins) = (&v["value"], v["window_secs"].as_u64().unwrap_or(0) / 60);
    if let Some(b) = v["baseline"].as_f64() {
        let t = v["threshold"].as_f64().unwrap_or(0.0);
        much = by(
            l,
            format!("{value} in the last {mins} min; usual (7-day median) {b:.1}; threshold {t:.1}"),
            format!("直近{mins}分で{value}; 通常 (7日間の中央値) {b:.1}; しきい値 {t:.1}"),
        );
    } else if let Some(t) = v["threshold"].as_f64() {
        much = by(
            l,
            format!("{value} in the last {mins} min (threshold {t})"),
            format!("直近{mins}分で{value} (しきい値 {t})"),
        );
    }
    lines.push((l.t("mail_how_much").into(), much));
    if let (Some(file), Some(frame)) = (ctx["file"].as_str(), ctx["frame"].as_u64()) {
        lines.push((l.t("frame").into(), by(l, format!("{frame} of {file}"), format!("{file} の {frame}"))));
    } else if let Some(frame) = ctx["frame"].as_u64() {
        lines.push((l.t("frame").into(), frame.to_string()));
    }
    lines.push((l.t("severity").into(), s(v, "severity").into()));
    lines.push((l.t("rule").into(), s(v, "rule").into()));
    let body = Body {
        title: format!("{sev}: {title}"),
        lines,
        list: Vec::new(),
        link: dashboard(cfg, &format!("/alerts?id={id}#alert-{id}")),
        footer: l.t("mail_footer_alert").into(),
        link_label: l.t("mail_dashboard"),
    };
    (subject, body)
}

fn digest_body(v: &Value, cfg: &MailConfig) -> (String, Body) {
    let l = lang(cfg);
    let lines = v["lines"].as_array().cloned().unwrap_or_default();
    let (n, from, to) = (lines.len(), s(v, "from"), s(v, "to"));
    let subject = by(
        l,
        format!("[mirrorwatch] digest: {n} alert(s) since {from}"),
        format!("[mirrorwatch] まとめ: {from} 以降のアラート {n} 件"),
    );
    let list = lines
        .iter()
        .map(|x| {
            let state = l.t(if x["ongoing"].as_bool().unwrap_or(false) { "mail_ongoing" } else { "cleared" });
            let (sev, sum, new, total, since, last) = (
                s(x, "severity"),
                crate::i18n::summary::summary(l, s(x, "summary")),
                &x["new"],
                &x["total"],
                s(x, "since"),
                s(x, "last"),
            );
            by(
                l,
                format!("[{sev}] {sum} — {new} more (total {total}) since {since}, last {last}; {state}"),
                format!("[{sev}] {sum} — 新たに {new} 件 (合計 {total}) {since} から、最後 {last}; {state}"),
            )
        })
        .collect();
    let body = Body {
        title: by(
            l,
            format!("Alerts still occurring or cleared, {from} to {to}"),
            format!("継続中・解消したアラート ({from} 〜 {to})"),
        ),
        lines: Vec::new(),
        list,
        link: dashboard(cfg, "/alerts"),
        footer: l.t("mail_footer_digest").into(),
        link_label: l.t("mail_dashboard"),
    };
    (subject, body)
}

fn daily_body(v: &Value, cfg: &MailConfig) -> (String, Body) {
    let l = lang(cfg);
    let day = s(v, "day");
    let subject = by(l, format!("[mirrorwatch] daily report {day}"), format!("[mirrorwatch] 日次レポート {day}"));
    let mut lines = Vec::new();
    for (k, label) in [
        ("packets", "packets"),
        ("bytes", "bytes"),
        ("retransmissions", "mail_tcp_retransmissions"),
        ("private_retransmissions", "mail_lan_retransmissions"),
        ("drops", "drops"),
        ("app_errors", "app_errors"),
        ("alerts", "alerts"),
        ("new_identities", "mail_new_identities"),
    ] {
        lines.push((l.t(label).to_string(), v[k].to_string()));
    }
    let list = v["top"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(String::from)).collect();
    let body = Body {
        title: by(l, format!("The day on the mirror port: {day}"), format!("ミラーポートの1日: {day}")),
        lines,
        list,
        link: dashboard(cfg, "/"),
        footer: l.t("mail_footer_daily").into(),
        link_label: l.t("mail_dashboard"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn alert_row() -> OutboxRow {
        let payload = serde_json::json!({
            "rule": "db-deadlock", "severity": "critical", "summary": "PostgreSQL error 40P01 deadlock detected",
            "key": "postgresql 40P01 10.0.0.5:5432", "since": "2026-11-30T08:00:00Z", "count": 1,
            "value": 3, "threshold": 0.0, "window_secs": 300,
            "context": {"ip": "10.0.0.9", "mac": "02:00:00:00:00:09", "frame": 12, "file": "eth1"}
        });
        OutboxRow {
            id: 1,
            created_us: 1,
            kind: "alert".into(),
            alert_id: Some(1),
            payload: payload.to_string(),
            evidence: None,
            attempts: 0,
        }
    }

    fn render(language: &str) -> String {
        let cfg = MailConfig { language: language.into(), ..Default::default() };
        let from: Mailbox = "box@example.com".parse().unwrap();
        let to: Vec<Mailbox> = vec!["admin@example.com".parse().unwrap()];
        let m = message(&alert_row(), &cfg, &from, &to, |_| Some("alice".into())).unwrap();
        String::from_utf8_lossy(&m.formatted()).into_owned()
    }

    #[test]
    fn mails_follow_the_language_key() {
        let en = render("en");
        assert!(en.contains("What") && en.contains("Dashboard:") && en.contains("in the last 5 min"), "{en}");
        // The Japanese body is base64 or quoted-printable: compare the decoded text part.
        let cfg = MailConfig { language: "ja".into(), ..Default::default() };
        let (_, body) = alert_body(&serde_json::from_str(&alert_row().payload).unwrap(), &cfg, &|_| None, 1);
        let text = body.text();
        assert!(text.contains("内容") && text.contains("ダッシュボード:") && text.contains("直近5分で3"), "{text}");
        assert!(!text.contains("What"), "{text}");
        let _ = render("ja");
    }
}
