//! `mirrorwatch analyze PCAP... [--db FILE] [--json]`: the pipeline over capture files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use super::Outcome;
use crate::config::Config;
use crate::pipeline::{NullSink, Pipeline};
use crate::store::{Backpressure, SqliteSink};
use crate::summary::{FileReport, Summary};

pub struct AnalyzeArgs {
    pub files: Vec<PathBuf>,
    pub db: Option<PathBuf>,
    pub json: bool,
    pub config: Option<PathBuf>,
    /// Rule directory whose counters are evaluated.
    pub rules: Option<PathBuf>,
    /// Serve the dashboard on the result at this address until stopped.
    pub serve: Option<String>,
}

fn progress_bar(files: &[PathBuf]) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(pb)
}

pub fn run(mut args: AnalyzeArgs) -> anyhow::Result<Outcome> {
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        // The dashboard's password file is the box's, if this is one.
        None if args.serve.is_some() && Path::new(crate::config::DEFAULT_PATH).exists() => {
            Config::load(Path::new(crate::config::DEFAULT_PATH))?
        }
        None => Config::default(),
    };
    // The dashboard reads a database: without --db the result goes to a temporary one.
    let temp_db = match (&args.serve, &args.db) {
        (Some(_), None) => {
            // Its own directory: the dashboard keeps uploads and evidence beside the database.
            let d = std::env::temp_dir().join(format!("mirrorwatch-analysis-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d)?;
            let p = d.join("analysis.db");
            args.db = Some(p.clone());
            Some(d)
        }
        _ => None,
    };
    // Bind before the analysis, so a taken port is said at once.
    let listener_check = match &args.serve {
        Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("dashboard on {addr}: {e}"))?),
        None => None,
    };
    drop(listener_check);
    if let Some(dir) = &args.rules {
        super::rules_dir_exists(dir)?;
    }
    let rules = match &args.rules {
        Some(dir) => match super::rules::load_or_report(dir) {
            Some(r) => Some(r),
            None => return Ok(Outcome { bad_input: true }),
        },
        None => None,
    };
    let pb = progress_bar(&args.files);
    let (summary, reports) = match &args.db {
        Some(db) => {
            // Opened now: a database that cannot be is said before the analysis.
            let sink = SqliteSink::start(db, Backpressure::Block)
                .map_err(|e| anyhow::anyhow!("--db {}: {e:#}", db.display()))?;
            let mut p = Pipeline::new(cfg.flows.clone(), cfg.pipeline.clone(), sink);
            p.digest_every_secs = cfg.mail.digest_every_secs();
            p.store_exchanges();
            if let Some(r) = rules {
                p.set_rules(r);
            }
            let reports = crate::offline::process_files(&mut p, &args.files, pb.as_ref());
            p.finish_alerts();
            let mut summary = std::mem::take(&mut p.summary);
            summary.counters = p.counter_totals();
            summary.user_volume = p.user_volume.top(20);
            p.sink.finish()?;
            (summary, reports)
        }
        None => {
            let mut p = Pipeline::new(cfg.flows.clone(), cfg.pipeline.clone(), NullSink);
            p.digest_every_secs = cfg.mail.digest_every_secs();
            if let Some(r) = rules {
                p.set_rules(r);
            }
            let reports = crate::offline::process_files(&mut p, &args.files, pb.as_ref());
            p.finish_alerts();
            p.summary.counters = p.counter_totals();
            p.summary.user_volume = p.user_volume.top(20);
            (p.summary, reports)
        }
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let bad_input = reports.iter().any(|r| r.error.is_some());
    for r in &reports {
        if let Some(e) = &r.error {
            eprintln!("mirrorwatch: {e}");
        }
    }
    if args.json {
        let json = serde_json::to_string_pretty(&summary.to_json(&reports))? + "\n";
        std::io::Write::write_all(&mut std::io::stdout().lock(), json.as_bytes())?;
    } else {
        print_text(&summary, &reports, args.db.as_deref())?;
    }
    if let (Some(addr), Some(db)) = (&args.serve, &args.db) {
        let served = serve(&cfg, addr, db, &args, &summary);
        if let Some(d) = &temp_db {
            let _ = std::fs::remove_dir_all(d);
        }
        served?;
    }
    Ok(Outcome { bad_input })
}

