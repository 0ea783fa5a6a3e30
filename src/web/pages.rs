//! The dashboard's HTML pages: login, overview, counters, identities, retransmissions,
//! application errors and alerts (the rules editor is in `rules_edit.rs`). Each page asks the
//! store's dashboard queries once, on a blocking thread, and renders escaped text.

use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::auth::{self, PasswordState};
use super::html::{
    self, bytes, chart, num, page, range_links, table_head, time_secs, time_text, time_us, Series, E, U,
};
use super::{client_ip, request_lang, ReqCtx, WebError, WebState};
use crate::i18n::Lang;
use crate::store::dashboard::{self as q, Range};

/// `range=1h|24h|7d` (default 24 h), and what some pages filter by.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub range: Option<String>,
    pub key: Option<String>,
    pub q: Option<String>,
    pub family: Option<String>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub next: Option<String>,
    pub file: Option<String>,
    pub saved: Option<String>,
    pub page: Option<usize>,
    pub source: Option<String>,
    pub outcome: Option<String>,
    pub code: Option<String>,
}

impl PageQuery {
    /// The page asked for, from 1.
    pub fn page_no(&self) -> usize {
        self.page.unwrap_or(1).clamp(1, 100_000)
    }
}

/// A filter value: empty and "any" are no filter.
fn chosen(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty() && *v != "any").map(str::to_string)
}

impl PageQuery {
    /// The range asked for; without one, everything of an analysis, or the daemon's last 24 h.
    pub fn range_name(&self, analysis: bool) -> &'static str {
        match self.range.as_deref() {
            Some("1h") => "1h",
            Some("24h") => "24h",
            Some("7d") => "7d",
            Some("all") => "all",
            _ if analysis => "all",
            _ => "24h",
        }
    }
}

/// The range a name stands for, ending at `anchor` (the end of the newest stored minute); "all"
/// starts at the oldest stored minute (at most 400 days back).
pub fn resolve_range(c: &rusqlite::Connection, anchor: i64, name: &str) -> rusqlite::Result<Range> {
    let secs = match name {
        "1h" => 3600,
        "7d" => 7 * 86_400,
        "all" => {
            let oldest = q::oldest_minute(c, anchor - 400 * 86_400)?.unwrap_or(anchor - 3600);
            return Ok(Range { from: oldest.min(anchor - 3600), to: anchor });
        }
        _ => 86_400,
    };
    Ok(Range::last(anchor, secs))
}

fn wall_secs() -> i64 {
    crate::time::wall_now().secs()
}

/// A path to go back to after login or a language switch: only a local path, never `//host`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if is_local_path(n) => n.to_string(),
        _ => "/".into(),
    }
}

/// A path on this box as every browser reads it: one leading `/` not followed by another or by
/// a backslash (`//host`, `/\host` lead elsewhere), and nothing but visible ASCII — browsers
/// drop tabs and line breaks from a Location (`/\t/host` is `//host`), and a space or a
/// control character has no business in a link of the dashboard.
fn is_local_path(n: &str) -> bool {
    let b = n.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && b.len() <= 2048
        && b.iter().all(|c| c.is_ascii_graphic() && *c != b'\\')
}

fn html_ok(body: String) -> Response {
    Html(body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Login

fn password_missing_page(lang: Lang) -> Response {
    let body = format!(
        "<p>{}</p><p>{}</p><pre>sudo mirrorwatch passwd</pre><p>{}</p>",
        E(lang.t("no_password")),
        E(lang.t("no_password_how")),
        E(lang.t("no_password_image"))
    );
    (StatusCode::SERVICE_UNAVAILABLE, Html(html::bare_page(lang, lang.t("login"), &body))).into_response()
}

fn login_page(lang: Lang, next: &str, message: Option<&str>) -> String {
    let msg = message.map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", E(m))).unwrap_or_default();
    let body = format!(
        "{msg}<form method=\"post\" action=\"/login\" class=\"login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>{} <input type=\"password\" name=\"password\" autocomplete=\"current-password\" autofocus required></label>\
         <button type=\"submit\">{}</button></form>\
         <p class=\"lang\"><a href=\"/lang/en?next=/login\">EN</a> <a href=\"/lang/ja?next=/login\">日本語</a></p>",
        E(next),
        E(lang.t("password")),
        E(lang.t("login"))
    );
    html::bare_page(lang, lang.t("login"), &body)
}

fn log_broken_password_file(why: &str) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    if let Ok(mut last) = LAST.lock() {
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
            tracing::error!("dashboard: {why}");
            *last = Some(Instant::now());
        }
    }
}

pub async fn login_form(State(st): State<Arc<WebState>>, headers: HeaderMap, Query(pq): Query<PageQuery>) -> Response {
    let lang = request_lang(&headers);
    match auth::password_state(&st.password_file) {
        PasswordState::Unset => password_missing_page(lang),
        PasswordState::Broken(why) => {
            // The reason names the file: it goes to the log (once a minute), not to whoever asks.
            log_broken_password_file(&why);
            (StatusCode::INTERNAL_SERVER_ERROR, lang.t("password_file_broken")).into_response()
        }
        PasswordState::Set(_) => html_ok(login_page(lang, &safe_next(pq.next.as_deref()), None)),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    pub password: String,
    #[serde(default)]
    pub next: String,
}

pub async fn login(State(st): State<Arc<WebState>>, req: Request) -> Response {
    let lang = request_lang(req.headers());
    let ip = client_ip(req.extensions());
    let Ok(Form(form)) = Form::<LoginForm>::from_request(req, &()).await else {
        return (StatusCode::BAD_REQUEST, "a password field is needed").into_response();
    };
    let hash = match auth::password_state(&st.password_file) {
        PasswordState::Unset => return password_missing_page(lang),
        PasswordState::Broken(why) => {
            // The reason names the file: it goes to the log (once a minute), not to whoever asks.
            log_broken_password_file(&why);
            return (StatusCode::INTERNAL_SERVER_ERROR, lang.t("password_file_broken")).into_response();
        }
        PasswordState::Set(h) => h,
    };
    let next = safe_next(Some(&form.next));
    let admission = st.limiter.lock().map(|mut l| l.begin(ip, Instant::now())).unwrap_or(auth::Admission::Wait(1));
    let clean = match admission {
        auth::Admission::Check { clean } => clean,
        auth::Admission::Wait(secs) => {
            let page = login_page(lang, &next, Some(lang.t("login_limited")));
            return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], Html(page))
                .into_response();
        }
    };
    // Ends the check in the limiter however this future ends (a client that hangs up while
    // its check waits must not stay "checking").
    let mut check = Checking { st: Arc::clone(&st), ip, ok: false };
    // argon2 takes tens of milliseconds and ~19 MiB on purpose: one check at a time per queue,
    // off the async workers.
    let slots = if clean { &st.verify_clean } else { &st.verify_failing };
    if let Ok(_slot) = slots.acquire().await {
        let password = form.password;
        check.ok = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password)).await.unwrap_or(false);
    }
    if !check.ok {
        drop(check);
        return (StatusCode::UNAUTHORIZED, Html(login_page(lang, &next, Some(lang.t("login_failed"))))).into_response();
    }
    drop(check);
    let Ok(mut sessions) = st.sessions.lock() else {
        return WebError::Internal("session table poisoned".into()).into_response();
    };
    let (id, _) = sessions.create();
    let max_age = sessions.lifetime().as_secs();
    let cookie = format!("{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}", auth::SESSION_COOKIE);
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, next)]).into_response()
}

