//! Application errors (`app_errors[]`) against the tshark oracle of the shared corpus and the
//! lab captures of real database and web servers (tests/lab/make-captures.sh).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use mirrorwatch::analyzers::errors::ErrorFramer;
use mirrorwatch::analyzers::tds::framer as tds;
use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;
use mirrorwatch::decode::{decode, Transport};
use serde_json::Value;

fn analyze(file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").arg(file).arg("--json").output().unwrap();
    assert!(out.status.success() || out.status.code() == Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

type Key = (u64, String, String, String);

fn ours(v: &Value) -> BTreeSet<Key> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    v["app_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["frame"].as_u64().unwrap(), s(&e["family"]), s(&e["code"]), s(&e["message"])))
        .collect()
}

/// (frame, family, code, message) the oracle lists. PostgreSQL NOTICEs (NoticeResponse) are
/// notices, not errors, and are left out.
fn expected(errors: &Value) -> BTreeSet<Key> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut want = BTreeSet::new();
    let lists = [
        ("mysql_errors", "mysql", "mysql.error_code", "mysql.error.message"),
        ("pgsql_errors", "postgresql", "pgsql.code", "pgsql.message"),
        ("tds_errors", "tds", "tds.error.number", "tds.error.msgtext"),
        ("http_5xx", "http", "http.response.code", "http.response.phrase"),
    ];
    for (list, family, code, msg) in lists {
        for e in errors[list].as_array().into_iter().flatten() {
            if list == "pgsql_errors" && !matches!(e["pgsql.severity"].as_str(), Some("ERROR" | "FATAL" | "PANIC")) {
                continue;
            }
            want.insert((e["frame"].as_u64().unwrap(), family.to_string(), s(&e[code]), s(&e[msg])));
        }
    }
    want
}

#[test]
fn errors_match_the_tshark_oracle_on_every_corpus_file() {
    let Some(dir) = common::corpus_dir() else { return };
    let oracle: Value = serde_json::from_slice(&std::fs::read(dir.join("oracle/corpus-oracle.json")).unwrap()).unwrap();
    let (mut files, mut errors) = (0, 0);
    for (name, f) in oracle["files"].as_object().unwrap() {
        let want = expected(&f["app_errors"]);
        let got = ours(&analyze(&dir.join(name)));
        assert_eq!(got, want, "{name}");
        files += 1;
        errors += want.len();
    }
    // Every file is checked: most must report nothing (the HTTP text inside PostgreSQL rows of
    // pgsql-large-results-cut-mid-packet is the trap for "HTTP/1.1 500" scanners).
    assert!(files >= 60 && errors >= 49, "{files} files, {errors} errors");
}

#[test]
fn tds_token_scanner_finds_the_info_tokens_tshark_shows() {
    // No corpus capture holds a TDS ERROR token; INFO tokens (0xAB) have the same layout, and
    // tshark shows tds.info.number 5701, 5703 in frame 7 of this login exchange.
    let Some(dir) = common::corpus_dir() else { return };
    let mut src = FileSource::open(&dir.join("tds7-login-batch.pcap")).unwrap();
    let mut framer = tds::Framer::with_info();
    let mut seen = Vec::new();
    while let Some(pkt) = src.next_packet().unwrap() {
        let d = decode(&pkt);
        if let Transport::Tcp(t) = d.transport {
            if t.src_port == 1433 && !d.payload.is_empty() {
                let mut found = Vec::new();
                framer.feed(d.payload, &mut found);
                seen.extend(found.into_iter().map(|f| (pkt.frame, f.code)));
            }
        }
    }
    assert_eq!(seen, vec![(7, "5701".to_string()), (7, "5703".to_string())]);
}

#[test]
fn http_and_app_error_fields_in_filters() {
    // http.* is shown on the frame that completes the message, as in Wireshark (the
    // differential test covers more); app_error.* on the frame that completes the error.
    let Some(dir) = common::corpus_dir() else { return };
    let frames = |expr: &str, file: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).args(["filter", expr]).arg(dir.join(file)).output();
        String::from_utf8(out.unwrap().stdout).unwrap().lines().map(|l| l.parse::<u64>().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(frames("http.response.code >= 500", "http-500-head.pcap"), vec![6]);
    assert_eq!(frames("http.request.method == \"HEAD\"", "http-500-head.pcap"), vec![4]);
    assert_eq!(frames("http.response.code == 500", "http-500-internal-server-error.pcap"), vec![7]);
    assert_eq!(frames("http.response.code >= 500", "mixed-realworld-http5xx-1kxun.pcap"), vec![634, 724, 1060, 1076]);
    assert_eq!(
        frames("app_error.family == \"mysql\" && app_error.code == \"1045\"", "mysql-access-denied-1045.pcap"),
        vec![8]
    );
}

/// Every lab capture: (frame, family, code) exactly as tshark reported them when the capture
/// was made (`app_errors` of the .expected.json), from real PostgreSQL, MariaDB and nginx.
#[test]
fn lab_errors_match_what_tshark_reported_at_capture_time() {
    let mut checked = BTreeSet::new();
    for pcap in common::captures_in(&common::lab_dir()) {
        let exp: Value = serde_json::from_slice(&std::fs::read(pcap.with_extension("expected.json")).unwrap()).unwrap();
        let Some(list) = exp["app_errors"].as_array() else { continue };
        let want: BTreeSet<(u64, String, String)> = list
            .iter()
            .map(|e| {
                (e["frame"].as_u64().unwrap(), e["family"].as_str().unwrap().into(), e["code"].as_str().unwrap().into())
            })
            .collect();
        let got: BTreeSet<(u64, String, String)> =
            ours(&analyze(&pcap)).into_iter().map(|(f, fam, c, _)| (f, fam, c)).collect();
        assert_eq!(got, want, "{}", pcap.display());
        checked.extend(want.into_iter().map(|(_, fam, code)| format!("{fam} {code}")));
    }
    for must in [
        "postgresql 40P01",
        "postgresql 28P01",
        "postgresql 23505",
        "mysql 1213",
        "mysql 1045",
        "mysql 1062",
        "http 500",
        "http 502",
        "http 503",
    ] {
        assert!(checked.contains(must), "no lab capture verifies {must}: {checked:?}");
    }
}

/// (frame, family, code, message) of the errors tshark shows, the port decoded as `proto`.
fn tshark_errors(file: &Path, port: u64, proto: &str) -> BTreeSet<Key> {
    let decode = format!("tcp.port=={port},{proto}");
    let (family, filter, fields) = match proto {
        "mysql" => ("mysql", "mysql.error_code", ["mysql.error_code", "mysql.error.message"]),
        "pgsql" => (
            "postgresql",
            "pgsql.code && (pgsql.severity == \"ERROR\" || pgsql.severity == \"FATAL\" || pgsql.severity == \"PANIC\")",
            ["pgsql.code", "pgsql.message"],
        ),
        _ => ("http", "http.response.code >= 500", ["http.response.code", "http.response.phrase"]),
    };
    common::tshark_fields_as(file, Some(&decode), Some(filter), &["frame.number", fields[0], fields[1]])
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), family.to_string(), r[1].clone(), r[2].clone()))
        .collect()
}

