//! The rules page: view and edit the rule files, with every error at its line and column and a
//! preview — how many frames each counter's filter matches over the capture the box has (the
//! analysed files, the replayed file, the stored evidence) — before saving. Saving checks the
//! whole directory as it would be, writes the file atomically, and the daemon's rule loader
//! applies it within a second (an invalid set is never written, so never applied).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use serde::{Deserialize, Serialize};

use super::html::{page, table_head, time_us, Multiline, E, U};
use super::pages::PageQuery;
use super::{Mode, ReqCtx, WebError, WebState};
use crate::capture::file::FileSource;
use crate::capture::PacketSource;
use crate::pipeline::{NullSink, Pipeline};
use crate::rules::{RuleError, RuleSet, ValueKind};

/// Frames the preview reads at most (a Pi 3 does about a million per second).
pub const PREVIEW_MAX_FRAMES: u64 = 2_000_000;
/// Stored evidence the preview reads at most.
const PREVIEW_EVIDENCE_BYTES: usize = 32 * 1024 * 1024;
/// Largest rule file the editor saves.
const MAX_RULE_FILE: usize = 128 * 1024;

/// A rule file name the editor accepts: letters, digits, `-`, `_`, ending in `.toml`.
pub fn valid_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".toml") else { return false };
    !stem.is_empty() && stem.len() <= 64 && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One error as the editor shows it.
#[derive(Clone, Debug, Serialize)]
pub struct EditorError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

fn editor_errors(errors: &[RuleError]) -> Vec<EditorError> {
    errors
        .iter()
        .map(|e| EditorError {
            file: e.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            line: e.line,
            col: e.col,
            msg: e.msg.clone(),
        })
        .collect()
}

/// Frames each counter matched.
#[derive(Clone, Debug, Serialize)]
pub struct Preview {
    pub sources: Vec<String>,
    /// Frames checked (in the time asked for).
    pub frames: u64,
    pub truncated: bool,
    /// The time the checked frames cover: first and last frame (µs since the epoch).
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub counters: Vec<PreviewCount>,
}

/// What a preview reads: capture files (read whole, or from `since_ns` on) and evidence blobs.
#[derive(Default)]
pub struct PreviewInput {
    pub files: Vec<PathBuf>,
    pub blobs: Vec<Vec<u8>>,
    /// Frames before this packet time are skipped (the ring's "last hour").
    pub since_ns: Option<i64>,
    /// Names the sources are shown by (the ring is one source, not its files).
    pub label: Option<String>,
}

/// The pcap ring's files that hold frames from `since_ns` on, oldest first: a file is needed
/// when the next one begins after `since_ns` (or it is the newest). The first frame of each
/// file is read to know where it begins; the file being written is read up to its last whole
/// block.
pub fn ring_files(ring_dir: &Path, since_ns: i64) -> Vec<PathBuf> {
    let found = crate::store::ring::ring_files(ring_dir);
    let firsts: Vec<Option<i64>> = found
        .iter()
        .map(|(_, p)| FileSource::open(p).ok().and_then(|mut f| f.next_packet().ok().flatten().map(|p| p.ts.0)))
        .collect();
    let mut out = Vec::new();
    for (i, (_, path)) in found.iter().enumerate() {
        let Some(_) = firsts[i] else { continue };
        let next_first = firsts[i + 1..].iter().flatten().next();
        if next_first.is_none_or(|&n| n >= since_ns) {
            out.push(path.clone());
        }
    }
    out
}

#[derive(Clone, Debug, Serialize)]
pub struct PreviewCount {
    pub id: String,
    pub frames: u64,
}

