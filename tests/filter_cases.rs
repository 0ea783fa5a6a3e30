//! Known, deliberate differences from tshark, one named test each (the differential harness
//! in tshark_filters.rs lists the (expression, file) cases they explain).

mod common;

use std::process::Command;

fn ours(expr: &str, file: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("filter").arg(expr).arg(file).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pop.request.parameter` of a PASS command is the password. tshark shows it; mirrorwatch does
/// not keep it even transiently for filters, because a counter grouped by that field would
/// store it in the database.
#[test]
fn pop_pass_parameter_is_never_exposed() {
    let Some(dir) = common::corpus_dir() else { return };
    let f = dir.join("pop3-user-pass-lowercase-authplain.pcap");
    assert_eq!(ours("pop.request.command == \"pass\" && pop.request.parameter", &f), "");
    assert!(!ours("pop.request.command == \"pass\"", &f).is_empty());
}
