use crate::analyzers::tests::{login_everywhere, talk};
use crate::identity::Outcome;

const BANNER: &[u8] = b"220 mail.branch.lan ESMTP ready\r\n";

#[test]
fn auth_login_on_any_port_cut_anywhere() {
    // carol / letmein
    let segs: [(bool, &[u8]); 8] = [
        (false, BANNER),
        (true, b"EHLO ws1\r\n"),
        (false, b"250-mail\r\n250 AUTH LOGIN PLAIN\r\n"),
        (true, b"AUTH LOGIN\r\n"),
        (false, b"334 VXNlcm5hbWU6\r\n"),
        (true, b"Y2Fyb2w=\r\n"),
        (false, b"334 UGFzc3dvcmQ6\r\n"),
        (true, b"bGV0bWVpbg==\r\n"),
    ];
    let mut v = segs.to_vec();
    v.push((false, b"235 2.7.0 Authentication successful\r\n"));
    let r = login_everywhere([587, 2525], &v, 7, "bGV0bWVpbg==");
    assert_eq!(r.users(), [("carol".to_string(), Outcome::Success)]);
}

#[test]
fn the_message_after_data_is_not_masked_and_a_refused_data_ends_data_mode() {
    let r = talk(
        25,
        true,
        &[
            (false, BANNER),
            (true, b"MAIL FROM:<a@b>\r\n"),
            (false, b"250 ok\r\n"),
            (true, b"DATA\r\n"),
            (false, b"354 go\r\n"),
            (true, b"Subject: hi\r\n\r\nbody text\r\n.\r\n"),
            (false, b"250 queued\r\n"),
            (true, b"AUTH PLAIN AGNhcm9sAGxldG1laW4=\r\n"),
            (false, b"535 no\r\n"),
        ],
        false,
    );
    assert!(r.text(Some(true)).contains("body text"));
    assert!(!r.text(None).contains("AGNhcm9s"));
    assert_eq!(r.users(), [("carol".to_string(), Outcome::Failure)]);
    let r = talk(
        2525,
        true,
        &[
            (false, BANNER),
            (true, b"DATA\r\n"),
            (false, b"503 need MAIL\r\n"),
            (true, b"AUTH PLAIN AGNhcm9sAGxldG1laW4=\r\n"),
        ],
        false,
    );
    assert!(!r.text(None).contains("AGNhcm9s"), "{}", r.text(None));
}
