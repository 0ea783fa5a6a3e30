//! Alert mails end to end: the daemon replays a lab capture (`mirrorwatch run --replay`), the
//! alert engine writes the outbox, and the mailer delivers to a real SMTP server on loopback
//! (aiosmtpd, tests/smtp/smtpd.py) over STARTTLS with AUTH — through an outage, under a flood,
//! and with hostile names from the wire.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn have_aiosmtpd() -> bool {
    let ok = Command::new("python3").args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success());
    if !ok {
        // CI installs python3-aiosmtpd: there, a missing server is a failure, not a skip.
        assert!(std::env::var_os("CI").is_none(), "python3 aiosmtpd is missing (apt install python3-aiosmtpd)");
        eprintln!("SKIP: python3 aiosmtpd not installed");
    }
    ok
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CA and a server certificate for 127.0.0.1 signed by it (rustls refuses a self-signed
/// CA certificate used as the server's own).
fn make_certs(dir: &Path) -> PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mirrorwatch test CA",
    ]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    dir.join("ca.pem")
}

struct Smtp {
    child: Child,
    out: PathBuf,
}

/// How the SMTP server and the daemon's `[mail] tls` meet.
#[derive(Clone, Copy, PartialEq)]
enum Tls {
    /// STARTTLS required, AUTH required (the usual submission port).
    Starttls,
    /// TLS from the first byte (port 465 style), AUTH required.
    Implicit,
    /// Plaintext without AUTH (a relay on the LAN).
    None,
}

impl Tls {
    fn config(self) -> &'static str {
        match self {
            Tls::Starttls => "starttls",
            Tls::Implicit => "tls",
            Tls::None => "none",
        }
    }
}

impl Smtp {
    fn start(dir: &Path, port: u16) -> Smtp {
        Smtp::start_with(dir, port, Tls::Starttls)
    }

    fn start_with(dir: &Path, port: u16, tls: Tls) -> Smtp {
        let out = dir.join("received");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/smtpd.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).args(["--port", &port.to_string(), "--out"]).arg(&out);
        if tls != Tls::None {
            cmd.arg("--cert").arg(dir.join("srv.pem")).arg("--key").arg(dir.join("srv.key"));
            cmd.args(["--user", "box", "--password", "s3cret"]);
        }
        if tls == Tls::Implicit {
            cmd.arg("--implicit-tls");
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "smtp server did not start");
        Smtp { child, out }
    }

    /// The parsed messages received so far, in order.
    fn mails(&self) -> Vec<Value> {
        mails_in(&self.out)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mails_in(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files.iter().map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()).collect()
}

struct Daemon {
    child: Child,
    db: PathBuf,
}

impl Daemon {
    fn replay(dir: &Path, capture: &Path, rules: &Path, smtp_port: u16) -> Daemon {
        Daemon::replay_with(dir, capture, rules, smtp_port, Tls::Starttls)
    }

    fn replay_with(dir: &Path, capture: &Path, rules: &Path, smtp_port: u16, tls: Tls) -> Daemon {
        std::fs::write(dir.join("smtp.pass"), "s3cret\n").unwrap();
        let user = if tls == Tls::None { "" } else { "box" };
        let cfg = format!(
            r#"[store]
dir = "{d}"
[mail]
server = "127.0.0.1"
port = {smtp_port}
tls = "{mode}"
ca_file = "{d}/ca.pem"
username = "{user}"
password_file = "{d}/smtp.pass"
from = "mirrorwatch@branch.example"
to = ["netadmin@example.com"]
dashboard_url = "http://box.branch.example:8080"
retry_initial = "1s"
retry_max = "2s"
timeout = "5s"
"#,
            d = dir.display(),
            mode = tls.config()
        );
        std::fs::write(dir.join("mirrorwatch.toml"), cfg).unwrap();
        let db = dir.join("mirrorwatch.db");
        let child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .args(["run", "--listen", "", "--config"])
            .arg(dir.join("mirrorwatch.toml"))
            .arg("--rules")
            .arg(rules)
            .arg("--replay")
            .arg(capture)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Daemon { child, db }
    }

    /// (state, attempts) of every outbox row.
    fn outbox(&self) -> Vec<(String, i64, String)> {
        let Ok(c) = rusqlite::Connection::open(&self.db) else { return Vec::new() };
        let _ = c.busy_timeout(Duration::from_secs(5));
        let Ok(mut st) = c.prepare("SELECT state, attempts, kind FROM outbox ORDER BY id") else { return Vec::new() };
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(|r| r.unwrap()).collect()
    }

