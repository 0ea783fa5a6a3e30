//! A real Prometheus (Debian's `prometheus`) scrapes two daemons, each with its own bearer
//! token, with the shipped alerting rules (docs/fleet/mirrorwatch-alerts.yml) loaded: both
//! targets are up, the rules evaluate without error, and PromQL answers per branch — the
//! retransmissions of each branch equal what tshark counts in the capture the box replayed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    // Prometheus answers small bodies whole; a chunked one is joined here.
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((len, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(tail.get(..n)?);
            rest = tail.get(n + 2..)?;
        }
        return Some(out);
    }
    Some(body.to_string())
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query: (labels, value) per series.
fn query(port: u16, q: &str) -> Vec<(Value, f64)> {
    let Some(body) = get(port, &format!("/api/v1/query?query={}", encode(q))) else { return Vec::new() };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["data"]["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| (s["metric"].clone(), s["value"][1].as_str().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN)))
                .collect()
        })
        .unwrap_or_default()
}

fn by_branch(rows: &[(Value, f64)]) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> =
        rows.iter().map(|(m, x)| (m["branch"].as_str().unwrap_or("").to_string(), *x)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

struct Box1 {
    _child: common::Stopped,
    port: u16,
}

fn start_box(dir: &Path, name: &str, branch: &str, capture: &str, token: &str) -> Box1 {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let port = free_port();
    std::fs::write(d.join("token"), format!("{token}\n")).unwrap();
    let cfg = d.join("mirrorwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[web]\nlisten = \"127.0.0.1:{port}\"\nmetrics_token_file = {:?}\npassword_file = {:?}\n\
             [store]\nring = false\n[export]\nhost = \"{name}\"\nbranch = \"{branch}\"\n",
            d.join("token").to_str().unwrap(),
            d.join("pw").to_str().unwrap()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--db")
        .arg(d.join("store.db"))
        .arg("--replay")
        .arg(common::lab_dir().join(capture))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    Box1 { _child: common::Stopped(child), port }
}

fn tshark_retransmissions(capture: &str) -> f64 {
    let text = std::fs::read_to_string(common::lab_dir().join(capture.replace(".pcap", ".expected.json"))).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["tcp_analysis_frames"]["retransmission"].as_array().unwrap().len() as f64
}

#[test]
fn prometheus_scrapes_two_boxes_and_answers_per_branch() {
    if !Path::new("/usr/bin/prometheus").exists() || !Path::new("/usr/bin/promtool").exists() {
        common::skip_or_fail("the Prometheus test needs Debian's prometheus package (prometheus, promtool)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (osaka_pcap, nagoya_pcap) = ("lab-http-bulk-loss2.pcap", "lab-http-ipv6-loss3.pcap");
    let osaka = start_box(dir.path(), "mw-osaka", "Osaka 3F", osaka_pcap, "token-osaka");
    let nagoya = start_box(dir.path(), "mw-nagoya", "Nagoya", nagoya_pcap, "token-nagoya");

    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fleet");
    let rules = fleet.join("mirrorwatch-alerts.yml");
    let out = Command::new("promtool").args(["check", "rules"]).arg(&rules).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // The shipped scrape job, pointed at the two boxes: one job per token here, as a fleet
    // without a shared token would have it.
    let example = std::fs::read_to_string(fleet.join("prometheus.yml")).unwrap();
    assert!(example.contains("credentials_file") && example.contains("labels: { branch:"));
    let job = |name: &str, b: &Box1, token: &str, branch: &str| {
        std::fs::write(dir.path().join(format!("{name}.token")), token).unwrap();
        format!(
            "  - job_name: mirrorwatch-{name}\n    authorization:\n      type: Bearer\n      credentials_file: {}\n    \
             static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n        labels: {{ branch: \"{branch}\" }}\n",
            dir.path().join(format!("{name}.token")).display(),
            b.port
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n{}{}",
        rules.display(),
        job("osaka", &osaka, "token-osaka", "Osaka"),
        job("nagoya", &nagoya, "token-nagoya", "Nagoya")
    );
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let out = Command::new("promtool").args(["check", "config"]).arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let port = free_port();
    let _prom = common::Stopped(
        Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let want = vec![("Nagoya".to_string(), 1.0), ("Osaka".to_string(), 1.0)];
    while by_branch(&query(port, "up")) != want {
        assert!(Instant::now() < deadline, "targets not up: {:?}\n{}", query(port, "up"), log());
        std::thread::sleep(Duration::from_millis(250));
    }
    // Retransmissions per branch: each box's replay, counted as tshark counts them.
    let want = vec![
        ("Nagoya".to_string(), tshark_retransmissions(nagoya_pcap)),
        ("Osaka".to_string(), tshark_retransmissions(osaka_pcap)),
    ];
    assert!(want.iter().all(|(_, n)| *n > 0.0));
    let q = "sum by (branch) (max_over_time(mirrorwatch_tcp_retransmissions_total[5m]))";
    while by_branch(&query(port, q)) != want {
        assert!(Instant::now() < deadline, "{q}: {:?}, want {want:?}", query(port, q));
        std::thread::sleep(Duration::from_millis(250));
    }
    // The rate over 5 minutes answers for both once two scrapes are in (flat after the replay).
    let rate_q = "sum by (branch) (rate(mirrorwatch_tcp_retransmissions_total[5m]))";
    let branches = |rows: Vec<(String, f64)>| rows.into_iter().map(|(b, _)| b).collect::<Vec<_>>();
    while branches(by_branch(&query(port, rate_q))) != ["Nagoya", "Osaka"] {
        assert!(Instant::now() < deadline, "{rate_q}: {:?}", query(port, rate_q));
        std::thread::sleep(Duration::from_millis(250));
    }
    // The box's own names, and the top pairs bounded.
    let info = query(port, "mirrorwatch_info");
    let mut names: Vec<&str> = info.iter().filter_map(|(m, _)| m["branch_name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["Nagoya", "Osaka 3F"]);
    let pairs = query(port, "count by (branch) (mirrorwatch_pair_retransmissions_last_hour)");
    assert!(!pairs.is_empty() && pairs.iter().all(|(_, n)| *n >= 1.0 && *n <= 10.0), "{pairs:?}");
    // The alerting rules evaluate without error.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = get(port, "/api/v1/rules").unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let rules: Vec<&Value> = v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        if rules.len() == 7 && rules.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(Instant::now() < deadline, "rules not healthy: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "{q}:\n{}",
        by_branch(&query(port, q))
            .iter()
            .map(|(b, v)| format!("  {{branch=\"{b}\"}} {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
