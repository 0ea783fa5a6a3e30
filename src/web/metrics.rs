//! `/metrics`: Prometheus text exposition (format 0.0.4), so a fleet of boxes is watched from one
//! Prometheus and Grafana. Only with `Authorization: Bearer <token>` from `metrics_token_file`;
//! without that file the route does not exist (404), a wrong token is 401.
//!
//! Conventions (prometheus.io/docs/practices/naming): `_total` counters since start, units in
//! names (`_bytes`, `_seconds`), HELP and TYPE for each family, and labels bounded: flags and
//! severities are fixed sets, host pairs only the top [`TOP_PAIRS`] of the last hour.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{constant_time_eq, metrics_token};
use super::{WebError, WebState};
use crate::store::dashboard::{self as q, Range};

/// A label value as Prometheus wants it: backslash, quote and newline escaped.
pub fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Host pairs with their retransmissions in `/metrics` (the rest are on the dashboard).
pub const TOP_PAIRS: usize = 10;

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

pub async fn metrics(State(st): State<Arc<WebState>>, headers: HeaderMap) -> Result<Response, WebError> {
    let Some(token) = metrics_token(&st.metrics_token_file) else {
        return Err(WebError::NotFound);
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), token.as_bytes())) {
        return Ok((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "bearer token required\n")
            .into_response());
    }
    let wall = crate::time::wall_now().secs();
    let (counters, active, latest, pairs) = st
        .read(move |c| {
            let anchor = q::anchor(c, wall)?;
            Ok((
                q::counters(c, Range::last(anchor, 86_400))?,
                q::active_alert_counts(c)?,
                q::latest_minute(c, anchor)?,
                q::retrans_pairs(c, Range::last(anchor, 3600), TOP_PAIRS, None)?,
            ))
        })
        .await?;
    let live = &st.live;
    let mut out = String::with_capacity(4096);
    let one = |v: f64| vec![(String::new(), v)];
    let (host, branch) = live.fleet.lock().map(|f| f.clone()).unwrap_or_default();
    metric(
        &mut out,
        "mirrorwatch_info",
        "gauge",
        "The box: its name and branch as it calls them ([export] host and branch; a scrape job's own labels take precedence) and its version; always 1.",
        &[(
            format!(
                "{{box=\"{}\",branch_name=\"{}\",version=\"{}\"}}",
                label(&host),
                label(&branch),
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        )],
    );
    metric(
        &mut out,
        "mirrorwatch_packets_total",
        "counter",
        "Frames processed since start.",
        &one(live.packets.load(Ordering::Relaxed) as f64),
    );
    metric(
        &mut out,
        "mirrorwatch_bytes_total",
        "counter",
        "Bytes of the frames processed since start.",
        &one(live.bytes.load(Ordering::Relaxed) as f64),
    );
    metric(
        &mut out,
        "mirrorwatch_capture_drops_total",
        "counter",
        "Frames the kernel or libpcap dropped since start.",
        &one(live.drops.load(Ordering::Relaxed) as f64),
    );
    let tcp = live.tcp.lock().map(|t| *t).unwrap_or_default();
    metric(
        &mut out,
        "mirrorwatch_tcp_retransmissions_total",
        "counter",
        "TCP retransmissions seen since start (tcp.analysis.retransmission).",
        &one(f64::from(tcp.retransmissions)),
    );
    metric(
        &mut out,
        "mirrorwatch_tcp_private_retransmissions_total",
        "counter",
        "TCP retransmissions between two private addresses since start (a bad cable or media converter).",
        &one(live.private_retransmissions.load(Ordering::Relaxed) as f64),
    );
    let flags: Vec<(String, f64)> = crate::flow::TcpCounts::COLUMNS
        .iter()
        .zip(tcp.values())
        .map(|(k, v)| (format!("{{flag=\"{k}\"}}"), f64::from(v)))
        .collect();
    metric(
        &mut out,
        "mirrorwatch_tcp_analysis_total",
        "counter",
        "TCP analysis flags seen since start, by flag (Wireshark's tcp.analysis.*).",
        &flags,
    );
    let last = live.last_packet_us.load(Ordering::Relaxed);
    metric(
        &mut out,
        "mirrorwatch_last_packet_timestamp_seconds",
        "gauge",
        "Packet time of the newest frame.",
        &one(last as f64 / 1e6),
    );
    // Live capture against the clock: a dead mirror port shows as silent seconds growing.
    match st.live.wall.now(crate::store::wall_us()) {
        super::CaptureNow::Unknown => {}
        super::CaptureNow::Flowing { pps, .. } => {
            metric(
                &mut out,
                "mirrorwatch_capture_silent_seconds",
                "gauge",
                "Seconds since the last frame on live capture.",
                &one(0.0),
            );
            metric(
                &mut out,
                "mirrorwatch_capture_packets_per_second",
                "gauge",
                "Frames per second over the last minute of wall time.",
                &one(pps),
            );
        }
        super::CaptureNow::Silent { since_us, .. } => {
            let quiet = (crate::store::wall_us() - since_us).max(0) as f64 / 1e6;
            metric(
                &mut out,
                "mirrorwatch_capture_silent_seconds",
                "gauge",
                "Seconds since the last frame on live capture.",
                &one(quiet),
            );
            metric(
                &mut out,
                "mirrorwatch_capture_packets_per_second",
                "gauge",
                "Frames per second over the last minute of wall time.",
                &one(0.0),
            );
        }
    }
    if let Some(m) = &latest {
        metric(
            &mut out,
            "mirrorwatch_minute_packets",
            "gauge",
            "Frames in the newest stored minute.",
            &one(m.packets as f64),
        );
        metric(
            &mut out,
            "mirrorwatch_minute_bytes",
            "gauge",
            "Bytes in the newest stored minute.",
            &one(m.bytes as f64),
        );
        metric(
            &mut out,
            "mirrorwatch_minute_start_seconds",
            "gauge",
            "Start of the newest stored minute.",
            &one(m.minute as f64),
        );
    }
    let health = live.store.lock().ok().and_then(|s| s.clone());
    let (failing, lost, held) = match &health {
        Some(h) => (
            h.failing().is_some() as u8 as f64,
            h.lost_events.load(Ordering::Relaxed) as f64,
            h.held_events.load(Ordering::Relaxed) as f64,
        ),
        None => (0.0, 0.0, 0.0),
    };
    let clock = crate::time::clock_status(wall, std::path::Path::new(crate::time::TIMESYNC_DIR));
    metric(
        &mut out,
        "mirrorwatch_clock_synchronized",
        "gauge",
        "1 once the wall clock is set (NTP).",
        &one(clock.synchronized as u8 as f64),
    );
    metric(&mut out, "mirrorwatch_store_failing", "gauge", "1 while the database refuses writes.", &one(failing));
    metric(
        &mut out,
        "mirrorwatch_store_lost_events_total",
        "counter",
        "Events the store writer gave up on.",
        &one(lost),
    );
    metric(&mut out, "mirrorwatch_store_held_events", "gauge", "Events waiting for the database.", &one(held));
    let db_bytes = st.database_bytes();
    metric(&mut out, "mirrorwatch_database_bytes", "gauge", "Size of the database and its WAL.", &one(db_bytes as f64));
    if let Ok(free) = fs4::available_space(&st.store_dir) {
        metric(
            &mut out,
            "mirrorwatch_disk_free_bytes",
            "gauge",
            "Free space where the store lives.",
            &one(free as f64),
        );
    }
    if let Some(r) = live.ring.lock().ok().and_then(|r| r.clone()) {
        let v = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric(&mut out, "mirrorwatch_ring_bytes", "gauge", "Size of the pcap ring.", &one(v(&r.bytes)));
        metric(&mut out, "mirrorwatch_ring_files", "gauge", "Files in the pcap ring.", &one(v(&r.files)));
        metric(
            &mut out,
            "mirrorwatch_ring_frames_lost_total",
            "counter",
            "Frames analysed but not kept in the pcap ring (disk too slow, full or gone).",
            &one(v(&r.frames_lost)),
        );
        metric(
            &mut out,
            "mirrorwatch_ring_failing",
            "gauge",
            "1 while the pcap ring cannot write.",
            &one((r.failing_since_us.load(Ordering::Relaxed) > 0) as u8 as f64),
        );
        metric(
            &mut out,
            "mirrorwatch_evidence_bytes",
            "gauge",
            "Evidence windows kept until the admin deletes them.",
            &one(v(&r.evidence_bytes)),
        );
    }
    let samples: Vec<(String, f64)> = pairs
        .iter()
        .map(|p| (format!("{{src=\"{}\",dst=\"{}\"}}", label(&p.src), label(&p.dst)), p.retransmissions as f64))
        .collect();
    metric(
        &mut out,
        "mirrorwatch_pair_retransmissions_last_hour",
        "gauge",
        "Retransmissions of the host pairs with the most in the last stored hour (top 10 only).",
        &samples,
    );
    if let Some(e) = live.export.lock().ok().and_then(|e| e.clone()) {
        export_metrics(&mut out, &e);
    }
    let samples: Vec<(String, f64)> =
        counters.iter().map(|c| (format!("{{counter=\"{}\"}}", label(&c.id)), c.last_value as f64)).collect();
    metric(
        &mut out,
        "mirrorwatch_counter_last_minute",
        "gauge",
        "Each rule counter's value in its newest stored minute.",
        &samples,
    );
    let mut by_sev: Vec<(String, f64)> = ["critical", "warning", "info"]
        .iter()
        .map(|s| (s.to_string(), active.iter().find(|(k, _)| k == s).map(|(_, n)| *n as f64).unwrap_or(0.0)))
        .collect();
    for (k, n) in &active {
        if !by_sev.iter().any(|(s, _)| s == k) {
            by_sev.push((k.clone(), *n as f64));
        }
    }
    let samples: Vec<(String, f64)> =
        by_sev.into_iter().map(|(s, n)| (format!("{{severity=\"{}\"}}", label(&s)), n)).collect();
    metric(&mut out, "mirrorwatch_alerts_active", "gauge", "Alert episodes that have not cleared.", &samples);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response())
}

