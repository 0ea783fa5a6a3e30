//! No password seen on the wire reaches anything mirrorwatch writes, sends or serves — on any
//! port, cut across segments, retransmitted, or asked for by a rule.
//!
//! The captures (tests/data/logins, made by tests/lab/make-login-captures.sh): real servers
//! (dovecot, aiosmtpd, vsftpd, nginx with Basic and a form-login app, slapd, PostgreSQL with
//! `password` and `md5` logins, telnetd) on their standard port and on another, real clients
//! logging in right and wrong, a client that writes its login line in two pieces, 6 % loss.
//! For each, the daemon replays it (`run --replay`) with the pcap ring on, rules that group
//! counters by `tcp.payload` (and make each login line an application error) and raise an alert (with evidence windows and mailed
//! evidence) on every counter and every application error, mail to a real SMTP server, and the
//! dashboard; then `analyze --json`, `analyze --db` and `diff` in all formats run on it. Every
//! byte written — database files with their WAL, ring and evidence files, received mails (and
//! their decoded attachments), the daemon's log, JSON, every page, API answer, metrics and
//! downloaded window — is searched for every password in every form it can take: plain,
//! base64 at the three alignments, hex and colon-hex (both cases), URL-encoded, UTF-16LE, and
//! the PostgreSQL md5 responses as they were on the wire. The captures must hold the passwords
//! to begin with, and the identities of each protocol on its other port must equal those on its
//! standard one and what the clients did.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

fn logins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logins")
}

/// Every form `secret` can take in bytes written by a program: (form, bytes).
fn forms(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut v = vec![("plain".to_string(), secret.to_vec())];
    // base64 at the three alignments: the characters made only of the secret's bits.
    for k in 0..3usize {
        let mut b = vec![0u8; k];
        b.extend_from_slice(secret);
        b.extend_from_slice(&[0, 0]);
        let enc = base64::engine::general_purpose::STANDARD.encode(&b);
        let from = (8 * k).div_ceil(6);
        let to = (8 * (k + secret.len())) / 6;
        v.push((format!("base64+{k}"), enc.as_bytes()[from..to].to_vec()));
        // URL-safe alphabet too (JWT-like encodings).
        let enc = base64::engine::general_purpose::URL_SAFE.encode(&b);
        v.push((format!("base64url+{k}"), enc.as_bytes()[from..to].to_vec()));
    }
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let colon: Vec<String> = secret.iter().map(|b| format!("{b:02x}")).collect();
    v.push(("hex".into(), hex.clone().into_bytes()));
    v.push(("HEX".into(), hex.to_uppercase().into_bytes()));
    v.push(("colon-hex".into(), colon.join(":").into_bytes()));
    v.push(("COLON-HEX".into(), colon.join(":").to_uppercase().into_bytes()));
    let url: String = secret
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    v.push(("url".into(), url.into_bytes()));
    let all_pct: String = secret.iter().map(|b| format!("%{b:02X}")).collect();
    v.push(("url-all".into(), all_pct.into_bytes()));
    let utf16: Vec<u8> = secret.iter().flat_map(|&b| [b, 0]).collect();
    v.push(("utf16le".into(), utf16));
    v
}

/// The TCP byte streams of a capture, each direction put back in sequence order from the frames'
/// payloads (as tshark reads them: `tcp.seq` relative), so that a secret cut across frames —
/// typed one character per frame, or a login line in two — is whole again.
fn streams(file: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-Y",
            "tcp.len > 0",
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.seq",
            "-e",
            "tcp.payload",
        ])
        .output()
        .unwrap();
    let mut by: BTreeMap<(u64, u16), BTreeMap<u64, Vec<u8>>> = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let (Some(s), Some(p), Some(q), Some(h)) = (f.first(), f.get(1), f.get(2), f.get(3)) else { continue };
        let bytes: Vec<u8> =
            (0..h.len() / 2).filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()).collect();
        let (Ok(s), Ok(p), Ok(q)) = (s.parse(), p.parse(), q.parse()) else { continue };
        by.entry((s, p)).or_default().entry(q).or_insert(bytes);
    }
    by.into_values()
        .map(|segs| {
            let mut v: Vec<u8> = Vec::new();
            let mut next = None;
            for (q, b) in segs {
                let skip = next.map_or(0, |n: u64| n.saturating_sub(q) as usize);
                if skip < b.len() {
                    v.extend_from_slice(&b[skip..]);
                }
                next = Some(next.map_or(q + b.len() as u64, |n: u64| n.max(q + b.len() as u64)));
            }
            v
        })
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

struct Expected {
    port: u16,
    attempts: Vec<(String, String, String)>,
    passwords: Vec<String>,
}

