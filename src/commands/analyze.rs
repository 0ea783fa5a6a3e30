//! `mirrorwatch analyze PCAP... [--db FILE] [--json]`: the pipeline over capture files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use super::Outcome;
use crate::capture::file::FileSource;
use crate::capture::PacketSource;
use crate::config::Config;
use crate::pipeline::{NullSink, Pipeline, Sink};
use crate::store::{Backpressure, SqliteSink};
use crate::summary::{FileReport, Summary};

pub struct AnalyzeArgs {
    pub files: Vec<PathBuf>,
    pub db: Option<PathBuf>,
    pub json: bool,
    pub config: Option<PathBuf>,
    /// Rule directory whose counters are evaluated.
    pub rules: Option<PathBuf>,
}

/// Runs every file through `pipeline`, one after the other (TCP state and frame numbers restart
/// per file). Damage stops that file — after every whole frame before it was processed — and is
/// reported with the byte offset; the other files are still read.
pub fn process_files<S: Sink>(
    pipeline: &mut Pipeline<S>,
    files: &[PathBuf],
    progress: Option<&ProgressBar>,
) -> Vec<FileReport> {
    let mut reports = Vec::with_capacity(files.len());
    let mut done_bytes = 0u64;
    for path in files {
        let name = path.display().to_string();
        let mut src = match FileSource::open(path) {
            Ok(s) => s,
            Err(e) => {
                reports.push(FileReport { file: name.clone(), packets: 0, error: Some(format!("{name}: {e}")) });
                continue;
            }
        };
        let mut packets = 0u64;
        let mut error = None;
        pipeline.input.clone_from(&name);
        loop {
            match src.next_packet() {
                Ok(Some(pkt)) => {
                    pipeline.process(&pkt);
                    packets += 1;
                    if packets % 16_384 == 0 {
                        if let Some(pb) = progress {
                            pb.set_position(done_bytes + src.position());
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("{name}: {e} (after frame {packets})"));
                    break;
                }
            }
        }
        done_bytes += src.file_len().unwrap_or(0);
        pipeline.end_of_file();
        reports.push(FileReport { file: name, packets, error });
    }
    reports
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

pub fn run(args: AnalyzeArgs) -> anyhow::Result<Outcome> {
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
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
            let sink = SqliteSink::start(db, Backpressure::Block)?;
            let mut p = Pipeline::new(cfg.flows.clone(), cfg.pipeline.clone(), sink);
            p.digest_every_secs = cfg.mail.digest_every_secs();
            if let Some(r) = rules {
                p.set_rules(r);
            }
            let reports = process_files(&mut p, &args.files, pb.as_ref());
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
            let reports = process_files(&mut p, &args.files, pb.as_ref());
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
        println!("{}", serde_json::to_string_pretty(&summary.to_json(&reports))?);
    } else {
        print_text(&summary, &reports, args.db.as_deref());
    }
    Ok(Outcome { bad_input })
}

fn print_text(s: &Summary, reports: &[FileReport], db: Option<&Path>) {
    let t = &s.tcp;
    println!("files:       {}", reports.len());
    println!("packets:     {}  ({} bytes)", s.packets, s.bytes);
    if let (Some(a), Some(b)) = (s.first_ts, s.last_ts) {
        println!("time:        {a} .. {b}");
    }
    println!("flows:       {} ({} TCP, {} UDP)", s.flows.created, s.flows.tcp_streams, s.flows.udp_streams);
    println!(
        "tcp:         {} retransmissions ({} fast, {} spurious, {} between private addresses)",
        t.retransmissions, t.fast_retransmissions, t.spurious_retransmissions, s.private_retransmissions
    );
    println!(
        "             {} duplicate ACKs, {} out of order, {} lost segments, {} zero windows",
        t.duplicate_acks, t.out_of_order, t.lost_segments, t.zero_windows
    );
    println!("capture:     {} truncated frames, {} decode errors", s.capture.truncated_frames, s.capture.decode_errors);
    if !s.identities.is_empty() {
        let shared = s.identity_events.iter().filter(|e| e.kind == "identity.shared_mac").count();
        println!("identities:  {} bindings, {} shared-MAC events", s.identities.len(), shared);
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
        println!("app errors:  {} ({})", s.app_errors.len(), list.join(", "));
    }
    for a in &s.alerts {
        println!(
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
            println!("counter:     {id} = {}", t.total);
        } else {
            println!("counter:     {id} = {}; top: {}", t.total, top.join(", "));
        }
    }
    if let Some(db) = db {
        println!("database:    {}", db.display());
    }
}