    /// SIGTERM, then the daemon's log.
    fn stop(mut self) -> String {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        let mut log = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
        assert!(status.success(), "daemon failed: {log}");
        log
    }
}

impl Drop for Daemon {
    /// A failed test must not leave the daemon running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn shipped_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn text_part(m: &Value, kind: &str) -> String {
    m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == kind)
        .map(|p| p["text"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn a_postgresql_deadlock_is_mailed_over_starttls_with_auth_and_evidence() {
    if !have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = free_port();
    let smtp = Smtp::start(dir.path(), port);
    let d = Daemon::replay(dir.path(), &common::lab_dir().join("lab-pgsql-errors.pcap"), &shipped_rules(), port);
    wait_for("the deadlock mail", 30, || !smtp.mails().is_empty());
    std::thread::sleep(Duration::from_secs(3)); // nothing else may follow
    let outbox = d.outbox();
    d.stop();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let m = &mails[0];
    assert_eq!((m["tls"].as_bool(), m["auth"].as_bool()), (Some(true), Some(true)));
    assert_eq!(m["rcpt_tos"], serde_json::json!(["netadmin@example.com"]));
    let subject = m["subject"].as_str().unwrap();
    assert!(subject.contains("CRITICAL Database deadlock") && subject.contains("40P01"), "{subject}");
    let text = text_part(m, "text/plain");
    for want in [
        "deadlock detected",
        "client 10.77.1.10",
        "MAC 02:00:00:00:01:01",
        "server 10.77.2.20:5432",
        "Since",
        "frame",
        "http://box.branch.example:8080/alerts?id=",
    ] {
        assert!(text.to_lowercase().contains(&want.to_lowercase()), "{want:?} not in:\n{text}");
    }
    // The evidence: the frame carrying the ErrorResponse, as a pcapng our reader reads back.
    let att = m["parts"].as_array().unwrap().iter().find(|p| p["filename"].is_string()).expect("attachment");
    use base64::Engine;
    let pcap = base64::engine::general_purpose::STANDARD.decode(att["base64"].as_str().unwrap()).unwrap();
    let f = dir.path().join("evidence.pcapng");
    std::fs::write(&f, &pcap).unwrap();
    let v: Value = serde_json::from_slice(
        &Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").arg(&f).arg("--json").output().unwrap().stdout,
    )
    .unwrap();
    assert_eq!(v["packets"], 1);
    assert_eq!(v["app_errors"][0]["code"], "40P01");
    assert_eq!(outbox, vec![("sent".to_string(), 1, "alert".to_string())]);
}

#[test]
fn mail_queued_during_an_smtp_outage_arrives_once_the_server_is_up_exactly_once() {
    if !have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = free_port();
    // No server yet: the MariaDB deadlock is queued and retried.
    let d = Daemon::replay(dir.path(), &common::lab_dir().join("lab-mariadb-errors.pcap"), &shipped_rules(), port);
    wait_for("two failed attempts", 30, || d.outbox().first().is_some_and(|r| r.0 == "pending" && r.1 >= 2));
    let smtp = Smtp::start(dir.path(), port);
    wait_for("the queued mail", 30, || !smtp.mails().is_empty());
    std::thread::sleep(Duration::from_secs(5)); // retries must not send it again
    let outbox = d.outbox();
    let log = d.stop();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0]["subject"].as_str().unwrap().contains("1213"), "{}", mails[0]["subject"]);
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].0, "sent");
    assert!(outbox[0].1 >= 3, "attempts: {outbox:?}");
    assert!(log.contains("not sent (attempt 1"), "outage not logged:\n{log}");
}

fn gunzip(from: &Path, to: &Path) {
    let mut d = flate2::read::GzDecoder::new(std::fs::File::open(from).unwrap());
    let mut out = std::fs::File::create(to).unwrap();
    std::io::copy(&mut d, &mut out).unwrap();
}

