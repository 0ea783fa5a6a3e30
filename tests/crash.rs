//! Crash safety: the daemon killed with SIGKILL fifty times while it replays a busy capture at
//! full speed (store writer, pcap ring, evidence windows and mailer all busy), on one store.
//! After every kill: SQLite's `integrity_check` is ok, and every ring file reads (ours and
//! tshark) up to its last complete block — only the newest file of the killed run may end in a
//! torn block. Then, with the mail server finally up, one more start sends every mail that was
//! queued during the kills exactly once, and cuts every evidence window left pending.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Lab captures of the field cases, one after the other a minute apart, 12 times over: about
/// 8,000 frames with deadlocks, a shared MAC, HTTP 5xx and lossy transfers.
fn busy_capture(to: &Path) {
    let out = std::io::BufWriter::new(std::fs::File::create(to).unwrap());
    let mut w = mirrorwatch::store::pcapng::Writer::new(out).unwrap();
    let mut shift = 0i64;
    for _ in 0..12 {
        for name in [
            "lab-mariadb-errors.pcap",
            "lab-http-bulk-loss2.pcap",
            "lab-nat-two-users-basic.pcap",
            "lab-pgsql-errors.pcap",
            "lab-http-nginx-5xx.pcap",
        ] {
            let mut src = FileSource::open(&common::lab_dir().join(name)).unwrap();
            let mut first = None;
            let mut last = 0;
            while let Some(p) = src.next_packet().unwrap() {
                let base = *first.get_or_insert(p.ts.0);
                last = p.ts.0 - base;
                w.write(
                    p.link.0,
                    mirrorwatch::time::Ts(1_790_000_000_000_000_000 + shift + p.ts.0 - base),
                    p.orig_len,
                    p.data,
                )
                .unwrap();
            }
            shift += last + 60_000_000_000;
        }
    }
    w.into_inner().into_inner().unwrap();
}

