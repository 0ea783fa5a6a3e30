//! The logins of the analyzers that tshark's credentials tap does not cover — LDAP binds,
//! PostgreSQL, MySQL/MariaDB and SQL Server — name the users Wireshark's dissectors name
//! (`ldap.name` of bind requests, the StartupMessage's `user` parameter, `mysql.user`,
//! `tds.7login.username`), on their standard ports and on the other ports of the login captures
//! (where tshark is told the protocol with `-d`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn ours(file: &Path, source: &str) -> BTreeSet<String> {
    let o = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("analyze").arg(file).arg("--json").output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["identities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["source"] == source)
        .filter_map(|i| i["user"].as_str().map(String::from))
        .collect()
}

fn tshark(file: &Path, decode: Option<&str>, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(file);
    if let Some(d) = decode {
        cmd.args(["-d", d]);
    }
    cmd.args(["-Y", filter, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=\u{1}"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('\t').map(String::from).collect()).collect()
}

fn theirs(file: &Path, source: &str, decode: Option<&str>) -> BTreeSet<String> {
    let rows = match source {
        "ldap" => tshark(file, decode, "ldap.bindRequest_element", &["ldap.name"]),
        "mysql" => tshark(file, decode, "mysql.user", &["mysql.user"]),
        "tds" => tshark(file, decode, "tds.7login.username", &["tds.7login.username"]),
        "postgresql" => {
            // Names and values of the StartupMessage's parameters, in order.
            return tshark(
                file,
                decode,
                "pgsql.parameter_name == \"user\"",
                &["pgsql.parameter_name", "pgsql.parameter_value"],
            )
            .iter()
            .flat_map(|r| {
                let names: Vec<&str> = r[0].split('\u{1}').collect();
                let values: Vec<&str> = r.get(1).map(|v| v.split('\u{1}').collect()).unwrap_or_default();
                names
                    .into_iter()
                    .zip(values)
                    .filter(|(n, _)| *n == "user")
                    .map(|(_, v)| v.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        }
        _ => unreachable!(),
    };
    rows.iter()
        .flat_map(|r| r[0].split('\u{1}').map(String::from).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .collect()
}

#[test]
fn database_and_ldap_users_match_tshark() {
    if !common::have_tshark() {
        return;
    }
    let Some(corpus) = common::corpus_dir() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let logins = root.join("tests/data/logins");
    let lab = common::lab_dir();
    let cases: Vec<(PathBuf, &str, Option<&str>)> = vec![
        (corpus.join("krb-tcp-segmented-ldap.pcap"), "ldap", None),
        (logins.join("login-ldap-std.pcap"), "ldap", None),
        (logins.join("login-ldap-alt.pcap"), "ldap", Some("tcp.port==3389,ldap")),
        (corpus.join("pgsql-login-fail-28P01.pcap"), "postgresql", None),
        (corpus.join("pgsql-errors-divzero-aborted.pcap"), "postgresql", None),
        (lab.join("lab-pgsql-errors.pcap"), "postgresql", None),
        (logins.join("login-pg-std.pcap"), "postgresql", None),
        (logins.join("login-pg-alt.pcap"), "postgresql", Some("tcp.port==6543,pgsql")),
        (corpus.join("mysql-access-denied-1045.pcap"), "mysql", None),
        (corpus.join("mysql-auth-errors-1130-1045.pcap"), "mysql", None),
        (lab.join("lab-mariadb-errors.pcap"), "mysql", None),
        (corpus.join("tds7-login-batch.pcap"), "tds", None),
    ];
    let mut names = 0;
    for (file, source, decode) in &cases {
        let want = theirs(file, source, *decode);
        assert!(!want.is_empty(), "{}: tshark names a {source} user", file.display());
        assert_eq!(ours(file, source), want, "{} ({source})", file.display());
        names += want.len();
    }
    eprintln!("{names} {} user names equal to tshark's", cases.len());
}
