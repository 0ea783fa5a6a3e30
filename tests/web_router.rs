//! Router tests for the dashboard (tower `oneshot`, no socket): every route without a session,
//! the CSRF check on every POST, the login rate limit, the security headers, and the happy paths
//! on a database written by the pipeline from lab captures (logins, hostile names, lossy HTTP,
//! database errors). The numbers the API gives are checked against the pipeline's own summary of
//! the same captures, and the rule preview against `mirrorwatch filter --count`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mirrorwatch::offline::process_files;
use mirrorwatch::pipeline::Pipeline;
use mirrorwatch::rules::RuleSet;
use mirrorwatch::store::{Backpressure, SqliteSink};
use mirrorwatch::summary::Summary;
use mirrorwatch::web::{self, auth, Live, Mode, WebSettings, WebState};
use serde_json::Value;
use tower::ServiceExt;

const PASSWORD: &str = "branch office 7";
const TOKEN: &str = "prometheus-token-42";

const FILES: &[&str] = &[
    "lab-mail-dovecot.pcap",
    "lab-kerberos-kdc.pcap",
    "lab-nat-two-users-basic.pcap",
    "lab-hostile-names.pcap",
    "lab-http-bulk-loss2.pcap",
    "lab-pgsql-errors.pcap",
    "lab-mariadb-errors.pcap",
    "lab-http-nginx-5xx.pcap",
];

/// A database written once for all tests of this file, and the pipeline's summary of it.
struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    files: Vec<PathBuf>,
    summary: Summary,
    counters: Vec<(String, u64)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        copy_rules(&rules);
        let db = dir.path().join("mirrorwatch.db");
        let files: Vec<PathBuf> = FILES.iter().map(|f| common::lab_dir().join(f)).collect();
        // With an outbox (as when [mail] is set), so alerts keep their evidence.
        let sink = SqliteSink::start_with(&db, Backpressure::Block, true).unwrap();
        let mut p = Pipeline::new(Default::default(), Default::default(), sink);
        p.store_exchanges(); // as the daemon and `analyze --db` do
        p.set_rules(RuleSet::load_dir(&rules).unwrap());
        let reports = process_files(&mut p, &files, None);
        assert!(reports.iter().all(|r| r.error.is_none()));
        p.finish_alerts();
        let counters = p.counter_totals().into_iter().map(|(id, t)| (id, t.total)).collect();
        let summary = std::mem::take(&mut p.summary);
        p.sink.finish().unwrap();
        Fixture { _dir: dir, db, files, summary, counters }
    })
}

