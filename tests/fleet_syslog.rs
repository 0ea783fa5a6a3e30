//! The fleet export over syslog, received by a real rsyslog (Debian's `rsyslogd`, imtcp, the
//! events written per host with `%msg%`): RFC 5424 with octet-counted framing over TCP, and over
//! TLS (rsyslog's gtls driver demanding a client certificate).
//!
//! The daemon replays from a pipe the test feeds in phases, so it is capturing while the
//! collector goes away: killed mid-run, the daemon keeps capturing, holds back what its backlog
//! allows, counts the rest as dropped, reconnects to the restarted rsyslog, and in the end what
//! rsyslog wrote plus what was dropped is exactly what the JSON lines file holds.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

fn rsyslogd() -> Option<String> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"].iter().find(|p| Path::new(p).exists()).map(|p| p.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real rsyslog receiving on 127.0.0.1:`port`, writing each event's MSG (the JSON) to
/// `out/<HOSTNAME>/events.jsonl`.
struct Rsyslog {
    child: Option<Child>,
    dir: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16, tls: Option<&Path>) -> Rsyslog {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let out = dir.join("out");
        // The shipped configuration, with this test's paths and port (and loopback only).
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(match tls {
            None => "docs/fleet/rsyslog-mirrorwatch.conf",
            Some(_) => "docs/fleet/rsyslog-mirrorwatch-tls.conf",
        });
        let mut conf = std::fs::read_to_string(shipped).unwrap();
        for (from, to) in [
            ("/var/log/mirrorwatch".to_string(), out.display().to_string()),
            ("/etc/rsyslog.d/pki".to_string(), tls.map(|p| p.display().to_string()).unwrap_or_default()),
        ] {
            conf = conf.replace(&from, &to);
        }
        let input = conf.lines().find(|l| l.starts_with("input(")).unwrap().to_string();
        let port_was = input.split("port=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        conf = conf.replace(
            &input,
            &input.replace(&format!("port=\"{port_was}\""), &format!("address=\"127.0.0.1\" port=\"{port}\"")),
        );
        let conf = format!("global(workDirectory=\"{}\")\n{conf}", work.display());
        let cfg = dir.join("rsyslog.conf");
        std::fs::write(&cfg, conf).unwrap();
        let child = Command::new(rsyslogd().unwrap())
            .args(["-n", "-f"])
            .arg(&cfg)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsyslog.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rsyslog did not listen: {}", Self::log(dir));
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog { child: Some(child), dir: dir.to_path_buf() }
    }

    fn log(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("rsyslog.log")).unwrap_or_default()
    }

    /// SIGTERM: rsyslog writes what it has queued, then exits.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    fn lines(&self, host: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("out").join(host).join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One GET of `/metrics` with the token; the samples as (name{labels}, value).
fn metrics(port: u16) -> Vec<(String, f64)> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return Vec::new() };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer fleet-token\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("HTTP") && l.starts_with("mirrorwatch_"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
        .collect()
}

fn metric(port: u16, name: &str) -> f64 {
    metrics(port).into_iter().find(|(k, _)| k == name).map(|(_, v)| v).unwrap_or(-1.0)
}

/// The daemon replaying from a pipe, exporting to the JSON lines file and syslog.
struct Daemon {
    child: common::Stopped,
    fifo: Option<std::fs::File>,
    web: u16,
    jsonl: PathBuf,
    log: PathBuf,
}

/// Writes copies of the NAT lab capture (two users behind one MAC: identities, a shared-MAC
/// alert, logins kept as flows, exchanges and stats every minute), one per minute of packet
/// time from `start`.
fn copies(n: usize, start: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.pcap");
    common::loop_captures(&[common::lab_dir().join("lab-nat-two-users-basic.pcap")], n, 60, start, &f);
    std::fs::read(&f).unwrap()
}

