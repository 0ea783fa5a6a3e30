//! The captures page: the captures the box has (the analysed or replayed files, the evidence
//! windows cut from the pcap ring around alerts, the evidence kept with alert mails, captures
//! the admin uploads), one of them pinned as the normal baseline, and the diff of any other
//! against it (`mirrorwatch diff`'s HTML report). Evidence windows are kept until the admin
//! deletes them here.
//!
//! Uploads and evidence to diff are files under `<store dir>/captures/` (at most
//! [`MAX_UPLOADS`] uploads of [`UPLOAD_MAX`] bytes, the oldest removed first), so the disk they
//! take is bounded. The report is served with its own CSP: inline style, no script at all.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::html::{self, bytes, num, page, table_head, time_us, E, U};
use super::{ReqCtx, WebError, WebState};

/// Largest upload.
pub const UPLOAD_MAX: usize = 64 * 1024 * 1024;
/// Uploads kept; the oldest goes first.
pub const MAX_UPLOADS: usize = 8;

fn dir(st: &WebState) -> PathBuf {
    st.store_dir.join("captures")
}

/// A capture the page can pin or diff: `file:N` (an analysed or replayed file), `window:ID`
/// (an evidence window), `evidence:ID` (an alert's mailed evidence), `upload:NAME`.
#[derive(Clone, Debug)]
struct Capture {
    id: String,
    label: String,
    bytes: u64,
    when_us: Option<i64>,
}

/// The file of a kept evidence window.
fn window_file(st: &WebState, w: &crate::store::dashboard::Window) -> Option<PathBuf> {
    let name = w.file.as_deref().filter(|n| n.starts_with("window-") && !n.contains(['/', '\\']))?;
    Some(crate::store::ring::evidence_dir(&st.store_dir).join(name)).filter(|p| p.is_file())
}

fn uploads(st: &WebState) -> Vec<(String, PathBuf, u64, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir(st))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let m = e.metadata().ok()?;
                    name.starts_with("upload-")
                        .then(|| (name, e.path(), m.len(), m.modified().unwrap_or(std::time::UNIX_EPOCH)))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|u| std::cmp::Reverse(u.3));
    v
}

/// The capture files (analysed, uploaded, mailed evidence); the evidence windows are listed
/// apart, a page at a time.
async fn list_captures(st: &Arc<WebState>, l: crate::i18n::Lang) -> Result<Vec<Capture>, WebError> {
    let mut out: Vec<Capture> = st
        .preview_files
        .iter()
        .enumerate()
        .map(|(i, p)| Capture {
            id: format!("file:{i}"),
            label: p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            bytes: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            when_us: None,
        })
        .collect();
    for (name, _, len, _) in uploads(st) {
        out.push(Capture {
            label: name.trim_start_matches("upload-").to_string(),
            id: format!("upload:{name}"),
            bytes: len,
            when_us: None,
        });
    }
    let ev = st.read(crate::store::dashboard::captures).await?;
    for c in ev {
        out.push(Capture {
            id: format!("evidence:{}", c.alert_id),
            label: l.t("evidence_of_alert").replacen("{}", &c.alert_id.to_string(), 1).replacen("{}", &c.rule, 1),
            bytes: c.bytes as u64,
            when_us: Some(c.since_us),
        });
    }
    Ok(out)
}