/// A password check under way; leaving reports its result to the limiter.
struct Checking {
    st: Arc<WebState>,
    ip: std::net::IpAddr,
    ok: bool,
}

impl Drop for Checking {
    fn drop(&mut self) {
        let failures = self.st.limiter.lock().map(|mut l| l.end(self.ip, self.ok)).unwrap_or(0);
        // The first failure and the one that locks the client out are logged, not each guess.
        if failures == 1 {
            tracing::warn!("dashboard: failed login from {}", self.ip);
        } else if failures == auth::LIMIT_PER_CLIENT {
            tracing::warn!("dashboard: {} failed logins from {}: it waits a minute", failures, self.ip);
        }
    }
}

pub async fn logout(State(st): State<Arc<WebState>>, Extension(cx): Extension<ReqCtx>) -> Response {
    if let Ok(mut s) = st.sessions.lock() {
        s.remove(&cx.session);
    }
    let cookie = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", auth::SESSION_COOKIE);
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, "/login".to_string())]).into_response()
}

pub async fn set_lang(Path(code): Path<String>, Query(pq): Query<PageQuery>) -> Response {
    let lang = Lang::parse(&code).unwrap_or_default();
    let cookie = format!("{}={}; Path=/; SameSite=Strict; Max-Age=31536000", super::LANG_COOKIE, lang.code());
    (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, safe_next(pq.next.as_deref()))])
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Overview

struct Overview {
    range: Range,
    latest: Option<q::MinuteTraffic>,
    series: q::TrafficSeries,
    totals: q::TrafficTotals,
    active: q::AlertPage,
    names: Names,
    health: Vec<q::HealthEvent>,
    span: Option<(i64, i64)>,
}