/// The error captures (tests/lab/make-error-captures.sh): each workload of real database and
/// web servers on its standard port and on another one. The errors on the other port equal
/// those on the standard one, the errors the workload provokes, and those tshark shows when
/// told the port's protocol; so do the logins of the database clients.
#[test]
fn errors_on_other_ports_equal_those_on_standard_ports() {
    if !common::have_tshark() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/errors");
    let mut checked = 0;
    for std_capture in common::captures_in(&dir).iter().filter(|c| c.to_string_lossy().ends_with("-std.pcap")) {
        let alt =
            std_capture.with_file_name(std_capture.file_name().unwrap().to_string_lossy().replace("-std", "-alt"));
        let count = |k: &BTreeSet<Key>, v: &Value| -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
            let mut got = BTreeMap::new();
            for (_, fam, code, _) in k {
                *got.entry(format!("{fam} {code}")).or_default() += 1;
            }
            let want = v["errors"].as_object().unwrap().iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap())).collect();
            (got, want)
        };
        let (mut by_port, mut logins) = (Vec::new(), Vec::new());
        for f in [std_capture, &alt] {
            let exp: Value =
                serde_json::from_slice(&std::fs::read(f.with_extension("expected.json")).unwrap()).unwrap();
            let v = analyze(f);
            let got = ours(&v);
            let (n, want) = count(&got, &exp);
            assert_eq!(n, want, "{}: the errors the workload provoked", f.display());
            let family = got.iter().next().map(|k| k.1.clone()).unwrap_or_default();
            let proto = match family.as_str() {
                "postgresql" => "pgsql",
                "mysql" => "mysql",
                _ => "http",
            };
            let theirs = tshark_errors(f, exp["port"].as_u64().unwrap(), proto);
            assert_eq!(got, theirs, "{}: ours and tshark's", f.display());
            by_port.push(got.into_iter().map(|(_, fam, code, msg)| (fam, code, msg)).collect::<Vec<_>>());
            // The workload's logins (database users) are bound on both ports alike.
            let ids: BTreeMap<String, u64> = v["identities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (format!("{} {} {}", i["source"], i["user"], i["outcome"]), i["count"].as_u64().unwrap()))
                .collect();
            logins.push(ids);
        }
        by_port.iter_mut().for_each(|v| v.sort());
        assert_eq!(by_port[0], by_port[1], "{} and its other port", std_capture.display());
        assert_eq!(logins[0], logins[1], "{}: logins on its other port", std_capture.display());
        checked += 1;
    }
    assert!(checked >= 3, "{checked} workloads");
}