fn start(dir: &Path, capture: &Path) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .args(["run", "--listen", "", "--config"])
            .arg(dir.join("mirrorwatch.toml"))
            .arg("--rules")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
            .arg("--replay")
            .arg(capture)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn ring_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("ring"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Frames our reader reads before the end or an error, and whether it ended in an error.
fn our_frames(f: &Path) -> (usize, bool) {
    let Ok(mut src) = FileSource::open(f) else { return (0, true) };
    let mut n = 0;
    loop {
        match src.next_packet() {
            Ok(Some(_)) => n += 1,
            Ok(None) => return (n, false),
            Err(_) => return (n, true),
        }
    }
}

fn tshark_frames(f: &Path) -> (usize, bool, String) {
    let o = Command::new("tshark").arg("-r").arg(f).args(["-T", "fields", "-e", "frame.number"]).output().unwrap();
    let n = String::from_utf8_lossy(&o.stdout).lines().count();
    (n, o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn query(db: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn fifty_kill_9_under_load_leave_a_sound_store_readable_rings_and_mail_sent_exactly_once() {
    if !common::have_tshark() {
        return common::skip_or_fail("tshark is not installed");
    }
    if !Command::new("python3").args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success()) {
        return common::skip_or_fail("python3 aiosmtpd is not installed");
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let capture = dir.join("busy.pcapng");
    busy_capture(&capture);
    let port = free_port();
    let cfg = format!(
        "[store]\ndir = \"{d}\"\nring_file_size = \"256KiB\"\n\
         [mail]\nserver = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"mirrorwatch@branch.example\"\nto = [\"netadmin@example.com\"]\n\
         retry_initial = \"1s\"\nretry_max = \"1s\"\ntimeout = \"2s\"\n",
        d = dir.display()
    );
    std::fs::write(dir.join("mirrorwatch.toml"), cfg).unwrap();
    let db = dir.join("mirrorwatch.db");

    // A fixed pseudo-random sequence of kill times: mid-start, mid-replay, idle after it.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut torn = 0;
    let t0 = Instant::now();
    for round in 0..50 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let before = ring_files(dir);
        let mut d = start(dir, &capture);
        std::thread::sleep(Duration::from_millis(50 + seed % 1500));
        d.0.kill().unwrap();
        d.0.wait().unwrap();

        if db.exists() {
            let ok: String =
                rusqlite::Connection::open(&db).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
            assert_eq!(ok, "ok", "round {round}: integrity_check");
        }
        // Files of this run: only the newest may be torn, and both readers agree on its frames.
        let new: Vec<PathBuf> = ring_files(dir).into_iter().filter(|f| !before.contains(f)).collect();
        for (i, f) in new.iter().enumerate() {
            let (ours, our_err) = our_frames(f);
            let newest = i + 1 == new.len();
            assert!(!our_err || newest, "round {round}: {} is torn but not the newest", f.display());
            // tshark judges the newest file, the one a kill may tear.
            if newest {
                let (theirs, ok, err) = tshark_frames(f);
                assert_eq!(ours, theirs, "round {round}: {} read differently", f.display());
                assert!(ok || err.contains("cut short"), "round {round}: tshark: {err}");
            }
            torn += usize::from(our_err);
        }
    }
    eprintln!("50 kills in {:.0?}: {torn} ring files ended in a torn block", t0.elapsed());

    // The mail server is up now: what was queued goes out once, and stays sent.
    let received = dir.join("received");
    let mut smtp = Kill({
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/smtpd.py");
        let mut c = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--out"])
            .arg(&received)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(c.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        c
    });
    let queued = query(&db, "SELECT count(*) FROM outbox WHERE state = 'pending'");
    assert!(queued > 0, "the kills left mail queued");
    let mut d = start(dir, &capture);
    let deadline = Instant::now() + Duration::from_secs(120);
    while query(&db, "SELECT count(*) FROM outbox WHERE state = 'pending'") > 0
        || query(&db, "SELECT count(*) FROM evidence WHERE state = 'pending'") > 0
    {
        assert!(d.0.try_wait().unwrap().is_none(), "daemon exited");
        assert!(Instant::now() < deadline, "queue not drained");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3)); // a retry would send again now
    Command::new("kill").args(["-TERM", &d.0.id().to_string()]).status().unwrap();
    assert!(d.0.wait().unwrap().success());
    let _ = smtp.0.kill();

    let mut ids: Vec<String> = std::fs::read_dir(&received)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            v["message_id"].as_str().unwrap().to_string()
        })
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a mail arrived twice");
    let sent = query(&db, "SELECT count(*) FROM outbox WHERE state = 'sent'");
    assert_eq!(n as i64, sent, "every sent row arrived, once");
    assert!(sent >= queued, "the {queued} mails queued during the kills were sent");
    assert_eq!(query(&db, "SELECT count(*) FROM outbox WHERE state = 'failed'"), 0);

    // Every window left pending by a kill has been cut from the ring files of its run.
    let kept = query(&db, "SELECT count(*) FROM evidence WHERE state = 'kept'");
    let windows = query(&db, "SELECT count(*) FROM evidence");
    assert!(kept > 0 && windows > 0);
    eprintln!("{queued} mails queued and sent once; {kept} of {windows} evidence windows kept ({:.0?})", t0.elapsed());
    // A power cut can leave a half-written block at the end of the newest file (a kill does
    // not: the kernel has the whole write). Cut one mid-block: both readers stop at the same
    // frame, the last complete one.
    let ring = ring_files(dir);
    let whole = std::fs::read(&ring[ring.len() / 2]).unwrap();
    let cut = dir.join("torn.pcapng");
    std::fs::write(&cut, &whole[..whole.len() - 700]).unwrap();
    let (ours, torn) = our_frames(&cut);
    let (theirs, ok, err) = tshark_frames(&cut);
    assert!(torn && !ok && err.contains("cut short"), "{err}");
    assert_eq!(ours, theirs);
    assert!(ours > 0 && ours < our_frames(&ring[ring.len() / 2]).0);

    // Whole files (tshark, the slower judge, reads three of them).
    for (i, e) in std::fs::read_dir(dir.join("evidence")).unwrap().filter_map(|e| e.ok()).enumerate() {
        let (n, torn) = our_frames(&e.path());
        assert!(!torn && n > 0, "{}", e.path().display());
        if i < 3 {
            let (theirs, ok, err) = tshark_frames(&e.path());
            assert!(ok && theirs == n, "{}: {err}", e.path().display());
        }
    }
}
