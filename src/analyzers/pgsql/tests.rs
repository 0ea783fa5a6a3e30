use crate::analyzers::tests::{login_everywhere, talk};
use crate::identity::Outcome;

fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn startup(user: &str) -> Vec<u8> {
    let params = format!("user\0{user}\0database\0shop\0\0");
    let mut v = ((params.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&0x0003_0000u32.to_be_bytes());
    v.extend_from_slice(params.as_bytes());
    v
}

#[test]
fn password_messages_are_masked_on_any_port() {
    let start = startup("app");
    let ask = msg(b'R', &3u32.to_be_bytes()); // AuthenticationCleartextPassword
    let pw = msg(b'p', b"Xq7!zR9#pw\0");
    let mut ok = msg(b'R', &0u32.to_be_bytes());
    ok.extend(msg(b'Z', b"I"));
    let segs: [(bool, &[u8]); 4] = [(true, &start), (false, &ask), (true, &pw), (false, &ok)];
    let r = login_everywhere([5432, 6543], &segs, 2, "Xq7!zR9#pw");
    assert_eq!(r.users(), [("app".to_string(), Outcome::Success)]);
    // A refused login: FATAL 28P01.
    let err = msg(b'E', b"SFATAL\0C28P01\0Mpassword authentication failed for user \"app\"\0\0");
    let r = talk(6543, true, &[(true, &start), (false, &ask), (true, &pw), (false, &err)], false);
    assert_eq!(r.users(), [("app".to_string(), Outcome::Failure)]);
    assert_eq!(r.errors, ["postgresql 28P01"]);
}