#[test]
fn deadlock_messages_and_sqlstates_are_kept() {
    let lab = common::lab_dir();
    let v = analyze(&lab.join("lab-mariadb-errors.pcap"));
    let e = v["app_errors"].as_array().unwrap().iter().find(|e| e["code"] == "1213").unwrap().clone();
    assert_eq!(e["detail"], "40001");
    assert!(e["message"].as_str().unwrap().starts_with("Deadlock found when trying to get lock"), "{e}");
    assert_eq!(e["server"], "10.77.2.20:3306");
    assert_eq!((&e["server_ip"], &e["server_port"]), (&Value::from("10.77.2.20"), &Value::from(3306)));
    assert!(e["client"].as_str().unwrap().starts_with("10.77.1.10:"), "{e}");
    assert_eq!(e["client_mac"], "02:00:00:00:01:01");
    let v = analyze(&lab.join("lab-pgsql-errors.pcap"));
    let e = v["app_errors"].as_array().unwrap().iter().find(|e| e["code"] == "40P01").unwrap().clone();
    assert_eq!(e["message"], "deadlock detected");
    assert_eq!(e["detail"], "ERROR");
}

#[test]
fn a_user_pattern_counter_reports_its_frames_as_pattern_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vendor.toml"),
        "[[counter]]\nid = \"items-pkey\"\nfilter = 'tcp.srcport == 5432 && tcp.payload contains \"items_pkey\"'\napp_error = true\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["analyze", "--json", "--rules"])
        .arg(dir.path())
        .arg(common::lab_dir().join("lab-pgsql-errors.pcap"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let patterns: Vec<&Value> =
        v["app_errors"].as_array().unwrap().iter().filter(|e| e["family"] == "pattern").collect();
    // The duplicate-key ErrorResponse names the constraint: the same frame as the 23505.
    assert_eq!(patterns.len(), 1, "{patterns:#?}");
    assert_eq!(patterns[0]["code"], "items-pkey");
    let dup = v["app_errors"].as_array().unwrap().iter().find(|e| e["code"] == "23505").unwrap();
    assert_eq!(patterns[0]["frame"], dup["frame"]);
    assert!(patterns[0]["message"].as_str().unwrap().contains("items_pkey"));
    assert_eq!(v["counters"]["items-pkey"]["total"], 1);
}

/// The shipped rules on the lab captures: deadlocks of both databases mail at once, the nginx
/// 5xx burst mails, and the routine errors are recorded without mail.
#[test]
fn shipped_rules_alert_on_deadlocks_and_5xx_bursts() {
    let lab = common::lab_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch"))
        .args(["analyze", "--json", "--rules"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .args(["lab-pgsql-errors.pcap", "lab-mariadb-errors.pcap", "lab-http-nginx-5xx.pcap"].map(|f| lab.join(f)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mailed: BTreeSet<(String, String)> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["mail"] == true)
        .map(|a| (a["rule"].as_str().unwrap().to_string(), a["key"].as_str().unwrap().to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("db-deadlock", "postgresql 40P01 10.77.2.20:5432"),
        ("db-deadlock", "mysql 1213 10.77.2.20:3306"),
        ("http-5xx-burst", "10.77.2.20"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(mailed, want);
    // Every other database error kind is recorded once: the two deadlocks only by db-deadlock.
    let recorded: Vec<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "db-errors")
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(recorded.len(), 5, "{recorded:?}");
    assert!(!recorded.iter().any(|k| k.contains("40P01") || k.contains(" 1213 ")), "{recorded:?}");
}

/// Captures cut by a small snaplen (a box capturing headers only): Wireshark does not
/// reassemble cut segments; it reports an error from the part of the message that was captured,
/// at the frame that carries it. So must we, for the database and web lab captures.
#[test]
fn snaplen_cut_captures_report_errors_where_tshark_does() {
    if !common::have_tshark() {
        assert!(std::env::var_os("CI").is_none(), "tshark missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (capture, tshark filter, snaplens). At 80 bytes an HTTP status line is cut before its
    // reason phrase: tshark then shows no response, mirrorwatch still reports the code.
    let cases = [
        ("lab-http-nginx-5xx.pcap", "http.response.code >= 500", &[100, 160, 300, 700][..]),
        // An error whose SQLSTATE was cut off is not reported (tshark shows its severity only).
        ("lab-pgsql-errors.pcap", "pgsql.code && pgsql.severity != \"NOTICE\"", &[96, 128, 200][..]),
        ("lab-mariadb-errors.pcap", "mysql.error_code", &[80, 96, 128, 200][..]),
    ];
    for (file, filter, snaplens) in cases {
        for snaplen in snaplens {
            let cut = dir.path().join(format!("cut{snaplen}-{file}"));
            let st = Command::new("editcap")
                .args(["-s", &snaplen.to_string()])
                .arg(common::lab_dir().join(file))
                .arg(&cut)
                .status()
                .unwrap();
            assert!(st.success());
            let want: Vec<u64> = common::tshark_fields(&cut, Some(filter), &["frame.number"])
                .iter()
                .map(|r| r[0].parse().unwrap())
                .collect();
            let got: Vec<u64> =
                analyze(&cut)["app_errors"].as_array().unwrap().iter().map(|e| e["frame"].as_u64().unwrap()).collect();
            assert_eq!(got, want, "{file} cut to {snaplen} bytes");
            assert!(want.len() >= 3, "{file} {snaplen}: {want:?}");
        }
    }
}