pub async fn overview(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(pq): Query<PageQuery>,
) -> Result<Response, WebError> {
    let wall = wall_secs();
    let rname = pq.range_name(st.is_analysis());
    let o = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            let day = resolve_range(c, anchor, rname)?;
            let active = q::alerts(c, &q::AlertFilter::active(), 0, 10)?;
            Ok(Overview {
                range: day,
                latest: q::latest_minute(c, anchor)?,
                series: q::traffic_series(c, day)?,
                totals: q::traffic_totals(c, day)?,
                active: active.clone(),
                names: alert_names(c, &active.alerts)?,
                health: q::health_events(c, 5)?,
                span: q::stored_span(c)?,
            })
        })
        .await?;
    let l = cx.lang;
    let mut b = String::new();
    // Live capture is measured against the clock: a port that went quiet shows as quiet, with
    // the time of its last frame, not as the last minute it had traffic.
    let capture_now = st.live.wall.now(crate::store::wall_us());
    let (pps, bps, rate_label) = match capture_now {
        super::CaptureNow::Flowing { pps, bps } => (pps, bps, l.t("last_minute_wall")),
        super::CaptureNow::Silent { .. } => (0.0, 0.0, l.t("last_minute_wall")),
        super::CaptureNow::Unknown => {
            let (p, b) =
                o.latest.as_ref().map(|m| (m.packets as f64 / 60.0, m.bytes as f64 / 60.0)).unwrap_or((0.0, 0.0));
            (p, b, l.t("newest_stored_minute"))
        }
    };
    if let super::CaptureNow::Silent { since_us, alerting } = capture_now {
        let _ = write!(
            b,
            "<p class=\"banner {}\" id=\"capture-silent\">{}</p>",
            if alerting { "bad" } else { "warn" },
            E(l.t("capture_silent")).to_string().replacen("{}", &time_us(since_us), 1)
        );
    }
    let last_packet = st.live.last_packet_us.load(std::sync::atomic::Ordering::Relaxed);
    let last_packet = if last_packet > 0 {
        time_us(last_packet)
    } else {
        o.latest.as_ref().map(|m| time_secs(m.minute)).unwrap_or_else(|| "–".into())
    };
    let store_state = match st.live.store.lock().ok().and_then(|s| s.as_ref().and_then(|h| h.failing())) {
        Some((since, why)) => {
            format!("<span class=\"bad\">{} ({})</span> {}", E(l.t("store_failing")), E(&why), time_us(since))
        }
        None => format!("<span class=\"good\">{}</span>", E(l.t("store_ok"))),
    };
    // Where the drops happened: the kernel's buffer or the interface (lost to analysis), and
    // the frames the pcap ring could not keep (analysed all the same).
    let mut drops_detail = String::new();
    if o.totals.drops > 0 {
        let _ = write!(
            drops_detail,
            " · {} {} / {} {}",
            E(l.t("drops_kernel")),
            num(o.totals.drops - o.totals.if_drops),
            E(l.t("drops_interface")),
            num(o.totals.if_drops)
        );
    }
    if o.totals.ring_drops > 0 {
        let _ = write!(drops_detail, " · {} {}", E(l.t("ring_lost")), num(o.totals.ring_drops));
    }
    let ring = match st.live.ring.lock().ok().and_then(|r| r.clone()) {
        None => String::new(),
        Some(r) => {
            use std::sync::atomic::Ordering::Relaxed;
            let mut t = format!(
                "<p>{}: {} {} · {}",
                E(l.t("pcap_ring")),
                num(r.files.load(Relaxed) as i64),
                E(l.t("files")),
                bytes(r.bytes.load(Relaxed) as i64)
            );
            let oldest = r.oldest_ns.load(Relaxed);
            if oldest > 0 {
                let _ = write!(t, " · {} {}", E(l.t("since")), time_us(oldest / 1000));
            }
            let lost = r.frames_lost.load(Relaxed);
            if lost > 0 {
                let _ = write!(t, " · <span class=\"warn\">{} {}</span>", num(lost as i64), E(l.t("ring_lost")));
            }
            let failing = r.failing_since_us.load(Relaxed);
            if failing > 0 {
                let why = r.error.lock().map(|e| e.clone()).unwrap_or_default();
                let _ = write!(
                    t,
                    " · <span class=\"bad\">{} ({})</span> {}",
                    E(l.t("ring_failing")),
                    E(&why),
                    time_us(failing)
                );
            }
            t.push_str("</p>");
            t
        }
    };
    let export = export_line(&st.live, l);
    let db_bytes = st.database_bytes();
    // How far back the store reaches (retention days, or less once disk_budget is reached).
    let holds = match o.span {
        Some((from, to)) => format!(
            "<p id=\"store-holds\">{}: {:.1} {} ({} {})</p>",
            E(l.t("store_holds")),
            (to + 60 - from) as f64 / 86_400.0,
            E(l.t("days_unit")),
            E(l.t("since")),
            E(crate::time::Ts(from.saturating_mul(1_000_000_000)).rfc3339().get(..10).unwrap_or(""))
        ),
        None => String::new(),
    };
    let disk = match (fs4::available_space(&st.store_dir), fs4::total_space(&st.store_dir)) {
        (Ok(free), Ok(total)) if total > 0 => format!(
            "{} {} / {} ({:.0} %)",
            bytes(free as i64),
            E(l.t("disk_free")),
            bytes(total as i64),
            100.0 * free as f64 / total as f64
        ),
        _ => "–".into(),
    };
    let _ = write!(
        b,
        "<section class=\"tiles\">\
         <div class=\"tile\"><h2>{}</h2><p class=\"big\" id=\"pps\">{:.1}</p><p>{}</p></div>\
         <div class=\"tile\"><h2>{}</h2><p class=\"big\">{}</p><p>{}</p></div>\
         <div class=\"tile\"><h2>{}</h2><p class=\"big\">{}</p><p>{rname}{}</p></div>\
         <div class=\"tile\"><h2>{}</h2><p class=\"big\">{}</p></div>\
         <div class=\"tile\"><h2>{}</h2><p>{}</p><p>{} {}</p>{holds}<p>{}: {}</p>{ring}{export}</div>\
         <div class=\"tile\"><h2>{}</h2><p>{}</p></div></section>",
        E(l.t("packets_per_s")),
        pps,
        E(rate_label),
        E(l.t("bytes_per_s")),
        bytes(bps as i64),
        E(rate_label),
        E(l.t("drops")),
        num(o.totals.drops),
        drops_detail,
        E(l.t("active_alerts")),
        o.active.total,
        E(l.t("store")),
        store_state,
        E(l.t("db_size")),
        bytes(db_bytes as i64),
        E(l.t("disk")),
        disk,
        E(l.t("last_packet")),
        last_packet,
    );
    // What is wrong now, before the history: the active alerts, worst first, repeats folded.
    let _ = write!(b, "<h2>{}</h2>", E(l.t("active_alerts")));
    b.push_str(&alert_table(l, &cx.csrf, &o.active.alerts, 10, &o.names));
    if o.active.total > 10 {
        let _ = write!(b, "<p><a href=\"/alerts?state=active\">{} ({})</a></p>", E(l.t("alerts")), num(o.active.total));
    }
    let range = (o.range.from, o.range.to);
    let per = o.series.bucket as f64;
    b.push_str(&range_links("/?", rname, st.is_analysis()));
    b.push_str(&chart(
        &format!("{} · {rname}", l.t("packets_per_s")),
        &html::axis_rate(l, l.t("packets_per_s"), o.series.bucket),
        o.series.bucket,
        range,
        &[Series::from_points(l.t("packets"), &o.series.packets, per)],
    ));
    b.push_str(&chart(
        &format!("{} · {rname}", l.t("bytes_per_s")),
        &html::axis_rate(l, l.t("bytes_per_s"), o.series.bucket),
        o.series.bucket,
        range,
        &[Series::from_points(l.t("bytes"), &o.series.bytes, per)],
    ));
    let clock = crate::time::clock_status(wall, std::path::Path::new(crate::time::TIMESYNC_DIR));
    if !clock.synchronized && !st.is_analysis() {
        let _ = write!(b, "<p class=\"warn\">{}: {}</p>", E(l.t("clock_unsynced")), E(&clock.reason));
    }
    if o.totals.time_jumps > 0 {
        let _ = write!(b, "<p class=\"warn\">{}: {}</p>", E(l.t("time_jumps")), num(o.totals.time_jumps));
    }
    if !o.health.is_empty() {
        let _ = write!(b, "<h2>{}</h2>", E(l.t("store")));
        b.push_str(&table_head("list", &[l.t("time"), l.t("state"), l.t("count"), l.t("message")]));
        for h in &o.health {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                time_us(h.ts_us),
                E(&h.kind),
                num(h.count),
                E(&h.detail)
            );
        }
        b.push_str("</tbody></table>");
    }
    Ok(html_ok(page(&cx.page(&st), l.t("overview"), &b)))
}

// ---------------------------------------------------------------------------------------------
// Counters

/// Descriptions of the counters in the rule directory (id -> description).
pub fn counter_descriptions(st: &WebState) -> Vec<(String, String)> {
    counter_rules(st).into_iter().map(|(id, d, _)| (id, d)).collect()
}

