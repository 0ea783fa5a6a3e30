use crate::analyzers::tests::{login_everywhere, talk};
use crate::identity::Outcome;

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

#[test]
fn handshake_response_auth_data_is_masked_on_any_port() {
    let greeting = packet(0, b"\x0a10.11.6-MariaDB\x00\x01\x00\x00\x00abcdefgh\x00\xff\xf7\x08\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x0f\x00\x00\x00ijklmnopqrst\x00mysql_native_password\x00");
    let mut resp = 0x000f_a685u32.to_le_bytes().to_vec(); // PROTOCOL_41, SECURE_CONNECTION…
    resp.extend_from_slice(&[0, 0, 0, 1, 8]);
    resp.extend_from_slice(&[0; 23]);
    resp.extend_from_slice(b"app\0");
    resp.push(20);
    resp.extend_from_slice(b"SCRAMBLEDPASSWORD-20");
    resp.extend_from_slice(b"shop\0mysql_native_password\0");
    let resp = packet(1, &resp);
    let ok = packet(2, b"\x00\x00\x00\x02\x00\x00\x00");
    let segs: [(bool, &[u8]); 3] = [(false, &greeting), (true, &resp), (false, &ok)];
    let r = login_everywhere([3306, 3307], &segs, 1, "SCRAMBLEDPASSWORD-20");
    assert_eq!(r.users(), [("app".to_string(), Outcome::Success)]);
    let mut err = vec![0xff];
    err.extend_from_slice(&1045u16.to_le_bytes());
    err.extend_from_slice(b"#28000Access denied for user 'app'@'x' (using password: YES)");
    let r = talk(3307, true, &[(false, &greeting), (true, &resp), (false, &packet(2, &err))], false);
    assert_eq!(r.users(), [("app".to_string(), Outcome::Failure)]);
    assert_eq!(r.errors, ["mysql 1045"]);
}
