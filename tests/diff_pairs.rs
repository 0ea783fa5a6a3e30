//! `mirrorwatch diff` on pairs of captures made by real programs (tests/lab/make-diff-pairs.sh:
//! the same client workload twice between network namespaces, once working, once broken), on
//! the public pair of the corpus (the same site loaded twice, 0 and 84 retransmissions), and on
//! captures against themselves. The reports must equal the golden JSON made with the recipe,
//! name the right service and outcome first, and the HTML report must open in chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn diff_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diff")
}

/// `mirrorwatch diff N F --format FORMAT`, run in `dir` with the names as given.
fn diff_in(dir: &Path, n: &str, f: &str, format: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .current_dir(dir)
        .args(["diff", n, f, "--format", format])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn json(n: &str, f: &str) -> Value {
    serde_json::from_str(&diff_in(&diff_dir(), n, f, "json")).unwrap()
}

#[test]
fn reports_equal_the_golden_ones() {
    let mut checked = 0;
    for e in std::fs::read_dir(diff_dir()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = name.strip_suffix(".diff.json") else { continue };
        let case = stem.rsplit_once('-').unwrap().0;
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let got = json(&format!("{case}-normal.pcap"), &format!("{stem}.pcap"));
        assert_eq!(got, golden, "{stem}");
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} golden reports");
}

/// The first finding: (kind, service, failure outcome).
fn top(n: &str, f: &str) -> (String, String, String) {
    let j = json(n, f);
    let x = &j["findings"][0];
    let s = |k: &str| x[k].as_str().unwrap_or("").to_string();
    assert!(!x["failure_frames"].as_array().unwrap().is_empty(), "no evidence frames in {x}");
    (s("kind"), s("service"), s("failure"))
}

#[test]
fn the_top_finding_names_the_service_and_how_it_ended() {
    let cases = [
        (
            "diff-web-normal.pcap",
            "diff-web-failure.pcap",
            "changed_outcome",
            "TCP 10.77.2.20:8080",
            "refused: RST answers the SYN",
        ),
        (
            "diff-dns-normal.pcap",
            "diff-dns-nxdomain.pcap",
            "changed_outcome",
            "DNS A intranet.branch.lan 10.77.2.20:53",
            "NXDOMAIN",
        ),
        ("diff-dns-normal.pcap", "diff-dns-dead.pcap", "changed_outcome", "DNS A ", "no answer"),
        (
            "diff-db-deadlock-normal.pcap",
            "diff-db-deadlock-failure.pcap",
            "error_only_in_failure",
            "postgresql 40P01 10.77.2.20:5432",
            "deadlock detected",
        ),
        (
            "diff-db-login-normal.pcap",
            "diff-db-login-failure.pcap",
            "error_only_in_failure",
            "postgresql 28P01 10.77.2.20:5432",
            "password authentication failed",
        ),
        ("diff-loss-normal.pcap", "diff-loss-failure.pcap", "retransmissions", "TCP, all connections", " packets ("),
        (
            "diff-tls-normal.pcap",
            "diff-tls-failure.pcap",
            "changed_outcome",
            "TLS intranet.branch.lan 10.77.2.20:8443",
            "alert 70 protocol_version",
        ),
    ];
    for (n, f, kind, service, outcome) in cases {
        let (k, s, o) = top(n, f);
        assert_eq!(k, kind, "{f}");
        assert!(s.contains(service), "{f}: {s}");
        assert!(o.contains(outcome), "{f}: {o}");
    }
    // The dead resolver: its ICMP port unreachables are a finding too.
    let j = json("diff-dns-normal.pcap", "diff-dns-dead.pcap");
    assert!(j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["service"] == "ICMP udp to 10.77.2.20:53"
            && x["failure"].as_str().unwrap().contains("port unreachable")));
    // The web server that is down: the HTTP 200 that never happened.
    let j = json("diff-web-normal.pcap", "diff-web-failure.pcap");
    assert!(j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["kind"] == "only_in_normal" && x["normal"].as_str().unwrap().starts_with("HTTP 200")));
}

#[test]
fn two_normal_runs_and_a_capture_with_itself_give_no_findings() {
    for case in ["web", "dns", "db-login"] {
        let j = json(&format!("diff-{case}-normal.pcap"), &format!("diff-{case}-normal2.pcap"));
        let outcome: Vec<&Value> = j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| !matches!(x["kind"].as_str(), Some("slower" | "retransmissions")))
            .collect();
        assert!(outcome.is_empty(), "{case}: {outcome:?}");
    }
    let mut files = common::captures_in(&diff_dir());
    files.extend(common::captures_in(&common::lab_dir()));
    for f in files {
        let dir = f.parent().unwrap();
        let name = f.file_name().unwrap().to_str().unwrap();
        let j: Value = serde_json::from_str(&diff_in(dir, name, name, "json")).unwrap();
        assert_eq!(j["findings"], serde_json::json!([]), "{name} against itself");
    }
}

