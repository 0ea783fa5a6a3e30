//! The JSON API under `/api`: the same queries as the pages, for scripts. Ranges are
//! `?from=&to=` (seconds since the epoch or RFC 3339) or `?range=1h|24h|7d`, defaulting to the
//! 24 hours before the newest stored minute. Times in the answers are seconds (`minute`, `t`)
//! or microseconds (`*_us`) since the epoch, as in the store.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::pages::pair_is_hot;
use super::{WebError, WebState};
use crate::store::dashboard::{self as q, Range};

#[derive(Debug, Default, Deserialize)]
pub struct ApiQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub range: Option<String>,
    pub key: Option<String>,
    pub q: Option<String>,
    pub family: Option<String>,
}

/// Seconds since the epoch from an integer or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<i64, WebError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|e| WebError::BadRequest(format!("time {s:?}: {e} (seconds since the epoch or RFC 3339)")))
}

impl ApiQuery {
    /// The range asked for, relative to `anchor` unless `from`/`to` say otherwise.
    pub fn resolve(&self, anchor: i64) -> Result<Range, WebError> {
        let secs = match self.range.as_deref() {
            Some("1h") => 3600,
            Some("7d") => 7 * 86_400,
            None | Some("24h") => 86_400,
            Some(r) => return Err(WebError::BadRequest(format!("range {r:?}: use 1h, 24h or 7d"))),
        };
        let to = self.to.as_deref().map(parse_time).transpose()?.unwrap_or(anchor);
        let from = self.from.as_deref().map(parse_time).transpose()?.unwrap_or(to - secs);
        if from >= to {
            return Err(WebError::BadRequest("from must be before to".into()));
        }
        Ok(Range { from, to })
    }
}

fn wall() -> i64 {
    crate::time::wall_now().secs()
}

fn points(p: &[q::Point]) -> Value {
    Value::Array(p.iter().map(|p| json!({"t": p.t, "v": p.v})).collect())
}

pub async fn status(State(st): State<Arc<WebState>>) -> Result<Json<Value>, WebError> {
    let w = wall();
    let (newest, latest, active) = st
        .read(move |c| {
            let anchor = q::anchor(c, w)?;
            let latest = q::latest_minute(c, anchor)?;
            Ok((latest.as_ref().map(|m| m.minute), latest, q::active_alert_counts(c)?))
        })
        .await?;
    let live = &st.live;
    let health = live.store.lock().ok().and_then(|s| s.clone());
    let store = match &health {
        Some(h) => {
            let failing = h.failing();
            json!({
                "failing": failing.is_some(),
                "failing_since_us": failing.as_ref().map(|f| f.0),
                "error": failing.map(|f| f.1),
                "lost_events": h.lost_events.load(Ordering::Relaxed),
                "held_events": h.held_events.load(Ordering::Relaxed),
            })
        }
        None => json!({"failing": false}),
    };
    let rules = live.rules.lock().map(|r| r.clone()).unwrap_or_default();
    let last = live.last_packet_us.load(Ordering::Relaxed);
    Ok(Json(json!({
        "mode": match st.mode { super::Mode::Daemon => "daemon", super::Mode::Analysis => "analysis" },
        "version": env!("CARGO_PKG_VERSION"),
        "packets": live.packets.load(Ordering::Relaxed),
        "bytes": live.bytes.load(Ordering::Relaxed),
        "drops": live.drops.load(Ordering::Relaxed),
        "last_packet_us": (last > 0).then_some(last),
        "started_us": live.started_us.load(Ordering::Relaxed),
        "newest_minute": newest,
        "latest_minute": latest,
        "store": store,
        "ring": ring_json(&st),
        "rules": rules,
        "clock": crate::time::clock_status(w, std::path::Path::new(crate::time::TIMESYNC_DIR)),
        "active_alerts": active.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "disk": {
            "free_bytes": fs4::available_space(&st.store_dir).ok(),
            "total_bytes": fs4::total_space(&st.store_dir).ok(),
        },
    })))
}

pub async fn counters(State(st): State<Arc<WebState>>, Query(aq): Query<ApiQuery>) -> Result<Json<Value>, WebError> {
    let w = wall();
    let anchor = st.read(move |c| q::anchor(c, w)).await?;
    let r = aq.resolve(anchor)?;
    let list = st.read(move |c| q::counters(c, r)).await?;
    Ok(Json(json!({"from": r.from, "to": r.to, "counters": list})))
}