/// The file a capture id stands for (evidence is written out under the captures directory).
async fn resolve(st: &Arc<WebState>, id: &str) -> Result<PathBuf, WebError> {
    let bad = || WebError::BadRequest(format!("no capture {id:?}"));
    match id.split_once(':') {
        Some(("file", n)) => st.preview_files.get(n.parse::<usize>().map_err(|_| bad())?).cloned().ok_or_else(bad),
        Some(("upload", name)) => {
            let ok = name.starts_with("upload-") && !name.contains(['/', '\\']) && !name.contains("..");
            let p = dir(st).join(name);
            (ok && p.is_file()).then_some(p).ok_or_else(bad)
        }
        Some(("window", n)) => {
            let id: i64 = n.parse().map_err(|_| bad())?;
            let w = st.read(move |c| crate::store::dashboard::window(c, id)).await?.ok_or_else(bad)?;
            window_file(st, &w).ok_or_else(bad)
        }
        Some(("evidence", n)) => {
            let alert: i64 = n.parse().map_err(|_| bad())?;
            let (_, blob) =
                st.read(move |c| crate::store::dashboard::alert_evidence(c, alert)).await?.ok_or_else(bad)?;
            let p = dir(st).join(format!("evidence-{alert}.pcapng"));
            std::fs::create_dir_all(dir(st)).map_err(|e| WebError::Internal(e.to_string()))?;
            std::fs::write(&p, blob).map_err(|e| WebError::Internal(e.to_string()))?;
            Ok(p)
        }
        _ => Err(bad()),
    }
}

fn baseline_file(st: &WebState) -> PathBuf {
    dir(st).join("baseline")
}