impl Daemon {
    fn start(dir: &Path, syslog: &str, extra: &str) -> Daemon {
        let fifo = dir.join("feed.pcap");
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let jsonl = dir.join("events.jsonl");
        let web = free_port();
        std::fs::write(dir.join("token"), "fleet-token\n").unwrap();
        let cfg = dir.join("mirrorwatch.toml");
        std::fs::write(
            &cfg,
            format!(
                "[web]\nlisten = \"127.0.0.1:{web}\"\nmetrics_token_file = {:?}\npassword_file = {:?}\n\
                 [store]\nring = false\n\
                 [export]\njsonl = {:?}\nsyslog = \"{syslog}\"\nhost = \"mw-osaka\"\nbranch = \"Osaka\"\n{extra}\n",
                dir.join("token").to_str().unwrap(),
                dir.join("pw").to_str().unwrap(),
                jsonl.to_str().unwrap()
            ),
        )
        .unwrap();
        let log = dir.join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--rules")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
            .arg("--db")
            .arg(dir.join("store.db"))
            .arg("--replay")
            .arg(&fifo)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let child = common::Stopped(child);
        // Opening the pipe's write end waits for the daemon's reader.
        let w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        Daemon { child, fifo: Some(w), web, jsonl, log }
    }

    /// Feeds `bytes` but its last `tail` bytes, waits past the store's batch age, then feeds
    /// the tail: the batch made of the first part is handed over (a replay flushes its batch
    /// when the next frame comes after a second).
    fn feed_flushed(&mut self, bytes: &[u8], tail: usize) -> Duration {
        let took = self.feed(&bytes[..bytes.len() - tail]);
        std::thread::sleep(Duration::from_millis(1100));
        took + self.feed(&bytes[bytes.len() - tail..])
    }