/// The counters of the rule directory: (id, description, counts bytes rather than frames).
/// The fleet export's line in the store tile: what went out, where, and what was lost.
fn export_line(live: &super::Live, l: Lang) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(e) = live.export.lock().ok().and_then(|e| e.clone()) else { return String::new() };
    let mut t = format!("<p id=\"export\">{}:", E(l.t("fleet_export")));
    if e.jsonl_configured.load(Relaxed) {
        let _ = write!(t, " {} {}", num(e.jsonl_written.load(Relaxed) as i64), E(l.t("export_file")));
    }
    if e.syslog_configured.load(Relaxed) {
        let _ = write!(t, " · {} {}", num(e.syslog_sent.load(Relaxed) as i64), E(l.t("export_syslog")));
        if !e.syslog_connected.load(Relaxed) {
            let why = e.syslog_error.lock().map(|s| s.clone()).unwrap_or_default();
            let _ = write!(t, " · <span class=\"warn\">{} ({})</span>", E(l.t("syslog_away")), E(&why));
        }
    }
    let dropped = e.dropped();
    if dropped > 0 {
        let _ = write!(t, " · <span class=\"warn\">{} {}</span>", num(dropped as i64), E(l.t("export_dropped")));
    }
    t.push_str("</p>");
    t
}

fn counter_rules(st: &WebState) -> Vec<(String, String, bool)> {
    st.rules_dir
        .as_deref()
        .and_then(|d| crate::rules::RuleSet::load_dir(d).ok())
        .map(|r| {
            r.counters
                .iter()
                .map(|c| (c.id.clone(), c.description.clone(), c.value == crate::rules::ValueKind::Bytes))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn counters(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(pq): Query<PageQuery>,
) -> Result<Response, WebError> {
    let rname = pq.range_name(st.is_analysis());
    let wall = wall_secs();
    let list = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            q::counters(c, resolve_range(c, anchor, rname)?)
        })
        .await?;
    let descriptions = counter_descriptions(&st);
    // A counter of the rules that never counted is listed with 0, not left out.
    let mut list = list;
    for (id, _) in &descriptions {
        if !list.iter().any(|c| &c.id == id) {
            list.push(q::CounterInfo { id: id.clone(), total: 0, last_minute: None, last_value: 0, grouped: false });
        }
    }
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let l = cx.lang;
    let mut b = range_links("/counters?", rname, st.is_analysis());
    if list.is_empty() {
        let _ = write!(b, "<p>{}</p>", E(l.t("no_data")));
    }
    b.push_str(&table_head(
        "list",
        &[l.t("counter"), l.t("summary"), &format!("{} ({rname})", l.t("total")), l.t("last_value"), l.t("time")],
    ));
    for c in &list {
        let desc = descriptions.iter().find(|(id, _)| id == &c.id).map(|(_, d)| d.as_str()).unwrap_or("");
        let _ = write!(
            b,
            "<tr><td><a href=\"/counters/{}?range={rname}\">{}</a>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            U(&c.id),
            E(&c.id),
            if c.grouped { " <small>(groups)</small>" } else { "" },
            E(desc),
            num(c.total),
            num(c.last_value),
            c.last_minute.map(time_secs).unwrap_or_default()
        );
    }
    b.push_str("</tbody></table>");
    Ok(html_ok(page(&cx.page(&st), l.t("counters"), &b)))
}

pub async fn counter(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Path(id): Path<String>,
    Query(pq): Query<PageQuery>,
) -> Result<Response, WebError> {
    let rname = pq.range_name(st.is_analysis());
    let key = pq.key.clone().unwrap_or_default();
    let wall = wall_secs();
    let (id2, key2) = (id.clone(), key.clone());
    let (range, series, groups) = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            let r = resolve_range(c, anchor, rname)?;
            Ok((r, q::counter_series(c, &id2, &key2, r)?, q::counter_groups(c, &id2, r, 50)?))
        })
        .await?;
    let l = cx.lang;
    let title = if key.is_empty() { id.clone() } else { format!("{id} · {key}") };
    let base = if key.is_empty() {
        format!("/counters/{}?", U(&id))
    } else {
        format!("/counters/{}?key={}&", U(&id), U(&key))
    };
    let mut b = range_links(&base, rname, st.is_analysis());
    let rules = counter_rules(&st);
    let counts_bytes = rules.iter().any(|(c, _, bytes)| c == &id && *bytes);
    if let Some((_, d, _)) = rules.iter().find(|(c, _, _)| c == &id) {
        let _ = write!(b, "<p>{}</p>", E(d));
    }
    if !key.is_empty() {
        let _ = write!(b, "<p><a href=\"/counters/{}?range={rname}\">← {}</a></p>", U(&id), E(&id));
    }
    let total: f64 = series.iter().map(|p| p.v).sum();
    let unit = html::axis_count(l, l.t(if counts_bytes { "bytes_word" } else { "frames_word" }), range.bucket());
    b.push_str(&chart(
        &format!("{title} · {rname} · {} {}", l.t("total"), num(total as i64)),
        &unit,
        range.bucket(),
        (range.from, range.to),
        &[Series::from_points(&title, &series, 1.0)],
    ));
    if series.is_empty() {
        let _ = write!(b, "<p>{}</p>", E(l.t("no_data")));
    }
    if key.is_empty() && !groups.is_empty() {
        let _ = write!(b, "<h2>{}</h2>", E(l.t("groups")));
        b.push_str(&table_head("list", &[l.t("group"), &format!("{} ({rname})", l.t("total"))]));
        for g in &groups {
            let _ = write!(
                b,
                "<tr><td><a href=\"/counters/{}?key={}&amp;range={rname}\">{}</a></td><td class=\"n\">{}</td></tr>",
                U(&id),
                U(&g.key),
                E(&g.key),
                num(g.total)
            );
        }
        b.push_str("</tbody></table>");
    }
    Ok(html_ok(page(&cx.page(&st), &title, &b)))
}

// ---------------------------------------------------------------------------------------------
// Identities

