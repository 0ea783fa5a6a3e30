//! The pcap ring and its evidence windows, through the daemon (`run --replay`) on lab captures,
//! with tshark as the judge:
//! - the ring holds every frame (same times and lengths as the capture), and no credential in
//!   any form; tshark reads every ring file without an error;
//! - each alert's evidence window holds exactly the frames tshark finds in its time range of
//!   the original capture, also without credentials;
//! - under a small disk budget the oldest ring files go, the store stays within the budget, and
//!   what is left is the newest traffic;
//! - the dashboard lists, downloads and deletes a window.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn secrets() -> Vec<Vec<u8>> {
    common::lab_secrets()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
            let _ = self.0.wait();
        }
    }
}

fn replay(file: &Path, dir: &Path, config: &str, listen: &str) -> Daemon {
    let cfg = dir.join("mirrorwatch.toml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["run", "--listen", listen, "--rules", "rules", "--config"])
        .arg(&cfg)
        .arg("--replay")
        .arg(file)
        .arg("--db")
        .arg(dir.join("mirrorwatch.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Daemon(child)
}

/// Waits until the replay is stored and no window is left pending.
fn wait_settled(d: &mut Daemon, db: &Path, packets: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(d.0.try_wait().unwrap().is_none(), "daemon exited early");
        let done = rusqlite::Connection::open(db).ok().and_then(|c| {
            let stored: i64 =
                c.query_row("SELECT coalesce(sum(packets), 0) FROM traffic_minute", [], |r| r.get(0)).ok()?;
            let pending: i64 =
                c.query_row("SELECT count(*) FROM evidence WHERE state = 'pending'", [], |r| r.get(0)).ok()?;
            Some(stored as usize == packets && pending == 0)
        });
        if done == Some(true) {
            // The ring writes within a second of the last frame.
            std::thread::sleep(Duration::from_millis(1500));
            return;
        }
        assert!(Instant::now() < deadline, "replay not settled in time");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ring_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("ring"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// (time in ns, wire length, captured length) of every frame tshark reads, after checking it
/// reads the file without an error.
fn frames(file: &Path, filter: Option<&str>) -> Vec<(i64, u64, u64)> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len"]);
    if let Some(f) = filter {
        cmd.args(["-Y", f]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "tshark on {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (s, frac) = f[0].split_once('.').unwrap_or((f[0], "0"));
            let ns = s.parse::<i64>().unwrap() * 1_000_000_000 + format!("{frac:0<9}")[..9].parse::<i64>().unwrap();
            (ns, f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

fn windows(db: &Path) -> Vec<(i64, i64, i64, String, Option<String>, i64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st =
        c.prepare("SELECT id, from_us, to_us, state, file, coalesce(frames, 0) FROM evidence ORDER BY id").unwrap();
    let v = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    v
}

#[test]
fn the_ring_keeps_every_frame_redacted_and_windows_hold_what_tshark_finds_in_their_range() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    let secrets = secrets();
    let mut windows_seen = 0;
    // Logins of every protocol (the ring must hold none of their passwords), and the field
    // cases that raise alerts: a shared MAC, database deadlocks, HTTP 5xx.
    for name in [
        "lab-mail-dovecot.pcap",
        "lab-ftp-smtp-logins.pcap",
        "lab-kerberos-kdc.pcap",
        "lab-nat-two-users-basic.pcap",
        "lab-mariadb-errors.pcap",
        "lab-pgsql-errors.pcap",
        "lab-http-nginx-5xx.pcap",
    ] {
        let file = common::lab_dir().join(name);
        let tmp = tempfile::tempdir().unwrap();
        let want = frames(&file, None);
        let mut d = replay(&file, tmp.path(), "", "");
        let db = tmp.path().join("mirrorwatch.db");
        wait_settled(&mut d, &db, want.len());
        drop(d);

        let ring = ring_files(tmp.path());
        assert!(!ring.is_empty(), "{name}: no ring file");
        let mut got = Vec::new();
        for f in &ring {
            let bytes = std::fs::read(f).unwrap();
            for s in &secrets {
                assert!(!contains(&bytes, s), "{name}: {} holds {:?}", f.display(), String::from_utf8_lossy(s));
            }
            got.extend(frames(f, None));
        }
        assert_eq!(got, want, "{name}: the ring holds other frames than the capture");

        for (id, from_us, to_us, state, file_name, n) in windows(&db) {
            assert_eq!(state, "kept", "{name}: window {id}");
            let path = tmp.path().join("evidence").join(file_name.unwrap());
            let bytes = std::fs::read(&path).unwrap();
            for s in &secrets {
                assert!(!contains(&bytes, s), "{name}: window {id} holds a credential");
            }
            let expr = format!(
                "frame.time_epoch >= {}.{:06} && frame.time_epoch <= {}.{:06}",
                from_us.div_euclid(1_000_000),
                from_us.rem_euclid(1_000_000),
                to_us.div_euclid(1_000_000),
                to_us.rem_euclid(1_000_000)
            );
            let in_range = frames(&file, Some(&expr));
            let cut = frames(&path, None);
            assert_eq!(cut, in_range, "{name}: window {id} ({expr})");
            assert_eq!(n as usize, cut.len());
            windows_seen += 1;
        }
    }
    assert!(windows_seen >= 4, "the lab captures raise alerts with windows: {windows_seen}");
}

#[test]
fn under_a_small_budget_the_oldest_ring_files_go_and_the_newest_traffic_stays() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    // 9 MB of full-size frames (a lab transfer 40 times over, a minute apart) through a 3 MiB
    // budget of 256 KiB files.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bulk-x40.pcapng");
    {
        use mirrorwatch::capture::PacketSource;
        let out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut w = mirrorwatch::store::pcapng::Writer::new(out).unwrap();
        for k in 0..40i64 {
            let mut src =
                mirrorwatch::capture::file::FileSource::open(&common::lab_dir().join("lab-http-bulk-loss2.pcap"))
                    .unwrap();
            while let Some(p) = src.next_packet().unwrap() {
                w.write(p.link.0, mirrorwatch::time::Ts(p.ts.0 + k * 60_000_000_000), p.orig_len, p.data).unwrap();
            }
        }
        w.into_inner().into_inner().unwrap();
    }
    let want = frames(&file, None);
    let budget = 3u64 << 20;
    let cfg = "[store]\ndisk_budget = \"3MiB\"\nring_file_size = \"256KiB\"\n";
    let mut d = replay(&file, tmp.path(), cfg, "");
    let db = tmp.path().join("mirrorwatch.db");
    wait_settled(&mut d, &db, want.len());
    drop(d);
    std::fs::remove_file(&file).unwrap();
    let ring = ring_files(tmp.path());
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let ring_bytes: u64 = ring.iter().map(|p| size(p)).sum();
    let evidence: u64 = std::fs::read_dir(tmp.path().join("evidence"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| size(&e.path())).sum())
        .unwrap_or(0);
    let db_bytes: u64 =
        ["mirrorwatch.db", "mirrorwatch.db-wal", "mirrorwatch.db-shm"].iter().map(|n| size(&tmp.path().join(n))).sum();
    let total = ring_bytes + evidence + db_bytes;
    assert!(total <= budget, "store {total} bytes over the {budget} budget (ring {ring_bytes}, db {db_bytes})");
    assert!(ring.len() >= 4, "the ring keeps several files: {ring:?}");
    assert!(ring_bytes < 3 << 20, "the oldest files were deleted");
    let first: u64 = ring[0].file_name().unwrap().to_string_lossy()[5..13].parse().unwrap();
    assert!(first > 1, "the first file was deleted");
    // What is left is the end of the capture, frame for frame, and every file reads cleanly.
    let got: Vec<_> = ring.iter().flat_map(|f| frames(f, None)).collect();
    assert!(!got.is_empty());
    assert_eq!(got[..], want[want.len() - got.len()..], "the ring holds the newest frames");
}

#[test]
fn the_dashboard_lists_downloads_and_deletes_evidence_windows() {
    let file = common::lab_dir().join("lab-mariadb-errors.pcap");
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("password");
    let cfg = format!("[web]\npassword_file = \"{}\"\n", pw.display());
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["passwd", "--password-stdin", "--config"])
        .arg({
            std::fs::write(tmp.path().join("pw.toml"), &cfg).unwrap();
            tmp.path().join("pw.toml")
        })
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"ring-test-password\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let mut d = replay(&file, tmp.path(), &cfg, "127.0.0.1:0");
    let db = tmp.path().join("mirrorwatch.db");
    let want = common::tshark_fields(&file, None, &["frame.number"]).len();
    wait_settled(&mut d, &db, want);
    // The daemon logs where it listens.
    let addr = {
        use std::io::Read;
        let mut err = d.0.stderr.take().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = err.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(i) = text.find("dashboard on http://") {
                let rest = &text[i + "dashboard on http://".len()..];
                break rest[..rest.find('/').unwrap()].to_string();
            }
            assert!(n > 0 && Instant::now() < deadline, "no dashboard address in {text}");
        }
    };
    let ws = windows(&db);
    assert!(!ws.is_empty(), "the deadlocks raise an alert with a window");
    let (id, _, _, _, file_name, _) = ws[0].clone();
    let on_disk = std::fs::read(tmp.path().join("evidence").join(file_name.unwrap())).unwrap();

    let curl = |args: &[&str]| {
        let o = Command::new("curl")
            .args(["-s", "-b", "c.txt", "-c", "c.txt"])
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "curl {args:?}");
        o.stdout
    };
    curl(&["-o", "/dev/null", "-d", "password=ring-test-password", &format!("http://{addr}/login")]);
    let api: serde_json::Value = serde_json::from_slice(&curl(&[&format!("http://{addr}/api/captures")])).unwrap();
    assert_eq!(api["windows"][0]["id"], id);
    assert_eq!(api["windows"][0]["state"], "kept");
    assert!(api["ring"]["files"].as_u64().unwrap() >= 1);
    assert_eq!(api["ring"]["frames_written"].as_u64().unwrap() as usize, want);
    let page = String::from_utf8(curl(&[&format!("http://{addr}/captures")])).unwrap();
    assert!(page.contains(&format!("name=\"id\" value=\"{id}\" form=\"bulk-delete\"")), "{page}");
    let alerts = String::from_utf8(curl(&[&format!("http://{addr}/alerts")])).unwrap();
    assert!(alerts.contains(&format!("/captures/window/{id}\"")), "the alert links its window");
    let got = curl(&[&format!("http://{addr}/captures/window/{id}")]);
    assert_eq!(got, on_disk, "the download is the kept file");
    let csrf = {
        let i = page.find("name=\"csrf\" value=\"").unwrap() + 19;
        page[i..i + page[i..].find('"').unwrap()].to_string()
    };
    // Without the token nothing is deleted.
    curl(&["-o", "/dev/null", "-X", "POST", &format!("http://{addr}/captures/window/{id}/delete")]);
    assert_eq!(windows(&db).len(), ws.len());
    // With it, a page asks first; confirmed, the file and the row go.
    let ask = String::from_utf8(curl(&[
        "-d",
        &format!("csrf={csrf}"),
        &format!("http://{addr}/captures/window/{id}/delete"),
    ]))
    .unwrap();
    assert!(
        ask.contains("name=\"confirm\" value=\"1\"") && ask.contains(&format!("name=\"id\" value=\"{id}\"")),
        "{ask}"
    );
    assert_eq!(windows(&db).len(), ws.len());
    curl(&[
        "-o",
        "/dev/null",
        "-d",
        &format!("csrf={csrf}&id={id}&confirm=1"),
        &format!("http://{addr}/captures/windows/delete"),
    ]);
    assert_eq!(windows(&db).len(), ws.len() - 1);
    assert!(!tmp.path().join("evidence").join(format!("window-{id}.pcapng")).exists());
    let status: String = String::from_utf8(curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{addr}/captures/window/{id}"),
    ]))
    .unwrap();
    assert_eq!(status, "404");
}
