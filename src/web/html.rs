//! Server-side HTML: escaping, the page frame, tables, times and chart placeholders.
//!
//! Every string that reaches a page goes through [`E`]: HTML metacharacters become entities and
//! control or direction-changing characters become visible escapes (`\r`, `\n`, `\u{202e}`), so a
//! user name like `<img src=x onerror=alert(1)>` or one with CR LF shows as the text it is. Pages
//! carry no inline script (the CSP forbids it): `web/app.js` turns `<time data-us>` into the
//! browser's local time and draws the charts from their `data-chart` JSON.

use std::fmt::{self, Display, Write};

use serde::Serialize;

use crate::i18n::Lang;
use crate::store::dashboard::Point;

pub use crate::escape::E;

/// Like [`E`], but line breaks and tabs stay what they are: for the text of a `<textarea>` (a
/// rule file the admin edits), never for a string from the wire.
pub struct Multiline<'a>(pub &'a str);

impl Display for Multiline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.0.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(b) => (b.strip_suffix('\r').unwrap_or(b), "\n"),
                None => (line, ""),
            };
            for part in body.split_inclusive('\t') {
                match part.strip_suffix('\t') {
                    Some(p) => write!(f, "{}\t", E(p))?,
                    None => write!(f, "{}", E(part))?,
                }
            }
            f.write_str(end)?;
        }
        Ok(())
    }
}

/// Percent-encodes a path segment or query value.
pub struct U<'a>(pub &'a str);

impl Display for U<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                f.write_char(b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// What every page needs to know about its request.
pub struct PageCtx {
    pub lang: Lang,
    pub csrf: String,
    /// The request path, for the language switch to come back to.
    pub path: String,
    pub mode: &'static str,
}

/// The navigation entries: (path, i18n key).
const NAV: &[(&str, &str)] = &[
    ("/", "overview"),
    ("/counters", "counters"),
    ("/identities", "identities"),
    ("/retransmissions", "retransmissions"),
    ("/errors", "app_errors"),
    ("/alerts", "alerts"),
    ("/captures", "captures"),
    ("/rules", "rules"),
];

/// A whole page: head, navigation, language switch, logout, and `body`.
pub fn page(cx: &PageCtx, title: &str, body: &str) -> String {
    let l = cx.lang;
    let mut h = String::with_capacity(body.len() + 2048);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf-token\" content=\"{}\"><title>{} · mirrorwatch</title>\
         <link rel=\"stylesheet\" href=\"/static/style.css\"><script src=\"/static/app.js\" defer></script>\
         </head><body><header><a class=\"brand\" href=\"/\">mirrorwatch</a>\
         <input type=\"checkbox\" id=\"menu-toggle\" class=\"menu-toggle\">\
         <label for=\"menu-toggle\" class=\"menu-button\">{}</label><nav>",
        l.code(),
        E(&cx.csrf),
        E(title),
        E(l.t("menu"))
    );
    for (path, key) in NAV {
        let current = if *path == "/" { cx.path == "/" } else { cx.path.starts_with(path) };
        let _ =
            write!(h, "<a href=\"{path}\"{}>{}</a>", if current { " aria-current=\"page\"" } else { "" }, E(l.t(key)));
    }
    let _ = write!(
        h,
        "</nav><div class=\"session\"><span class=\"mode\">{}</span><span class=\"lang\">\
         <a href=\"/lang/en?next={next}\" lang=\"en\">EN</a> <a href=\"/lang/ja?next={next}\" lang=\"ja\">日本語</a></span>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">{}</button></form></div></header><main><h1>{}</h1>{}</main></body></html>",
        E(l.t(cx.mode)),
        E(&cx.csrf),
        E(l.t("logout")),
        E(title),
        scrolling_tables(body),
        next = U(&cx.path),
    );
    h
}

/// Every table in a box of its own that scrolls sideways when the table is wider than the
/// screen (a phone): the page itself never is. The tables are this module's own markup (text
/// from the wire is escaped, so it holds no `<table`).
fn scrolling_tables(body: &str) -> String {
    label_cells(body).replace("<table", "<div class=\"tw\"><table").replace("</table>", "</table></div>")
}

