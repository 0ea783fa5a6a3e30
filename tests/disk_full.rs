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

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(o.status.success(), "failed: {cmd}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn wait_log(log: &Path, what: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {what:?} in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Live capture (a veth in namespaces, pings at 50/s) into a pcap ring on a tiny tmpfs: filled
/// to the brim, the ring gives back its old files, then stops writing while analysis goes on;
/// freed, it writes again by itself, and the shortage is an alert episode raised and cleared.
#[test]
fn the_ring_stops_on_a_full_disk_resumes_when_freed_and_disk_low_is_raised_and_cleared() {
    if !root() {
        common::skip_or_fail("the disk-full test mounts a tmpfs and makes namespaces: it needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    sh(&format!("mount -t tmpfs -o size=8m tmpfs {}", store.display()));
    let _m = Mount(store.clone());
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("disk.toml"), "[[alert]]\nid = \"disk-low\"\nevent = \"disk.low\"\nmail = false\n")
        .unwrap();

    let tag = format!("mwd{}", std::process::id() % 100_000);
    let (box_ns, sw_ns) = (format!("{tag}-box"), format!("{tag}-sw"));
    let (cap, peer) = (format!("{tag}c"), format!("{tag}s"));
    sh(&format!("ip netns add {box_ns} && ip netns add {sw_ns}"));
    let _ns = Netns(vec![box_ns.clone(), sw_ns.clone()]);
    sh(&format!(
        "ip link add {cap} type veth peer name {peer} && ip link set {cap} netns {box_ns} && ip link set {peer} netns {sw_ns} && \
         ip -n {box_ns} link set {cap} up && ip -n {sw_ns} addr add 10.67.0.2/24 dev {peer} && ip -n {sw_ns} link set {peer} up && \
         ip -n {sw_ns} neigh add 10.67.0.1 lladdr 02:00:00:00:00:01 dev {peer} nud permanent"
    ));
    let cfg = tmp.path().join("mirrorwatch.toml");
    // The fleet export (beside the full file system) carries the episode too.
    let events = tmp.path().join("events.jsonl");
    std::fs::write(
        &cfg,
        format!(
            "[store]\ndir = \"{}\"\nring_file_size = \"256KiB\"\n[export]\njsonl = \"{}\"\n",
            store.display(),
            events.display()
        ),
    )
    .unwrap();
    let log = tmp.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new("ip")
            .args(["netns", "exec", &box_ns, env!("CARGO_BIN_EXE_mirrorwatch"), "run", "--listen", "", "--config"])
            .arg(&cfg)
            .arg("--rules")
            .arg(&rules)
            .args(["--interface", &cap])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let _ping = Daemon(
        Command::new("ip")
            .args(["netns", "exec", &sw_ns, "ping", "-q", "-i", "0.02", "-s", "1200", "10.67.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_log(&log, "capturing on", 20);
    let ring_dir = store.join("ring");
    let ring_bytes = || -> u64 {
        std::fs::read_dir(&ring_dir)
            .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ring_bytes() < 300 * 1024 {
        assert!(Instant::now() < deadline, "the ring did not grow");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Full: the ring gives back its old files, then cannot write; the daemon goes on.
    let filler = store.join("filler");
    std::fs::write(&filler, vec![0u8; free_bytes(&store).saturating_sub(16 * 1024) as usize]).ok();
    wait_log(&log, "pcap ring: writing stopped", 30);
    wait_log(&log, "disk.low:", 30);
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon died of a full disk");

    // Freed: writing resumes by itself, and the episode is recorded raised and cleared.
    let freed_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    std::fs::remove_file(&filler).unwrap();
    wait_log(&log, "pcap ring: writing again", 30);
    wait_log(&log, "disk.low cleared", 30);
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status();
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap());

    let conn = rusqlite::Connection::open(store.join("mirrorwatch.db")).unwrap();
    let (state, cleared): (String, Option<i64>) = conn
        .query_row("SELECT state, cleared_us FROM alerts WHERE rule = 'disk-low' ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(state, "cleared");
    assert!(cleared.is_some());
    let exported: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event_type"] == "alert" && e["alert"]["rule"] == "disk-low")
        .map(|e| e["alert"]["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(exported, ["raised", "cleared"], "disk.low reaches the fleet export");
    assert_eq!(conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)).unwrap(), "ok");
    // The frames the ring could not keep are stored per minute (userland drops), all of those
    // the ring counted but the last second's.
    let ring_drops: i64 =
        conn.query_row("SELECT coalesce(sum(ring_drops), 0) FROM traffic_minute", [], |r| r.get(0)).unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap();
    let left_out: i64 = log_text
        .split("frames kept, ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the ring's last word");
    assert!(ring_drops > 0 && ring_drops <= left_out, "{ring_drops} stored of {left_out} left out");
    // The newest ring file holds pings captured after the disk was freed, and reads cleanly.
    let mut files: Vec<_> = std::fs::read_dir(&ring_dir).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    let newest = files.last().unwrap();
    let o =
        Command::new("tshark").arg("-r").arg(newest).args(["-T", "fields", "-e", "frame.time_epoch"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|t| t.split('.').next().unwrap().parse::<i64>().unwrap() * 1_000_000_000 > freed_at)
        .count();
    assert!(after > 10, "only {after} frames written after freeing");
}
