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

/// Frame numbers `mirrorwatch filter EXPR FILE` prints (the expression must compile).
pub fn our_frames(expr: &str, file: &Path) -> Vec<u64> {
    let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).args(["filter", expr]).arg(file).output().unwrap();
    assert!(o.status.success(), "{expr}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| l.trim().parse().unwrap()).collect()
}

/// Frame numbers `tshark -r FILE -Y EXPR` gives.
pub fn tshark_frames(expr: &str, file: &Path) -> Vec<u64> {
    tshark_fields(file, Some(expr), &["frame.number"]).iter().map(|r| r[0].parse().unwrap()).collect()
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

/// The browser tests' node project (playwright-core).
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// What the browser tests need, or why they cannot run.
pub fn browser_ready() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("{chromium} not found (scripts/install-deps.sh installs chromium)"));
    }
    if Command::new("node").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        return Err("node not found".into());
    }
    if !web_dir().join("node_modules/playwright-core").is_dir() {
        return Err("tests/web/node_modules missing: npm ci --prefix tests/web".into());
    }
    Ok(())
}

/// Writes `copies` copies of the Ethernet frames of `files` (classic pcap, µs) to `out` as
/// one classic pcap: each copy's files one after another, a copy every `every_secs` seconds of
/// packet time from `start_secs` (so the result spans `copies × every_secs` of history).
/// Returns the frames written. Other link types and pcapng files are left out.
pub fn loop_captures(files: &[PathBuf], copies: usize, every_secs: u64, start_secs: u64, out: &Path) -> u64 {
    use std::io::Write;
    let rd = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    // (µs offset from the file's first frame, record bytes after the 16-byte header, orig_len)
    let mut inputs: Vec<Vec<(u64, Vec<u8>, u32)>> = Vec::new();
    for f in files {
        let b = std::fs::read(f).unwrap();
        if b.len() < 24 || rd(&b, 0) != 0xa1b2_c3d4 || rd(&b, 20) != 1 {
            continue;
        }
        let (mut i, mut recs, mut first) = (24usize, Vec::new(), None);
        while i + 16 <= b.len() {
            let (s, us, incl, orig) = (rd(&b, i) as u64, rd(&b, i + 4) as u64, rd(&b, i + 8) as usize, rd(&b, i + 12));
            let Some(data) = b.get(i + 16..i + 16 + incl) else { break };
            let t = s * 1_000_000 + us;
            let t0 = *first.get_or_insert(t);
            recs.push((t.saturating_sub(t0), data.to_vec(), orig));
            i += 16 + incl;
        }
        if !recs.is_empty() {
            inputs.push(recs);
        }
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    let mut head = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    w.write_all(&head).unwrap();
    let mut n = 0u64;
    for k in 0..copies as u64 {
        let mut t = (start_secs + k * every_secs) * 1_000_000;
        for recs in &inputs {
            for (off, data, orig) in recs {
                let ts = t + off;
                for v in [(ts / 1_000_000) as u32, (ts % 1_000_000) as u32, data.len() as u32, *orig] {
                    w.write_all(&v.to_le_bytes()).unwrap();
                }
                w.write_all(data).unwrap();
                n += 1;
            }
            t += recs.last().map_or(0, |r| r.0) + 1_000_000;
        }
        assert!(t <= (start_secs + (k + 1) * every_secs) * 1_000_000, "a copy is longer than {every_secs} s");
    }
    w.flush().unwrap();
    n
}

/// Sets the dashboard password of `config` through the real `mirrorwatch passwd`.
pub fn set_password(config: &Path, password: &str) {
    let mut p = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["passwd", "--password-stdin", "--config"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut p.stdin.take().unwrap(), format!("{password}\n").as_bytes()).unwrap();
    assert!(p.wait().unwrap().success());
}

/// A process of the test, stopped when dropped: SIGTERM, then SIGKILL if it has not ended
/// within 20 s.
pub struct Stopped(pub std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The store's health events, oldest first: (kind, detail).
pub fn health_events(db: &Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare("SELECT kind, detail FROM health_events ORDER BY id").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Their kinds only.
pub fn health_kinds(db: &Path) -> Vec<String> {
    health_events(db).into_iter().map(|(k, _)| k).collect()
}