/// Gives every body cell the heading of its column as `data-label`, so that on a phone the
/// style sheet can show each row as a card ("Rule: db-errors") instead of a table wider than
/// the screen. Works on this module's own markup: headings are already escaped text, and no
/// text from the wire contains a `<` (escaped), so tags are found by their `<`.
fn label_cells(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + body.len() / 4);
    let mut heads: Vec<&str> = Vec::new();
    let mut column = 0usize;
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with("<table") {
            heads.clear();
        } else if let Some(after) = rest.strip_prefix("<th>") {
            let end = after.find("</th>").unwrap_or(after.len());
            heads.push(&after[..end]);
        } else if rest.starts_with("<tr") {
            column = 0;
        } else if rest.starts_with("<td") && matches!(rest.as_bytes().get(3), Some(b'>' | b' ')) {
            let label = heads.get(column).copied().unwrap_or("");
            column += 1;
            if !label.is_empty() {
                let _ = write!(out, "<td data-label=\"{label}\"");
                rest = &rest[3..];
                continue;
            }
        }
        out.push('<');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

/// A page without navigation (login, password not set).
pub fn bare_page(lang: Lang, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · mirrorwatch</title>\
         <link rel=\"stylesheet\" href=\"/static/style.css\"></head><body class=\"bare\"><main>\
         <h1>mirrorwatch</h1>{body}</main></body></html>",
        lang.code(),
        E(title)
    )
}

/// A time (µs since the epoch) shown in UTC by the server and in local time by the browser.
pub fn time_us(us: i64) -> String {
    let ts = crate::time::Ts(us.saturating_mul(1000));
    let s = ts.rfc3339();
    // 2024-01-01T00:00:00.370000Z -> 2024-01-01 00:00:00 UTC
    let short = s.get(..19).unwrap_or(&s).replace('T', " ");
    format!("<time data-us=\"{us}\" datetime=\"{}\">{} UTC</time>", E(&s), E(&short))
}

pub fn time_secs(secs: i64) -> String {
    time_us(secs.saturating_mul(1_000_000))
}

/// An RFC 3339 text time (as identity events store it).
pub fn time_text(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => time_us(t.timestamp_micros()),
        Err(_) => E(rfc3339).to_string(),
    }
}

/// A number with thin grouping, e.g. 1 234 567.
pub fn num(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as KiB/MiB/GiB.
pub fn bytes(n: i64) -> String {
    let f = n as f64;
    match n.unsigned_abs() {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", f / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", f / 1_048_576.0),
        _ => format!("{:.2} GiB", f / 1_073_741_824.0),
    }
}

/// One line of a chart.
#[derive(Serialize)]
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(i64, f64)>,
    /// Drawn dashed (a baseline or threshold).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dashed: bool,
}

impl<'a> Series<'a> {
    /// Points divided by `per` (e.g. the bucket's seconds, for a rate).
    pub fn from_points(name: &'a str, pts: &[Point], per: f64) -> Series<'a> {
        Series { name, points: pts.iter().map(|p| (p.t, p.v / per)).collect(), dashed: false }
    }
}

/// The interval a chart's point stands for: "5 min", "1 h".
fn interval(l: Lang, bucket: i64) -> String {
    if bucket >= 3600 && bucket % 3600 == 0 {
        format!("{} {}", bucket / 3600, l.t("unit_h"))
    } else {
        format!("{} {}", (bucket / 60).max(1), l.t("unit_min"))
    }
}

/// The y axis of a rate chart: "packets/s, mean per 5 min".
pub fn axis_rate(l: Lang, unit: &str, bucket: i64) -> String {
    l.t("axis_rate").replace("{unit}", unit).replace("{interval}", &interval(l, bucket))
}

/// The y axis of a count chart: "errors per 5 min".
pub fn axis_count(l: Lang, unit: &str, bucket: i64) -> String {
    l.t("axis_count").replace("{unit}", unit).replace("{interval}", &interval(l, bucket))
}

/// A chart placeholder that `app.js` draws: the data as JSON in an attribute (escaped).
pub fn chart(title: &str, unit: &str, bucket: i64, range: (i64, i64), series: &[Series<'_>]) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        unit: &'a str,
        bucket: i64,
        from: i64,
        to: i64,
        series: &'a [Series<'a>],
    }
    let json = serde_json::to_string(&Data { unit, bucket, from: range.0, to: range.1, series }).unwrap_or_default();
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    format!(
        "<figure class=\"chart\" data-chart=\"{}\" data-points=\"{points}\"><figcaption>{}</figcaption></figure>",
        E(&json),
        E(title)
    )
}

