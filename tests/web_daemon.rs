//! The dashboard served by the daemon (`run --replay … --listen`), over a real socket: the API
//! shows the replayed capture, `/metrics` answers with the token, and a rule file saved through
//! the dashboard is applied by the running daemon (its status reports the new rule set).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request; returns (status, headers, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("0").parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn enc(s: &str) -> String {
    mirrorwatch::web::html::U(s).to_string()
}

#[test]
fn the_daemon_serves_the_dashboard_and_applies_saved_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for f in ["tcp.toml", "apperrors.toml"] {
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules").join(f), rules.join(f)).unwrap();
    }
    let pw_file = dir.path().join("pw");
    mirrorwatch::web::auth::write_password_file(&pw_file, "daemon password").unwrap();
    std::fs::write(dir.path().join("token"), "tok-1\n").unwrap();
    let cfg = dir.path().join("mirrorwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[web]\nlisten = \"127.0.0.1:0\"\npassword_file = \"{}\"\nmetrics_token_file = \"{}\"\n",
            pw_file.display(),
            dir.path().join("token").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--replay")
        .arg(common::lab_dir().join("lab-pgsql-errors.pcap"))
        .arg("--db")
        .arg(dir.path().join("mw.db"))
        .arg("--rules")
        .arg(&rules)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _daemon = Daemon(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("dashboard on http://") {
                let addr = line[i + 20..].trim_end_matches('/').to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the daemon did not start its dashboard");

    let (st, _, _) = http(&addr, "GET", "/api/status", &[], "");
    assert_eq!(st, 401);
    let form = format!("password={}&next=/", enc("daemon password"));
    let (st, head, _) = http(&addr, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], &form);
    assert_eq!(st, 303, "{head}");
    let cookie =
        head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).unwrap().split(';').next().unwrap().to_string();
    let (_, _, page) = http(&addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert!(page.contains("Live capture"), "the daemon's dashboard says what it shows");
    let csrf = page.split("name=\"csrf-token\" content=\"").nth(1).unwrap().split('"').next().unwrap().to_string();

    // The replay is in the API once it is done.
    let status = |cookie: &str| -> serde_json::Value {
        let (_, _, body) = http(&addr, "GET", "/api/status", &[("Cookie", cookie)], "");
        serde_json::from_str(&body).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let s = status(&cookie);
        if s["packets"].as_u64().unwrap_or(0) > 0 && s["rules"]["loaded_us"].as_i64().unwrap_or(0) > 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "no packets or rules in {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(first["mode"], "daemon");
    let counters = first["rules"]["counters"].as_u64().unwrap();
    let (_, _, errs) = http(&addr, "GET", "/api/app-errors?from=0&to=4000000000", &[("Cookie", &cookie)], "");
    assert!(errs.contains("40P01"), "{errs}");
    let (st, _, metrics) = http(&addr, "GET", "/metrics", &[("Authorization", "Bearer tok-1")], "");
    assert_eq!(st, 200);
    assert!(metrics.contains(&format!("mirrorwatch_packets_total {}", first["packets"])), "{metrics}");

    // Save a new rule file through the dashboard: the daemon applies it.
    let text = "[[counter]]\nid = \"pg-traffic\"\nfilter = \"tcp.port == 5432\"\n";
    let form = format!("csrf={csrf}&file=extra.toml&text={}", enc(text));
    let (st, head, _) = http(
        &addr,
        "POST",
        "/rules/save",
        &[("Cookie", &cookie), ("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    );
    assert_eq!(st, 303, "{head}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(&cookie);
        if s["rules"]["counters"].as_u64() == Some(counters + 1) {
            assert!(s["rules"]["loaded_us"].as_i64() > first["rules"]["loaded_us"].as_i64());
            break;
        }
        assert!(Instant::now() < deadline, "the saved rule was not applied: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
