//! The local dashboard (axum): pages, the JSON API under `/api`, and `/metrics`.
//!
//! It runs in its own thread with a small tokio runtime, beside the capture loop it must never
//! slow down: database reads happen on blocking threads, at most [`DB_SLOTS`] at a time, over
//! pooled connections that are `query_only` (the store's one writer stays the only writer, but for
//! the admin's acknowledgements). Pages are rendered on the server with escaped text; the little
//! JavaScript there is (`web/app.js`) draws charts and local times. Every route but the login
//! page, the static assets and `/metrics` (bearer token) needs a session; every POST but
//! `/login` needs the session's CSRF token. Routes: ARCHITECTURE.md "Web dashboard".

pub mod api;
pub mod assets;
pub mod auth;
pub mod captures;
pub mod html;
pub mod metrics;
pub mod pages;
pub mod rules_edit;
pub mod serve;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use rusqlite::Connection;

use crate::i18n::Lang;
use crate::store::StoreHealth;
use auth::{LoginLimiter, Sessions};

/// Database reads at once (each on a blocking thread with its own connection).
pub const DB_SLOTS: usize = 4;
/// Largest request body (a rule file being edited is the largest thing posted).
pub const MAX_BODY: usize = 256 * 1024;
/// Uploads received at once.
pub const UPLOAD_SLOTS: usize = 2;
/// Name of the language cookie.
pub const LANG_COOKIE: &str = "mw_lang";

/// What the dashboard shows: a running daemon, or the finished analysis of capture files.
#[derive(Clone, Debug)]
pub enum Mode {
    Daemon,
    Analysis,
}

/// The rule set in effect, as the daemon's rule loader last reported it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RulesStatus {
    /// Wall-clock µs of the last successful load; 0 before the first.
    pub loaded_us: i64,
    pub files: usize,
    pub counters: usize,
    pub alerts: usize,
    /// Why the last change was not applied (the previous rules stay in effect).
    pub error: Option<String>,
}

/// Live figures the capture loop publishes once a second (atomics: no lock on its side).
#[derive(Debug, Default)]
pub struct Live {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub drops: AtomicU64,
    /// Packet time of the newest frame, µs since the epoch; 0 before the first.
    pub last_packet_us: AtomicI64,
    pub started_us: AtomicI64,
    /// Live capture measured against the wall clock (0 when not capturing live): frames and
    /// bytes in the last 60 s, when that was measured, and the wall time of the last second
    /// that brought a frame — so a dead mirror port shows as dead, not as its last minute.
    pub wall: WallRate,
    pub store: Mutex<Option<Arc<StoreHealth>>>,
    /// The pcap ring, when the daemon runs one.
    pub ring: Mutex<Option<Arc<crate::store::ring::RingStats>>>,
    pub rules: Mutex<RulesStatus>,
    /// TCP analysis totals since start (the retransmission rate a fleet compares per branch).
    pub tcp: Mutex<crate::flow::TcpCounts>,
    pub private_retransmissions: AtomicU64,
    /// The fleet export, when `[export]` is set.
    pub export: Mutex<Option<Arc<crate::export::ExportStats>>>,
    /// `[export] host` and `branch` (the `mirrorwatch_info` labels), "" without `[export]`.
    pub fleet: Mutex<(String, String)>,
}

/// See [`Live::wall`].
#[derive(Debug, Default)]
pub struct WallRate {
    pub packets_minute: AtomicU64,
    pub bytes_minute: AtomicU64,
    pub measured_us: AtomicI64,
    pub last_frame_us: AtomicI64,
    /// The configured `[capture] silent_after`, seconds.
    pub silent_after_secs: AtomicI64,
    /// When live capture began (0: no live capture).
    pub capture_started_us: AtomicI64,
}

/// What the overview says of the live capture at `now_us`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CaptureNow {
    /// Not a live capture (an analysis or a replay), or not measured yet.
    Unknown,
    /// Frames and bytes per second over the last minute of wall time.
    Flowing { pps: f64, bps: f64 },
    /// No frame since this wall time (µs); `alerting` once past `silent_after`.
    Silent { since_us: i64, alerting: bool },
}

impl WallRate {
    /// Called by the capture loop when it starts.
    pub fn start(&self, now_us: i64, silent_after_secs: u64) {
        self.capture_started_us.store(now_us, Ordering::Relaxed);
        self.silent_after_secs.store(silent_after_secs as i64, Ordering::Relaxed);
    }

    /// Called by the capture loop once a second.
    pub fn publish(&self, now_us: i64, packets_minute: u64, bytes_minute: u64, last_frame_us: i64) {
        self.packets_minute.store(packets_minute, Ordering::Relaxed);
        self.bytes_minute.store(bytes_minute, Ordering::Relaxed);
        self.last_frame_us.store(last_frame_us, Ordering::Relaxed);
        self.measured_us.store(now_us, Ordering::Relaxed);
    }

