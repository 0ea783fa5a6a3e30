use crate::analyzers::tests::{login_everywhere, talk};
use crate::identity::Outcome;

#[test]
fn user_pass_on_any_port_cut_anywhere() {
    let segs: [(bool, &[u8]); 5] = [
        (false, b"220 (vsFTPd 3.0.3)\r\n"),
        (true, b"USER alice\r\n"),
        (false, b"331 Please specify the password.\r\n"),
        (true, b"PASS wonderland\r\n"),
        (false, b"230 Login successful.\r\n"),
    ];
    let r = login_everywhere([21, 2121], &segs, 3, "wonderland");
    assert_eq!(r.users(), [("alice".to_string(), Outcome::Success)]);
}

#[test]
fn a_plain_220_greeting_is_told_apart_by_the_first_command() {
    let r = talk(
        2121,
        true,
        &[
            (false, b"220 ready\r\n"),
            (true, b"USER bob\r\n"),
            (false, b"331 ok\r\n"),
            (true, b"PASS nope\r\n"),
            (false, b"530 no\r\n"),
        ],
        false,
    );
    assert!(!r.text(None).contains("nope"));
    assert_eq!(r.users(), [("bob".to_string(), Outcome::Failure)]);
}
