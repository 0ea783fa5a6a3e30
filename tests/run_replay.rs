//! `mirrorwatch run --replay`: the daemon fed from a file stores what `analyze --db` stores and
//! stops cleanly on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn minute_totals(db: &std::path::Path) -> Option<(i64, i64)> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row("SELECT sum(packets), sum(retransmissions) FROM traffic_minute", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .ok()
}

#[test]
fn replay_daemon_stores_what_analyze_stores_and_stops_on_sigterm() {
    let file = common::lab_dir().join("lab-http-bulk-loss2.pcap");
    let tmp = tempfile::tempdir().unwrap();
    let (db_run, db_analyze) = (tmp.path().join("run.db"), tmp.path().join("analyze.db"));
    let st = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .arg("analyze")
        .arg(&file)
        .arg("--db")
        .arg(&db_analyze)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let want = minute_totals(&db_analyze).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["run", "--listen", "", "--config", "/dev/null", "--replay"])
        .arg(&file)
        .arg("--db")
        .arg(&db_run)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The daemon keeps running after the replay; wait until its data is visible.
    let deadline = Instant::now() + Duration::from_secs(30);
    while minute_totals(&db_run).and_then(|(p, _)| (p == want.0).then_some(())).is_none() {
        assert!(Instant::now() < deadline, "replay did not store its data in time");
        assert!(child.try_wait().unwrap().is_none(), "daemon exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "daemon must keep running after the replay");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(minute_totals(&db_run), Some(want));
    let conn = rusqlite::Connection::open(&db_run).unwrap();
    let flows: i64 = conn.query_row("SELECT count(*) FROM flows", [], |r| r.get(0)).unwrap();
    let conn2 = rusqlite::Connection::open(&db_analyze).unwrap();
    let flows2: i64 = conn2.query_row("SELECT count(*) FROM flows", [], |r| r.get(0)).unwrap();
    assert_eq!(flows, flows2);
}
