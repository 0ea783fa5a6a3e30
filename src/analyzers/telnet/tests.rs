use crate::analyzers::tests::talk;
use crate::identity::Outcome;

#[test]
fn a_password_typed_one_character_at_a_time_is_masked() {
    let mut segs: Vec<(bool, &[u8])> = vec![(false, b"\xff\xfd\x18\xff\xfd\x20"), (false, b"ws1 login: ")];
    for c in [b"a", b"l", b"i", b"c", b"e", b"\r"] {
        segs.push((true, c));
    }
    segs.push((false, b"\r\nPassword: "));
    // The LF of the Enter after the user name comes after the prompt.
    segs.push((true, b"\n"));
    for c in [b"s", b"3", b"c", b"r", b"e", b"t", b"\r"] {
        segs.push((true, c));
    }
    segs.push((false, b"\r\nLast login: today\r\n$ "));
    for port in [23, 2323] {
        let r = talk(port, true, &segs, false);
        let typed = r.text(Some(true));
        assert!(typed.starts_with("alice\r"), "{typed}");
        assert!(!typed.contains("s3") && !typed.contains("cret"), "{typed}");
        assert_eq!(r.users(), [("alice".to_string(), Outcome::Success)]);
    }
}