    pub fn now(&self, now_us: i64) -> CaptureNow {
        let started = self.capture_started_us.load(Ordering::Relaxed);
        if started == 0 {
            return CaptureNow::Unknown;
        }
        let last = self.last_frame_us.load(Ordering::Relaxed);
        let since = if last > 0 { last } else { started };
        // Silent: no frame in the last minute, or the capture loop stopped publishing.
        let measured = self.measured_us.load(Ordering::Relaxed);
        if now_us - since >= 60_000_000 || now_us - measured > 10_000_000 {
            let after = self.silent_after_secs.load(Ordering::Relaxed).max(60) * 1_000_000;
            return CaptureNow::Silent { since_us: since, alerting: now_us - since >= after };
        }
        CaptureNow::Flowing {
            pps: self.packets_minute.load(Ordering::Relaxed) as f64 / 60.0,
            bps: self.bytes_minute.load(Ordering::Relaxed) as f64 / 60.0,
        }
    }
}

impl Live {
    pub fn new() -> Live {
        let l = Live::default();
        l.started_us.store(crate::store::wall_us(), Ordering::Relaxed);
        l
    }

    /// Publishes the pipeline's totals (called by the capture loop, or once after an analysis).
    pub fn publish(&self, s: &crate::summary::Summary) {
        self.packets.store(s.packets, Ordering::Relaxed);
        self.bytes.store(s.bytes, Ordering::Relaxed);
        self.drops.store(s.capture.drops, Ordering::Relaxed);
        self.private_retransmissions.store(s.private_retransmissions, Ordering::Relaxed);
        if let Ok(mut t) = self.tcp.lock() {
            *t = s.tcp;
        }
        if let Some(t) = s.last_ts {
            self.last_packet_us.store(t.0 / 1000, Ordering::Relaxed);
        }
    }

    pub fn set_rules(&self, r: RulesStatus) {
        if let Ok(mut g) = self.rules.lock() {
            *g = r;
        }
    }
}

/// Everything the handlers share.
pub struct WebState {
    pub db: PathBuf,
    pub mode: Mode,
    /// The rule directory the rules page edits; `None` when there is none.
    pub rules_dir: Option<PathBuf>,
    /// Capture files the rule preview runs over (the analysed files, or the replayed one); the
    /// daemon adds the stored evidence.
    pub preview_files: Vec<PathBuf>,
    pub password_file: PathBuf,
    pub metrics_token_file: PathBuf,
    /// The directory whose disk use the overview shows (`[store] dir`).
    pub store_dir: PathBuf,
    pub live: Arc<Live>,
    /// Names the dashboard answers to (with its addresses and `localhost`).
    pub hostnames: Vec<String>,
    pub limits: serve::Limits,
    pub sessions: Mutex<Sessions>,
    pub limiter: Mutex<LoginLimiter>,
    /// Password checks at once (argon2 takes ~19 MiB and tens of milliseconds each): one for
    /// clients without a recent failure, one for the others, so failing clients can never
    /// hold up the right password from a clean one.
    pub verify_clean: tokio::sync::Semaphore,
    pub verify_failing: tokio::sync::Semaphore,
    /// Read connections with the inode of the database they opened.
    pool: Mutex<Vec<(Connection, u64)>>,
    db_slots: tokio::sync::Semaphore,
    /// One rule preview at a time: it runs the pipeline over capture files.
    pub preview_slot: tokio::sync::Semaphore,
    /// Uploads at once (each streams to disk through one buffer).
    pub upload_slots: tokio::sync::Semaphore,
}

/// Settings for [`WebState::new`].
pub struct WebSettings {
    pub db: PathBuf,
    pub mode: Mode,
    pub rules_dir: Option<PathBuf>,
    pub preview_files: Vec<PathBuf>,
    pub password_file: PathBuf,
    pub metrics_token_file: PathBuf,
    pub session_lifetime: Duration,
    pub live: Arc<Live>,
    pub hostnames: Vec<String>,
    pub limits: serve::Limits,
}

impl WebState {
    pub fn new(s: WebSettings) -> Arc<WebState> {
        let store_dir = s.db.parent().map(PathBuf::from).filter(|p| !p.as_os_str().is_empty()).unwrap_or(".".into());
        Arc::new(WebState {
            db: s.db,
            mode: s.mode,
            rules_dir: s.rules_dir,
            preview_files: s.preview_files,
            password_file: s.password_file,
            metrics_token_file: s.metrics_token_file,
            store_dir,
            live: s.live,
            hostnames: s.hostnames,
            limits: s.limits,
            sessions: Mutex::new(Sessions::new(s.session_lifetime)),
            limiter: Mutex::new(LoginLimiter::default()),
            verify_clean: tokio::sync::Semaphore::new(1),
            verify_failing: tokio::sync::Semaphore::new(1),
            pool: Mutex::new(Vec::new()),
            db_slots: tokio::sync::Semaphore::new(DB_SLOTS),
            preview_slot: tokio::sync::Semaphore::new(1),
            upload_slots: tokio::sync::Semaphore::new(UPLOAD_SLOTS),
        })
    }

