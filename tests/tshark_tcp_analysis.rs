//! Differential test: TCP analysis flags against tshark 4.0 on every capture of the shared
//! corpus and of our own lab captures. For each flag, the frame sets must agree; the test prints
//! a per-flag agreement table (Jaccard index of the frame sets) and fails on any difference not
//! listed in KNOWN_DIFFERENCES.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;

/// (file, flag, frame): differences we understand and document. Each has a named test in
/// tests/tcp_analysis_cases.rs explaining why.
const KNOWN_DIFFERENCES: &[(&str, &str, u64)] = &[];

fn compare(files: &[PathBuf]) -> (BTreeMap<&'static str, (usize, usize)>, Vec<String>) {
    let mut agreement: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let theirs = tshark_flag_frames(file);
        let ours = our_flag_frames(file);
        for flag in COMPARED_FLAGS {
            let t: std::collections::BTreeSet<u64> = theirs[flag].iter().copied().collect();
            let o: std::collections::BTreeSet<u64> = ours[flag].iter().copied().collect();
            let inter = t.intersection(&o).count();
            let union = t.union(&o).count();
            let e = agreement.entry(flag).or_default();
            e.0 += inter;
            e.1 += union;
            for f in t.symmetric_difference(&o) {
                if KNOWN_DIFFERENCES.iter().any(|(kf, kflag, kframe)| *kf == name && *kflag == flag && kframe == f) {
                    continue;
                }
                let side = if t.contains(f) { "tshark only" } else { "ours only" };
                failures.push(format!("{name}: tcp.analysis.{flag} frame {f} ({side})"));
            }
        }
    }
    (agreement, failures)
}

fn report(label: &str, agreement: &BTreeMap<&'static str, (usize, usize)>) {
    eprintln!("{label}: agreement with tshark per flag (frames in both / frames in either)");
    for (flag, (i, u)) in agreement {
        let pct = if *u == 0 { 100.0 } else { 100.0 * *i as f64 / *u as f64 };
        eprintln!("  tcp.analysis.{flag:<24} {i:>6} / {u:<6} {pct:6.2} %");
    }
}

fn assert_agrees(label: &str, files: &[PathBuf]) {
    let (agreement, failures) = compare(files);
    report(label, &agreement);
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn tcp_analysis_matches_tshark_on_the_corpus() {
    let Some(dir) = corpus_dir() else { return };
    if !have_tshark() {
        return;
    }
    let files = captures_in(&dir);
    assert!(files.len() > 50, "corpus incomplete: {} files", files.len());
    assert_agrees("corpus", &files);
}

#[test]
fn tcp_analysis_matches_tshark_on_lab_captures() {
    if !have_tshark() {
        return;
    }
    let files = captures_in(&lab_dir());
    if files.is_empty() {
        common::skip_or_fail(&format!("no lab captures in {}", lab_dir().display()));
        return;
    }
    assert_agrees("lab", &files);
}

/// The committed lab captures against the tshark results committed beside them (runs without
/// tshark, so CI checks the captures even where Wireshark is missing).
#[test]
fn lab_captures_match_their_committed_expected_values() {
    let files = captures_in(&lab_dir());
    assert!(files.len() >= 4, "lab captures missing from {}", lab_dir().display());
    for file in files {
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file.with_extension("expected.json")).expect("expected.json"))
                .unwrap();
        let ours = our_flag_frames(&file);
        for flag in COMPARED_FLAGS {
            let want: Vec<u64> = expected["tcp_analysis_frames"][flag]
                .as_array()
                .unwrap_or_else(|| panic!("{flag} missing"))
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(ours[flag], want, "{}: tcp.analysis.{flag}", file.display());
        }
    }
}

/// Conversation identity: our stream index equals `tcp.stream` on every TCP frame (new streams
/// on port reuse with a new ISN, none for a retransmitted SYN).
#[test]
fn tcp_stream_index_matches_tshark() {
    let Some(dir) = corpus_dir() else { return };
    if !have_tshark() {
        return;
    }
    let mut files = captures_in(&dir);
    files.extend(captures_in(&lab_dir()));
    let mut frames = 0;
    let mut diffs = Vec::new();
    for file in &files {
        let theirs: std::collections::BTreeMap<u64, u64> =
            tshark_fields(file, Some("tcp && !icmp && !icmpv6"), &["frame.number", "tcp.stream"])
                .into_iter()
                .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.parse().ok()?)))
                .collect();
        let ours = our_streams(file);
        for (frame, stream) in &theirs {
            frames += 1;
            if ours.get(frame) != Some(stream) {
                diffs.push(format!("{}: frame {frame}: tshark {stream}, ours {:?}", file.display(), ours.get(frame)));
            }
        }
    }
    eprintln!("tcp.stream compared on {frames} frames, {} differences", diffs.len());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