fn baseline(st: &WebState) -> Option<String> {
    std::fs::read_to_string(baseline_file(st)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub page: Option<usize>,
    pub deleted: Option<usize>,
}

/// A window's state in the page's language.
fn window_state(l: crate::i18n::Lang, state: &str) -> String {
    match state {
        "kept" | "pending" | "empty" | "skipped" | "failed" | "evicted" => l.t(&format!("wstate_{state}")).to_string(),
        other => other.to_string(),
    }
}

/// Pin (or "pinned") and diff controls of one capture.
fn pin_and_diff(l: crate::i18n::Lang, csrf: &str, id: &str, pinned: Option<&str>) -> (String, String) {
    let is_base = pinned == Some(id);
    let diff = if pinned.is_some() && !is_base {
        format!("<a href=\"/captures/diff?id={}\">{}</a>", U(id), E(l.t("diff_against")))
    } else {
        String::new()
    };
    let pin = if is_base {
        format!("<strong>{}</strong>", E(l.t("baseline_pinned")))
    } else {
        format!(
            "<form method=\"post\" action=\"/captures/pin\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"id\" value=\"{}\"><button type=\"submit\">{}</button></form>",
            E(csrf),
            E(id),
            E(l.t("pin"))
        )
    };
    (pin, diff)
}

pub async fn list(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(lq): Query<ListQuery>,
) -> Result<Response, WebError> {
    let l = cx.lang;
    let caps = list_captures(&st, l).await?;
    let page_no = lq.page.unwrap_or(1).clamp(1, 100_000);
    let (windows, total, kept_bytes) = st
        .read(move |c| crate::store::dashboard::windows_page(c, (page_no - 1) * html::PAGE_ROWS, html::PAGE_ROWS))
        .await?;
    let pinned = baseline(&st);
    let pinned_window = match pinned.as_deref().and_then(|p| p.strip_prefix("window:")).and_then(|n| n.parse().ok()) {
        Some(id) => st.read(move |c| crate::store::dashboard::window(c, id)).await?,
        None => None,
    };
    let mut b = String::new();
    if let Some(n) = lq.deleted {
        let _ = write!(b, "<p class=\"good\">{}</p>", E(&l.t("deleted_n").replacen("{}", &n.to_string(), 1)));
    }
    let pinned_label = match (&pinned_window, pinned.as_ref().and_then(|p| caps.iter().find(|c| &c.id == p))) {
        (Some(w), _) => {
            Some(format!("{} · {}", l.t("evidence_windows"), l.t("alert_n").replacen("{}", &w.alert_id.to_string(), 1)))
        }
        (None, Some(c)) => Some(c.label.clone()),
        _ => None,
    };
    match pinned_label {
        Some(label) => {
            let _ = write!(b, "<p>{}: <strong>{}</strong></p>", E(l.t("baseline_pinned")), E(&label));
        }
        None => {
            let _ = write!(b, "<p>{}</p>", E(l.t("baseline_none")));
        }
    }
    // Evidence windows: every one, a page at a time, deletable together after a confirmation.
    let _ = write!(
        b,
        "<h2>{}</h2><p>{}</p>",
        E(l.t("evidence_windows")),
        E(&l.t("windows_summary").replacen("{}", &num(total), 1).replacen("{}", &bytes(kept_bytes), 1))
    );
    if windows.is_empty() {
        let _ = write!(b, "<p>{}</p>", E(l.t("none")));
    } else {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/captures/windows/delete\" id=\"bulk-delete\" class=\"filters\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
            E(&cx.csrf),
            E(l.t("delete_selected"))
        );
        b.push_str(&table_head(
            "list windows",
            &[l.t("select"), l.t("alerts"), l.t("time"), l.t("frames"), l.t("bytes"), l.t("window_state"), "", ""],
        ));
        for w in &windows {
            let id = format!("window:{}", w.id);
            let (pin, diff) = if w.state == "kept" {
                pin_and_diff(l, &cx.csrf, &id, pinned.as_deref())
            } else {
                (String::new(), String::new())
            };
            let select = if w.state == "pending" {
                String::new()
            } else {
                format!(
                    "<input type=\"checkbox\" name=\"id\" value=\"{}\" form=\"bulk-delete\" aria-label=\"{} {}\">",
                    w.id,
                    E(l.t("select")),
                    w.id
                )
            };
            let download = if w.state == "kept" {
                format!("<a href=\"/captures/window/{}\" download>{}</a>", w.id, E(l.t("download")))
            } else {
                String::new()
            };
            let mut state = E(&window_state(l, &w.state)).to_string();
            if let Some(n) = w.note.as_deref().filter(|n| !n.is_empty()) {
                let _ = write!(state, " <small>({})</small>", E(&crate::i18n::summary::window_note(l, n)));
            }
            let _ = write!(
                b,
                "<tr id=\"window-{}\"><td>{select}</td><td class=\"rule\"><a href=\"/alerts?id={}#alert-{}\">{}</a> {}</td><td>{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"text\">{state}</td><td>{download} {pin}</td><td>{diff}</td></tr>",
                w.id,
                w.alert_id,
                w.alert_id,
                E(&l.t("alert_n").replacen("{}", &w.alert_id.to_string(), 1)),
                E(&w.rule),
                time_us(w.at_us),
                w.frames.map(num).unwrap_or_default(),
                w.bytes.map(bytes).unwrap_or_default(),
            );
        }
        b.push_str("</tbody></table>");
        b.push_str(&html::pager(l, "/captures?", page_no, total));
    }
    // Capture files: the analysed or replayed files, uploads and mailed evidence.
    let _ = write!(b, "<h2>{}</h2>", E(l.t("captured_files")));
    b.push_str(&table_head("list", &[l.t("file"), l.t("bytes"), l.t("time"), "", ""]));
    for c in &caps {
        let (pin, diff) = pin_and_diff(l, &cx.csrf, &c.id, pinned.as_deref());
        let _ = write!(
            b,
            "<tr><td class=\"text\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{pin}</td><td>{diff}</td></tr>",
            E(&c.label),
            bytes(c.bytes as i64),
            c.when_us.map(time_us).unwrap_or_default()
        );
    }
    b.push_str("</tbody></table>");
    let anchor = st.read(|c| crate::store::dashboard::anchor(c, crate::time::wall_now().secs())).await?;
    periods_form(&mut b, l, anchor);
    let _ = write!(
        b,
        "<h2>{}</h2><form id=\"upload-form\" class=\"search\"><input type=\"file\" id=\"upload-file\" accept=\".pcap,.pcapng,.gz,.cap\" required>\
         <button type=\"submit\">{}</button></form><p id=\"upload-status\" aria-live=\"polite\"></p>",
        E(l.t("upload")),
        E(l.t("upload"))
    );
    Ok(Html(page(&cx.page(&st), l.t("captures"), &b)).into_response())
}