    /// Bytes of the database and its write-ahead log.
    pub fn database_bytes(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", self.db.display())).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Whether this dashboard shows a finished analysis (its pages then show all of it).
    pub fn is_analysis(&self) -> bool {
        matches!(self.mode, Mode::Analysis)
    }

    /// A read connection to the database at its path now: a pooled one only while the file is
    /// the one it opened (a store deleted and made anew, or a stick pulled and put back, is
    /// read where it is, not from the file that vanished). Never creates the database.
    fn connection(&self) -> rusqlite::Result<(Connection, u64)> {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&self.db).map(|m| m.ino()).unwrap_or(0);
        if let Some(c) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            if c.1 == ino {
                return Ok(c);
            }
            if let Ok(mut p) = self.pool.lock() {
                p.clear();
            }
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = Connection::open_with_flags(&self.db, flags)?;
        // A reader waits for the writer's checkpoint at most this long, and never writes.
        c.busy_timeout(Duration::from_secs(2))?;
        c.pragma_update(None, "query_only", true)?;
        Ok((c, ino))
    }

    /// Runs `f` on a pooled read-only connection on a blocking thread.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let _slot = self.db_slots.acquire().await.map_err(|_| WebError::Internal("shutting down".into()))?;
        let st = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = st.connection()?;
            let r = f(&conn.0);
            if let Ok(mut p) = st.pool.lock() {
                if p.len() < DB_SLOTS {
                    p.push(conn);
                }
            }
            r
        })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(WebError::from)
    }

    /// The admin's few writes (acknowledging an alert), on their own connection.
    pub async fn write<T, F>(self: &Arc<Self>, f: F) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let c = crate::store::open_existing(&db)?;
            c.busy_timeout(Duration::from_secs(5))?;
            f(&c)
        })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(WebError::from)
    }
}

/// A handler's failure.
#[derive(Debug)]
pub enum WebError {
    NotFound,
    BadRequest(String),
    TooLarge(String),
    Internal(String),
}

impl From<rusqlite::Error> for WebError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => WebError::NotFound,
            e => WebError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "not found".to_string()),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            WebError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            WebError::Internal(m) => {
                tracing::warn!("dashboard: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {m}"))
            }
        };
        (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg).into_response()
    }
}

/// What the auth layer learnt about a request, for the handlers.
#[derive(Clone, Debug)]
pub struct ReqCtx {
    pub lang: Lang,
    pub csrf: String,
    pub session: String,
    pub path: String,
}

impl ReqCtx {
    pub fn page(&self, st: &WebState) -> html::PageCtx {
        html::PageCtx {
            lang: self.lang,
            csrf: self.csrf.clone(),
            path: self.path.clone(),
            mode: match st.mode {
                Mode::Daemon => "mode_daemon",
                Mode::Analysis => "mode_analysis",
            },
        }
    }
}

/// The language of a request: the switch's cookie, else the browser's Accept-Language.
pub fn request_lang(headers: &HeaderMap) -> Lang {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(l) = auth::cookie(cookie, LANG_COOKIE).and_then(Lang::parse) {
        return l;
    }
    Lang::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
}

/// The client's address (from the connection; tests without one count as one client).
pub fn client_ip(req_ext: &axum::http::Extensions) -> IpAddr {
    req_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// Security headers on every response. The CSP allows scripts and styles from this box only.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    // A handler may set a stricter or its own policy (the diff report styles itself inline).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(
            h,
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        );
    }
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(h, "permissions-policy", "camera=(), microphone=(), geolocation=()");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    resp
}

/// Refuses a request whose Host names another box (DNS rebinding: a page of another site
/// whose name now points at this box must not read it).
async fn check_host(State(st): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    match host {
        Some(h) if serve::host_allowed(h, &st.hostnames) => next.run(req).await,
        Some(_) => (StatusCode::MISDIRECTED_REQUEST, "this box does not answer to that name (see [web] hostnames)")
            .into_response(),
        None => (StatusCode::BAD_REQUEST, "a Host header is needed").into_response(),
    }
}

/// Routes anyone may reach: the login page, assets, the language switch and `/metrics` (which
/// checks its own token).
fn is_public(path: &str) -> bool {
    path == "/login"
        || path.starts_with("/static/")
        || path.starts_with("/lang/")
        || path == "/metrics"
        || path == "/favicon.ico"
}