pub async fn counter(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(aq): Query<ApiQuery>,
) -> Result<Json<Value>, WebError> {
    let w = wall();
    let anchor = st.read(move |c| q::anchor(c, w)).await?;
    let r = aq.resolve(anchor)?;
    let key = aq.key.clone().unwrap_or_default();
    let (id2, k2) = (id.clone(), key.clone());
    let (series, groups, exists) = st
        .read(move |c| {
            let exists: bool =
                c.query_row("SELECT EXISTS (SELECT 1 FROM counter_minute WHERE counter = ?1)", [&id2], |r| r.get(0))?;
            Ok((q::counter_series(c, &id2, &k2, r)?, q::counter_groups(c, &id2, r, 50)?, exists))
        })
        .await?;
    // A counter of the rules that has not counted yet is an empty series, not an unknown one.
    if !exists && !super::pages::counter_descriptions(&st).iter().any(|(c, _)| *c == id) {
        return Err(WebError::NotFound);
    }
    Ok(Json(json!({
        "id": id, "key": key, "from": r.from, "to": r.to, "bucket": r.bucket(),
        "total": series.iter().map(|p| p.v).sum::<f64>(),
        "points": points(&series), "groups": groups,
    })))
}

pub async fn identities(State(st): State<Arc<WebState>>, Query(aq): Query<ApiQuery>) -> Result<Json<Value>, WebError> {
    let query = aq.q.clone().unwrap_or_default();
    let (rows, shared) =
        st.read(move |c| Ok((q::identities(c, &query)?, q::identity_events(c, "identity.shared_mac", None)?))).await?;
    Ok(Json(json!({"identities": rows, "shared_mac": shared})))
}

pub async fn app_errors(State(st): State<Arc<WebState>>, Query(aq): Query<ApiQuery>) -> Result<Json<Value>, WebError> {
    let w = wall();
    let anchor = st.read(move |c| q::anchor(c, w)).await?;
    let r = aq.resolve(anchor)?;
    let family = aq.family.clone().filter(|f| !f.is_empty());
    let (kinds, series, examples) = st
        .read(move |c| {
            Ok((
                q::app_error_kinds(c, r)?,
                q::app_error_series(c, family.as_deref(), r)?,
                q::app_error_examples(c, r, family.as_deref())?,
            ))
        })
        .await?;
    Ok(Json(json!({
        "from": r.from, "to": r.to, "bucket": r.bucket(),
        "kinds": kinds, "points": points(&series), "examples": examples,
    })))
}

pub async fn retransmissions(
    State(st): State<Arc<WebState>>,
    Query(aq): Query<ApiQuery>,
) -> Result<Json<Value>, WebError> {
    let w = wall();
    let anchor = st.read(move |c| q::anchor(c, w)).await?;
    let r = aq.resolve(anchor)?;
    let (pairs, series) = st.read(move |c| Ok((q::retrans_pairs(c, r, 100, None)?, q::traffic_series(c, r)?))).await?;
    let pairs: Vec<Value> = pairs
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            v["times_baseline"] = json!(p.times_baseline());
            v["hot"] = json!(pair_is_hot(p));
            v
        })
        .collect();
    Ok(Json(json!({
        "from": r.from, "to": r.to, "bucket": r.bucket(),
        "pairs": pairs, "private_retransmissions": points(&series.retransmissions),
    })))
}

/// Alerts with the page's filters (`severity`, `rule`, `state`, `range`, `each=1`, `page`),
/// 50 a page, and how many the filter finds.
pub async fn alerts(
    State(st): State<Arc<WebState>>,
    Query(aq): Query<super::pages::AlertQuery>,
) -> Result<Json<Value>, WebError> {
    let wall = crate::time::wall_now().secs();
    let page = aq.page();
    let list = st
        .read(move |c| {
            let f = aq.filter(c, q::anchor(c, wall)?)?;
            q::alerts(c, &f, (page - 1) * super::html::PAGE_ROWS, super::html::PAGE_ROWS)
        })
        .await?;
    Ok(Json(json!({"alerts": list.alerts, "total": list.total, "page": page, "per_page": super::html::PAGE_ROWS})))
}

pub async fn captures(State(st): State<Arc<WebState>>) -> Result<Json<Value>, WebError> {
    let list = st.read(q::captures).await?;
    let windows = st.read(q::windows).await?;
    // File names only: the box's paths stay on the box.
    let files: Vec<String> = st
        .preview_files
        .iter()
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    Ok(Json(json!({"evidence": list, "windows": windows, "ring": ring_json(&st), "analysed_files": files})))
}

/// The pcap ring's state (`null` when no ring runs).
pub fn ring_json(st: &WebState) -> Value {
    let Some(r) = st.live.ring.lock().ok().and_then(|r| r.clone()) else { return Value::Null };
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let ns = |a: &std::sync::atomic::AtomicI64| {
        let v = a.load(Ordering::Relaxed);
        (v > 0).then_some(v / 1000)
    };
    let failing = r.failing_since_us.load(Ordering::Relaxed);
    json!({
        "files": l(&r.files), "bytes": l(&r.bytes),
        "oldest_us": ns(&r.oldest_ns), "newest_us": ns(&r.newest_ns),
        "frames_written": l(&r.frames_written), "frames_lost": l(&r.frames_lost),
        "files_deleted": l(&r.files_deleted), "evidence_bytes": l(&r.evidence_bytes),
        "failing_since_us": (failing > 0).then_some(failing),
        "error": (failing > 0).then(|| r.error.lock().map(|e| e.clone()).unwrap_or_default()),
    })
}