fn identity_rows(l: Lang, rows: &[q::Identity]) -> String {
    let mut b = table_head(
        "list identities",
        &[
            l.t("user"),
            l.t("realm"),
            l.t("hostname"),
            l.t("mac"),
            l.t("ip"),
            l.t("source"),
            l.t("outcome"),
            l.t("first_seen"),
            l.t("last_seen"),
            l.t("count"),
        ],
    );
    for r in rows {
        let outcome = if r.error.is_empty() { r.outcome.clone() } else { format!("{} ({})", r.outcome, r.error) };
        let _ = write!(
            b,
            "<tr class=\"{}\"><td class=\"user\">{}</td><td class=\"host\">{}</td><td class=\"host\">{}</td><td><a href=\"/identities/mac/{}\">{}</a></td>\
             <td class=\"host\">{}</td><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            if r.outcome == "failure" { "failure" } else { "" },
            E(&r.user),
            E(&r.realm),
            E(&r.hostname),
            U(&r.mac),
            E(&r.mac),
            E(&r.ip),
            E(&r.source),
            E(&outcome),
            time_us(r.first_us),
            time_us(r.last_us),
            num(r.count)
        );
    }
    b.push_str("</tbody></table>");
    b
}

fn shared_mac_list(l: Lang, events: &[q::IdentityEvent]) -> String {
    if events.is_empty() {
        return String::new();
    }
    let mut b = format!("<section class=\"warnbox\"><h2>{}</h2><ul>", E(l.t("shared_mac")));
    for e in events.iter().take(20) {
        let users: Vec<String> = e.users.iter().map(|u| format!("<span class=\"user\">{}</span>", E(u))).collect();
        let _ = write!(
            b,
            "<li>{} <a href=\"/identities/mac/{}\">{}</a> {}: {} ({} {})</li>",
            time_text(&e.ts),
            U(&e.mac),
            E(&e.mac),
            E(e.ip.as_deref().unwrap_or("")),
            users.join(", "),
            E(l.t("frame")),
            e.frame
        );
    }
    b.push_str("</ul></section>");
    b
}

pub async fn identities(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(pq): Query<PageQuery>,
) -> Result<Response, WebError> {
    let query = pq.q.clone().unwrap_or_default();
    let filter = q::IdentityFilter { q: query.clone(), source: chosen(&pq.source), outcome: chosen(&pq.outcome) };
    let f2 = filter.clone();
    let page_no = pq.page_no();
    let wall = wall_secs();
    let ((rows, total), sources, shared, top) = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            Ok((
                q::identities_page(c, &f2, (page_no - 1) * html::PAGE_ROWS, html::PAGE_ROWS)?,
                q::identity_sources(c)?,
                q::identity_events(c, "identity.shared_mac", None)?,
                // A day: volume per user and minute is the largest table the page reads.
                q::top_users(c, Range::last(anchor, 86_400), 20)?,
            ))
        })
        .await?;
    let l = cx.lang;
    let source_choices: Vec<(&str, &str)> =
        std::iter::once(("", l.t("any"))).chain(sources.iter().map(|s| (s.as_str(), s.as_str()))).collect();
    let mut b = format!(
        "<form method=\"get\" action=\"/identities\" class=\"search filters\" role=\"search\">\
         <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"{}\" aria-label=\"{}\">{}{}\
         <button type=\"submit\">{}</button></form>",
        E(&query),
        E(l.t("search_hint")),
        E(l.t("search")),
        html::select("source", l.t("source"), &source_choices, filter.source.as_deref().unwrap_or("")),
        html::select(
            "outcome",
            l.t("outcome"),
            &[("", l.t("any")), ("success", "success"), ("failure", "failure")],
            filter.outcome.as_deref().unwrap_or("")
        ),
        E(l.t("search"))
    );
    b.push_str(&shared_mac_list(l, &shared));
    b.push_str(&identity_rows(l, &rows));
    if rows.is_empty() {
        let _ = write!(b, "<p>{}</p>", E(l.t("none")));
    }
    let mut base = format!("/identities?q={}&", U(&query));
    for (k, v) in [("source", &filter.source), ("outcome", &filter.outcome)] {
        if let Some(v) = v {
            let _ = write!(base, "{k}={}&", U(v));
        }
    }
    b.push_str(&html::pager(l, &base, page_no, total));
    if !top.is_empty() {
        let _ = write!(b, "<h2>{} (24h)</h2>", E(l.t("top_users")));
        b.push_str(&table_head("list", &[l.t("user"), l.t("bytes_in"), l.t("bytes_out"), l.t("packets")]));
        for u in &top {
            let _ = write!(
                b,
                "<tr><td class=\"user\"><a href=\"/identities?q={}\">{}</a></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                U(&u.user),
                E(&u.user),
                bytes(u.bytes_in),
                bytes(u.bytes_out),
                num(u.packets)
            );
        }
        b.push_str("</tbody></table>");
    }
    Ok(html_ok(page(&cx.page(&st), l.t("identities"), &b)))
}

pub async fn mac_history(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Path(mac): Path<String>,
) -> Result<Response, WebError> {
    let m2 = mac.clone();
    let (rows, shared) = st
        .read(move |c| Ok((q::mac_history(c, &m2)?, q::identity_events(c, "identity.shared_mac", Some(&m2))?)))
        .await?;
    let l = cx.lang;
    let mut b = shared_mac_list(l, &shared);
    b.push_str(&identity_rows(l, &rows));
    if rows.is_empty() {
        let _ = write!(b, "<p>{}</p>", E(l.t("none")));
    }
    Ok(html_ok(page(&cx.page(&st), &format!("{} {mac}", l.t("history_of")), &b)))
}

// ---------------------------------------------------------------------------------------------
// Retransmissions

pub async fn retransmissions(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(pq): Query<PageQuery>,
) -> Result<Response, WebError> {
    let rname = pq.range_name(st.is_analysis());
    let wall = wall_secs();
    let (r, series, pairs) = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            let r = resolve_range(c, anchor, rname)?;
            Ok((r, q::traffic_series(c, r)?, q::retrans_pairs(c, r, 100, None)?))
        })
        .await?;
    let l = cx.lang;
    let mut b = range_links("/retransmissions?", rname, st.is_analysis());
    b.push_str(&chart(
        &format!("{} ({}) · {rname}", l.t("retransmissions"), l.t("private")),
        &html::axis_count(l, l.t("frames_word"), r.bucket()),
        r.bucket(),
        (r.from, r.to),
        &[Series::from_points(l.t("retransmissions"), &series.retransmissions, 1.0)],
    ));
    b.push_str(&pair_table(l, &pairs, rname));
    if pairs.is_empty() {
        let _ = write!(b, "<p>{}</p>", E(l.t("none")));
    }
    Ok(html_ok(page(&cx.page(&st), l.t("retransmissions"), &b)))
}

