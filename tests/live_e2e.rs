//! Live end to end, as the box is deployed: a client and a server joined by a Linux bridge (the
//! branch switch), the bridge's traffic captured where a mirror port would deliver it, and the
//! same traffic sent through an ERSPAN type II remote-mirror session to a collector namespace
//! (tests/lab/mirror.py, a switch's mirror session; tc mirred is not available here). Real
//! programs make the three field cases:
//! - rising LAN retransmissions: HTTP downloads through 3 % loss on the bridge (nftables);
//! - a shared MAC: two users log in (HTTP Basic) from one MAC;
//! - a database deadlock: two psql sessions against a real PostgreSQL (with a wrong password,
//!   a duplicate key and a division by zero before it: tests/lab/pg-deadlock.sh).
//!
//! Two daemons run: one captures the bridge, one the collector's port (ERSPAN). Both mail a
//! real SMTP server. What each dashboard API and mailbox says must equal what
//! `mirrorwatch analyze` finds in a tcpdump of the bridge taken at the same time: identities,
//! application errors, retransmissions, alerts, mails.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(o.status.success(), "failed: {cmd}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).status().is_ok_and(|s| s.success())
}

fn pg_bin() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    v.sort();
    v.pop()
}

/// Namespaces and processes of the test, removed whatever happens.
#[derive(Default)]
struct Lab {
    ns: Vec<String>,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            if c.try_wait().ok().flatten().is_none() {
                let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).stderr(Stdio::null()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

impl Lab {
    /// Starts `args` in namespace `ns`; with `ready`, waits until its stdout says so.
    fn spawn(&mut self, ns: &str, args: &[&str], ready: Option<&str>, log: Option<&Path>) -> usize {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        cmd.stdout(if ready.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stderr(match log {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        });
        let mut c = cmd.spawn().unwrap();
        if let Some(word) = ready {
            let mut line = String::new();
            BufReader::new(c.stdout.take().unwrap()).read_line(&mut line).unwrap();
            assert!(line.contains(word), "{args:?} did not start: {line:?}");
        }
        self.children.push(c);
        self.children.len() - 1
    }

    fn stop(&mut self, i: usize, signal: &str) -> bool {
        let c = &mut self.children[i];
        let _ = Command::new("kill").args([signal, &c.id().to_string()]).status();
        c.wait().unwrap().success()
    }
}

fn wait_log(log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(log).unwrap_or_default().contains(what) {
        assert!(Instant::now() < deadline, "no {what:?} in {}", log.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A daemon's dashboard, asked from inside its namespace.
struct Api {
    ns: String,
    addr: String,
    cookies: PathBuf,
}

impl Api {
    fn login(ns: &str, log: &Path, cookies: PathBuf) -> Api {
        wait_log(log, "dashboard on http://");
        let text = std::fs::read_to_string(log).unwrap();
        let rest = &text[text.find("dashboard on http://").unwrap() + 20..];
        let api = Api { ns: ns.into(), addr: rest[..rest.find('/').unwrap()].into(), cookies };
        api.curl(&["-o", "/dev/null", "-d", "password=e2e-password", "/login"]);
        api
    }

    fn curl(&self, args: &[&str]) -> Vec<u8> {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let last = a.pop().unwrap();
        a.push(format!("http://{}{last}", self.addr));
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-s", "-f", "-b"])
            .arg(&self.cookies)
            .arg("-c")
            .arg(&self.cookies)
            .args(&a)
            .output()
            .unwrap();
        assert!(o.status.success(), "curl {a:?}");
        o.stdout
    }

    fn get(&self, path: &str) -> Value {
        serde_json::from_slice(&self.curl(&[path])).unwrap()
    }
}

/// The figures both sides must agree on.
#[derive(Debug, PartialEq)]
struct Findings {
    /// (MAC, user) of every login.
    logins: BTreeSet<(String, String)>,
    /// (family, code) → count of application errors.
    errors: BTreeSet<(String, String, u64)>,
    /// TCP retransmissions (every address here is private).
    retransmissions: u64,
    /// (rule, key) of every alert.
    alerts: BTreeSet<(String, String)>,
}

/// (MAC, user) of every identity with a user.
fn logins(list: &Value) -> BTreeSet<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|i| i["user"].as_str().is_some_and(|u| !u.is_empty()))
        .map(|i| (i["mac"].as_str().unwrap_or("").to_string(), i["user"].as_str().unwrap().to_string()))
        .collect()
}

/// (rule, key) of every alert.
fn rule_keys(list: &Value) -> BTreeSet<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| (a["rule"].as_str().unwrap().to_string(), a["key"].as_str().unwrap().to_string()))
        .collect()
}

/// Application errors summed by (family, code), each item counting `count(item)`.
fn by_code(list: &Value, count: impl Fn(&Value) -> u64) -> BTreeSet<(String, String, u64)> {
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for e in list.as_array().unwrap() {
        *counts.entry((e["family"].as_str().unwrap().into(), e["code"].as_str().unwrap().into())).or_default() +=
            count(e);
    }
    counts.into_iter().map(|((f, c), n)| (f, c, n)).collect()
}

fn from_api(api: &Api) -> Findings {
    let r = api.get("/api/retransmissions?range=24h");
    Findings {
        logins: logins(&api.get("/api/identities?q=")["identities"]),
        errors: by_code(&api.get("/api/app-errors?range=24h")["kinds"], |e| e["count"].as_u64().unwrap()),
        retransmissions: r["pairs"].as_array().unwrap().iter().map(|p| p["retransmissions"].as_u64().unwrap()).sum(),
        alerts: rule_keys(&api.get("/api/alerts")["alerts"]),
    }
}

fn from_analyze(v: &Value) -> Findings {
    Findings {
        logins: logins(&v["identities"]),
        errors: by_code(&v["app_errors"], |_| 1),
        retransmissions: v["tcp"]["retransmissions"].as_u64().unwrap(),
        alerts: rule_keys(&v["alerts"]),
    }
}

/// `mirrorwatch analyze --rules rules --json` over capture files.
fn analyze(files: &[PathBuf]) -> Value {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .arg("analyze")
        .args(files)
        .arg("--rules")
        .arg(&rules)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Subjects of the mails a server received.
fn subjects(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            v["subject"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn field_cases_on_a_bridge_and_through_an_erspan_mirror_match_analyze_of_a_tcpdump() {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let pg = pg_bin();
    let aiosmtpd = Command::new("python3").args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success());
    if !root
        || pg.is_none()
        || !aiosmtpd
        || !["ip", "nft", "tcpdump", "curl", "psql", "runuser"].iter().all(|t| have(t))
    {
        return common::skip_or_fail(
            "the live end-to-end test needs root, iproute2, nftables, tcpdump, curl, PostgreSQL and python3-aiosmtpd",
        );
    }
    let pg = pg.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sh(&format!("chmod 755 {}", dir.display()));
    let mut lab = Lab::default();
    let tag = format!("mwe{}", std::process::id() % 100_000);
    let [sw, cli, srv, col] = ["sw", "cli", "srv", "col"].map(|h| format!("{tag}-{h}"));
    for n in [&sw, &cli, &srv, &col] {
        sh(&format!("ip netns add {n} && ip -n {n} link set lo up && ip netns exec {n} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"));
        lab.ns.push(n.clone());
    }
    // The switch: a bridge with the client's and the server's ports, 3 % of the web server's
    // frames lost on the way (a bad cable; the database's are spared, so the two sessions'
    // timing that makes the deadlock holds). Its mirror uplink to the collector is routed, not bridged;
    // the collector's port, like the box's, has no address and sends nothing (the switch knows
    // its MAC).
    sh(&format!(
        "ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up promisc on && \
         ip link add {tag}c type veth peer name {tag}C && ip link set {tag}c netns {cli} && ip link set {tag}C netns {sw} && \
         ip link add {tag}s type veth peer name {tag}S && ip link set {tag}s netns {srv} && ip link set {tag}S netns {sw} && \
         ip link add {tag}m type veth peer name {tag}M && ip link set {tag}m netns {col} && ip link set {tag}M netns {sw} && \
         ip -n {sw} link set {tag}C master br0 up && ip -n {sw} link set {tag}S master br0 up && \
         ip -n {cli} link set {tag}c address 02:00:00:00:0e:01 up && ip -n {cli} addr add 10.78.0.10/24 dev {tag}c && \
         ip -n {srv} link set {tag}s address 02:00:00:00:0e:02 up && ip -n {srv} addr add 10.78.0.20/24 dev {tag}s && \
         ip -n {sw} link set {tag}M mtu 9000 up && ip -n {sw} addr add 10.78.9.1/24 dev {tag}M && \
         ip -n {col} link set {tag}m address 02:00:00:00:0e:09 mtu 9000 up && \
         ip -n {sw} neigh add 10.78.9.2 lladdr 02:00:00:00:0e:09 dev {tag}M nud permanent"
    ));
    for (n, i) in
        [(&cli, format!("{tag}c")), (&srv, format!("{tag}s")), (&sw, format!("{tag}C")), (&sw, format!("{tag}S"))]
    {
        let _ = Command::new("ip")
            .args(["netns", "exec", n, "ethtool", "-K", &i, "tso", "off", "gso", "off", "gro", "off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let mut nft =
        Command::new("ip").args(["netns", "exec", &sw, "nft", "-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    nft.stdin
        .take()
        .unwrap()
        .write_all(b"table bridge lab {\n chain loss {\n  type filter hook forward priority 0; policy accept;\n  ip saddr 10.78.0.20 tcp sport 8080 numgen random mod 1000 < 30 drop\n }\n}\n")
        .unwrap();
    assert!(nft.wait().unwrap().success());

    // Servers: HTTP with a 2 MB file, PostgreSQL with a table two sessions will fight over.
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("big.bin"), vec![7u8; 2_000_000]).unwrap();
    std::fs::write(www.join("index.html"), "ok\n").unwrap();
    lab.spawn(
        &srv,
        &["python3", "-m", "http.server", "8080", "--bind", "10.78.0.20", "--directory", www.to_str().unwrap()],
        None,
        None,
    );
    let (pgdata, pgsock) = (dir.join("pg"), dir.join("pgsock"));
    sh(&format!(
        "mkdir -p {d} {s} && chown postgres: {d} {s} && runuser -u postgres -- {b}/initdb -D {d} -A trust -U postgres >/dev/null && \
         echo 'host all all 0.0.0.0/0 scram-sha-256' >> {d}/pg_hba.conf",
        d = pgdata.display(),
        s = pgsock.display(),
        b = pg.display()
    ));
    let pglog = dir.join("pg.log");
    lab.spawn(
        &srv,
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            pg.join("postgres").to_str().unwrap(),
            "-D",
            pgdata.to_str().unwrap(),
            "-c",
            "listen_addresses=10.78.0.20",
            "-c",
            &format!("unix_socket_directories={}", pgsock.display()),
            "-c",
            "deadlock_timeout=200ms",
            "-c",
            "ssl=off",
        ],
        None,
        Some(&pglog),
    );
    wait_log(&pglog, "ready to accept connections");
    sh(&format!(
        "ip netns exec {srv} runuser -u postgres -- psql -h {s} -q -c \"create user app password 'apppw'\" -c 'create database shop owner app' >/dev/null && \
         ip netns exec {srv} runuser -u postgres -- psql -h {s} -q -U app -d shop -c \"create table items (id int primary key, name text); insert into items values (1, 'x'), (2, 'y')\" >/dev/null",
        s = pgsock.display()
    ));

    // Mail servers (one per daemon, on each namespace's loopback) and the dashboard password.
    let smtpd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/smtpd.py");
    for (n, name) in [(&sw, "bridge"), (&col, "erspan")] {
        let out = dir.join(format!("mail-{name}"));
        lab.spawn(
            n,
            &["python3", smtpd.to_str().unwrap(), "--port", "2525", "--out", out.to_str().unwrap()],
            Some("ready"),
            None,
        );
    }
    let pwfile = dir.join("dashboard.pw");
    let cfg = |name: &str, iface: &str| -> PathBuf {
        let p = dir.join(format!("{name}.toml"));
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(
            &p,
            format!(
                "[capture]\ninterface = \"{iface}\"\n[store]\ndir = \"{d}\"\n[web]\nlisten = \"127.0.0.1:8080\"\npassword_file = \"{pw}\"\n\
                 [mail]\nserver = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom = \"mirrorwatch@branch.example\"\n\
                 to = [\"netadmin@example.com\"]\nretry_initial = \"1s\"\nretry_max = \"2s\"\n",
                d = dir.join(name).display(),
                pw = pwfile.display()
            ),
        )
        .unwrap();
        p
    };
    let (cfg_bridge, cfg_erspan) = (cfg("bridge", "br0"), cfg("erspan", &format!("{tag}m")));
    let mut pw = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["passwd", "--password-stdin", "--config"])
        .arg(&cfg_bridge)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    pw.stdin.take().unwrap().write_all(b"e2e-password\n").unwrap();
    assert!(pw.wait().unwrap().success());

    // The daemons, tcpdump on the bridge, and the mirror session.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mw = env!("CARGO_BIN_EXE_mirrorwatch");
    let (log_b, log_e) = (dir.join("bridge.log"), dir.join("erspan.log"));
    let (log_td, log_tc) = (dir.join("tcpdump-bridge.log"), dir.join("tcpdump-erspan.log"));
    let run = |c: &Path| {
        vec![
            mw.to_string(),
            "run".into(),
            "--config".into(),
            c.display().to_string(),
            "--rules".into(),
            rules.display().to_string(),
        ]
    };
    let args_b = run(&cfg_bridge);
    let args_e = run(&cfg_erspan);
    let d_bridge = lab.spawn(&sw, &args_b.iter().map(String::as_str).collect::<Vec<_>>(), None, Some(&log_b));
    let d_erspan = lab.spawn(&col, &args_e.iter().map(String::as_str).collect::<Vec<_>>(), None, Some(&log_e));
    let wire = dir.join("bridge.pcap");
    let td = lab.spawn(
        &sw,
        &["tcpdump", "-i", "br0", "-s", "1600", "-U", "-w", wire.to_str().unwrap()],
        None,
        Some(&log_td),
    );
    // And a tcpdump where the mirror session arrives.
    let wire_col = dir.join("erspan.pcap");
    let port_col = format!("{tag}m");
    let tc = lab.spawn(
        &col,
        &["tcpdump", "-i", &port_col, "-s", "1600", "-U", "-w", wire_col.to_str().unwrap()],
        None,
        Some(&log_tc),
    );
    let mirror = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/mirror.py");
    let mi = lab.spawn(&sw, &["python3", mirror.to_str().unwrap(), "br0", "10.78.9.2", "erspan2"], Some("ready"), None);
    for l in [&log_b, &log_e] {
        wait_log(l, "capturing on");
    }
    wait_log(&log_td, "listening on");
    wait_log(&log_tc, "listening on");
    std::thread::sleep(Duration::from_secs(1));

    // The field cases.
    let client = |cmd: &str| {
        let _ = Command::new("ip")
            .args(["netns", "exec", &cli, "sh", "-c", cmd])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    client("curl -s -m 10 -u alice:wonderland http://10.78.0.20:8080/index.html; curl -s -m 10 -u bob:builder http://10.78.0.20:8080/index.html");
    client("for i in 1 2 3; do curl -s -m 30 --limit-rate 4M -o /dev/null http://10.78.0.20:8080/big.bin; done");
    let pg_client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/pg-deadlock.sh");
    client(&format!("bash {} 10.78.0.20", pg_client.display()));
    std::thread::sleep(Duration::from_secs(2));
    lab.stop(mi, "-TERM");
    lab.stop(td, "-INT");
    lab.stop(tc, "-INT");

    // analyze on the tcpdump of the bridge.
    let summary = analyze(std::slice::from_ref(&wire));
    let want = from_analyze(&summary);
    assert!(want.logins.len() >= 2, "two users on one MAC: {want:?}");
    assert!(want.errors.iter().any(|(_, c, _)| c == "40P01"), "a deadlock: {want:?}");
    assert!(want.retransmissions >= 10, "loss makes retransmissions: {want:?}");
    assert!(want.alerts.iter().any(|(r, _)| r == "shared-mac") && want.alerts.iter().any(|(r, _)| r == "db-deadlock"));

    // The mirror session's own tcpdump: the same frames, the same findings, in ERSPAN.
    let summary_col = analyze(std::slice::from_ref(&wire_col));
    assert_eq!(summary_col["packets"], summary["packets"], "the mirror session carried every frame");

    // Each daemon's dashboard says the same, and each mailed the same alerts.
    std::thread::sleep(Duration::from_secs(2));
    for (name, ns, log, d, same_port) in
        [("bridge", &sw, &log_b, d_bridge, summary.clone()), ("erspan", &col, &log_e, d_erspan, summary_col.clone())]
    {
        let api = Api::login(ns, log, dir.join(format!("{name}.cookies")));
        let got = from_api(&api);
        let packets = api.get("/api/status")["packets"].as_u64().unwrap();
        // Every frame the tcpdump got, the daemon got (through the mirror session too).
        assert_eq!(packets, summary["packets"].as_u64().unwrap(), "{name}: frames");
        let port = from_analyze(&same_port);
        // Logins, errors and alerts: exactly what analyze finds in the tcpdump.
        assert_eq!((&got.logins, &got.errors, &got.alerts), (&want.logins, &want.errors, &want.alerts), "{name}");
        // Retransmissions: exactly what analyze (and tshark) find in the frames as the daemon
        // saw them (its pcap ring). Two packet taps on one port of a 2-CPU machine (the
        // daemon's and tcpdump's) receive frames that cross at the same instant in different
        // orders, so a tcpdump of the same port may classify a few differently: within 5 %.
        let mut ring: Vec<PathBuf> =
            std::fs::read_dir(dir.join(name).join("ring")).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
        ring.sort();
        let own_json = analyze(&ring);
        let own = from_analyze(&own_json);
        assert_eq!(
            (got.retransmissions, &got.errors),
            (own.retransmissions, &own.errors),
            "{name}: the dashboard differs from analyze of the daemon's own frames"
        );
        // The ring keeps user names where they are no secret (a database's startup message),
        // never a credential: no HTTP Basic login reads back from it, and no lab password (plain
        // or base64) is in its bytes.
        let basic = own_json["identities"].as_array().unwrap().iter().filter(|i| i["source"] == "http-basic").count();
        assert_eq!(basic, 0, "{name}: the ring holds no credentials to log in with");
        for f in &ring {
            let bytes = std::fs::read(f).unwrap();
            for secret in common::lab_secrets().iter().chain([b"apppw".to_vec()].iter()) {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                    "{name}: {} holds {:?}",
                    f.display(),
                    String::from_utf8_lossy(secret)
                );
            }
        }
        let off = got.retransmissions.abs_diff(port.retransmissions);
        assert!(
            off <= 3.max(port.retransmissions / 20),
            "{name}: {} retransmissions, tcpdump's file {}",
            got.retransmissions,
            port.retransmissions
        );
        eprintln!(
            "{name}: {packets} frames; retransmissions {} (dashboard) / {} (its frames) / {} (tcpdump of its port) / {} (tcpdump of the bridge)",
            got.retransmissions, own.retransmissions, port.retransmissions, want.retransmissions
        );
        let mails = dir.join(format!("mail-{name}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while subjects(&mails).len() < 2 {
            assert!(Instant::now() < deadline, "{name}: mails {:?}", subjects(&mails));
            std::thread::sleep(Duration::from_millis(200));
        }
        let s = subjects(&mails);
        assert!(s.iter().any(|s| s.contains("40P01")), "{name}: {s:?}");
        assert!(s.iter().any(|s| s.contains("Several users")), "{name}: {s:?}");
        assert!(lab.stop(d, "-TERM"), "{name}: the daemon did not stop cleanly");
    }
}
