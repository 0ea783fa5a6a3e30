use crate::analyzers::tests::{every_cut, login_everywhere, talk, talk_owned};
use crate::identity::Outcome;

#[test]
fn basic_auth_on_any_port_cut_anywhere() {
    let segs: [(bool, &[u8]); 2] = [
        (true, b"GET /x HTTP/1.1\r\nHost: intranet\r\nAuthorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n\r\n"),
        (false, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ];
    let r = login_everywhere([80, 8088], &segs, 0, "YWxpY2U6d29uZGVybGFuZA==");
    assert_eq!(r.users(), [("alice".to_string(), Outcome::Success)]);
    assert!(r.exchanges.contains(&("http".into(), "GET intranet/x".into(), "HTTP 200".into())), "{:?}", r.exchanges);
}

#[test]
fn form_logins_and_url_credentials_are_masked() {
    let body = b"username=alice&password=wonder%26land&remember=on";
    let req = [
        b"POST /login HTTP/1.1\r\nHost: app\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "
            .to_vec(),
        body.len().to_string().into_bytes(),
        b"\r\n\r\n".to_vec(),
        body.to_vec(),
    ]
    .concat();
    let segs = vec![(true, req.clone()), (false, b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".to_vec())];
    for port in [80, 8081] {
        let r = talk_owned(port, true, &segs, true);
        assert!(r.text(None).contains("username=alice&password=*************&remember=on"), "{}", r.text(None));
        let borrowed: Vec<(bool, &[u8])> = segs.iter().map(|(c, b)| (*c, &b[..])).collect();
        for cut in every_cut(&borrowed, 0) {
            let t = talk_owned(port, true, &cut, false).text(None);
            assert!(!t.contains("wonder") && !t.contains("land&"), "{t}");
        }
    }
    let r = talk(
        3128,
        true,
        &[
            (true, b"GET http://bob:builder@files.lan/a?token=x&pwd=s3cret HTTP/1.1\r\nHost: files.lan\r\n\r\n"),
            (false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
        false,
    );
    let t = r.text(None);
    assert!(!t.contains("builder") && !t.contains("s3cret") && t.contains("token=x"), "{t}");
    assert!(r.exchanges.iter().all(|x| !x.1.contains("builder")), "{:?}", r.exchanges);
}

#[test]
fn five_hundreds_are_errors_at_the_frame_that_completes_them() {
    let r = talk(
        8082,
        true,
        &[
            (true, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n"),
            (false, b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nabc"),
        ],
        false,
    );
    assert_eq!(r.errors, ["http 500"]);
}
