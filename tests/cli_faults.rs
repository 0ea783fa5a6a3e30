//! The command line as a careless hand or a shell pipeline uses it: a mistyped rule directory
//! and a bad `--format` are usage errors (exit 2, before anything runs), a reader that stops
//! reading (`| head`) ends the output quietly with 0, a replay of a missing file stops at once
//! (exit 1), and SIGHUP reloads instead of killing, whatever the mode.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
}

fn rules() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

#[test]
fn a_mistyped_rule_directory_or_format_is_a_usage_error() {
    let clean = common::lab_dir().join("lab-http-clean.pcap");
    let o = mw().args(["rules", "check", "/nonexistent-rules"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such rule directory"));
    let o = mw().arg("analyze").arg(&clean).args(["--rules", "/typo-rules"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "nothing analysed without the rules asked for");
    let dir = tempfile::tempdir().unwrap();
    let o = mw()
        .args(["run", "--listen", "", "--config", "/dev/null", "--rules", "/typo-rules", "--replay"])
        .arg(&clean)
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // The same directory named in the configuration.
    let cfg = dir.path().join("typo.toml");
    std::fs::write(&cfg, "[rules]\ndir = \"/typo-rules\"\n").unwrap();
    let o = mw()
        .args(["run", "--listen", "", "--config"])
        .arg(&cfg)
        .arg("--replay")
        .arg(&clean)
        .arg("--db")
        .arg(dir.path().join("y.db"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let diff = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diff");
    let o = mw()
        .arg("diff")
        .arg(diff.join("diff-web-normal.pcap"))
        .arg(diff.join("diff-web-failure.pcap"))
        .args(["--format", "xml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    // Enough output to fill the pipe: 200 copies of a lab capture.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    common::loop_captures(&[common::lab_dir().join("lab-http-bulk-loss2.pcap")], 200, 60, 1_780_000_000, &big);
    for args in [vec!["filter", "tcp"], vec!["analyze"]] {
        let mut child = mw()
            .args(&args)
            .arg(&big)
            .args(if args[0] == "analyze" { vec!["--json", "--rules"] } else { vec![] })
            .args(if args[0] == "analyze" { vec![rules()] } else { vec![] })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then close the pipe (what `| head -c1` does).
        let mut out = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        std::io::Read::read_exact(&mut out, &mut one).unwrap();
        drop(out);
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

#[test]
fn a_replay_of_a_missing_file_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = mw()
        .args(["run", "--listen", "", "--config", "/dev/null", "--replay", "/nonexistent/missing.pcap", "--rules"])
        .arg(rules())
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.pcap"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn sighup_reloads_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mw.toml");
    std::fs::write(&config, format!("[web]\npassword_file = \"{}\"\n", dir.path().join("pw").display())).unwrap();
    common::set_password(&config, "sighup test 1");
    let clean = common::lab_dir().join("lab-http-clean.pcap");
    // A replay long enough that the first SIGHUP comes while it is still reading the file.
    let long = dir.path().join("long.pcap");
    common::loop_captures(std::slice::from_ref(&clean), 400, 60, 1_790_000_000, &long);
    let replay = mw()
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--rules")
        .arg(rules())
        .arg("--replay")
        .arg(&long)
        .arg("--db")
        .arg(dir.path().join("replay.db"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("replay.log")).unwrap())
        .spawn()
        .unwrap();
    let serve = mw()
        .arg("analyze")
        .arg(&clean)
        .arg("--rules")
        .arg(rules())
        .arg("--config")
        .arg(&config)
        .args(["--serve", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut children = [common::Stopped(replay), common::Stopped(serve)];
    std::thread::sleep(Duration::from_millis(300));
    let during = std::fs::read_to_string(dir.path().join("replay.log")).unwrap_or_default();
    assert!(!during.contains("replayed"), "the replay ended before the first SIGHUP: {during}");
    assert!(Command::new("kill").args(["-HUP", &children[0].0.id().to_string()]).status().unwrap().success());
    std::thread::sleep(Duration::from_secs(3));
    for c in &children {
        assert!(Command::new("kill").args(["-HUP", &c.0.id().to_string()]).status().unwrap().success());
    }
    std::thread::sleep(Duration::from_secs(2));
    for c in &mut children {
        let log = std::fs::read_to_string(dir.path().join("replay.log")).unwrap_or_default();
        assert!(c.0.try_wait().unwrap().is_none(), "SIGHUP ended {:?}: {log}", c.0.id());
    }
}

#[test]
fn analyze_into_a_database_that_cannot_be_opened_says_so_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Below a plain file: no one (root neither) can make a directory there.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "not a directory").unwrap();
    let started = Instant::now();
    let o = mw()
        .arg("analyze")
        .arg(common::lab_dir().join("lab-http-clean.pcap"))
        .arg("--db")
        .arg(plain.join("x.db"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--db") && err.contains("plain/x.db"), "{err}");
    assert!(o.stdout.is_empty(), "nothing analysed into nowhere");
    // Before: a minute of retries (the daemon's patience), then the same error.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
