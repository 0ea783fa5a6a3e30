//! The daemon's faults as the field meets them, over real processes: SIGTERM while another
//! process holds the store's write lock (systemd's TimeoutStopSec is 10 s), and restarts that
//! must clear the alerts the previous run left active.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

fn mw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
}

fn rules() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn signal(child: &std::process::Child, sig: &str) {
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
}

/// Waits up to `limit` for the child to end; its exit code and how long it took.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> (Option<i32>, Duration) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code(), t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (None, t.elapsed())
}

#[test]
fn sigterm_while_another_process_holds_the_write_lock_ends_within_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // Enough traffic (alerts, evidence windows, identities) that the replay is still running
    // when the lock is taken: lab captures looped 300 times.
    let lab = common::lab_dir();
    let files: Vec<_> =
        ["lab-mail-dovecot.pcap", "lab-kerberos-kdc.pcap", "lab-http-nginx-5xx.pcap", "lab-nat-two-users-basic.pcap"]
            .iter()
            .map(|f| lab.join(f))
            .collect();
    let big = dir.path().join("loop.pcap");
    let frames = common::loop_captures(&files, 300, 60, 1_790_000_000, &big);
    assert!(frames > 50_000, "{frames}");
    let store = dir.path().join("store");
    let config = dir.path().join("mw.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndir = \"{}\"\ndisk_budget = \"256MiB\"\n[web]\npassword_file = \"{}\"\n",
            store.display(),
            dir.path().join("pw").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut child = mw()
        .args(["run", "--listen", "", "--config"])
        .arg(&config)
        .arg("--rules")
        .arg(rules())
        .arg("--replay")
        .arg(&big)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Another process (an admin's sqlite3 shell, a backup) takes the write lock once the schema
    // is there and holds it.
    let db = store.join("mirrorwatch.db");
    let t = Instant::now();
    let admin = loop {
        assert!(t.elapsed() < Duration::from_secs(30), "no store after 30 s");
        if db.exists() {
            if let Ok(c) = Connection::open(&db) {
                let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap_or(0);
                if v > 0 && c.execute_batch("BEGIN EXCLUSIVE").is_ok() {
                    break c;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The daemon goes on capturing behind the lock for a while, then is told to stop.
    std::thread::sleep(Duration::from_secs(4));
    assert!(child.try_wait().unwrap().is_none(), "the daemon ended under the lock");
    signal(&child, "-TERM");
    let (code, took) = wait_exit(&mut child, Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).unwrap();
    drop(admin);
    assert!(code.is_some(), "still running 30 s after SIGTERM under the lock:\n{text}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?} (TimeoutStopSec is 10 s):\n{text}");
    assert!(text.contains("events could not be stored"), "says what it lost:\n{text}");
    eprintln!("exit {code:?} {took:?} after SIGTERM under the lock");
    // What was stored before the lock is intact and the store opens again.
    let c = Connection::open(&db).unwrap();
    let ok: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}

/// Starts `run --replay FILE` on `store`, waits until the file is replayed, stops it with
/// SIGTERM and returns its log.
fn replay_then_stop(store: &std::path::Path, config: &std::path::Path, file: &std::path::Path) -> String {
    let log = store.with_extension(format!("{}.log", file.file_stem().unwrap().to_string_lossy()));
    let mut child = mw()
        .args(["run", "--listen", "", "--config"])
        .arg(config)
        .arg("--rules")
        .arg(rules())
        .arg("--replay")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(&log).unwrap().contains("replayed") {
        assert!(t.elapsed() < Duration::from_secs(60), "not replayed in 60 s");
        assert!(child.try_wait().unwrap().is_none(), "ended: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last alerts and the end-of-input cuts are stored within a second or two.
    std::thread::sleep(Duration::from_secs(2));
    signal(&child, "-TERM");
    let (code, _) = wait_exit(&mut child, Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(0), "{text}");
    text
}

fn active_by_rule_key(db: &std::path::Path) -> Vec<(String, String, i64)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT rule, key, count(*) FROM alerts WHERE state = 'active' GROUP BY rule, key ORDER BY rule, key")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

#[test]
fn restarts_continue_and_clear_the_episodes_they_find_active() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = dir.path().join("mw.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndir = \"{}\"\nring = false\n[web]\npassword_file = \"{}\"\n",
            store.display(),
            dir.path().join("pw").display()
        ),
    )
    .unwrap();
    let db = store.join("mirrorwatch.db");
    let lab = common::lab_dir();
    let noisy = [
        lab.join("lab-http-nginx-5xx.pcap"),
        lab.join("lab-nat-two-users-basic.pcap"),
        lab.join("lab-pgsql-errors.pcap"),
    ];
    // Six runs, each a restart of the box a few minutes after the last, the same trouble
    // going on: the episodes of the first run go on, none is opened twice.
    let t0 = 1_790_000_000u64;
    let active_ids = || -> std::collections::BTreeSet<i64> {
        let c = Connection::open(&db).unwrap();
        let mut st = c.prepare("SELECT id FROM alerts WHERE state = 'active'").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    let mut previous = std::collections::BTreeSet::new();
    for run in 0..6u64 {
        let file = dir.path().join(format!("noisy{run}.pcap"));
        common::loop_captures(&noisy, 3, 60, t0 + run * 240, &file);
        let log = replay_then_stop(&store, &config, &file);
        let active = active_by_rule_key(&db);
        assert!(!active.is_empty(), "the noisy captures raise alerts");
        let dup: Vec<_> = active.iter().filter(|a| a.2 > 1).collect();
        assert!(dup.is_empty(), "run {run}: one alert and key active more than once: {dup:?}\n{log}");
        if run > 0 {
            assert!(log.contains("active episodes"), "{log}");
            // The same rows go on (not cleared at the start and opened anew).
            let now = active_ids();
            assert!(
                now.intersection(&previous).next().is_some(),
                "run {run}: no episode continued: {previous:?} -> {now:?}"
            );
        }
        previous = active_ids();
    }
    let before: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM alerts WHERE state = 'active'", [], |r| r.get(0))
        .unwrap();
    // A rule that no longer exists: its episode is cleared at the next start, not left forever.
    Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO alerts (rule, key, severity, since_us, state, summary, count, mail, suppressed, context)
             VALUES ('removed-rule', 'k', 'warning', ?1, 'active', 'from a rule since deleted', 1, 0, 0, '{}')",
            [(t0 as i64) * 1_000_000],
        )
        .unwrap();
    // Then the trouble is over: an hour later only quiet traffic. Every episode clears, by the
    // rule that raised it (event episodes a window after their last event, counter episodes at
    // the first minute below their threshold).
    let quiet = dir.path().join("quiet.pcap");
    common::loop_captures(&[lab.join("lab-http-clean.pcap")], 30, 60, t0 + 6 * 240 + 3600, &quiet);
    let log = replay_then_stop(&store, &config, &quiet);
    let left = active_by_rule_key(&db);
    assert!(left.is_empty(), "{before} active before the quiet hour, left after it: {left:?}\n{log}");
    let c = Connection::open(&db).unwrap();
    let removed: String =
        c.query_row("SELECT state FROM alerts WHERE rule = 'removed-rule'", [], |r| r.get(0)).unwrap();
    assert_eq!(removed, "cleared");
    eprintln!("{before} episodes active across 6 restarts, 0 after the quiet hour");
}
