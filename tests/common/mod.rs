//! Helpers shared by the integration tests: where the corpus is, running tshark, running our
//! pipeline frame by frame.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;
use mirrorwatch::flow::tcp::TcpFlags;
use mirrorwatch::flow::FlowConfig;
use mirrorwatch::pipeline::{NullSink, Pipeline, PipelineConfig};

/// A test that cannot run here (no tshark, no corpus, not root) says so and passes — except in
/// CI (`CI` set), where everything it needs is installed and a skip would hide a failure.
pub fn skip_or_fail(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("required in CI, but: {why}");
    }
    eprintln!("SKIP: {why}");
}

/// The shared capture corpus (`../shared/corpus`, or `MIRRORWATCH_CORPUS`), if present.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MIRRORWATCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.is_dir() {
        Some(dir)
    } else {
        skip_or_fail(&format!("capture corpus not found at {} (set MIRRORWATCH_CORPUS)", dir.display()));
        None
    }
}

/// Capture files of a folder, sorted.
pub fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    v.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")));
    v.sort();
    v
}

/// Lab captures committed with the project.
pub fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lab")
}

pub fn have_tshark() -> bool {
    let ok = Command::new("tshark").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        skip_or_fail("tshark not installed");
    }
    ok
}

/// `tshark -n -r FILE [-Y FILTER] -T fields -e ...`, one Vec per frame line. A damaged file makes
/// tshark exit non-zero after printing the frames it read; those frames are still returned.
pub fn tshark_fields(file: &Path, filter: Option<&str>, fields: &[&str]) -> Vec<Vec<String>> {
    tshark_fields_as(file, None, filter, fields)
}

/// [`tshark_fields`] with a decode-as rule (`-d tcp.port==3389,ldap`) for a non-standard port.
pub fn tshark_fields_as(file: &Path, decode: Option<&str>, filter: Option<&str>, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(file);
    if let Some(d) = decode {
        cmd.args(["-d", d]);
    }
    if let Some(f) = filter {
        cmd.args(["-Y", f]);
    }
    cmd.args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    // A filter tshark refuses (a field Wireshark does not have) prints nothing: that must fail
    // the comparison, not read as "no frame matches".
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || err.contains("appears to"), "tshark -r {} -Y {filter:?}: {err}", file.display());
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('\t').map(str::to_owned).collect()).collect()
}

/// The flags of `tcp.analysis` we reproduce and compare.
pub const COMPARED_FLAGS: [&str; 10] = [
    "retransmission",
    "fast_retransmission",
    "spurious_retransmission",
    "duplicate_ack",
    "out_of_order",
    "lost_segment",
    "zero_window",
    "ack_lost_segment",
    "keep_alive",
    "window_update",
];

/// Frame numbers per flag as tshark reports them.
pub fn tshark_flag_frames(file: &Path) -> BTreeMap<&'static str, Vec<u64>> {
    let fields: Vec<String> = COMPARED_FLAGS.iter().map(|f| format!("tcp.analysis.{f}")).collect();
    let mut args: Vec<&str> = vec!["frame.number"];
    args.extend(fields.iter().map(String::as_str));
    let rows = tshark_fields(file, Some("tcp.analysis.flags"), &args);
    let mut m: BTreeMap<&'static str, Vec<u64>> = COMPARED_FLAGS.iter().map(|f| (*f, Vec::new())).collect();
    for row in rows {
        let Some(frame) = row.first().and_then(|f| f.parse::<u64>().ok()) else {
            continue;
        };
        for (i, f) in COMPARED_FLAGS.iter().enumerate() {
            if row.get(i + 1).is_some_and(|v| !v.is_empty()) {
                m.get_mut(f).unwrap().push(frame);
            }
        }
    }
    m
}

/// Frame numbers per flag as our pipeline reports them (file read up to any damage).
pub fn our_flag_frames(file: &Path) -> BTreeMap<&'static str, Vec<u64>> {
    let mut m: BTreeMap<&'static str, Vec<u64>> = COMPARED_FLAGS.iter().map(|f| (*f, Vec::new())).collect();
    let mut p = Pipeline::new(FlowConfig::default(), PipelineConfig::default(), NullSink);
    let Ok(mut src) = FileSource::open(file) else {
        return m;
    };
    while let Ok(Some(pkt)) = src.next_packet() {
        let o = p.process(&pkt);
        for f in COMPARED_FLAGS {
            let bit = TcpFlags::by_name(f).unwrap();
            if o.tcp.flags.has(bit) {
                m.get_mut(f).unwrap().push(o.frame);
            }
        }
    }
    m
}

/// Our stream index of every TCP frame.
pub fn our_streams(file: &Path) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    let mut p = Pipeline::new(FlowConfig::default(), PipelineConfig::default(), NullSink);
    let Ok(mut src) = FileSource::open(file) else {
        return m;
    };
    while let Ok(Some(pkt)) = src.next_packet() {
        let o = p.process(&pkt);
        if let (true, Some(s)) = (o.is_tcp, o.stream) {
            m.insert(o.frame, s);
        }
    }
    m
}

/// The passwords of the lab login captures (tests/lab), by user.
pub const LAB_PASSWORDS: &[(&str, &str)] = &[
    ("alice", "wonderland"),
    ("alice", "mistyped"),
    ("bob", "builder"),
    ("bob", "nobuilder"),
    ("carol", "guess"),
    ("carol", "letmein"),
    ("alice", "wrongpass"),
];

/// Every form a lab password can take on the wire: plain, base64, base64 of `user:password`
/// (HTTP Basic) and of SASL PLAIN's `\0user\0password`.
pub fn lab_secrets() -> Vec<Vec<u8>> {
    use base64::Engine;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s).into_bytes();
    let mut v = Vec::new();
    for (u, p) in LAB_PASSWORDS {
        v.push(p.as_bytes().to_vec());
        v.push(b64(p.as_bytes()));
        v.push(b64(format!("{u}:{p}").as_bytes()));
        v.push(b64(format!("\0{u}\0{p}").as_bytes()));
    }
    v
}