/// Bytes read from a file per body frame.
const FILE_CHUNK: usize = 64 * 1024;

/// A file as a response body, read a chunk at a time as the client takes it.
struct FileBody {
    file: tokio::fs::File,
    buf: Vec<u8>,
}

impl hyper::body::Body for FileBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        let mut rb = tokio::io::ReadBuf::new(&mut this.buf);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut this.file), cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                Poll::Ready(Some(Ok(hyper::body::Frame::data(axum::body::Bytes::copy_from_slice(rb.filled())))))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `GET /captures/window/{id}`: an evidence window's pcapng.
pub async fn window_download(
    State(st): State<Arc<WebState>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<Response, WebError> {
    let w = st.read(move |c| crate::store::dashboard::window(c, id)).await?.ok_or(WebError::NotFound)?;
    let path = window_file(&st, &w).ok_or(WebError::NotFound)?;
    // Streamed a piece at a time: fifty admins downloading 32 MiB windows cost fifty buffers,
    // not 1.6 GB (the daemon runs under MemoryMax).
    let file = tokio::fs::File::open(&path).await.map_err(|e| WebError::Internal(e.to_string()))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let body = axum::body::Body::new(FileBody { file, buf: vec![0; FILE_CHUNK] });
    let rule: String = w.rule.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    Ok((
        [
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_TYPE, "application/x-pcapng".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"mirrorwatch-window-{id}-alert-{}-{rule}.pcapng\"", w.alert_id),
            ),
        ],
        body,
    )
        .into_response())
}

/// `POST /captures/window/{id}/delete`: one window; see [`windows_delete`].
pub async fn window_delete(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let confirmed = super::form_field(&body, "confirm").as_deref() == Some("1");
    delete_windows(&st, &cx, vec![id], confirmed).await
}

/// `POST /captures/windows/delete` with `id=N` for each window chosen: without `confirm=1` a
/// page asks first (what would go, how many bytes); with it the files and rows go. A window
/// still being cut is left (it would be written again).
pub async fn windows_delete(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let ids: Vec<i64> = super::form_fields(&body, "id").iter().filter_map(|v| v.parse().ok()).take(1000).collect();
    let confirmed = super::form_field(&body, "confirm").as_deref() == Some("1");
    delete_windows(&st, &cx, ids, confirmed).await
}

async fn delete_windows(st: &Arc<WebState>, cx: &ReqCtx, ids: Vec<i64>, confirmed: bool) -> Result<Response, WebError> {
    let l = cx.lang;
    let mut found = Vec::new();
    for id in ids {
        if let Some(w) = st.read(move |c| crate::store::dashboard::window(c, id)).await? {
            if w.state != "pending" {
                found.push(w);
            }
        }
    }
    if found.is_empty() {
        return Ok(Redirect::to("/captures").into_response());
    }
    if !confirmed {
        let total: i64 = found.iter().map(|w| w.bytes.unwrap_or(0)).sum();
        let mut b = format!(
            "<p class=\"banner warn\">{}</p><ul>",
            E(&l.t("delete_confirm").replacen("{}", &found.len().to_string(), 1).replacen("{}", &bytes(total), 1))
        );
        let mut hidden = String::new();
        for w in &found {
            let _ = write!(
                b,
                "<li>{} · {} · {} · {}</li>",
                E(&l.t("alert_n").replacen("{}", &w.alert_id.to_string(), 1)),
                E(&w.rule),
                time_us(w.at_us),
                bytes(w.bytes.unwrap_or(0))
            );
            let _ = write!(hidden, "<input type=\"hidden\" name=\"id\" value=\"{}\">", w.id);
        }
        let _ = write!(
            b,
            "</ul><form method=\"post\" action=\"/captures/windows/delete\" class=\"filters\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">{hidden}<input type=\"hidden\" name=\"confirm\" value=\"1\">\
             <button type=\"submit\" class=\"danger\">{}</button> <a href=\"/captures\">{}</a></form>",
            E(&cx.csrf),
            E(l.t("delete_yes")),
            E(l.t("cancel"))
        );
        return Ok(Html(page(&cx.page(st), l.t("evidence_windows"), &b)).into_response());
    }
    let pinned = baseline(st);
    let mut deleted = 0usize;
    for w in found {
        if let Some(p) = window_file(st, &w) {
            std::fs::remove_file(&p).map_err(|e| WebError::Internal(e.to_string()))?;
        }
        let id = w.id;
        if st.write(move |c| crate::store::dashboard::delete_window(c, id)).await? {
            deleted += 1;
        }
        if pinned.as_deref() == Some(format!("window:{id}").as_str()) {
            let _ = std::fs::remove_file(baseline_file(st));
        }
    }
    Ok(Redirect::to(&format!("/captures?deleted={deleted}")).into_response())
}