fn copy_rules(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for e in std::fs::read_dir(shipped).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A dashboard over the fixture, with its own password file, token and (copied) rules.
struct App {
    router: Router,
    dir: tempfile::TempDir,
    rules: PathBuf,
}

fn app_with(password: bool, mode: Mode) -> App {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_rules(&rules);
    let password_file = dir.path().join("dashboard.passwd");
    if password {
        auth::write_password_file(&password_file, PASSWORD).unwrap();
    }
    let token_file = dir.path().join("metrics.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let live = Arc::new(Live::new());
    live.publish(&f.summary);
    let state = WebState::new(WebSettings {
        db: f.db.clone(),
        mode,
        rules_dir: Some(rules.clone()),
        preview_files: f.files.clone(),
        password_file,
        metrics_token_file: token_file,
        session_lifetime: Duration::from_secs(3600),
        live,
        hostnames: Vec::new(),
        limits: Default::default(),
    });
    App { router: web::router(state), dir, rules }
}

fn app() -> App {
    app_with(true, Mode::Analysis)
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, h: header::HeaderName) -> &str {
        self.headers.get(h).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
}

impl App {
    async fn send(&self, mut req: Request<Body>) -> Resp {
        // As a browser does (a request without one is refused).
        req.headers_mut().entry(header::HOST).or_insert(header::HeaderValue::from_static("127.0.0.1:8080"));
        let r = self.router.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        Resp { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Resp {
        let mut b = Request::get(uri);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, cookie: Option<&str>, form: &str) -> Resp {
        let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::from(form.to_string())).unwrap()).await
    }

    async fn login(&self) -> (String, String) {
        let r = self.post_form("/login", None, &format!("password={}&next=/", enc(PASSWORD))).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let set = r.header(header::SET_COOKIE);
        let cookie = set.split(';').next().unwrap().to_string();
        let page = self.get("/", Some(&cookie)).await;
        let csrf = page.body.split("name=\"csrf-token\" content=\"").nth(1).unwrap().split('"').next().unwrap();
        (cookie, csrf.to_string())
    }
}

fn enc(s: &str) -> String {
    web::html::U(s).to_string()
}

const PAGES: &[&str] = &[
    "/",
    "/counters",
    "/counters/lan-retransmissions",
    "/identities",
    "/identities?q=alice",
    "/identities/mac/02:00:00:00:01:01",
    "/retransmissions",
    "/retransmissions/pair?src=10.77.2.20&dst=10.77.1.10",
    "/errors",
    "/alerts",
    "/alerts/1/evidence",
    "/rules",
    "/rules/edit?file=tcp.toml",
    "/captures",
];

const APIS: &[&str] = &[
    "/api/status",
    "/api/counters",
    "/api/counters/lan-retransmissions",
    "/api/identities?q=alice",
    "/api/app-errors",
    "/api/retransmissions",
    "/api/alerts",
    "/api/captures",
];

const POSTS: &[(&str, &str)] = &[
    ("/logout", ""),
    ("/alerts/1/ack", ""),
    ("/rules/save", "file=tcp.toml&text=x"),
    ("/api/rules/check", "{\"file\":\"tcp.toml\",\"text\":\"\"}"),
    ("/captures/pin", "id=file:0"),
    ("/captures/upload?name=x.pcap", "not a capture"),
];

#[tokio::test]
async fn without_a_session_pages_redirect_and_the_api_says_401() {
    let a = app();
    for p in PAGES {
        let r = a.get(p, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{p}");
        assert!(r.header(header::LOCATION).starts_with("/login?next="), "{p}: {}", r.header(header::LOCATION));
        assert!(!r.body.contains("alice"), "{p} leaks data");
    }
    for p in APIS {
        let r = a.get(p, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{p}");
        assert_eq!(r.json()["error"], "login required");
    }
    for (p, body) in POSTS {
        let r = a.post_form(p, None, body).await;
        assert!(matches!(r.status, StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED), "{p}: {}", r.status);
    }
    // A forged or expired cookie is no session.
    let r = a.get("/api/status", Some("mw_session=00ff")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Public: the login page, assets, the language switch.
    assert_eq!(a.get("/login", None).await.status, StatusCode::OK);
    let css = a.get("/static/style.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));
    assert_eq!(a.get("/static/app.js", None).await.status, StatusCode::OK);
    assert_eq!(a.get("/static/../Cargo.toml", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(a.get("/lang/ja?next=/", None).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_post_but_login_needs_the_csrf_token() {
    let a = app();
    let (cookie, csrf) = a.login().await;
    for (p, body) in POSTS {
        for token in [None, Some("0".repeat(64))] {
            let mut form = body.to_string();
            if let Some(t) = &token {
                form = format!("{form}&csrf={t}");
            }
            let r = a.post_form(p, Some(&cookie), &form).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{p} with token {token:?}");
        }
    }
    // The token of another session does not do either.
    let (_, other_csrf) = a.login().await;
    assert_ne!(csrf, other_csrf);
    let r = a.post_form("/alerts/1/ack", Some(&cookie), &format!("csrf={other_csrf}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The right one, as a form field or as the X-CSRF-Token header.
    let r = a.post_form("/alerts/1/ack", Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let alerts = a.get("/api/alerts", Some(&cookie)).await.json();
    let acked = alerts["alerts"].as_array().unwrap().iter().find(|x| x["id"] == 1).unwrap();
    assert!(acked["acked_us"].as_i64().unwrap() > 0);
    let req = Request::post("/api/rules/check")
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"file\":\"x.toml\",\"text\":\"\"}"))
        .unwrap();
    assert_eq!(a.send(req).await.status, StatusCode::OK);
    // Logout ends the session.
    let r = a.post_form("/logout", Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header(header::SET_COOKIE).contains("Max-Age=0"));
    assert_eq!(a.get("/api/status", Some(&cookie)).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_sets_a_strict_cookie_and_is_rate_limited() {
    let a = app();
    let r = a.post_form("/login", None, &format!("password={}&next=/alerts", enc(PASSWORD))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header(header::LOCATION), "/alerts");
    let c = r.header(header::SET_COOKIE);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(c.contains(flag), "{flag} missing in {c}");
    }
    // Only a local path is followed after login.
    let r = a.post_form("/login", None, &format!("password={}&next=//evil.example/", enc(PASSWORD))).await;
    assert_eq!(r.header(header::LOCATION), "/");
    for i in 0..auth::LIMIT_PER_CLIENT {
        let r = a.post_form("/login", None, "password=guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(r.body.contains("Wrong password"));
    }
    // Now even the right password waits.
    let r = a.post_form("/login", None, &format!("password={}", enc(PASSWORD))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.header(header::RETRY_AFTER).parse().unwrap();
    assert!((1..=60).contains(&wait));
}

#[tokio::test]
async fn without_a_password_the_dashboard_only_says_how_to_set_one() {
    let a = app_with(false, Mode::Analysis);
    let r = a.get("/login", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("mirrorwatch passwd"), "{}", r.body);
    assert!(!r.body.contains("type=\"password\""));
    for pw in ["", "admin", "mirrorwatch", PASSWORD] {
        let r = a.post_form("/login", None, &format!("password={}", enc(pw))).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{pw:?}");
        assert!(r.header(header::SET_COOKIE).is_empty());
    }
    // `passwd` makes it work without a restart.
    auth::write_password_file(&a.dir.path().join("dashboard.passwd"), PASSWORD).unwrap();
    a.login().await;
}

/// An `on…=` attribute inside a tag.
fn has_event_attribute(html: &str) -> bool {
    html.split('<').skip(1).map(|t| t.split('>').next().unwrap_or("")).any(|tag| {
        tag.split_whitespace().skip(1).any(|attr| {
            attr.to_ascii_lowercase().strip_prefix("on").is_some_and(|r| {
                r.split('=').next().is_some_and(|n| n.chars().all(|c| c.is_ascii_alphabetic())) && r.contains('=')
            })
        })
    })
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let a = app();
    let (cookie, _) = a.login().await;
    for p in PAGES.iter().chain(APIS).chain(&["/login", "/static/app.js", "/metrics"]) {
        let r = a.get(p, Some(&cookie)).await;
        let csp = r.header(header::HeaderName::from_static("content-security-policy"));
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{p}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{p}");
        assert_eq!(r.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{p}");
        assert_eq!(r.header(header::X_FRAME_OPTIONS), "DENY", "{p}");
        assert_eq!(r.header(header::REFERRER_POLICY), "no-referrer", "{p}");
        if r.header(header::CONTENT_TYPE).starts_with("text/html") {
            assert!(!r.body.contains("<script>") && !has_event_attribute(&r.body), "{p}: inline script");
            assert!(!r.body.contains("style=\""), "{p}: inline style");
        }
    }
}

#[tokio::test]
async fn pages_show_the_stored_data() {
    let a = app();
    let (cookie, _) = a.login().await;
    let f = fixture();
    for p in PAGES.iter().filter(|p| !p.contains("evidence")) {
        let r = a.get(p, Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.body);
    }
    let page = |p: &'static str| {
        let a = &a;
        let c = cookie.clone();
        async move { a.get(p, Some(&c)).await.body }
    };
    // Every login of the summary is on the identities pages (50 a page).
    let mut ids = String::new();
    for n in 1..=100 {
        let body = a.get(&format!("/identities?page={n}"), Some(&cookie)).await.body;
        let more = body.contains("rel=\"next\"");
        ids.push_str(&body);
        if !more {
            break;
        }
    }
    for b in f.summary.to_json(&[])["identities"].as_array().unwrap() {
        let user = b["user"].as_str().unwrap_or("");
        if !user.is_empty() && !user.contains(['<', '\r']) {
            assert!(ids.contains(&format!(" class=\"user\">{user}</td>")), "{user} missing");
        }
    }
    assert!(ids.contains("One MAC, several users"), "shared-MAC warning missing");
    // A search finds only that user.
    let bob = page("/identities?q=bob").await;
    assert!(bob.contains(">bob<") && !bob.contains(">alice</td>"));
    // Retransmissions: the lossy pair, marked.
    let rt = page("/retransmissions?range=7d").await;
    assert!(rt.contains("<tr class=\"hot\">") && rt.contains("10.77.2.20 → 10.77.1.10"), "{rt}");
    // Errors: the deadlocks of both databases.
    let errs = page("/errors?range=7d").await;
    for code in ["40P01", "1213", "1045", "28P01"] {
        assert!(errs.contains(&format!(">{code}</a></td>")), "{code} missing");
    }
    // Counters with a chart that has data.
    let c = page("/counters/lan-retransmissions?range=7d").await;
    let points: usize = c.split("data-points=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert!(points > 0);
    // The evidence of an alert is a pcapng.
    let caps = a.get("/api/captures", Some(&cookie)).await.json();
    let id = caps["evidence"][0]["alert_id"].as_i64().unwrap();
    let ev = a.get(&format!("/alerts/{id}/evidence"), Some(&cookie)).await;
    assert_eq!(ev.status, StatusCode::OK);
    assert_eq!(ev.header(header::CONTENT_TYPE), "application/x-pcapng");
    assert!(ev.header(header::CONTENT_DISPOSITION).starts_with(&format!("attachment; filename=\"mirrorwatch-{id}-")));
    assert_eq!(ev.body.as_bytes()[..4], [0x0a, 0x0d, 0x0d, 0x0a], "not a pcapng section header");
    assert_eq!(a.get("/alerts/999999/evidence", Some(&cookie)).await.status, StatusCode::NOT_FOUND);
    // The alert a mail links to is marked.
    let linked = a.get(&format!("/alerts?id={id}"), Some(&cookie)).await.body;
    assert!(linked.contains(&format!("<tr id=\"alert-{id}\" class=\"sev-")), "no anchor");
    assert_eq!(linked.matches(" focus\"").count(), 1, "exactly the linked alert is marked");
}

#[tokio::test]
async fn hostile_names_are_text() {
    let a = app();
    let (cookie, _) = a.login().await;
    for p in ["/identities", "/identities?q=mallory", "/identities/mac/02:00:00:00:01:01", "/errors?range=7d"] {
        let body = a.get(p, Some(&cookie)).await.body;
        assert!(!body.contains("<img") && !body.contains("<script>alert") && !body.contains("<b>boom"), "{p}");
        assert!(!body.contains("mallory\r\n") && !body.contains("mallory\n"), "{p}: raw line break");
    }
    let ids = a.get("/identities", Some(&cookie)).await.body;
    assert!(ids.contains("&lt;img src=x onerror=alert(1)&gt;"), "{ids}");
    assert!(ids.contains("mallory\\r\\nBcc victim@example.com\\r\\n&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The API gives the names exactly as on the wire, as JSON strings.
    let j = a.get("/api/identities?q=mallory", Some(&cookie)).await.json();
    assert_eq!(j["identities"][0]["user"], "mallory\r\nBcc victim@example.com\r\n<script>alert(1)</script>");
    // Search input is escaped back into the page too.
    let s = a.get("/identities?q=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E", Some(&cookie)).await.body;
    assert!(s.contains("value=\"&quot;&gt;&lt;script&gt;"), "search value not escaped");
}

#[tokio::test]
async fn the_api_gives_what_the_pipeline_counted() {
    let a = app();
    let (cookie, _) = a.login().await;
    let f = fixture();
    let get = |p: String| {
        let a = &a;
        let c = cookie.clone();
        async move { a.get(&p, Some(&c)).await }
    };
    let all = "from=0&to=4000000000";
    // The overview says how far back the store reaches (first to last stored minute).
    let home = get("/".into()).await.body;
    assert!(home.contains("id=\"store-holds\">holds: 3.6 days (Since 2026-11-27)"), "{home}");
    let status = get("/api/status".into()).await.json();
    assert_eq!(status["packets"], f.summary.packets);
    assert_eq!(status["mode"], "analysis");
    for (id, total) in &f.counters {
        let r = get(format!("/api/counters/{id}?{all}")).await;
        if *total == 0 {
            continue;
        }
        assert_eq!(r.json()["total"].as_f64().unwrap() as u64, *total, "counter {id}");
    }
    assert_eq!(get(format!("/api/counters/no-such?{all}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get("/api/counters?from=x".into()).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(get("/api/counters?from=20&to=10".into()).await.status, StatusCode::BAD_REQUEST);
    // RFC 3339 works as well as seconds.
    assert_eq!(
        get("/api/counters?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z".into()).await.status,
        StatusCode::OK
    );
    // Every sender -> receiver pair with retransmissions, and their sum.
    let rt = get(format!("/api/retransmissions?{all}")).await.json();
    let sum: u64 = rt["pairs"].as_array().unwrap().iter().map(|p| p["retransmissions"].as_u64().unwrap()).sum();
    assert_eq!(sum, u64::from(f.summary.tcp.retransmissions));
    // The hourly pair sums the retransmissions page reads add up to the minutes.
    let conn = rusqlite::Connection::open(&f.db).unwrap();
    let per_hour = |sql: &str| -> Vec<(i64, String, String, i64, i64)> {
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let minutes = per_hour(
        "SELECT (minute / 3600) * 3600 AS h, src, dst, sum(packets), sum(retransmissions) FROM tcp_pair_minute GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    );
    let hours = per_hour("SELECT hour, src, dst, packets, retransmissions FROM tcp_pair_hour ORDER BY 1, 2, 3");
    assert!(!hours.is_empty());
    assert_eq!(hours, minutes);
    // Identities: every (source, user, outcome) of the summary.
    let ids = get("/api/identities".into()).await.json();
    let got: std::collections::BTreeSet<(String, String, String)> = ids["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["source"].as_str().unwrap().into(),
                i["user"].as_str().unwrap().into(),
                i["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let summary = f.summary.to_json(&[]);
    for i in summary["identities"].as_array().unwrap() {
        let k = (
            i["source"].as_str().unwrap().to_string(),
            i["user"].as_str().unwrap_or("").to_string(),
            i["outcome"].as_str().unwrap().to_string(),
        );
        assert!(got.contains(&k), "{k:?} missing from /api/identities");
    }
    // App errors: the per-kind counts add up to the errors the pipeline found.
    let errs = get(format!("/api/app-errors?{all}")).await.json();
    let n: u64 = errs["kinds"].as_array().unwrap().iter().map(|k| k["count"].as_u64().unwrap()).sum();
    assert_eq!(n as usize, summary["app_errors"].as_array().unwrap().len());
    let alerts = get("/api/alerts".into()).await.json();
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), summary["alerts"].as_array().unwrap().len());
    let caps = get("/api/captures".into()).await.json();
    assert!(!caps["evidence"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn metrics_need_the_bearer_token() {
    let a = app();
    let get = |auth: Option<&'static str>| {
        let a = &a;
        async move {
            let mut b = Request::get("/metrics");
            if let Some(v) = auth {
                b = b.header(header::AUTHORIZATION, v);
            }
            a.send(b.body(Body::empty()).unwrap()).await
        }
    };
    assert_eq!(get(None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some("Bearer wrong")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some("Basic cHJvbWV0aGV1cy10b2tlbi00Mg==")).await.status, StatusCode::UNAUTHORIZED);
    let r = get(Some("Bearer prometheus-token-42")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain; version=0.0.4"));
    let f = fixture();
    assert!(r.body.contains(&format!("mirrorwatch_packets_total {}\n", f.summary.packets)), "{}", r.body);
    assert!(r.body.contains("mirrorwatch_counter_last_minute{counter=\"lan-retransmissions\"}"));
    assert!(r.body.contains("mirrorwatch_alerts_active{severity=\"critical\"} "));
    assert!(r.body.contains("mirrorwatch_store_failing 0"));
    // Every sample line is `name{labels} value`.
    for l in r.body.lines().filter(|l| !l.starts_with('#')) {
        let v = l.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "{l}");
    }
    // Without a token file the route does not exist.
    std::fs::remove_file(a.dir.path().join("metrics.token")).unwrap();
    assert_eq!(get(Some("Bearer prometheus-token-42")).await.status, StatusCode::NOT_FOUND);
}

fn filter_count(expr: &str, files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| {
            let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
                .args(["filter", expr])
                .arg(f)
                .arg("--count")
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().unwrap()
        })
        .sum()
}

#[tokio::test]
async fn rule_check_previews_counts_and_points_at_errors() {
    let a = app();
    let (cookie, csrf) = a.login().await;
    let check = |file: &str, text: &str| {
        let body = serde_json::json!({"file": file, "text": text}).to_string();
        Request::post("/api/rules/check")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let expr = "tcp.flags.syn == 1 && tcp.flags.ack == 0";
    let text = format!("[[counter]]\nid = \"syns\"\nfilter = \"{expr}\"\n\n[[counter]]\nid = \"dns\"\nfilter = \"dns\"\nvalue = \"bytes\"\n");
    let r = a.send(check("preview.toml", &text)).await.json();
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r}");
    let f = fixture();
    let counts: Vec<(String, u64)> = r["preview"]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().into(), c["frames"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts[0], ("syns".into(), filter_count(expr, &f.files)));
    // Frames, not bytes, whatever the counter's value.
    assert_eq!(counts[1], ("dns".into(), filter_count("dns", &f.files)));
    // A syntax error at its line and column, as `rules check` gives it.
    let bad = "[[counter]]\nid = \"x\"\nfilter = \"tcp.port == == 80\"\n";
    let r = a.send(check("preview.toml", bad)).await.json();
    let e = &r["errors"][0];
    assert_eq!((e["line"].as_u64(), e["col"].as_u64()), (Some(3), Some(23)), "{r}");
    assert!(r["preview"].is_null());
    // An alert following a counter that no file defines is an error of the directory.
    let r = a.send(check("extra.toml", "[[alert]]\nid = \"a\"\ncounter = \"nope\"\nabove = 1\n")).await.json();
    assert!(r["errors"][0]["msg"].as_str().unwrap().contains("no rule file defines"), "{r}");
    // Names that are not a plain file in the rule directory are refused.
    for name in ["../x.toml", "a/b.toml", "x.txt"] {
        assert_eq!(a.send(check(name, "")).await.status, StatusCode::BAD_REQUEST, "{name}");
    }
}

#[tokio::test]
async fn saving_rules_checks_the_directory_first() {
    let a = app();
    let (cookie, csrf) = a.login().await;
    let path = a.rules.join("tcp.toml");
    let before = std::fs::read_to_string(&path).unwrap();
    let bad = format!("{before}\n[[counter]]\nid = \"x\"\nfilter = \"tcp.port == == 80\"\n");
    let r = a.post_form("/rules/save", Some(&cookie), &format!("csrf={csrf}&file=tcp.toml&text={}", enc(&bad))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("data-line=\"") && r.body.contains("was unexpected"), "{}", r.body);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "a broken file was written");
    let good = format!("{before}\n[[counter]]\nid = \"http-any\"\nfilter = \"http\"\n");
    let r = a.post_form("/rules/save", Some(&cookie), &format!("csrf={csrf}&file=tcp.toml&text={}", enc(&good))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), good);
    assert!(RuleSet::load_dir(&a.rules).unwrap().counters.iter().any(|c| c.id == "http-any"));
    // A new file.
    let r = a
        .post_form(
            "/rules/save",
            Some(&cookie),
            &format!("csrf={csrf}&file=new.toml&text={}", enc("[[counter]]\nid = \"icmp-any\"\nfilter = \"icmp\"\n")),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(a.rules.join("new.toml").exists());
    let r = a.post_form("/rules/save", Some(&cookie), &format!("csrf={csrf}&file=..%2Fescape.toml&text=")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!a.dir.path().join("escape.toml").exists());
}

#[tokio::test]
async fn japanese_by_accept_language_or_switch() {
    let a = app();
    let (cookie, _) = a.login().await;
    let req = Request::get("/alerts")
        .header(header::COOKIE, &cookie)
        .header(header::ACCEPT_LANGUAGE, "ja-JP,ja;q=0.9,en;q=0.5")
        .body(Body::empty())
        .unwrap();
    let r = a.send(req).await;
    assert!(r.body.contains("<html lang=\"ja\">") && r.body.contains("アラート"), "{}", r.body);
    let sw = a.get("/lang/ja?next=/identities", None).await;
    assert_eq!(sw.header(header::LOCATION), "/identities");
    let lang_cookie = sw.header(header::SET_COOKIE).split(';').next().unwrap().to_string();
    let r = a.get("/identities", Some(&format!("{cookie}; {lang_cookie}"))).await;
    assert!(r.body.contains("通信量の多いユーザー"), "{}", r.body);
    let r = a.get("/identities", Some(&cookie)).await;
    assert!(r.body.contains("<html lang=\"en\">"));
    assert_eq!(a.get("/lang/en?next=https://evil.example/", None).await.header(header::LOCATION), "/");
}

#[tokio::test]
async fn captures_are_pinned_uploaded_and_diffed() {
    let a = app();
    let (cookie, csrf) = a.login().await;
    // Without a baseline there is nothing to diff against.
    assert_eq!(a.get("/captures/diff?id=file:1", Some(&cookie)).await.status, StatusCode::BAD_REQUEST);
    let page = a.get("/captures", Some(&cookie)).await.body;
    assert!(page.contains("lab-mail-dovecot.pcap") && page.contains("evidence of alert"), "{page}");
    // Upload the web server's normal run and the run where it was down.
    let upload = |name: &str, body: Vec<u8>| {
        Request::post(format!("/captures/upload?name={name}"))
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(body))
            .unwrap()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diff");
    for f in ["diff-web-normal.pcap", "diff-web-failure.pcap"] {
        let r = a.send(upload(f, std::fs::read(dir.join(f)).unwrap())).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = a.send(upload("junk.pcap", b"this is no capture".to_vec())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not a capture"));
    let r = a.send(upload("../../escape.pcap", std::fs::read(dir.join("diff-web-normal.pcap")).unwrap())).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(!a.dir.path().join("escape.pcap").exists());
    // Pin the normal run, diff the failure against it.
    let r = a
        .post_form("/captures/pin", Some(&cookie), &format!("csrf={csrf}&id=upload:upload-diff-web-normal.pcap"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(a
        .get("/captures", Some(&cookie))
        .await
        .body
        .contains("Normal baseline: <strong>diff-web-normal.pcap</strong>"));
    let r = a.get("/captures/diff?id=upload:upload-diff-web-failure.pcap", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("refused: RST answers the SYN"), "{}", r.body);
    let csp = r.header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.starts_with("default-src 'none'; style-src 'unsafe-inline'") && !csp.contains("script"), "{csp}");
    // Evidence of an alert diffs too (against the pinned run: other services, other outcomes).
    let caps = a.get("/api/captures", Some(&cookie)).await.json();
    let id = caps["evidence"][0]["alert_id"].as_i64().unwrap();
    assert_eq!(a.get(&format!("/captures/diff?id=evidence:{id}"), Some(&cookie)).await.status, StatusCode::OK);
    assert_eq!(a.get("/captures/diff?id=upload:../../etc/passwd", Some(&cookie)).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stored_periods_are_compared_on_the_captures_page() {
    let a = app();
    let (cookie, _) = a.login().await;
    let page = a.get("/captures", Some(&cookie)).await;
    assert!(page.body.contains("action=\"/captures/periods\""), "{}", page.body);
    // The fixture's hour against itself a week later: the exchanges are there, no difference
    // the other way round would be seen; against an empty week every service is only in one.
    let db = rusqlite::Connection::open(&fixture().db).unwrap();
    let (first, last): (i64, i64) = db
        .query_row("SELECT min(minute), max(minute) FROM exchange_minute", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let t = |s: i64| mirrorwatch::time::Ts(s * 1_000_000_000).rfc3339()[..16].to_string();
    let uri = format!("/captures/periods?from={}&to={}&against=7d", t(first), t(last + 60));
    let r = a.get(&uri, Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.header(header::CONTENT_SECURITY_POLICY).contains("default-src 'none'"));
    assert!(r.body.contains("only"), "the services of the period are only in it: {}", r.body);
    // Its own period as the normal one: nothing differs.
    let same = format!("/captures/periods?from={}&to={}&against={}", t(first), t(last + 60), t(first));
    let r = a.get(&same, Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    for bad in [
        "/captures/periods?from=yesterday&to=now&against=7d",
        "/captures/periods?from=now&to=-1h&against=7d",
        "/captures/periods?from=2026-01-01T00:00&to=2026-03-01T00:00&against=7d",
    ] {
        assert_eq!(a.get(bad, Some(&cookie)).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_ne!(a.get(&uri, None).await.status, StatusCode::OK, "a session is needed");
}