fn expected(capture: &Path) -> Expected {
    let v: Value = serde_json::from_slice(&std::fs::read(capture.with_extension("expected.json")).unwrap()).unwrap();
    let attempts = v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["source"].as_str().unwrap().into(),
                a["user"].as_str().unwrap().into(),
                a["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let passwords = v["passwords"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    Expected { port: v["port"].as_u64().unwrap() as u16, attempts, passwords }
}

/// The wire forms of credentials that are not the password itself (PostgreSQL's md5 response),
/// as tshark reads them.
fn wire_secrets(capture: &Path) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let port = expected(capture).port;
    let decode = format!("tcp.port=={port},pgsql");
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(capture)
        .args(["-d", &decode, "-Y", "pgsql.password", "-T", "fields", "-e", "pgsql.password"])
        .output()
        .unwrap();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        if l.len() >= 8 {
            v.push(l.trim().as_bytes().to_vec());
        }
    }
    v
}

struct Smtp(Child);

impl Smtp {
    fn start(dir: &Path) -> (Smtp, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = dir.join("mails");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/smtpd.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "smtp server did not start");
        (Smtp(child), port)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Rules that make every credential-bearing frame an output: counters grouped by the payload,
/// by POP requests and by error messages, every login line an application error of its own,
/// and alerts (mailed, with evidence) on them and on every error and new identity.
const RULES: &str = r#"
[[counter]]
id = "payloads"
filter = "tcp.payload"
group_by = ["tcp.payload"]

[[counter]]
id = "pop-requests"
filter = "pop.request.command"
group_by = ["pop.request.command", "pop.request.parameter"]

[[counter]]
id = "logins-as-errors"
filter = 'tcp.payload contains "PASS" || tcp.payload contains "LOGIN" || tcp.payload contains "AUTH" || tcp.payload contains "password" || tcp.payload contains "pwd"'
app_error = true

[[counter]]
id = "error-messages"
filter = "app_error"
group_by = ["app_error.message"]

[[alert]]
id = "every-payload"
counter = "payloads"
window = "1m"
above = 0.5
mail = true
suppress = "1m"

[[alert]]
id = "every-error-message"
counter = "error-messages"
window = "1m"
above = 0.5
mail = true
suppress = "1m"

[[alert]]
id = "every-error"
event = "app_error"
window = "1m"
mail = true
suppress = "1m"

[[alert]]
id = "every-identity"
event = "identity.new"
window = "1m"
mail = true
suppress = "1m"
"#;

/// What one capture left behind: (output kind, name, bytes).
type Outputs = Vec<(&'static str, String, Vec<u8>)>;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn run_everything(capture: &Path, tmp: &Path) -> Outputs {
    let mut outputs: Outputs = Vec::new();
    let store = tmp.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let rules = tmp.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("leak.toml"), RULES).unwrap();
    for f in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap().flatten() {
        if f.path().extension().is_some_and(|e| e == "toml") {
            std::fs::copy(f.path(), rules.join(f.file_name())).unwrap();
        }
    }
    let (smtp, smtp_port) = Smtp::start(tmp);
    let cfg = format!(
        r#"[store]
dir = "{s}"
[web]
password_file = "{t}/password"
metrics_token_file = "{t}/token"
[mail]
server = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "mirrorwatch@branch.example"
to = ["netadmin@example.com"]
dashboard_url = "http://box.branch.example:8080"
digest_every = "1m"
retry_initial = "1s"
retry_max = "2s"
"#,
        s = store.display(),
        t = tmp.display()
    );
    std::fs::write(tmp.join("mirrorwatch.toml"), &cfg).unwrap();
    std::fs::write(tmp.join("token"), "leak-test-token\n").unwrap();
    let mut pw = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["passwd", "--password-stdin", "--config"])
        .arg(tmp.join("mirrorwatch.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut pw.stdin.take().unwrap(), b"leak-test-password\n").unwrap();
    assert!(pw.wait().unwrap().success());
    let child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(tmp.join("mirrorwatch.toml"))
        .arg("--rules")
        .arg(&rules)
        .arg("--replay")
        .arg(capture)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut d = Daemon(child);
    // The log, read in a thread (to the end, which comes with SIGTERM); the dashboard's
    // address from its first lines.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut err = d.0.stderr.take().unwrap();
    let log_thread = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match err.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&chunk[..n]);
                    let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
                }
            }
        }
        all
    });
    let addr = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
            if let Some(i) = text.find("dashboard on http://") {
                let rest = &text[i + "dashboard on http://".len()..];
                break rest[..rest.find('/').unwrap()].to_string();
            }
            assert!(Instant::now() < deadline, "no dashboard address in {text}");
        }
    };
    // Settled: every frame stored, no window pending, every mail sent.
    let db = store.join("mirrorwatch.db");
    let frames = common::tshark_fields(capture, None, &["frame.number"]).len() as i64;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done = rusqlite::Connection::open(&db).ok().and_then(|c| {
            let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).ok();
            Some(
                q("SELECT coalesce(sum(packets), 0) FROM traffic_minute")? == frames
                    && q("SELECT count(*) FROM evidence WHERE state = 'pending'")? == 0
                    && q("SELECT count(*) FROM outbox WHERE state != 'sent'")? == 0
                    && q("SELECT count(*) FROM outbox")? > 0,
            )
        });
        if done == Some(true) {
            break;
        }
        if Instant::now() > deadline {
            let c = rusqlite::Connection::open(&db).unwrap();
            let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or(-1);
            let states: Vec<String> = c
                .prepare("SELECT kind || ' ' || state FROM outbox")
                .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                .unwrap_or_default();
            panic!(
                "{}: the replay did not settle: {} of {frames} frames stored, {} windows pending, outbox {states:?}",
                capture.display(),
                q("SELECT coalesce(sum(packets), 0) FROM traffic_minute"),
                q("SELECT count(*) FROM evidence WHERE state = 'pending'")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // The dashboard: every page and API answer, the metrics, every evidence window.
    let curl = |args: &[&str]| -> Vec<u8> {
        let o = Command::new("curl")
            .args(["-s", "-b", "c.txt", "-c", "c.txt"])
            .args(args)
            .current_dir(tmp)
            .output()
            .unwrap();
        assert!(o.status.success(), "curl {args:?}");
        o.stdout
    };
    curl(&["-o", "/dev/null", "-d", "password=leak-test-password", &format!("http://{addr}/login")]);
    let mut paths: Vec<String> = [
        "/",
        "/counters",
        "/counters/payloads",
        "/counters/pop-requests",
        "/counters/error-messages",
        "/identities",
        "/app-errors",
        "/alerts",
        "/captures",
        "/retransmissions",
        "/rules",
        "/api/status",
        "/api/counters",
        "/api/counters/payloads",
        "/api/counters/pop-requests",
        "/api/counters/error-messages",
        "/api/counters/logins-as-errors",
        "/api/identities?q=",
        "/api/app-errors",
        "/api/retransmissions",
        "/api/alerts",
        "/api/captures",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let captures: Value = serde_json::from_slice(&curl(&[&format!("http://{addr}/api/captures")])).unwrap();
    for w in captures["windows"].as_array().into_iter().flatten() {
        paths.push(format!("/captures/window/{}", w["id"]));
    }
    let counters: Value = serde_json::from_slice(&curl(&[&format!("http://{addr}/api/counters")])).unwrap();
    let _ = counters;
    for p in &paths {
        outputs.push(("web", p.clone(), curl(&[&format!("http://{addr}{p}")])));
    }
    outputs.push((
        "web",
        "/metrics".into(),
        curl(&["-H", "Authorization: Bearer leak-test-token", &format!("http://{addr}/metrics")]),
    ));
    let _ = Command::new("kill").args(["-TERM", &d.0.id().to_string()]).status();
    let status = d.0.wait().unwrap();
    let log = log_thread.join().unwrap();
    assert!(status.success(), "daemon: {}", String::from_utf8_lossy(&log));
    outputs.push(("log", "daemon stderr".into(), log));
    drop(smtp);
    // Files the daemon wrote: database (and WAL), ring, evidence; the mails received.
    let mut files = Vec::new();
    files_under(&store, &mut files);
    files_under(&tmp.join("mails"), &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let kind = match f.to_string_lossy() {
            s if s.contains("/mails/") => "mail",
            s if s.contains("/ring/") => "ring",
            s if s.contains("/evidence/") => "evidence",
            _ => "database",
        };
        // Attachments, decoded.
        if kind == "mail" && f.extension().is_some_and(|e| e == "json") {
            let m: Value = serde_json::from_slice(&bytes).unwrap();
            for p in m["parts"].as_array().into_iter().flatten() {
                if let Some(b) = p["base64"].as_str() {
                    let raw = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
                    outputs.push(("mail attachment", format!("{} {}", f.display(), p["filename"]), raw));
                }
            }
        }
        outputs.push((kind, f.display().to_string(), bytes));
    }
    // The command line's outputs.
    let run = |args: &[&str]| -> Vec<u8> {
        let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).args(args).current_dir(tmp).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        [o.stdout, o.stderr].concat()
    };
    let cap = capture.to_str().unwrap();
    let rules_s = rules.to_str().unwrap();
    outputs.push(("analyze", "--json".into(), run(&["analyze", cap, "--rules", rules_s, "--json"])));
    outputs.push(("analyze", "summary".into(), run(&["analyze", cap, "--rules", rules_s])));
    run(&["analyze", cap, "--rules", rules_s, "--db", "analyze.db"]);
    for f in ["analyze.db", "analyze.db-wal", "analyze.db-shm"] {
        if let Ok(b) = std::fs::read(tmp.join(f)) {
            outputs.push(("analyze", f.into(), b));
        }
    }
    for format in ["text", "json", "html"] {
        outputs.push(("diff", format.into(), run(&["diff", cap, cap, "--format", format])));
    }
    outputs
}

#[test]
fn no_password_reaches_any_output() {
    if !common::have_tshark() {
        return;
    }
    let py = Command::new("python3").args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success());
    if !py {
        return common::skip_or_fail("python3 aiosmtpd is not installed (the SMTP server of this test)");
    }
    let captures = common::captures_in(&logins_dir());
    assert!(captures.len() >= 16, "the login captures: {captures:?}");
    let mut counts: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for capture in &captures {
        let e = expected(capture);
        let mut secrets: Vec<Vec<u8>> = e.passwords.iter().map(|p| p.as_bytes().to_vec()).collect();
        secrets.extend(wire_secrets(capture));
        // The capture carries its credentials (else the search proves nothing).
        // (An md5 login sends a digest, not the password: the digest is then the secret.)
        let mut raw = std::fs::read(capture).unwrap();
        raw.extend(streams(capture).concat());
        let md5_logins = secrets.len() > e.passwords.len();
        for p in &e.passwords {
            let present = forms(p.as_bytes()).iter().any(|(_, f)| find(&raw, f));
            assert!(present || p == "Wrong-Guess0" || md5_logins, "{}: {p} is not on the wire", capture.display());
        }
        for s in &secrets[e.passwords.len()..] {
            assert!(find(&raw, s), "{}: tshark's md5 response is on the wire", capture.display());
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut outputs = run_everything(capture, tmp.path());
        // The ring and the evidence also as byte streams: a secret cut across frames must not
        // be whole again there either.
        let pcaps: Vec<(&'static str, String)> = outputs
            .iter()
            .filter(|(k, n, _)| (*k == "ring" || *k == "evidence") && n.ends_with(".pcapng"))
            .map(|(k, n, _)| (*k, n.clone()))
            .collect();
        for (kind, name) in pcaps {
            let joined = streams(Path::new(&name)).join(&b"|"[..]);
            outputs.push((if kind == "ring" { "ring streams" } else { "evidence streams" }, name, joined));
        }
        for (kind, name, bytes) in &outputs {
            let c = counts.entry(kind).or_default();
            c.0 += 1;
            c.1 += bytes.len();
            for s in &secrets {
                for (form, f) in forms(s) {
                    assert!(
                        !find(bytes, &f),
                        "{}: {kind} {name} holds {:?} as {form} ({:?})",
                        capture.display(),
                        String::from_utf8_lossy(s),
                        String::from_utf8_lossy(&f)
                    );
                }
            }
        }
    }
    for (kind, (n, bytes)) in &counts {
        eprintln!("searched {n} {kind} outputs, {bytes} bytes: no password in any form");
    }
    for kind in
        ["web", "log", "database", "ring", "ring streams", "evidence", "mail", "mail attachment", "analyze", "diff"]
    {
        assert!(counts.contains_key(kind), "no {kind} output was searched: {counts:?}");
    }
}

/// The identities of each protocol on its other port equal those on its standard one, and
/// what the clients did (user, outcome, how many times).
#[test]
fn identities_on_other_ports_equal_those_on_standard_ports() {
    let mut checked = 0;
    for std_capture in common::captures_in(&logins_dir()).iter().filter(|c| c.to_string_lossy().ends_with("-std.pcap"))
    {
        let alt = PathBuf::from(std_capture.to_string_lossy().replace("-std.pcap", "-alt.pcap"));
        let ids = |f: &Path| -> BTreeMap<(String, String, String), u64> {
            let o =
                Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").arg(f).arg("--json").output().unwrap();
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            let mut m = BTreeMap::new();
            for i in v["identities"].as_array().unwrap() {
                let k = (
                    i["source"].as_str().unwrap().to_string(),
                    i["user"].as_str().unwrap_or("").to_string(),
                    i["outcome"].as_str().unwrap().to_string(),
                );
                *m.entry(k).or_default() += i["count"].as_u64().unwrap();
            }
            m
        };
        let (a, b) = (ids(std_capture), ids(&alt));
        assert_eq!(a, b, "{} and its other port", std_capture.display());
        let mut did: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for t in expected(std_capture).attempts {
            *did.entry(t).or_default() += 1;
        }
        assert_eq!(a, did, "{}: what the clients did", std_capture.display());
        assert_ne!(expected(std_capture).port, expected(&alt).port);
        checked += 1;
    }
    assert!(checked >= 8, "{checked} protocols");
}