/// Whether a pair stands out: at least 1 % retransmitted and 3 times its own baseline.
pub fn pair_is_hot(p: &q::PairRetrans) -> bool {
    p.rate_pct >= 1.0 && p.times_baseline() >= 3.0
}

fn pair_table(l: Lang, pairs: &[q::PairRetrans], rname: &str) -> String {
    let mut b = table_head(
        "list pairs",
        &[
            l.t("host_pair"),
            l.t("packets"),
            l.t("retransmissions"),
            l.t("rate"),
            l.t("baseline"),
            l.t("times_baseline"),
            l.t("lost"),
        ],
    );
    for p in pairs {
        let _ = write!(
            b,
            "<tr class=\"{}\"><td><a href=\"/retransmissions/pair?src={}&amp;dst={}&amp;range={rname}\">{} → {}</a>{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2} %</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if pair_is_hot(p) { "hot" } else { "" },
            U(&p.src),
            U(&p.dst),
            E(&p.src),
            E(&p.dst),
            if p.private { "" } else { " <small>(public)</small>" },
            num(p.packets),
            num(p.retransmissions),
            p.rate_pct,
            p.baseline_pct.map(|b| format!("{b:.2} %")).unwrap_or_else(|| "–".into()),
            if p.baseline_pct.is_some() { format!("{:.1}", p.times_baseline()) } else { "new".into() },
            num(p.lost_segments)
        );
    }
    b.push_str("</tbody></table>");
    b
}

pub async fn retrans_pair(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(pq): Query<PageQuery>,
) -> Result<Response, WebError> {
    let rname = pq.range_name(st.is_analysis());
    let (src, dst) = (pq.src.clone().unwrap_or_default(), pq.dst.clone().unwrap_or_default());
    let (s2, d2) = (src.clone(), dst.clone());
    let wall = wall_secs();
    let (r, (retrans, packets), pair) = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            let r = resolve_range(c, anchor, rname)?;
            let pair = q::retrans_pairs(c, r, 1, Some((&s2, &d2)))?.pop();
            Ok((r, q::pair_series(c, &s2, &d2, r)?, pair))
        })
        .await?;
    let l = cx.lang;
    let title = format!("{src} → {dst}");
    let mut b =
        range_links(&format!("/retransmissions/pair?src={}&dst={}&", U(&src), U(&dst)), rname, st.is_analysis());
    let mut lines = vec![Series::from_points(l.t("retransmissions"), &retrans, 1.0)];
    // What the pair would retransmit at its own baseline rate, given the packets it sent.
    if let Some(base) = pair.as_ref().and_then(|p| p.baseline_pct) {
        lines.push(Series {
            name: l.t("baseline"),
            points: packets.iter().map(|p| (p.t, p.v * base / 100.0)).collect(),
            dashed: true,
        });
    }
    b.push_str(&chart(
        &format!("{title} · {rname}"),
        &html::axis_count(l, l.t("frames_word"), r.bucket()),
        r.bucket(),
        (r.from, r.to),
        &lines,
    ));
    if let Some(p) = &pair {
        b.push_str(&pair_table(l, std::slice::from_ref(p), rname));
    } else {
        let _ = write!(b, "<p>{}</p>", E(l.t("no_data")));
    }
    Ok(html_ok(page(&cx.page(&st), &title, &b)))
}

// ---------------------------------------------------------------------------------------------
// Application errors

pub async fn errors(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(pq): Query<PageQuery>,
) -> Result<Response, WebError> {
    let rname = pq.range_name(st.is_analysis());
    let family = pq.family.clone().filter(|f| !f.is_empty());
    let f2 = family.clone();
    let code = chosen(&pq.code);
    let c2 = code.clone();
    let page_no = pq.page_no();
    let wall = wall_secs();
    let (r, series, kinds, (examples, total)) = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            let r = resolve_range(c, anchor, rname)?;
            Ok((
                r,
                q::app_error_series(c, f2.as_deref(), r)?,
                q::app_error_kinds(c, r)?,
                q::app_error_page(
                    c,
                    r,
                    f2.as_deref(),
                    c2.as_deref(),
                    (page_no - 1) * html::PAGE_ROWS,
                    html::PAGE_ROWS,
                )?,
            ))
        })
        .await?;
    let l = cx.lang;
    let base = match &family {
        Some(f) => format!("/errors?family={}&", U(f)),
        None => "/errors?".to_string(),
    };
    let mut b = range_links(&base, rname, st.is_analysis());
    let mut families: Vec<&str> = kinds.iter().map(|k| k.family.as_str()).collect();
    families.sort_unstable();
    families.dedup();
    b.push_str("<p class=\"ranges\">");
    let _ = write!(b, "<a href=\"/errors?range={rname}\">{}</a> ", E(l.t("all")));
    for f in families {
        let _ = write!(b, "<a href=\"/errors?family={}&amp;range={rname}\">{}</a> ", U(f), E(f));
    }
    b.push_str("</p>");
    b.push_str(&chart(
        &format!("{} · {rname}", l.t("app_errors")),
        &html::axis_count(l, l.t("errors_word"), r.bucket()),
        r.bucket(),
        (r.from, r.to),
        &[Series::from_points(family.as_deref().unwrap_or(l.t("all")), &series, 1.0)],
    ));
    b.push_str(&table_head(
        "list",
        &[l.t("family"), l.t("code"), l.t("server"), l.t("count"), l.t("first_seen"), l.t("last_seen")],
    ));
    for k in kinds.iter().filter(|k| family.as_deref().is_none_or(|f| f == k.family)) {
        let _ = write!(
            b,
            "<tr><td>{}</td><td><a href=\"/errors?family={}&amp;code={}&amp;range={rname}#examples\">{}</a></td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            E(&k.family),
            U(&k.family),
            U(&k.code),
            E(&k.code),
            E(&k.server),
            num(k.count),
            time_secs(k.first_minute),
            time_secs(k.last_minute)
        );
    }
    b.push_str("</tbody></table>");
    if kinds.is_empty() {
        let _ = write!(b, "<p>{}</p>", E(l.t("none")));
    }
    if !examples.is_empty() {
        let _ = write!(
            b,
            "<h2 id=\"examples\">{}{}</h2>",
            E(l.t("examples")),
            code.as_deref().map(|c| format!(" · {}", E(c))).unwrap_or_default()
        );
        b.push_str(&table_head(
            "list",
            &[l.t("time"), l.t("family"), l.t("code"), l.t("message"), l.t("client"), l.t("server"), l.t("frame")],
        ));
        for e in &examples {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                time_us(e.ts_us),
                E(&e.family),
                E(&e.code),
                E(&e.message),
                E(&e.client),
                E(&e.server),
                e.frame
            );
        }
        b.push_str("</tbody></table>");
        let mut base = format!("/errors?range={rname}&");
        for (k, v) in [("family", &family), ("code", &code)] {
            if let Some(v) = v {
                let _ = write!(base, "{k}={}&", U(v));
            }
        }
        b.push_str(&html::pager(l, &base, page_no, total));
    }
    Ok(html_ok(page(&cx.page(&st), l.t("app_errors"), &b)))
}