/// Runs `rules`' counters (counting frames, whatever their `value`) over the input.
pub fn preview(mut rules: RuleSet, input: PreviewInput) -> Preview {
    let PreviewInput { files, blobs, since_ns, label } = input;
    rules.alerts.clear();
    for c in &mut rules.counters {
        c.value = ValueKind::Packets;
    }
    let ids: Vec<String> = rules.counters.iter().map(|c| c.id.clone()).collect();
    let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
    p.set_rules(rules);
    let mut sources = Vec::new();
    let mut frames = 0u64;
    let mut truncated = false;
    let (mut from_ns, mut to_ns) = (None::<i64>, None::<i64>);
    if let Some(l) = label {
        sources.push(l);
    }
    let named = sources.is_empty();
    let mut inputs: Vec<(String, Result<FileSource, String>)> = files
        .iter()
        .map(|f| {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (name, FileSource::open(f).map_err(|e| e.to_string()))
        })
        .collect();
    let n_blobs = blobs.len();
    for b in blobs {
        inputs.push((
            String::new(),
            FileSource::from_reader(Box::new(std::io::Cursor::new(b))).map_err(|e| e.to_string()),
        ));
    }
    if n_blobs > 0 {
        sources.push(format!("{n_blobs} evidence files"));
    }
    'files: for (name, src) in inputs {
        let Ok(mut src) = src else { continue };
        if !name.is_empty() && named {
            sources.push(name);
        }
        while let Ok(Some(pkt)) = src.next_packet() {
            if since_ns.is_some_and(|s| pkt.ts.0 < s) {
                continue;
            }
            from_ns = Some(from_ns.map_or(pkt.ts.0, |f| f.min(pkt.ts.0)));
            to_ns = Some(to_ns.map_or(pkt.ts.0, |t| t.max(pkt.ts.0)));
            p.process(&pkt);
            frames += 1;
            if frames >= PREVIEW_MAX_FRAMES {
                truncated = true;
                p.end_of_file();
                break 'files;
            }
        }
        p.end_of_file();
    }
    let totals = p.counter_totals();
    let counters = ids
        .into_iter()
        .map(|id| {
            let frames = totals.iter().find(|(k, _)| *k == id).map(|(_, t)| t.total).unwrap_or(0);
            PreviewCount { id, frames }
        })
        .collect();
    Preview { sources, frames, truncated, from_us: from_ns.map(|n| n / 1000), to_us: to_ns.map(|n| n / 1000), counters }
}

/// A rule file of the directory: its name, size, and whether it is a symbolic link (placed by
/// the box's admin; the dashboard neither shows nor writes what a link points to).
fn rule_files(dir: &Path) -> Vec<(String, u64, bool)> {
    let mut v: Vec<(String, u64, bool)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    // file_type() and symlink_metadata() do not follow links.
                    let link = e.file_type().is_ok_and(|t| t.is_symlink());
                    let size = if link { 0 } else { e.metadata().map(|m| m.len()).unwrap_or(0) };
                    name.ends_with(".toml").then_some((name, size, link))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether `path` is a symbolic link (the editor refuses it).
fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn no_rules_dir(st: &WebState, cx: &ReqCtx) -> Response {
    let l = cx.lang;
    Html(page(&cx.page(st), l.t("rules"), "<p>No rule directory: start with --rules DIR or set [rules] dir.</p>"))
        .into_response()
}

pub async fn list(State(st): State<Arc<WebState>>, Extension(cx): Extension<ReqCtx>) -> Response {
    let Some(dir) = st.rules_dir.clone() else { return no_rules_dir(&st, &cx) };
    let l = cx.lang;
    let mut b = String::new();
    let status = st.live.rules.lock().map(|r| r.clone()).unwrap_or_default();
    if status.loaded_us > 0 {
        let _ = write!(
            b,
            "<p>{}: {} files, {} counters, {} alerts · {}</p>",
            E(l.t("rules_loaded")),
            status.files,
            status.counters,
            status.alerts,
            time_us(status.loaded_us)
        );
    }
    if let Some(e) = &status.error {
        let _ = write!(b, "<p class=\"error\">{}</p>", E(e));
    }
    if let Err(errors) = RuleSet::load_dir(&dir) {
        b.push_str("<ul class=\"errors\">");
        for e in editor_errors(&errors) {
            let _ = write!(b, "<li>{}:{}:{}: {}</li>", E(&e.file), e.line, e.col, E(&e.msg));
        }
        b.push_str("</ul>");
    }
    b.push_str(&table_head("list", &[l.t("file"), l.t("bytes"), ""]));
    for (name, size, link) in rule_files(&dir) {
        if link {
            let _ = write!(b, "<tr><td>{}</td><td></td><td>{}</td></tr>", E(&name), E(l.t("rules_link")));
            continue;
        }
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"n\">{size}</td><td><a href=\"/rules/edit?file={}\">{}</a></td></tr>",
            E(&name),
            U(&name),
            E(l.t("edit"))
        );
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<form method=\"get\" action=\"/rules/edit\" class=\"search\"><input name=\"file\" placeholder=\"new-rules.toml\" \
         pattern=\"[A-Za-z0-9_-]{{1,64}}\\.toml\" required><button type=\"submit\">{}</button></form>",
        E(l.t("edit"))
    );
    Html(page(&cx.page(&st), l.t("rules"), &b)).into_response()
}

