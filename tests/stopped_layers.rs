//! Nothing is skipped without a count: over every capture of the repository and the corpus,
//! each frame that tshark calls `tcp` or `udp` but mirrorwatch does not must be accounted for
//! in `capture.stopped_layers` (an encapsulation not opened, a header cut or malformed). A
//! tunnel or encapsulation that is silently passed over fails this test.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (A damaged capture makes `filter` exit 1 after the frames it read: those count.)
fn ours(expr: &str, file: &Path) -> BTreeSet<u64> {
    let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).args(["filter", expr]).arg(file).output().unwrap();
    String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn theirs(expr: &str, file: &Path) -> BTreeSet<u64> {
    common::tshark_frames(expr, file).into_iter().collect()
}

fn stops(file: &Path) -> (u64, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").arg(file).arg("--json").output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let s = &j["capture"]["stopped_layers"];
    (s.as_object().map(|m| m.values().filter_map(|v| v.as_u64()).sum()).unwrap_or(0), s.to_string())
}

fn all_captures() -> Vec<PathBuf> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&data).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()) {
        files.extend(common::captures_in(&dir));
    }
    match common::corpus_dir() {
        Some(c) => files.extend(common::captures_in(&c)),
        None => common::skip_or_fail("the shared corpus is missing"),
    }
    files
}

#[test]
fn every_transport_frame_tshark_sees_is_decoded_or_counted_as_stopped() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    let files = all_captures();
    assert!(files.len() > 50, "{} captures", files.len());
    let mut silent = Vec::new();
    let mut checked = 0;
    for f in &files {
        let mut missing = 0;
        for proto in ["tcp", "udp"] {
            let (a, b) = (ours(proto, f), theirs(proto, f));
            missing += b.difference(&a).count() as u64;
        }
        checked += 1;
        if missing == 0 {
            continue;
        }
        let (stopped, detail) = stops(f);
        if stopped < missing {
            silent.push(format!("{}: {missing} frames tshark decodes, {stopped} stops counted {detail}", f.display()));
        }
    }
    assert!(silent.is_empty(), "skipped without a count:\n{}", silent.join("\n"));
    assert_eq!(checked, files.len());
}
