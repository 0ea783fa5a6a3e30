//! End to end in a real browser: `mirrorwatch analyze … --serve` on lab captures, and Debian's
//! headless chromium driven by playwright-core (tests/web/e2e.mjs) logs in, sees charts drawn
//! with data, searches an identity, acknowledges an alert, previews a rule (the count must equal
//! `mirrorwatch filter --count`) and a syntax error (at the line and column `rules check` gives),
//! switches to Japanese and logs out — with a dialog handler that must never fire, although user
//! names on the wire carry `<img onerror>` and `<script>`. Screenshots of every page go to
//! `$MIRRORWATCH_SCREENSHOTS` (default target/screenshots; docs/screenshots holds a copy).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PASSWORD: &str = "tokyo branch 3f";

const FILES: &[&str] = &[
    "lab-http-bulk-loss2.pcap",
    "lab-http-short-loss8.pcap",
    "lab-dns-dnsmasq.pcap",
    "lab-mail-dovecot.pcap",
    "lab-kerberos-kdc.pcap",
    "lab-nat-two-users-basic.pcap",
    "lab-hostile-names.pcap",
    "lab-pgsql-errors.pcap",
    "lab-mariadb-errors.pcap",
    "lab-http-nginx-5xx.pcap",
];

fn mw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
}

/// Starts `analyze --serve 127.0.0.1:0` and reads the dashboard URL it prints.
fn serve(files: &[PathBuf], rules: &Path, config: &Path) -> (common::Stopped, String) {
    let mut child = mw()
        .arg("analyze")
        .args(files)
        .arg("--rules")
        .arg(rules)
        .arg("--config")
        .arg(config)
        .args(["--serve", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = common::Stopped(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("dashboard: ").and_then(|r| r.split_whitespace().next()) {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(120)).expect("the dashboard URL was not printed");
    (server, url)
}

#[test]
fn the_dashboard_in_headless_chromium() {
    if let Err(why) = common::browser_ready() {
        common::skip_or_fail(&why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, rules.join(p.file_name().unwrap())).unwrap();
        }
    }
    let config = dir.path().join("mirrorwatch.toml");
    std::fs::write(&config, format!("[web]\npassword_file = \"{}\"\n", dir.path().join("dashboard.passwd").display()))
        .unwrap();
    // The password through the real command.
    common::set_password(&config, PASSWORD);

    let files: Vec<PathBuf> = FILES.iter().map(|f| common::lab_dir().join(f)).collect();
    // The oracles: `filter --count` for the preview, `rules check` for the error position.
    let tcp = std::fs::read_to_string(rules.join("tcp.toml")).unwrap();
    let expr = tcp
        .lines()
        .find_map(|l| l.strip_prefix("filter = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("tcp.toml's first filter")
        .to_string();
    let expected: u64 = files
        .iter()
        .map(|f| {
            let o = mw().args(["filter", &expr]).arg(f).arg("--count").output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().unwrap()
        })
        .sum();
    assert!(expected > 0);
    let bad_rule = "\n[[counter]]\nid = \"broken\"\nfilter = \"tcp.port == == 80\"\n";
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("tcp.toml"), format!("{tcp}{bad_rule}")).unwrap();
    let out = mw().args(["rules", "check"]).arg(&bad_dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let pos: Vec<usize> = err.split(':').skip(1).take(2).map(|n| n.trim().parse().unwrap()).collect();

    let (_server, base) = serve(&files, &rules, &config);
    // Relative to the project (node runs in tests/web).
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(std::env::var("MIRRORWATCH_SCREENSHOTS").unwrap_or_else(|_| "target/screenshots".into()));
    let cfg = serde_json::json!({
        "base": base,
        "password": PASSWORD,
        "search_user": "alice",
        "hostile_users": [
            "<img src=x onerror=alert(1)>",
            "mallory\\r\\nBcc victim@example.com\\r\\n<script>alert(1)</script>",
        ],
        "chart_counter": "lan-retransmissions",
        "grouped_counter": "lan-retransmissions",
        "error_codes": ["40P01", "1213", "28P01", "500"],
        "rule_file": "tcp.toml",
        "preview_counter": "lan-retransmissions",
        "preview_expected": expected,
        "bad_rule": bad_rule,
        "bad_line": pos[0],
        "bad_col": pos[1],
        "screenshots": shots,
        "diff_normal": Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diff/diff-web-normal.pcap"),
        "diff_failure": Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diff/diff-web-failure.pcap"),
        "diff_expect": "refused: RST answers the SYN",
    });
    let cfg_path = dir.path().join("e2e.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let out = Command::new("node").arg("e2e.mjs").arg(&cfg_path).current_dir(common::web_dir()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap_or_default();
    assert!(out.status.success(), "browser test failed: {}", seen["failed"]);
    assert_eq!(seen["dialogs"], 0);
    assert!(seen["checks"].as_array().unwrap().len() >= 20, "{seen}");
    for page in [
        "login",
        "overview",
        "counter",
        "identities",
        "retransmissions",
        "errors",
        "alerts",
        "rules-error",
        "captures-diff",
    ] {
        assert!(shots.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
}