// ---------------------------------------------------------------------------------------------
// Alerts

type Names = std::collections::HashMap<String, String>;

fn alert_table(l: Lang, csrf: &str, alerts: &[q::Alert], limit: usize, names: &Names) -> String {
    alert_table_focus(l, csrf, alerts, limit, None, names)
}

/// An alert key with the names of the hosts it carries: "10.0.0.5:5432 (db1 · svc-app)".
fn key_with_names(key: &str, names: &Names) -> String {
    let mut h = E(key).to_string();
    for ip in q::key_ips(key) {
        if let Some(n) = names.get(&ip) {
            let _ = write!(h, " <span class=\"name\">({})</span>", E(n));
        }
    }
    h
}

/// The names of the addresses in these alerts' keys.
fn alert_names(c: &rusqlite::Connection, alerts: &[q::Alert]) -> rusqlite::Result<Names> {
    q::names_for_ips(c, &q::ips_in_keys(alerts.iter().map(|a| a.key.as_str())))
}

/// The alert table; `focus` (the alert a mail linked to) is marked and can be scrolled to.
fn alert_table_focus(
    l: Lang,
    csrf: &str,
    alerts: &[q::Alert],
    limit: usize,
    focus: Option<i64>,
    names: &Names,
) -> String {
    if alerts.is_empty() {
        return format!("<p>{}</p>", E(l.t("none")));
    }
    let mut b = table_head(
        "list alerts",
        &[l.t("severity"), l.t("rule"), l.t("key"), l.t("summary"), l.t("since"), l.t("state"), l.t("count"), ""],
    );
    for a in alerts.iter().take(limit) {
        let mut state = E(l.t(if a.state == "active" { "active" } else { "cleared" })).to_string();
        if let Some(c) = a.cleared_us {
            let _ = write!(state, " {}", time_us(c));
        }
        if a.suppressed {
            let _ = write!(state, " · {}", E(l.t("suppressed")));
        }
        // Repeats of the same rule and key folded into this row: how many, since when.
        let mut since = time_us(a.since_us);
        if a.episodes > 1 {
            let _ = write!(
                since,
                " · {} {} ({} {})",
                num(a.episodes),
                E(l.t("episodes")),
                E(l.t("first_seen")),
                time_us(a.first_us)
            );
        }
        let mut actions = String::new();
        match (a.window_id, a.window_state.as_deref()) {
            (Some(w), Some("kept")) => {
                let _ = write!(
                    actions,
                    "<a href=\"/captures/window/{w}\" download>{} ({})</a> ",
                    E(l.t("evidence_window")),
                    bytes(a.window_bytes.unwrap_or(0))
                );
            }
            (Some(_), Some("pending")) => {
                let _ = write!(actions, "{}: {} ", E(l.t("evidence_window")), E(l.t("window_pending")));
            }
            _ => {}
        }
        if let Some(n) = a.evidence_bytes {
            let _ = write!(
                actions,
                "<a href=\"/alerts/{}/evidence\" download>{} pcapng ({})</a> ",
                a.id,
                E(l.t("evidence")),
                bytes(n)
            );
        }
        match a.acked_us {
            Some(t) => {
                let _ = write!(actions, "{} {}", E(l.t("acked")), time_us(t));
            }
            None => {
                let _ = write!(
                    actions,
                    "<form method=\"post\" action=\"/alerts/{}/ack\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <button type=\"submit\">{}</button></form>",
                    a.id,
                    E(csrf),
                    E(l.t("ack"))
                );
            }
        }
        let _ = write!(
            b,
            "<tr id=\"alert-{}\" class=\"sev-{}{}\" data-state=\"{}\"><td class=\"sev\">{}</td><td class=\"rule\">{}</td><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            a.id,
            E(&a.severity),
            if focus == Some(a.id) { " focus" } else { "" },
            E(&a.state),
            E(&severity_text(l, &a.severity)),
            E(&a.rule),
            key_with_names(&a.key, names),
            E(&crate::i18n::summary::summary(l, &a.summary)),
            since,
            state,
            num(a.count),
            actions
        );
    }
    b.push_str("</tbody></table>");
    b
}

#[derive(Debug, Default, Deserialize)]
pub struct AlertQuery {
    /// The alert a mail links to (`/alerts?id=N#alert-N`): shown above the list.
    pub id: Option<i64>,
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub state: Option<String>,
    pub range: Option<String>,
    /// `1`: every episode on its own row (by default one row per rule and key).
    pub each: Option<String>,
    pub page: Option<usize>,
}