    fn feed(&mut self, bytes: &[u8]) -> Duration {
        let t0 = Instant::now();
        self.fifo.as_mut().unwrap().write_all(bytes).unwrap();
        t0.elapsed()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn jsonl(&self) -> Vec<String> {
        std::fs::read_to_string(&self.jsonl).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// SIGTERM after the pipe's end; the exporter's last words: (file, syslog, dropped queue,
    /// dropped file, dropped syslog).
    fn stop(mut self) -> [u64; 5] {
        self.fifo = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains("replayed ") {
            assert!(Instant::now() < deadline, "replay did not end: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        Command::new("kill").args(["-TERM", &self.child.0.id().to_string()]).status().unwrap();
        let st = self.child.0.wait().unwrap();
        let log = self.log();
        assert!(st.success(), "{st:?}: {log}");
        let line = log.lines().find(|l| l.contains("export stopped:")).unwrap_or_else(|| panic!("{log}"));
        let nums: Vec<u64> =
            line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
        // The line ends with the five counts (the timestamp's digits come first).
        nums[nums.len() - 5..].try_into().unwrap()
    }
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ready() -> bool {
    if rsyslogd().is_none() || !have("mkfifo") {
        common::skip_or_fail("the syslog test needs rsyslogd (Debian's rsyslog) and mkfifo");
        return false;
    }
    true
}

#[test]
fn rsyslog_receives_the_events_and_an_outage_costs_only_counted_drops() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut rs = Rsyslog::start(&dir.path().join("rs"), port, None);
    // A backlog of 10 events: the outage below is longer than that.
    let mut d = Daemon::start(dir.path(), &format!("tcp://127.0.0.1:{port}"), "syslog_backlog = 10");
    let start = 1_796_000_000;
    let all = copies(60, start);
    let head = 24;
    // One copy of the capture every minute; the record boundaries of each copy.
    let per = (all.len() - head) / 60;
    let chunk = |from: usize, to: usize| all[head + from * per..head + to * per].to_vec();
    assert_eq!((all.len() - head) % 60, 0);

    d.feed(&all[..head]);
    d.feed_flushed(&chunk(0, 10), per);
    let sent = |d: &Daemon| metric(d.web, "mirrorwatch_export_events_total{sink=\"syslog\"}");
    let t0 = Instant::now();
    while {
        let s = sent(&d);
        !(s >= 10.0 && rs.lines("mw-osaka").len() as f64 == s && d.jsonl().len() as f64 == s)
    } {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "rsyslog did not write what was sent: sent {}, rsyslog {}, file {}\n{}\n{}",
            sent(&d),
            rs.lines("mw-osaka").len(),
            d.jsonl().len(),
            d.log(),
            Rsyslog::log(&dir.path().join("rs"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(d.web, "mirrorwatch_export_syslog_connected"), 1.0);

    // The collector goes away mid-run.
    rs.stop();
    let before = rs.lines("mw-osaka");
    let took = d.feed_flushed(&chunk(10, 45), per);
    assert!(took < Duration::from_secs(5), "capture waited for the collector: {took:?}");
    // Its frame count follows (published once a second while frames come: all but the tail).
    let per_copy = {
        let f = tempfile::NamedTempFile::new().unwrap();
        common::loop_captures(&[common::lab_dir().join("lab-nat-two-users-basic.pcap")], 1, 60, 0, f.path())
    };
    wait_for("the daemon to keep capturing", 30, || {
        metric(d.web, "mirrorwatch_packets_total") > (44 * per_copy) as f64
    });
    wait_for("drops to be counted", 30, || {
        metric(d.web, "mirrorwatch_export_dropped_events_total{stage=\"syslog\"}") > 0.0
    });
    assert_eq!(metric(d.web, "mirrorwatch_export_syslog_connected"), 0.0);
    assert_eq!(metric(d.web, "mirrorwatch_export_dropped_events_total{stage=\"queue\"}"), 0.0);

    // Back: the daemon reconnects (backoff at most a minute) and sends its backlog and the rest.
    let mut rs = Rsyslog::start(&dir.path().join("rs"), port, None);
    d.feed_flushed(&chunk(45, 60), per);
    wait_for("the daemon to reconnect", 90, || metric(d.web, "mirrorwatch_export_syslog_connected") == 1.0);
    let [file, syslog, q, f, dropped] = d.stop();
    wait_for("rsyslog to write the rest", 30, || rs.lines("mw-osaka").len() as u64 == syslog);
    rs.stop();
    let got = rs.lines("mw-osaka");
    let jsonl = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let jsonl: Vec<&str> = jsonl.lines().collect();
    assert_eq!((q, f), (0, 0));
    assert!(dropped > 0, "the outage outlasted the backlog");
    assert_eq!(jsonl.len() as u64, file);
    assert_eq!(syslog + dropped, file, "every event reached rsyslog or was counted as dropped");
    assert!(got.len() > before.len());
    // Each line rsyslog wrote is an event of the file, in order.
    let mut it = jsonl.iter();
    for l in &got {
        assert!(it.any(|j| j == l), "rsyslog wrote a line the file does not have (or out of order): {l}");
    }
    eprintln!(
        "rsyslog round trip: {} events in the file, {} through rsyslog ({} before the outage), {} dropped",
        file,
        got.len(),
        before.len(),
        dropped
    );
}

/// A CA, a server certificate for `localhost` and a client certificate, made with openssl.
fn pki(dir: &Path) {
    let sh = |cmd: &str| {
        let o = Command::new("sh").arg("-c").arg(cmd).current_dir(dir).output().unwrap();
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    };
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
        -days 2 -subj /CN=fleet-test-ca");
    for (name, cn, ext) in [
        ("server", "localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "mw-osaka", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), format!("{ext}\nbasicConstraints=CA:FALSE\n")).unwrap();
        sh(&format!(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {name}.key -out {name}.csr \
             -subj /CN={cn} && openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
             -days 2 -out {name}.pem -extfile {name}.ext"
        ));
    }
}

#[test]
fn rsyslog_receives_the_events_over_tls_with_a_client_certificate() {
    if !ready() || !have("openssl") {
        if have("rsyslogd") && !have("openssl") {
            common::skip_or_fail("the TLS syslog test needs openssl");
        }
        return;
    }
    if !Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
        && !Path::new("/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
    {
        common::skip_or_fail("the TLS syslog test needs rsyslog-gnutls");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir(&pki_dir).unwrap();
    pki(&pki_dir);
    let port = free_port();
    let rs = Rsyslog::start(&dir.path().join("rs"), port, Some(&pki_dir));
    let p = |f: &str| pki_dir.join(f).to_str().unwrap().to_string();
    let extra = format!(
        "syslog_ca = {:?}\nsyslog_cert = {:?}\nsyslog_key = {:?}\n",
        p("ca.pem"),
        p("client.pem"),
        p("client.key")
    );
    let mut d = Daemon::start(dir.path(), &format!("tls://localhost:{port}"), &extra);
    d.feed(&copies(5, 1_796_000_000));
    let [file, syslog, q, f, s] = d.stop();
    assert_eq!((q, f, s), (0, 0, 0), "nothing dropped");
    assert!(file > 10);
    assert_eq!(syslog, file);
    wait_for("rsyslog to write every event", 30, || rs.lines("mw-osaka").len() as u64 == file);
    let jsonl = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert_eq!(rs.lines("mw-osaka"), jsonl.lines().collect::<Vec<_>>(), "the same events, in order, byte for byte");
    for l in rs.lines("mw-osaka") {
        serde_json::from_str::<serde_json::Value>(&l).unwrap();
    }
}