#[test]
fn a_flood_of_10000_identical_errors_is_one_mail_and_one_digest() {
    if !have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let pcap = dir.path().join("flood.pcap");
    gunzip(&common::lab_dir().join("lab-pgsql-flood.pcap.gz"), &pcap);
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("flood.toml"),
        r#"
[[alert]]
id = "division-by-zero"
description = "Application divides by zero"
event = "app_error"
where = 'app_error.code == "22012"'
window = "10m"
severity = "warning"
mail = true
suppress = "1h"
"#,
    )
    .unwrap();
    let port = free_port();
    let smtp = Smtp::start(dir.path(), port);
    let d = Daemon::replay(dir.path(), &pcap, &rules, port);
    wait_for("alert and digest", 60, || smtp.mails().len() >= 2);
    std::thread::sleep(Duration::from_secs(4));
    let db = d.db.clone();
    d.stop();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "{:#?}", mails.iter().map(|m| m["subject"].clone()).collect::<Vec<_>>());
    assert!(mails[0]["subject"].as_str().unwrap().contains("22012"));
    let digest = text_part(&mails[1], "text/plain");
    assert!(mails[1]["subject"].as_str().unwrap().contains("digest"), "{}", mails[1]["subject"]);
    assert!(digest.contains("9999 more (total 10000)"), "{digest}");
    // Stored: every error counted, at most 100 examples per kind and minute.
    let c = rusqlite::Connection::open(db).unwrap();
    let counted: i64 = c.query_row("SELECT sum(count) FROM app_error_minute", [], |r| r.get(0)).unwrap();
    let minutes: i64 = c.query_row("SELECT count(*) FROM app_error_minute", [], |r| r.get(0)).unwrap();
    let examples: i64 = c.query_row("SELECT count(*) FROM app_errors", [], |r| r.get(0)).unwrap();
    assert_eq!(counted, 10_000);
    assert!(examples <= 100 * minutes, "{examples} examples over {minutes} minutes");
}

#[test]
fn hostile_names_from_the_wire_arrive_sanitized() {
    if !have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::copy(shipped_rules().join("identity.toml"), rules.join("identity.toml")).unwrap();
    std::fs::write(
        rules.join("http.toml"),
        "[[alert]]\nid = \"http-errors\"\nevent = \"app_error\"\nwhere = 'app_error.family == \"http\"'\nmail = true\n",
    )
    .unwrap();
    let port = free_port();
    let smtp = Smtp::start(dir.path(), port);
    let d = Daemon::replay(dir.path(), &common::lab_dir().join("lab-hostile-names.pcap"), &rules, port);
    wait_for("three mails", 30, || smtp.mails().len() >= 3);
    std::thread::sleep(Duration::from_secs(2));
    d.stop();
    let mails = smtp.mails();
    let subjects: Vec<&str> = mails.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    // The shared-MAC alert, the HTTP error, and the digest with the shared-MAC episode's repeat
    // (a third user joined the MAC).
    assert_eq!(mails.len(), 3, "{subjects:#?}");
    assert!(subjects.iter().any(|s| s.contains("digest: 1 alert")), "{subjects:#?}");
    let shared =
        mails.iter().find(|m| m["subject"].as_str().unwrap().contains("Several users")).expect("shared-MAC mail");
    for m in &mails {
        // No header was injected, and no recipient added.
        for h in m["headers"].as_array().unwrap() {
            let name = h[0].as_str().unwrap().to_ascii_lowercase();
            assert!(!["bcc", "cc", "x-injected"].contains(&name.as_str()), "injected header {h}");
            assert!(!h[1].as_str().unwrap().contains('\n'), "line break in header {h}");
        }
        assert_eq!(m["rcpt_tos"], serde_json::json!(["netadmin@example.com"]));
        let html = text_part(m, "text/html");
        assert!(
            !html.contains("<script>") && !html.contains("<b>boom") && !html.contains("<img"),
            "raw HTML from the wire in:\n{html}"
        );
    }
    let html = text_part(shared, "text/html");
    assert!(html.contains("mallory Bcc victim@example.com &lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    let subject = shared["subject"].as_str().unwrap();
    assert!(subject.contains("alice, mallory Bcc victim@example.com"), "{subject}");
}

#[test]
fn implicit_tls_and_plain_relays_deliver_too() {
    if !have_aiosmtpd() {
        return;
    }
    for tls in [Tls::Implicit, Tls::None] {
        let dir = tempfile::tempdir().unwrap();
        make_certs(dir.path());
        let port = free_port();
        let smtp = Smtp::start_with(dir.path(), port, tls);
        let d = Daemon::replay_with(
            dir.path(),
            &common::lab_dir().join("lab-mariadb-errors.pcap"),
            &shipped_rules(),
            port,
            tls,
        );
        wait_for("the deadlock mail", 30, || !smtp.mails().is_empty());
        d.stop();
        let m = &smtp.mails()[0];
        assert!(m["subject"].as_str().unwrap().contains("1213"), "{}", m["subject"]);
        assert_eq!(m["tls"].as_bool(), Some(tls == Tls::Implicit), "{}", tls.config());
        assert_eq!(m["auth"].as_bool().unwrap_or(false), tls == Tls::Implicit, "{}", tls.config());
    }
}
