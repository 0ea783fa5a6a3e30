//! A store directory filled to the brim and freed again (a tiny tmpfs): writing stops, the
//! analysis goes on, nothing is lost, and the writer resumes by itself once there is room —
//! with the spell recorded in `health_events`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The daemon, stopped whatever happens to the test.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_bytes(p: &Path) -> u64 {
    fs4::available_space(p).unwrap()
}

#[test]
fn a_full_disk_stops_writing_and_loses_nothing_once_freed() {
    if !root() {
        common::skip_or_fail("the disk-full test mounts a tmpfs: it needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&store).status().unwrap();
    if !st.success() {
        common::skip_or_fail("mount -t tmpfs failed");
        return;
    }
    let _m = Mount(store.clone());
    let db = store.join("mirrorwatch.db");
    // A database with its schema, then a filler that leaves almost no room.
    let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .arg("analyze")
        .arg(common::lab_dir().join("lab-dns-dnsmasq.pcap"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let filler = store.join("filler");
    let room = free_bytes(&store);
    std::fs::write(&filler, vec![0u8; room.saturating_sub(8 * 1024) as usize]).ok();
    assert!(free_bytes(&store) < 64 * 1024, "{} bytes free", free_bytes(&store));
    let capture = common::lab_dir().join("lab-http-bulk-loss2.pcap");
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
            .args(["run", "--listen", "", "--config", "/dev/null", "--replay"])
            .arg(&capture)
            .arg("--db")
            .arg(&db)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Full: writes fail and are held.
    std::thread::sleep(Duration::from_secs(4));
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon died of a full disk");
    // (Not even a reader can open the database now: SQLite needs room for its shared memory.)
    assert!(rusqlite::Connection::open(&db).and_then(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))).is_err());
    // Freed: the writer resumes by itself and writes everything it held.
    std::fs::remove_file(&filler).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let stored = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT coalesce(sum(packets), 0) FROM traffic_minute", [], |r| r.get(0)).unwrap()
    };
    let frames = 1788;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&conn) - 79 < frames {
        assert!(Instant::now() < deadline, "only {} of {frames} frames stored after freeing", stored(&conn) - 79);
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status();
    let status = daemon.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut daemon.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("store failing") && err.contains("store recovered"), "{err}");
    assert_eq!(stored(&conn) - 79, frames);
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM health_events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        kinds.contains(&"store.failing".to_string()) && kinds.contains(&"store.recovered".to_string()),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"store.lost".to_string()), "events were lost: {kinds:?}");
}