#[derive(Deserialize)]
pub struct PinForm {
    pub id: String,
}

pub async fn pin(State(st): State<Arc<WebState>>, Form(f): Form<PinForm>) -> Result<Response, WebError> {
    resolve(&st, &f.id).await?;
    std::fs::create_dir_all(dir(&st)).map_err(|e| WebError::Internal(e.to_string()))?;
    std::fs::write(baseline_file(&st), &f.id).map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(Redirect::to("/captures").into_response())
}

#[derive(Deserialize)]
pub struct UploadQuery {
    pub name: String,
}

/// Writes a request body to `to`, at most [`UPLOAD_MAX`] bytes, piece by piece.
async fn receive(body: axum::body::Body, to: &std::path::Path) -> Result<(), WebError> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    let mut body = body;
    let mut f = tokio::fs::File::create(to).await.map_err(|e| WebError::Internal(e.to_string()))?;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| WebError::BadRequest(format!("upload cut short: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        total += data.len();
        if total > UPLOAD_MAX {
            return Err(WebError::TooLarge(format!("a capture of at most {} MiB", UPLOAD_MAX >> 20)));
        }
        f.write_all(&data).await.map_err(|e| WebError::Internal(e.to_string()))?;
    }
    f.sync_all().await.map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(())
}

/// `POST /captures/upload?name=F` with the capture as the body (the page's script sends it with
/// the CSRF header). The file must open as a capture, or it is not kept.
pub async fn upload(
    State(st): State<Arc<WebState>>,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Result<Response, WebError> {
    let clean: String =
        q.name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).take(80).collect();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() {
        return Err(WebError::BadRequest("a file name is needed".into()));
    }
    // A few at a time, each streamed to disk: an upload costs a buffer, not its size.
    let Ok(_slot) = st.upload_slots.try_acquire() else {
        return Ok((StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "10")], "other uploads are running")
            .into_response());
    };
    let d = dir(&st);
    tokio::fs::create_dir_all(&d).await.map_err(|e| WebError::Internal(e.to_string()))?;
    let path = d.join(format!("upload-{clean}"));
    let tmp = d.join(format!(".upload-{clean}.tmp"));
    let written = receive(req.into_body(), &tmp).await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let check = tmp.clone();
    let opened = tokio::task::spawn_blocking(move || crate::capture::file::FileSource::open(&check).map(|_| ()))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    if let Err(e) = opened {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(WebError::BadRequest(format!("{clean}: not a capture ({e})")));
    }
    tokio::fs::rename(&tmp, &path).await.map_err(|e| WebError::Internal(e.to_string()))?;
    for (_, old, _, _) in uploads(&st).into_iter().skip(MAX_UPLOADS) {
        let _ = std::fs::remove_file(old);
    }
    Ok((StatusCode::CREATED, "uploaded").into_response())
}

#[derive(Deserialize)]
pub struct DiffQuery {
    pub id: String,
}

