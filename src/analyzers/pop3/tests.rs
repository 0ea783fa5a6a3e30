use crate::analyzers::tests::{login_everywhere, talk};
use crate::identity::Outcome;

const BANNER: &[u8] = b"+OK Dovecot ready.\r\n";

#[test]
fn user_pass_on_any_port_cut_anywhere_retransmitted() {
    let segs: [(bool, &[u8]); 6] = [
        (false, BANNER),
        (true, b"USER alice\r\n"),
        (false, b"+OK\r\n"),
        (true, b"PASS wonderland\r\n"),
        (false, b"+OK Logged in.\r\n"),
        (true, b"QUIT\r\n"),
    ];
    let r = login_everywhere([110, 1110], &segs, 3, "wonderland");
    assert_eq!(r.users(), [("alice".to_string(), Outcome::Success)]);
    assert!(r.text(Some(true)).contains("USER alice\r\nPASS **********\r\n"), "{}", r.text(Some(true)));
    // USER and PASS answered (QUIT's answer is not in the conversation).
    assert_eq!(r.exchanges.iter().filter(|x| x.0 == "pop3").count(), 2);
}

#[test]
fn sasl_plain_lines_and_apop() {
    // AUTH PLAIN without an initial response: the next line has the credentials.
    let segs: [(bool, &[u8]); 5] = [
        (false, BANNER),
        (true, b"AUTH PLAIN\r\n"),
        (false, b"+ \r\n"),
        (true, b"AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"),
        (false, b"-ERR [AUTH] Authentication failed.\r\n"),
    ];
    let r = login_everywhere([110, 2110], &segs, 3, "AGFsaWNlAHdvbmRlcmxhbmQ=");
    assert_eq!(r.users(), [("alice".to_string(), Outcome::Failure)]);
    let r = talk(
        110,
        true,
        &[(false, BANNER), (true, b"APOP bob c4c9334bac560ecc979e58001b3e22fb\r\n"), (false, b"+OK\r\n")],
        false,
    );
    assert!(!r.text(None).contains("c4c9334b"), "{}", r.text(None));
    assert_eq!(r.users(), [("bob".to_string(), Outcome::Success)]);
}

#[test]
fn unknown_lines_are_masked_and_stls_ends_reading() {
    let r = talk(110, true, &[(false, BANNER), (true, b"XSECRET hunter2\r\n"), (false, b"-ERR\r\n")], false);
    assert!(!r.text(None).contains("hunter2"));
    let r = talk(
        1110,
        true,
        &[
            (false, BANNER),
            (true, b"STLS\r\n"),
            (false, b"+OK Begin TLS\r\n"),
            (true, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"),
        ],
        false,
    );
    // The TLS bytes after STLS are not masked as unknown POP3 lines.
    assert_eq!(r.kept.last().unwrap().1, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00");
}