/// Serves the dashboard on the finished analysis until SIGINT/SIGTERM.
fn serve(cfg: &Config, addr: &str, db: &Path, args: &AnalyzeArgs, summary: &Summary) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let live = Arc::new(crate::web::Live::new());
    live.publish(summary);
    if let Some(dir) = &args.rules {
        if let Ok(r) = crate::rules::RuleSet::load_dir(dir) {
            live.set_rules(crate::web::RulesStatus {
                loaded_us: crate::store::wall_us(),
                files: r.files.len(),
                counters: r.counters.len(),
                alerts: r.alerts.len(),
                error: None,
            });
        }
    }
    let state = crate::web::WebState::new(crate::web::WebSettings {
        db: db.to_path_buf(),
        mode: crate::web::Mode::Analysis,
        rules_dir: args.rules.clone(),
        preview_files: args.files.clone(),
        password_file: cfg.web.password_file.clone(),
        metrics_token_file: cfg.web.metrics_token_file.clone(),
        session_lifetime: cfg.web.session_lifetime()?,
        live,
        hostnames: cfg.web.answered_names(),
        limits: cfg.web.limits()?,
    });
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    // SIGHUP (a closed terminal, `systemctl reload`) must not end it: a finished analysis has
    // nothing to reload, the rule editor applies its own saves.
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::new(AtomicBool::new(false)))?;
    let server = crate::web::Server::start(addr, state, Arc::clone(&stop))?;
    let host = match server.addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    eprintln!("dashboard: http://{host}:{}/  (Ctrl-C to stop)", server.addr.port());
    if matches!(crate::web::auth::password_state(&cfg.web.password_file), crate::web::auth::PasswordState::Unset) {
        eprintln!(
            "no dashboard password yet ({}): set one with `mirrorwatch passwd{}`",
            cfg.web.password_file.display(),
            args.config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default()
        );
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.stop();
    Ok(())
}

/// The summary as text on standard output (one write: a reader that closed the pipe is an
/// error the caller treats as the end, not a panic).
fn print_text(s: &Summary, reports: &[FileReport], db: Option<&Path>) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let t = &s.tcp;
    let _ = writeln!(out, "files:       {}", reports.len());
    let _ = writeln!(out, "packets:     {}  ({} bytes)", s.packets, s.bytes);
    if let (Some(a), Some(b)) = (s.first_ts, s.last_ts) {
        let _ = writeln!(out, "time:        {a} .. {b}");
    }
    let _ =
        writeln!(out, "flows:       {} ({} TCP, {} UDP)", s.flows.created, s.flows.tcp_streams, s.flows.udp_streams);
    let _ = writeln!(
        out,
        "tcp:         {} retransmissions ({} fast, {} spurious, {} between private addresses)",
        t.retransmissions, t.fast_retransmissions, t.spurious_retransmissions, s.private_retransmissions
    );
    let _ = writeln!(
        out,
        "             {} duplicate ACKs, {} out of order, {} lost segments, {} zero windows",
        t.duplicate_acks, t.out_of_order, t.lost_segments, t.zero_windows
    );
    let _ = writeln!(
        out,
        "capture:     {} truncated frames, {} decode errors",
        s.capture.truncated_frames, s.capture.decode_errors
    );
    if !s.identities.is_empty() {
        let shared = s.identity_events.iter().filter(|e| e.kind == "identity.shared_mac").count();
        let _ = writeln!(out, "identities:  {} bindings, {} shared-MAC events", s.identities.len(), shared);
    }
    if !s.app_errors.is_empty() {
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for e in &s.app_errors {
            let k = format!("{} {}", e["family"].as_str().unwrap_or(""), e["code"].as_str().unwrap_or(""));
            match kinds.iter_mut().find(|x| x.0 == k) {
                Some(x) => x.1 += 1,
                None => kinds.push((k, 1)),
            }
        }
        let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        let _ = writeln!(out, "app errors:  {} ({})", s.app_errors.len(), list.join(", "));
    }
    for a in &s.alerts {
        let _ = writeln!(
            out,
            "alert:       [{}] {} {}: {}",
            a["severity"].as_str().unwrap_or(""),
            a["rule"].as_str().unwrap_or(""),
            a["state"].as_str().unwrap_or(""),
            // Wire strings (user names…) may hold control characters: not for a terminal.
            crate::mail::header_text(a["summary"].as_str().unwrap_or(""), 300)
        );
    }
    for (id, t) in &s.counters {
        let top: Vec<String> = t.groups.iter().take(3).map(|g| format!("{} ({})", g.key, g.count)).collect();
        if top.is_empty() {
            let _ = writeln!(out, "counter:     {id} = {}", t.total);
        } else {
            let _ = writeln!(out, "counter:     {id} = {}; top: {}", t.total, top.join(", "));
        }
    }
    if let Some(db) = db {
        let _ = writeln!(out, "database:    {}", db.display());
    }
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
}