impl AlertQuery {
    /// The store's filter; the time range ends at `anchor` (seconds).
    pub fn filter(&self, c: &rusqlite::Connection, anchor: i64) -> rusqlite::Result<q::AlertFilter> {
        let (from_us, to_us) = match self.range.as_deref() {
            Some(name @ ("1h" | "24h" | "7d")) => {
                let r = resolve_range(c, anchor, name)?;
                (Some(r.from * 1_000_000), None)
            }
            _ => (None, None),
        };
        Ok(q::AlertFilter {
            severity: chosen(&self.severity),
            rule: chosen(&self.rule),
            state: chosen(&self.state).filter(|s| s == "active" || s == "cleared"),
            from_us,
            to_us,
            fold: self.each.as_deref() != Some("1"),
            id: None,
        })
    }

    pub fn page(&self) -> usize {
        self.page.unwrap_or(1).clamp(1, 100_000)
    }

    /// This query as URL parameters, without the page (for the pager and links).
    fn params(&self) -> String {
        let mut p = String::new();
        for (k, v) in [
            ("severity", &self.severity),
            ("rule", &self.rule),
            ("state", &self.state),
            ("range", &self.range),
            ("each", &self.each),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(p, "{k}={}&", U(v));
            }
        }
        p
    }
}

/// A severity in the page's language (the rule files say critical, warning or info).
fn severity_text(l: Lang, s: &str) -> String {
    match s {
        "critical" => l.t("sev_critical").to_string(),
        "warning" => l.t("sev_warning").to_string(),
        "info" => l.t("sev_info").to_string(),
        other => other.to_string(),
    }
}

pub async fn alerts(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(aq): Query<AlertQuery>,
) -> Result<Response, WebError> {
    let wall = wall_secs();
    let page_no = aq.page();
    let params = aq.params();
    let current = [
        aq.severity.clone().unwrap_or_default(),
        aq.rule.clone().unwrap_or_default(),
        aq.state.clone().unwrap_or_default(),
        aq.range.clone().unwrap_or_default(),
    ];
    let each = aq.each.as_deref() == Some("1");
    let (list, focus, rules, names) = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            let f = aq.filter(c, anchor)?;
            let list = q::alerts(c, &f, (page_no - 1) * html::PAGE_ROWS, html::PAGE_ROWS)?;
            let focus = match aq.id {
                Some(id) => q::alerts(c, &q::AlertFilter { id: Some(id), ..q::AlertFilter::default() }, 0, 1)?.alerts,
                None => Vec::new(),
            };
            let mut names = alert_names(c, &list.alerts)?;
            names.extend(alert_names(c, &focus)?);
            Ok((list, focus, q::alert_rules(c)?, names))
        })
        .await?;
    let l = cx.lang;
    let mut b = String::new();
    if let Some(a) = focus.first() {
        b.push_str(&alert_table_focus(l, &cx.csrf, &focus, 1, Some(a.id), &names));
    }
    // The filter: a plain GET form, so a filtered list is a link an admin can keep.
    let rule_choices: Vec<(&str, &str)> =
        std::iter::once(("", l.t("any"))).chain(rules.iter().map(|r| (r.as_str(), r.as_str()))).collect();
    let _ = write!(
        b,
        "<form method=\"get\" action=\"/alerts\" class=\"search filters\">{}{}{}{}<label><input type=\"checkbox\" name=\"each\" value=\"1\"{}> {}</label>\
         <button type=\"submit\">{}</button></form>",
        html::select(
            "severity",
            l.t("severity"),
            &[("", l.t("any")), ("critical", l.t("sev_critical")), ("warning", l.t("sev_warning")), ("info", l.t("sev_info"))],
            &current[0]
        ),
        html::select("rule", l.t("rule"), &rule_choices, &current[1]),
        html::select(
            "state",
            l.t("state"),
            &[("", l.t("any")), ("active", l.t("active")), ("cleared", l.t("cleared"))],
            &current[2]
        ),
        html::select("range", l.t("range"), &[("all", l.t("all")), ("1h", "1h"), ("24h", "24h"), ("7d", "7d")], &current[3]),
        if each { " checked" } else { "" },
        E(l.t("each_episode")),
        E(l.t("filter")),
    );
    b.push_str(&alert_table(l, &cx.csrf, &list.alerts, html::PAGE_ROWS, &names));
    b.push_str(&html::pager(l, &format!("/alerts?{params}"), page_no, list.total));
    Ok(html_ok(page(&cx.page(&st), l.t("alerts"), &b)))
}

pub async fn ack_alert(State(st): State<Arc<WebState>>, Path(id): Path<i64>) -> Result<Response, WebError> {
    let now = crate::store::wall_us();
    if !st.write(move |c| q::acknowledge(c, id, now)).await? {
        return Err(WebError::NotFound);
    }
    Ok(Redirect::to("/alerts").into_response())
}

pub async fn evidence(State(st): State<Arc<WebState>>, Path(id): Path<i64>) -> Result<Response, WebError> {
    let (rule, blob) = st.read(move |c| q::alert_evidence(c, id)).await?.ok_or(WebError::NotFound)?;
    let name: String = rule.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pcapng".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"mirrorwatch-{id}-{name}.pcapng\"")),
        ],
        blob,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/identities?q=a")), "/identities?q=a");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_overview_says_what_the_export_lost() {
        use std::sync::atomic::Ordering::Relaxed;
        let live = super::super::Live::new();
        assert_eq!(export_line(&live, Lang::En), "", "no [export], no line");
        let e = std::sync::Arc::new(crate::export::ExportStats::default());
        e.jsonl_configured.store(true, Relaxed);
        e.syslog_configured.store(true, Relaxed);
        e.jsonl_written.store(1200, Relaxed);
        e.syslog_sent.store(1100, Relaxed);
        e.syslog_dropped.store(100, Relaxed);
        *e.syslog_error.lock().unwrap() = "cannot connect to 10.0.0.5:514: <refused>".into();
        *live.export.lock().unwrap() = Some(e);
        let line = export_line(&live, Lang::En);
        assert!(line.contains("Fleet export: 1,200 to the file · 1,100 to syslog"), "{line}");
        assert!(line.contains("collector away (cannot connect to 10.0.0.5:514: &lt;refused&gt;)"), "{line}");
        assert!(line.contains("100 not exported"), "{line}");
    }
}