fn editor(st: &WebState, cx: &ReqCtx, file: &str, text: &str, errors: &[EditorError], note: Option<&str>) -> String {
    let l = cx.lang;
    let mut b = String::new();
    let _ = write!(b, "<p><a href=\"/rules\">← {}</a></p>", E(l.t("rules")));
    if let Some(n) = note {
        let _ = write!(b, "<p class=\"good\" role=\"status\">{}</p>", E(n));
    }
    b.push_str("<div id=\"rule-errors\" aria-live=\"polite\">");
    if !errors.is_empty() {
        b.push_str("<ul class=\"errors\">");
        for e in errors {
            let _ = write!(
                b,
                "<li data-line=\"{}\" data-col=\"{}\">{}:{}:{}: {}</li>",
                e.line,
                e.col,
                E(&e.file),
                e.line,
                e.col,
                E(&e.msg)
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</div>");
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/rules/save\" id=\"rule-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"file\" value=\"{}\">\
         <textarea name=\"text\" id=\"rule-text\" rows=\"28\" spellcheck=\"false\" autocomplete=\"off\">\n{}</textarea>\
         <p><button type=\"button\" id=\"rule-check\">{}</button> {} <button type=\"submit\">{}</button></p></form>\
         <section id=\"rule-preview\" aria-live=\"polite\" data-label=\"{}\" data-ok=\"{}\" data-frames=\"{}\"></section>",
        E(&cx.csrf),
        E(file),
        Multiline(text),
        E(l.t("check")),
        // On a live box the preview reads the pcap ring this far back.
        if matches!(st.mode, Mode::Daemon) {
            super::html::select("over", l.t("preview_range"), &[("1h", "1h"), ("6h", "6h"), ("24h", "24h")], "1h")
        } else {
            String::new()
        },
        E(l.t("save")),
        E(l.t("preview_over")),
        E(l.t("rules_valid")),
        E(l.t("frames")),
    );
    page(&cx.page(st), &format!("{} · {file}", l.t("rules")), &b)
}

pub async fn edit(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Query(pq): Query<PageQuery>,
) -> Result<Response, WebError> {
    let Some(dir) = st.rules_dir.clone() else { return Ok(no_rules_dir(&st, &cx)) };
    let file = pq.file.clone().unwrap_or_default();
    if !valid_name(&file) {
        return Err(WebError::BadRequest("a rule file name is letters, digits, - and _, ending in .toml".into()));
    }
    if is_link(&dir.join(&file)) {
        return Err(WebError::BadRequest(format!("{file} is a link placed on the box: edit it there")));
    }
    let text = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
    let note = match (pq.saved.is_some(), &st.mode) {
        (false, _) => None,
        (true, Mode::Daemon) => Some(cx.lang.t("rules_saved")),
        (true, Mode::Analysis) => Some(cx.lang.t("rules_saved_analysis")),
    };
    Ok(Html(editor(&st, &cx, &file, &text, &[], note)).into_response())
}

#[derive(Deserialize)]
pub struct SaveForm {
    pub file: String,
    pub text: String,
}

pub async fn save(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Form(form): Form<SaveForm>,
) -> Result<Response, WebError> {
    let Some(dir) = st.rules_dir.clone() else { return Ok(no_rules_dir(&st, &cx)) };
    if !valid_name(&form.file) {
        return Err(WebError::BadRequest("a rule file name is letters, digits, - and _, ending in .toml".into()));
    }
    if form.text.len() > MAX_RULE_FILE {
        return Err(WebError::BadRequest(format!("a rule file has at most {MAX_RULE_FILE} bytes")));
    }
    let (d2, name, text) = (dir.clone(), form.file.clone(), form.text.clone());
    let checked = tokio::task::spawn_blocking(move || RuleSet::load_dir_with(&d2, Some((&name, &text))).map(|_| ()))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    if let Err(errors) = checked {
        let page = editor(&st, &cx, &form.file, &form.text, &editor_errors(&errors), None);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response());
    }
    let path = dir.join(&form.file);
    if is_link(&path) {
        return Err(WebError::BadRequest(format!("{} is a link placed on the box: edit it there", form.file)));
    }
    let tmp = dir.join(format!(".{}.tmp", form.file));
    // The loader reads only *.toml, so the temporary file is never half-loaded.
    std::fs::write(&tmp, form.text.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| WebError::Internal(format!("{}: {e}", form.file)))?;
    tracing::info!("dashboard: rule file {} saved", path.display());
    Ok(Redirect::to(&format!("/rules/edit?file={}&saved=1", U(&form.file))).into_response())
}

#[derive(Deserialize)]
pub struct CheckBody {
    pub file: String,
    pub text: String,
    /// How far back the preview reads the pcap ring: `1h` (default), `6h`, `24h`.
    #[serde(default)]
    pub over: Option<String>,
}

pub async fn check(
    State(st): State<Arc<WebState>>,
    Extension(cx): Extension<ReqCtx>,
    Json(body): Json<CheckBody>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Some(dir) = st.rules_dir.clone() else { return Err(WebError::NotFound) };
    if !valid_name(&body.file) {
        return Err(WebError::BadRequest("a rule file name is letters, digits, - and _, ending in .toml".into()));
    }
    if body.text.len() > MAX_RULE_FILE {
        return Err(WebError::BadRequest(format!("a rule file has at most {MAX_RULE_FILE} bytes")));
    }
    let loaded = {
        let (d2, name, text) = (dir.clone(), body.file.clone(), body.text.clone());
        tokio::task::spawn_blocking(move || {
            // Only the edited file's counters are previewed: they are what the admin is changing.
            RuleSet::load_dir_with(&d2, Some((&name, &text))).map(|mut set| {
                let edited = d2.join(&name);
                set.counters.retain(|c| c.file == edited);
                set
            })
        })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
    };
    let rules = match loaded {
        Ok(r) => r,
        Err(errors) => return Ok(Json(serde_json::json!({"errors": editor_errors(&errors), "preview": null}))),
    };
    let _slot = st.preview_slot.acquire().await.map_err(|_| WebError::Internal("shutting down".into()))?;
    // A live box previews over its pcap ring, the last hour by default (what the counters would
    // have counted); without a ring, over the replayed file and the stored evidence.
    let secs: i64 = match body.over.as_deref() {
        Some("6h") => 6 * 3600,
        Some("24h") => 86_400,
        _ => 3600,
    };
    let ring_dir = st.store_dir.join("ring");
    let ring = st.live.ring.lock().ok().and_then(|r| r.clone());
    let input = if let Some(ring) = ring.filter(|_| matches!(st.mode, Mode::Daemon)) {
        // The newest frame in the ring ends the range (a replayed ring's frames are older than
        // the clock).
        let newest = ring.newest_ns.load(std::sync::atomic::Ordering::Relaxed);
        let label = format!(
            "{} ({})",
            cx.lang.t("pcap_ring"),
            body.over.as_deref().filter(|o| ["6h", "24h"].contains(o)).unwrap_or("1h")
        );
        tokio::task::spawn_blocking(move || {
            let end = if newest > 0 { newest } else { crate::time::wall_now().0 };
            let since = end - secs * 1_000_000_000;
            PreviewInput {
                files: ring_files(&ring_dir, since),
                blobs: Vec::new(),
                since_ns: Some(since),
                label: Some(label),
            }
        })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
    } else {
        let blobs = match st.mode {
            Mode::Daemon => st.read(|c| crate::store::dashboard::recent_evidence(c, PREVIEW_EVIDENCE_BYTES)).await?,
            Mode::Analysis => Vec::new(),
        };
        PreviewInput { files: st.preview_files.clone(), blobs, ..PreviewInput::default() }
    };
    let pv = tokio::task::spawn_blocking(move || preview(rules, input))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(Json(serde_json::json!({"errors": [], "preview": pv})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert!(valid_name("lan.toml"));
        assert!(valid_name("my_rules-2.toml"));
        assert!(!valid_name("../x.toml"));
        assert!(!valid_name(".toml"));
        assert!(!valid_name("a.txt"));
        assert!(!valid_name("a b.toml"));
    }
}
