//! Known, deliberate differences from tshark, one named test each (the differential harness
//! in tshark_filters.rs lists the (expression, file) cases they explain).

mod common;

use std::process::Command;

fn ours(expr: &str, file: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorwatch")).arg("filter").arg(expr).arg(file).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wireshark follows SMB2 SESSION_SETUP into its GSS-API/SPNEGO token and dissects the Kerberos
/// AP-REQ/AP-REP inside (frames 35, 37, 118, 120, 157, 159, 241, 243 of krb-tso-smb2.pcapng).
/// mirrorwatch reads Kerberos on port 88 only: identities come from AS/TGS exchanges with the
/// KDC, which carry the client names; the AP exchange with a file server adds none.
#[test]
fn kerberos_inside_smb2_session_setup_is_not_dissected() {
    let Some(dir) = common::corpus_dir() else { return };
    let f = dir.join("krb-tso-smb2.pcapng");
    let ours = ours("kerberos && !(tcp.port == 88 || udp.port == 88)", &f);
    assert_eq!(ours, "", "Kerberos outside port 88 would now be dissected: update KNOWN in tshark_filters.rs");
    if common::have_tshark() {
        let t = common::tshark_fields(&f, Some("kerberos && !(tcp.port == 88 || udp.port == 88)"), &["frame.number"]);
        let frames: Vec<&str> = t.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(frames, ["35", "37", "118", "120", "157", "159", "241", "243"]);
    }
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