#[test]
fn the_public_pair_shows_the_retransmissions() {
    let Some(corpus) = common::corpus_dir() else { return };
    let (n, f) = ("diff-http-espn-normal.pcapng", "diff-http-espn-failure.pcapng");
    let j: Value = serde_json::from_str(&diff_in(&corpus, n, f, "json")).unwrap();
    let all = j["findings"].as_array().unwrap();
    let rt = all.iter().position(|x| x["service"] == "TCP, all connections").expect("retransmission finding");
    assert!(rt < 3, "retransmissions ranked {rt}");
    let x = &all[rt];
    assert!(x["normal"].as_str().unwrap().starts_with("0 of "), "{x}");
    assert!(x["failure"].as_str().unwrap().starts_with("84 of "), "{x}");
    assert_eq!(j["failure"]["tcp_retransmissions"], 84);
    // The frames given are retransmissions as tshark flags them.
    if common::have_tshark() {
        let flagged: Vec<u64> =
            common::tshark_fields(&corpus.join(f), Some("tcp.analysis.retransmission"), &["frame.number"])
                .iter()
                .map(|r| r[0].parse().unwrap())
                .collect();
        for fr in x["failure_frames"].as_array().unwrap() {
            assert!(flagged.contains(&fr.as_u64().unwrap()), "frame {fr} is not a retransmission for tshark");
        }
    }
    // The text report stays within 80 columns.
    let t = diff_in(&corpus, n, f, "text");
    assert!(t.lines().all(|l| l.chars().count() <= 80), "{t}");
}

#[test]
fn gzip_compressed_captures_diff_the_same() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["diff-web-normal.pcap", "diff-web-failure.pcap"] {
        let raw = std::fs::read(diff_dir().join(name)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        std::fs::write(dir.path().join(format!("{name}.gz")), gz.finish().unwrap()).unwrap();
        std::fs::copy(diff_dir().join(name), dir.path().join(name)).unwrap();
    }
    let plain: Value =
        serde_json::from_str(&diff_in(dir.path(), "diff-web-normal.pcap", "diff-web-failure.pcap", "json")).unwrap();
    let gz: Value =
        serde_json::from_str(&diff_in(dir.path(), "diff-web-normal.pcap.gz", "diff-web-failure.pcap.gz", "json"))
            .unwrap();
    assert_eq!(plain["findings"], gz["findings"]);
    assert!(!gz["findings"].as_array().unwrap().is_empty());
}

#[test]
fn the_html_report_opens_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    if !Path::new(&chromium).exists() || !web.join("node_modules/playwright-core").is_dir() {
        common::skip_or_fail("chromium or tests/web/node_modules missing (scripts/install-deps.sh)");
        return;
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(std::env::var("MIRRORWATCH_SCREENSHOTS").unwrap_or_else(|_| "target/screenshots".into()));
    std::fs::create_dir_all(&out).unwrap();
    for (case, failure) in [("web", "diff-web-failure.pcap"), ("dns", "diff-dns-dead.pcap")] {
        let html = diff_in(&diff_dir(), &format!("diff-{case}-normal.pcap"), failure, "html");
        // Nothing to fetch: no script, stylesheet, image or link to elsewhere.
        for bad in ["<script", "<link", "src=", "href=\"http", "url(http"] {
            assert!(!html.contains(bad), "{case}: {bad} in a self-contained report");
        }
        let file = out.join(format!("diff-{case}.html"));
        std::fs::write(&file, &html).unwrap();
        let o = Command::new("node")
            .arg("open-report.mjs")
            .arg(&file)
            .arg(out.join(format!("diff-{case}.png")))
            .current_dir(&web)
            .output()
            .unwrap();
        let seen: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap_or_default();
        assert!(o.status.success(), "{case}: {seen} {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(seen["ladders"], 2, "{case}: {seen}");
        assert!(seen["arrows"].as_u64().unwrap() >= 2, "{seen}");
    }
}

#[test]
fn logins_and_errors_of_lab_captures_are_paired_with_their_verdicts() {
    let lab = common::lab_dir();
    let base = "lab-dns-dnsmasq.pcap";
    let findings = |f: &str| -> Vec<(String, String)> {
        let j: Value = serde_json::from_str(&diff_in(&lab, base, f, "json")).unwrap();
        j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["service"].as_str().unwrap().to_string(), x["failure"].as_str().unwrap().to_string()))
            .collect()
    };
    let has = |all: &[(String, String)], service: &str, outcome: &str| {
        assert!(all.iter().any(|(s, o)| s == service && o.contains(outcome)), "{service} / {outcome} not in {all:#?}");
    };
    let krb = findings("lab-kerberos-kdc.pcap");
    has(&krb, "KERBEROS AS-REQ bob@BRANCH.LAN 10.77.2.20:88", "KRB-ERROR 24 KDC_ERR_PREAUTH_FAILED");
    has(&krb, "KERBEROS AS-REQ nobody@BRANCH.LAN 10.77.2.20:88", "KRB-ERROR 6 KDC_ERR_C_PRINCIPAL_UNKNOWN");
    let mail = findings("lab-mail-dovecot.pcap");
    has(&mail, "IMAP LOGIN 10.77.2.20:143", "NO ×1");
    has(&mail, "POP3 PASS 10.77.2.20:110", "-ERR ×1");
    let ftp = findings("lab-ftp-smtp-logins.pcap");
    has(&ftp, "FTP PASS 10.77.2.20:21", "530 ×2");
    has(&ftp, "SMTP AUTH 10.77.2.20:587", "535 ×2");
    let web = findings("lab-http-nginx-5xx.pcap");
    has(&web, "HTTP GET 10.77.2.20:8082/app 10.77.2.20:8082", "HTTP 502");
    has(&web, "ERROR http 503 10.77.2.20:8082", "Service Temporarily Unavailable");
    // No password reaches a report: only command verbs are kept.
    for f in ["lab-mail-dovecot.pcap", "lab-ftp-smtp-logins.pcap", "lab-kerberos-kdc.pcap"] {
        let all = diff_in(&lab, base, f, "json") + &diff_in(&lab, base, f, "html");
        for secret in ["wonderland", "builder", "letmein", "wrongpw", "wrongpass"] {
            assert!(!all.contains(secret), "{secret} in the report of {f}");
        }
    }
}