/// The 1 h / 24 h / 7 d switch of a chart page; `base` already has its query (ends in ? or &).
pub fn range_links(base: &str, current: &str, with_all: bool) -> String {
    let mut h = String::from("<p class=\"ranges\">");
    let all: &[&str] = if with_all { &["1h", "24h", "7d", "all"] } else { &["1h", "24h", "7d"] };
    for r in all {
        let _ = write!(
            h,
            "<a href=\"{}range={r}\"{}>{r}</a> ",
            E(base),
            if *r == current { " aria-current=\"true\"" } else { "" }
        );
    }
    h.push_str("</p>");
    h
}

/// Rows per page on the paged lists (alerts, errors, identities, captures).
pub const PAGE_ROWS: usize = 50;

/// "« newer · page 2 of 7 · older »" under a paged list; `base` already has its query (ends in
/// `?` or `&`); `page` counts from 1.
pub fn pager(l: Lang, base: &str, page: usize, total: i64) -> String {
    let pages = (total.max(0) as usize).div_ceil(PAGE_ROWS).max(1);
    let mut h = format!("<nav class=\"pager\"><span>{}</span> ", E(&l.t("rows_found").replacen("{}", &num(total), 1)));
    if page > 1 {
        let _ = write!(h, "<a href=\"{}page={}\" rel=\"prev\">{}</a> ", E(base), page - 1, E(l.t("prev_page")));
    }
    let of = l.t("page_of").replacen("{}", &page.to_string(), 1).replacen("{}", &pages.to_string(), 1);
    let _ = write!(h, "<span>{}</span>", E(&of));
    if page < pages {
        let _ = write!(h, " <a href=\"{}page={}\" rel=\"next\">{}</a>", E(base), page + 1, E(l.t("next_page")));
    }
    h.push_str("</nav>");
    h
}

/// A `<select>` of a filter form: (value, label) choices, the first one selected unless
/// `current` names another.
pub fn select(name: &str, label: &str, choices: &[(&str, &str)], current: &str) -> String {
    let mut h = format!("<label>{} <select name=\"{}\">", E(label), E(name));
    for (v, text) in choices {
        let _ = write!(
            h,
            "<option value=\"{}\"{}>{}</option>",
            E(v),
            if *v == current { " selected" } else { "" },
            E(text)
        );
    }
    h.push_str("</select></label>");
    h
}

/// Starts a table with the given (already translated) headings.
pub fn table_head(cls: &str, heads: &[&str]) -> String {
    let mut h = format!("<table class=\"{cls}\"><thead><tr>");
    for x in heads {
        let _ = write!(h, "<th>{}</th>", E(x));
    }
    h.push_str("</tr></thead><tbody>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_carry_their_column_heading() {
        let mut t = table_head("list", &["Rule", "A \"quoted\" <b>", ""]);
        t.push_str("<tr><td class=\"n\">x</td><td>&lt;td&gt;</td><td>z</td></tr><tr><td>y</td></tr></tbody></table>");
        let h = label_cells(&t);
        assert!(h.contains("<td data-label=\"Rule\" class=\"n\">x</td>"), "{h}");
        assert!(h.contains("<td data-label=\"A &quot;quoted&quot; &lt;b&gt;\">&lt;td&gt;</td>"), "{h}");
        assert!(
            h.contains("<td>z</td><tr><td data-label=\"Rule\">y</td>")
                || h.contains("<td>z</td></tr><tr><td data-label=\"Rule\">y</td>"),
            "{h}"
        );
    }

    #[test]
    fn hostile_text_is_inert_and_visible() {
        let s = E("<img src=x onerror=alert(1)>\r\nX-Evil: 1 \"'&\u{202e}").to_string();
        assert_eq!(s, "&lt;img src=x onerror=alert(1)&gt;\\r\\nX-Evil: 1 &quot;&#39;&amp;\\u{202e}");
    }

    #[test]
    fn multiline_keeps_lines_and_escapes_the_rest() {
        assert_eq!(Multiline("a = \"<b>\"\r\n\tc\n").to_string(), "a = &quot;&lt;b&gt;&quot;\n\tc\n");
    }

    #[test]
    fn numbers_and_bytes() {
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(num(-1000), "-1,000");
        assert_eq!(num(12), "12");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(U("a b/é").to_string(), "a%20b%2F%C3%A9");
    }
}