/// Session check for everything else, and the CSRF check for every POST but `/login`.
async fn require_session(State(st): State<Arc<WebState>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if is_public(&path) {
        return next.run(req).await;
    }
    let cookie = req.headers().get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let session = auth::cookie(cookie, auth::SESSION_COOKIE).map(str::to_string);
    let found = session.as_deref().and_then(|id| st.sessions.lock().ok().and_then(|mut s| s.get(id)));
    let (Some(id), Some(sess)) = (session, found) else {
        return if path.starts_with("/api/") {
            (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "login required"}))).into_response()
        } else {
            let next_q = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            Redirect::to(&format!("/login?next={}", html::U(next_q))).into_response()
        };
    };
    let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    if req.method() == Method::POST
        && header_token.as_deref().is_some_and(|t| auth::constant_time_eq(t.as_bytes(), sess.csrf.as_bytes()))
    {
        // The header carries the token: the body (an upload) is left to the handler's own limit.
    } else if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request too large").into_response();
        };
        let from_header = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
        let token = from_header.or_else(|| form_field(&bytes, "csrf"));
        if !token.is_some_and(|t| auth::constant_time_eq(t.as_bytes(), sess.csrf.as_bytes())) {
            return (StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response();
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    let lang = request_lang(req.headers());
    req.extensions_mut().insert(ReqCtx { lang, csrf: sess.csrf, session: id, path });
    next.run(req).await
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(body).ok()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

/// Every value of `name` in an `application/x-www-form-urlencoded` body (check boxes).
pub fn form_fields(body: &[u8], name: &str) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(body) else { return Vec::new() };
    text.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` and `+` of a form value (invalid escapes are kept as they are).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) << 4 | hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The dashboard's routes and layers.
pub fn router(st: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/lang/{code}", get(pages::set_lang))
        .route("/static/{file}", get(assets::serve))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/counters", get(pages::counters))
        .route("/counters/{id}", get(pages::counter))
        .route("/identities", get(pages::identities))
        .route("/identities/mac/{mac}", get(pages::mac_history))
        .route("/retransmissions", get(pages::retransmissions))
        .route("/retransmissions/pair", get(pages::retrans_pair))
        .route("/errors", get(pages::errors))
        .route("/alerts", get(pages::alerts))
        .route("/alerts/{id}/ack", post(pages::ack_alert))
        .route("/alerts/{id}/evidence", get(pages::evidence))
        .route("/captures", get(captures::list))
        .route("/captures/pin", post(captures::pin))
        .route("/captures/upload", post(captures::upload))
        .route("/captures/diff", get(captures::diff))
        .route("/captures/periods", get(captures::periods))
        .route("/captures/window/{id}", get(captures::window_download))
        .route("/captures/window/{id}/delete", post(captures::window_delete))
        .route("/captures/windows/delete", post(captures::windows_delete))
        .route("/rules", get(rules_edit::list))
        .route("/rules/edit", get(rules_edit::edit))
        .route("/rules/save", post(rules_edit::save))
        .route("/api/rules/check", post(rules_edit::check))
        .route("/api/status", get(api::status))
        .route("/api/counters", get(api::counters))
        .route("/api/counters/{id}", get(api::counter))
        .route("/api/identities", get(api::identities))
        .route("/api/app-errors", get(api::app_errors))
        .route("/api/retransmissions", get(api::retransmissions))
        .route("/api/alerts", get(api::alerts))
        .route("/api/captures", get(api::captures))
        .route("/metrics", get(metrics::metrics))
        .layer(middleware::from_fn_with_state(Arc::clone(&st), require_session))
        .layer(middleware::from_fn_with_state(Arc::clone(&st), check_host))
        .layer(middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(serve::BODY_IDLE_TIMEOUT))
        .with_state(st)
}

/// A running dashboard: its address and thread.
pub struct Server {
    pub addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Binds `listen` now (so a taken port is an error at start) and serves on a thread with a
    /// two-worker runtime until [`Server::stop`] or `stop` is set.
    pub fn start(listen: &str, st: Arc<WebState>, stop: Arc<AtomicBool>) -> anyhow::Result<Server> {
        let listener =
            std::net::TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("dashboard on {listen}: {e}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("web".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(DB_SLOTS + 2)
                .thread_name("web-rt")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("dashboard runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("dashboard listener: {e}");
                        return;
                    }
                };
                let limits = st.limits.clone();
                let shutdown = async move {
                    while !stop2.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                };
                serve::serve(listener, router(st), limits, shutdown).await;
            });
            // Requests still running (a rule preview) are not waited for.
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
        Ok(Server { addr, thread: Some(thread), stop })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(form_field(b"a=1&csrf=ab%2Bc+d&x=", "csrf").as_deref(), Some("ab+c d"));
        assert_eq!(form_field(b"csrf", "csrf"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%e3%81%82"), "あ");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
