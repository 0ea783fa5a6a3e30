use crate::analyzers::tests::{login_everywhere, talk};
use crate::identity::Outcome;

const BANNER: &[u8] = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\r\n";

#[test]
fn login_quoted_on_any_port_cut_anywhere() {
    let segs: [(bool, &[u8]); 4] = [
        (false, BANNER),
        (true, b"a1 LOGIN \"bob\" \"builder 42\"\r\n"),
        (false, b"a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n"),
        (true, b"a2 SELECT INBOX\r\n"),
    ];
    let r = login_everywhere([143, 1143], &segs, 1, "builder 42");
    assert_eq!(r.users(), [("bob".to_string(), Outcome::Success)]);
    assert!(r.text(Some(true)).contains("a2 SELECT INBOX"));
}

#[test]
fn login_with_literals_masks_both_and_names_the_user() {
    let segs: [(bool, &[u8]); 7] = [
        (false, BANNER),
        (true, b"a1 LOGIN {5}\r\n"),
        (false, b"+ OK\r\n"),
        (true, b"carol {6}\r\n"),
        (false, b"+ OK\r\n"),
        (true, b"guess1\r\n"),
        (false, b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
    ];
    let r = login_everywhere([143, 10143], &segs, 5, "guess1");
    assert_eq!(r.users(), [("carol".to_string(), Outcome::Failure)]);
}

#[test]
fn authenticate_plain_with_and_without_initial_response() {
    let r = talk(
        143,
        true,
        &[(false, BANNER), (true, b"a2 AUTHENTICATE PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"), (false, b"a2 OK done\r\n")],
        false,
    );
    assert!(!r.text(None).contains("AGFsaWNl"));
    assert_eq!(r.users(), [("alice".to_string(), Outcome::Success)]);
    let r = talk(
        1143,
        true,
        &[
            (false, BANNER),
            (true, b"a3 AUTHENTICATE PLAIN\r\n"),
            (false, b"+ \r\n"),
            (true, b"AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"),
            (false, b"a3 OK done\r\n"),
        ],
        false,
    );
    assert!(!r.text(None).contains("AGFsaWNl"));
    assert_eq!(r.users(), [("alice".to_string(), Outcome::Success)]);
}