/// The diff of a capture against the pinned baseline, as the self-contained HTML report.
pub async fn diff(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, WebError> {
    let lang = cx.lang;
    let base = baseline(&st).ok_or_else(|| WebError::BadRequest("pin a baseline first".into()))?;
    let (normal, failure) = (resolve(&st, &base).await?, resolve(&st, &q.id).await?);
    let _slot = st.preview_slot.acquire().await.map_err(|_| WebError::Internal("shutting down".into()))?;
    let html = tokio::task::spawn_blocking(move || -> Result<String, String> {
        // The report names the captures by file name: the box's paths stay on the box.
        let name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut n = crate::offline::transactions(&normal, None, 0)?;
        let mut f = crate::offline::transactions(&failure, None, 0)?;
        (n.file, f.file) = (name(&normal), name(&failure));
        let findings = crate::diff::compare(&n, &f);
        Ok(crate::diff::html::report(lang, &n, &f, &findings, &normal, &failure))
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?
    .map_err(WebError::BadRequest)?;
    Ok(report_response(html))
}

/// A diff report as served: with its own CSP, as the report styles itself inline and runs
/// nothing.
fn report_response(html: String) -> Response {
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        ],
        html,
    )
        .into_response()
}

/// "2026-12-06T14:00" (UTC), as a `datetime-local` input takes it.
fn input_time(secs: i64) -> String {
    let t = crate::time::Ts(secs * 1_000_000_000).rfc3339();
    t.get(..16).unwrap_or(&t).to_string()
}

/// The form of "now against another period": the last hour before the newest stored minute
/// against the same hour a week earlier, or any two ranges.
fn periods_form(b: &mut String, l: crate::i18n::Lang, anchor: i64) {
    let _ = write!(
        b,
        "<h2>{}</h2><p class=\"hint\">{}</p><form method=\"get\" action=\"/captures/periods\" class=\"search\">\
         <label>{} <input type=\"datetime-local\" name=\"from\" value=\"{}\" required></label> \
         <label>{} <input type=\"datetime-local\" name=\"to\" value=\"{}\" required></label> \
         <label>{} <select name=\"against\"><option value=\"7d\" selected>{}</option><option value=\"1d\">{}</option></select></label> \
         <button type=\"submit\">{}</button></form>",
        E(l.t("periods_compare")),
        E(l.t("periods_help")),
        E(l.t("periods_from")),
        E(&input_time(anchor - 3600)),
        E(l.t("periods_to")),
        E(&input_time(anchor)),
        E(l.t("periods_against")),
        E(l.t("periods_week_before")),
        E(l.t("periods_day_before")),
        E(l.t("periods_run")),
    );
}

/// `GET /captures/periods?from&to&against`: two stored periods compared.
#[derive(Deserialize)]
pub struct PeriodsQuery {
    pub from: String,
    pub to: String,
    pub against: String,
}

/// The diff of two stored periods (from the exchanges), as the same HTML report as a file diff.
pub async fn periods(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(q): Query<PeriodsQuery>,
) -> Result<Response, WebError> {
    use crate::diff::stored;
    let lang = cx.lang;
    let anchor = st.read(|c| crate::store::dashboard::anchor(c, crate::time::wall_now().secs())).await?;
    let ((nf, nt), (ff, ft)) = stored::periods(&q.from, &q.to, &q.against, anchor).map_err(WebError::BadRequest)?;
    if ft - ff > 31 * 86_400 {
        return Err(WebError::BadRequest("periods of at most 31 days".into()));
    }
    let (n, f) = st
        .read(move |c| {
            let n = stored::period(c, nf, nt, stored::label("", nf, nt).trim().to_string())?;
            let f = stored::period(c, ff, ft, stored::label("", ff, ft).trim().to_string())?;
            Ok((n, f))
        })
        .await?;
    let findings = crate::diff::compare(&n, &f);
    let html = crate::diff::html::report(
        lang,
        &n,
        &f,
        &findings,
        std::path::Path::new(&n.file),
        std::path::Path::new(&f.file),
    );
    Ok(report_response(html))
}
