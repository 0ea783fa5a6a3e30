//! The dashboard as a hostile host on the branch LAN sees it: the daemon (`run --replay …`) is
//! attacked over real sockets from loopback addresses (127.0.0.x stand for LAN hosts), and
//! what it does is measured — guesses verified, the right password's fate, the status page's
//! latency, half-sent requests beyond the caps, peak memory under 50 clients and uploads,
//! redirects, Host names, paths. Each test prints its numbers (`ATTACK name: …`) before it
//! asserts.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const PASSWORD: &str = "the right password";

/// A daemon replaying a capture with its dashboard on a loopback port.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// `web`: extra lines of the `[web]` section.
    fn start(capture: &Path, web: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tcp.toml"), rules.join("tcp.toml")).unwrap();
        let pw = dir.path().join("pw");
        mirrorwatch::web::auth::write_password_file(&pw, PASSWORD).unwrap();
        let cfg = dir.path().join("mirrorwatch.toml");
        std::fs::write(
            &cfg,
            format!(
                "[web]\nlisten = \"127.0.0.1:0\"\npassword_file = \"{}\"\n{web}\n[store]\ndir = \"{}\"\n",
                pw.display(),
                dir.path().join("store").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--replay")
            .arg(capture)
            .arg("--db")
            .arg(dir.path().join("mw.db"))
            .arg("--rules")
            .arg(&rules)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = dir.path().join("daemon.log");
        std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            let mut out = std::fs::File::create(log).unwrap();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(out, "{line}");
                if let Some(i) = line.find("dashboard on http://") {
                    let _ = tx.send(line[i + 20..].trim_end_matches('/').to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("no dashboard").parse().unwrap();
        Daemon { child, addr, dir }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// A field of /proc/PID/status in kB (VmHWM, VmRSS).
    fn status_kb(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }
}

/// 127.0.0.N: one LAN host.
fn host(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

async fn connect(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    s.connect(to).await
}

/// One request on its own connection; (status, head, body). Status 0: the connection failed or
/// was closed without an answer.
async fn request(from: IpAddr, to: SocketAddr, raw: String) -> (u16, String, Vec<u8>) {
    let Ok(mut s) = connect(from, to).await else { return (0, String::new(), Vec::new()) };
    if s.write_all(raw.as_bytes()).await.is_err() {
        return (0, String::new(), Vec::new());
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf)).await;
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..at]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, buf.get(at + 4..).unwrap_or_default().to_vec())
}

fn get(to: SocketAddr, path: &str, cookie: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n")
}

fn login_request(to: SocketAddr, password: &str, next: &str) -> String {
    let body = format!("password={}&next={}", mirrorwatch::web::html::U(password), mirrorwatch::web::html::U(next));
    format!(
        "POST /login HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Logs in from `from`; the session cookie.
async fn login(from: IpAddr, to: SocketAddr) -> String {
    let (st, head, _) = request(from, to, login_request(to, PASSWORD, "/")).await;
    assert_eq!(st, 303, "login: {head}");
    header(&head, "set-cookie").unwrap().split(';').next().unwrap().to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn capture() -> PathBuf {
    common::lab_dir().join("lab-pgsql-errors.pcap")
}

/// 400 wrong guesses from one address released at once, while the admin polls `/api/status`
/// from another: how many guesses reached the password check (401 rather than 429), and the
/// status page's slowest answer.
#[test]
fn a_burst_of_guesses_from_one_host_is_mostly_refused_before_the_check() {
    let d = Daemon::start(&capture(), "");
    let rt = runtime();
    let (verified, refused, slowest, took) = rt.block_on(async {
        let admin = login(host(3), d.addr).await;
        let to = d.addr;
        let t0 = Instant::now();
        let guesses: Vec<_> = (0..400)
            .map(|i| tokio::spawn(request(host(2), to, login_request(to, &format!("guess {i}"), "/"))))
            .collect();
        let poll = tokio::spawn(async move {
            let (mut slowest, mut failed) = (Duration::ZERO, 0);
            let end = Instant::now() + Duration::from_secs(8);
            while Instant::now() < end {
                let t = Instant::now();
                let (st, _, _) = request(host(3), to, get(to, "/api/status", &admin)).await;
                failed += usize::from(st != 200);
                slowest = slowest.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (slowest, failed)
        });
        let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
        for g in guesses {
            *by_status.entry(g.await.unwrap().0).or_default() += 1;
        }
        let took = t0.elapsed();
        let (slowest, failed) = poll.await.unwrap();
        eprintln!("statuses of 400 guesses (0: connection refused by the cap): {by_status:?}; /api/status failed {failed} times");
        let refused = by_status.get(&429).copied().unwrap_or(0) + by_status.get(&0).copied().unwrap_or(0);
        (by_status.get(&401).copied().unwrap_or(0), refused, (slowest, failed), took)
    });
    let (slowest, failed) = slowest;
    eprintln!(
        "ATTACK burst from one host: {verified} of 400 guesses verified, {refused} refused (429 or closed), burst answered in \
         {:.1} s, slowest /api/status {} ms ({failed} failed)",
        took.as_secs_f64(),
        slowest.as_millis()
    );
    assert_eq!(failed, 0, "/api/status failed during the burst");
    assert!(verified <= mirrorwatch::web::auth::LIMIT_PER_CLIENT as usize, "{verified} guesses were checked");
    assert_eq!(verified + refused, 400);
    assert!(slowest < Duration::from_secs(2), "/api/status took {slowest:?} during the burst");
}

/// Wrong guesses from 60 addresses (several each, at once), then the right password from an
/// address that never failed: it gets in, during the flood and after it.
#[test]
fn a_flood_from_many_hosts_never_locks_out_the_right_password() {
    let d = Daemon::start(&capture(), "");
    let rt = runtime();
    let (during, after, slowest_login) = rt.block_on(async {
        let to = d.addr;
        let flood: Vec<_> = (0..300)
            .map(|i| {
                let from = host(10 + (i % 60) as u8);
                tokio::spawn(request(from, to, login_request(to, &format!("guess {i}"), "/")))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        let (during, head, _) = request(host(200), to, login_request(to, PASSWORD, "/")).await;
        let slowest = t.elapsed();
        eprintln!("right password during the flood: {during} {}", head.lines().next().unwrap_or(""));
        let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
        for g in flood {
            *by_status.entry(g.await.unwrap().0).or_default() += 1;
        }
        eprintln!("statuses of the 300 flood guesses: {by_status:?}");
        let (after, _, _) = request(host(201), to, login_request(to, PASSWORD, "/")).await;
        (during, after, slowest)
    });
    eprintln!(
        "ATTACK flood from 60 hosts: right password from a clean host answered {during} during the flood (in {} ms) \
         and {after} after it",
        slowest_login.as_millis()
    );
    assert_eq!(during, 303, "the right password was refused during the flood");
    assert_eq!(after, 303, "the right password was refused after the flood");
}

/// One host opens 1,500 connections and sends half a request on each; another host must still
/// be served within seconds, the daemon's descriptors stay bounded, and the half-sent
/// connections are closed by the header timeout.
#[test]
fn half_sent_requests_from_one_host_do_not_starve_the_others() {
    let d = Daemon::start(&capture(), "");
    let rt = runtime();
    let (opened, served_in, fds_peak, left_after) = rt.block_on(async {
        let to = d.addr;
        let mut held = Vec::new();
        for _ in 0..1500 {
            match connect(host(20), to).await {
                Ok(mut s) => {
                    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
                    held.push(s);
                }
                Err(_) => break,
            }
        }
        let opened = held.len();
        let fds_peak = d.open_fds();
        let t = Instant::now();
        let (st, _, _) = tokio::time::timeout(
            Duration::from_secs(30),
            request(host(21), to, format!("GET /login HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n")),
        )
        .await
        .unwrap_or((0, String::new(), Vec::new()));
        let served_in = (st == 200).then(|| t.elapsed());
        // Hold them past the header timeout: the server must have closed them.
        tokio::time::sleep(Duration::from_secs(20)).await;
        let mut left = 0;
        for s in &mut held {
            let mut b = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(5), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {}
                _ => left += 1,
            }
        }
        (opened, served_in, fds_peak, left)
    });
    eprintln!(
        "ATTACK 1500 half-sent requests from one host: {opened} connections opened, another host served in {:?}, \
         daemon fds at peak {fds_peak}, {left_after} still open after 20 s",
        served_in.map(|d| d.as_millis())
    );
    assert!(served_in.is_some_and(|t| t < Duration::from_secs(3)), "another host was not served: {served_in:?}");
    assert!(fds_peak < 600, "{fds_peak} descriptors");
    assert_eq!(left_after, 0, "half-sent connections outlived the header timeout");
    assert!(!d.log().contains("Too many open files"));
}

/// 50 clients reading the API as fast as they can while 8 upload 63 MiB captures at once: the
/// daemon's peak resident memory.
#[test]
fn fifty_clients_and_eight_uploads_stay_within_the_memory_budget() {
    let d = Daemon::start(&capture(), "");
    let rt = runtime();
    let (requests, uploads) = rt.block_on(async {
        let to = d.addr;
        let cookie = login(host(30), to).await;
        let page = request(host(30), to, get(to, "/", &cookie)).await.2;
        let page = String::from_utf8_lossy(&page).into_owned();
        let csrf = page.split("name=\"csrf-token\" content=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let end = Instant::now() + Duration::from_secs(10);
        let paths =
            ["/api/status", "/api/alerts", "/api/identities", "/api/app-errors", "/api/counters", "/", "/alerts"];
        let clients: Vec<_> = (0..50)
            .map(|i| {
                let cookie = cookie.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    while Instant::now() < end {
                        let p = paths[(i + n) % paths.len()];
                        let _ = request(host(31 + (i % 20) as u8), to, get(to, p, &cookie)).await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // A 63 MiB pcap: a valid header, then one frame's worth repeated.
        let mut pcap = Vec::with_capacity(63 << 20);
        pcap.extend_from_slice(&[
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
        ]);
        let frame = [0u8; 1500];
        while pcap.len() + 16 + frame.len() <= 63 << 20 {
            pcap.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
            pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            pcap.extend_from_slice(&frame);
        }
        let pcap = Arc::new(pcap);
        let ups: Vec<_> = (0..8)
            .map(|i| {
                let (pcap, cookie, csrf) = (Arc::clone(&pcap), cookie.clone(), csrf.clone());
                tokio::spawn(async move {
                    let head = format!(
                        "POST /captures/upload?name=big{i}.pcap HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\
                         Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\nContent-Type: application/octet-stream\r\n\
                         Content-Length: {}\r\n\r\n",
                        pcap.len()
                    );
                    let Ok(mut s) = connect(host(60 + i as u8), to).await else { return 0 };
                    // A refusal may come before the body is sent: read the answer either way.
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&pcap).await;
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf).await;
                    String::from_utf8_lossy(&buf).split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0u16)
                })
            })
            .collect();
        let mut codes = Vec::new();
        for u in ups {
            codes.push(u.await.unwrap());
        }
        let mut n = 0;
        for c in clients {
            n += c.await.unwrap();
        }
        (n, codes)
    });
    let peak = d.status_kb("VmHWM");
    eprintln!(
        "ATTACK 50 API clients ({requests} requests in 10 s) and 8 uploads of 63 MiB (answers {uploads:?}): peak RSS \
         {} MiB",
        peak / 1024
    );
    assert!(peak < 200 * 1024, "peak RSS {} MiB", peak / 1024);
    assert!(uploads.iter().all(|c| matches!(c, 201 | 429 | 503)), "{uploads:?}");
}

/// Redirect targets a page sends the browser to come only from the box itself.
#[test]
fn redirects_stay_on_the_box() {
    let d = Daemon::start(&capture(), "");
    let rt = runtime();
    let nexts = [
        "/%09/evil.example/",
        "/\t/evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/%5Cevil.example/",
        "/%2F/evil.example/",
        "%2F%2Fevil.example",
        "https://evil.example/",
        "/\r\nLocation: //evil.example/",
        "/ /evil.example",
        "/%0d%0aSet-Cookie:x=1",
    ];
    let bad = rt.block_on(async {
        let to = d.addr;
        let mut bad = Vec::new();
        for n in nexts {
            let q = mirrorwatch::web::html::U(n).to_string();
            for raw in [
                format!("GET /lang/en?next={q} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n"),
                format!("GET /lang/en?next={n} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n"),
            ] {
                let (st, head, _) = request(host(40), to, raw).await;
                // A request line with raw control characters is refused (400) before any
                // handler: nothing to follow.
                let loc = header(&head, "location").unwrap_or("").to_string();
                if !(on_box(&loc) || (400..500).contains(&st) && loc.is_empty()) {
                    bad.push((n, loc));
                }
            }
            let (st, head, _) = request(host(41), to, login_request(to, PASSWORD, n)).await;
            let loc = header(&head, "location").unwrap_or("").to_string();
            if !(on_box(&loc) || (400..500).contains(&st) && loc.is_empty()) {
                bad.push((n, loc));
            }
        }
        bad
    });
    eprintln!("ATTACK redirects: {} of {} targets led off the box: {bad:?}", bad.len(), nexts.len() * 3);
    assert!(bad.is_empty());
}

/// A Location a browser resolves to this box: a path whose second character (after the browser
/// drops tabs and line breaks) is not another slash or a backslash.
fn on_box(loc: &str) -> bool {
    let l: String = loc.chars().filter(|c| !matches!(c, '\t' | '\r' | '\n')).collect();
    l.starts_with('/') && !l.starts_with("//") && !l.starts_with("/\\") && l.chars().all(|c| c.is_ascii_graphic())
}

/// A request naming another host (DNS rebinding) is refused; the box's own address is served.
#[test]
fn requests_for_another_host_name_are_refused() {
    let d = Daemon::start(&capture(), "hostnames = [\"mirrorwatch.branch.lan\"]");
    let rt = runtime();
    let answers = rt.block_on(async {
        let to = d.addr;
        let mut v = Vec::new();
        for h in [to.to_string(), "mirrorwatch.branch.lan".into(), "evil.example".into(), "evil.example:8080".into()] {
            let (st, _, _) =
                request(host(50), to, format!("GET /login HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n")).await;
            v.push((h, st));
        }
        v
    });
    eprintln!("ATTACK Host names: {answers:?}");
    assert_eq!(answers[0].1, 200);
    assert_eq!(answers[1].1, 200);
    assert!(answers[2].1 >= 400 && answers[3].1 >= 400, "{answers:?}");
}
