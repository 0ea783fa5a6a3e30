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

#[test]
fn a_bare_status_line_ended_by_the_close_is_an_error() {
    // A server that answers with its status line only and closes, on a port HTTP is not known
    // by, with or without the request or the handshake in the capture: the 5xx is reported.
    for resp in [
        &b"HTTP/1.1 500 Internal Server Error\r\n\r\n"[..],
        b"HTTP/1.0 500 Internal Server Error\r\n",
        b"HTTP/1.1 500 Internal Server Error",
        b"HTTP/1.1 503",
    ] {
        for syn in [true, false] {
            let r = talk(8182, syn, &[(true, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n"), (false, resp)], false);
            assert_eq!(r.errors.len(), 1, "{:?} syn {syn}: {:?}", String::from_utf8_lossy(resp), r.errors);
            let r = talk(8182, syn, &[(false, resp)], false);
            assert_eq!(r.errors.len(), 1, "{:?} alone, syn {syn}: {:?}", String::from_utf8_lossy(resp), r.errors);
        }
    }
    // A status line cut across segments (after its code), with or without a body to come.
    let full = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\nnope";
    for cut in 12..full.len() {
        let r =
            talk(8182, true, &[(true, b"GET / HTTP/1.1\r\n\r\n"), (false, &full[..cut]), (false, &full[cut..])], false);
        assert_eq!(r.errors, ["http 502"], "cut at {cut}");
    }
}