fn export_metrics(out: &mut String, e: &crate::export::ExportStats) {
    let v = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let mut sent = Vec::new();
    if e.jsonl_configured.load(Ordering::Relaxed) {
        sent.push(("{sink=\"jsonl\"}".to_string(), v(&e.jsonl_written)));
    }
    if e.syslog_configured.load(Ordering::Relaxed) {
        sent.push(("{sink=\"syslog\"}".to_string(), v(&e.syslog_sent)));
    }
    metric(out, "mirrorwatch_export_events_total", "counter", "Events the fleet export wrote, by sink.", &sent);
    let dropped = vec![
        ("{stage=\"queue\"}".to_string(), v(&e.queue_dropped)),
        ("{stage=\"jsonl\"}".to_string(), v(&e.jsonl_dropped)),
        ("{stage=\"syslog\"}".to_string(), v(&e.syslog_dropped)),
    ];
    metric(
        out,
        "mirrorwatch_export_dropped_events_total",
        "counter",
        "Events the fleet export gave up: the queue full (export behind), the file not writable, the syslog collector away past the backlog.",
        &dropped,
    );
    metric(
        out,
        "mirrorwatch_export_queued_events",
        "gauge",
        "Events waiting for the export thread.",
        &[(String::new(), v(&e.queued))],
    );
    if e.syslog_configured.load(Ordering::Relaxed) {
        metric(
            out,
            "mirrorwatch_export_syslog_connected",
            "gauge",
            "1 while the syslog collector is connected.",
            &[(String::new(), e.syslog_connected.load(Ordering::Relaxed) as u8 as f64)],
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
