use crate::analyzers::tests::talk;
use crate::identity::Outcome;

/// A LOGIN7 packet for user "sa" with password "Pa55w0rd!" (obfuscated as on the wire).
fn login7() -> Vec<u8> {
    let ucs2 = |s: &str| s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect::<Vec<u8>>();
    let obfuscate = |b: Vec<u8>| b.into_iter().map(|x| x.rotate_right(4) ^ 0xa5).collect::<Vec<u8>>();
    let (host, user, pass) = (ucs2("WS1"), ucs2("sa"), obfuscate(ucs2("Pa55w0rd!")));
    let mut fixed = vec![0u8; 94];
    let mut data = Vec::new();
    let mut put = |slot: usize, bytes: &[u8], chars: usize, fixed: &mut Vec<u8>| {
        let off = 94 + data.len();
        fixed[slot..slot + 2].copy_from_slice(&(off as u16).to_le_bytes());
        fixed[slot + 2..slot + 4].copy_from_slice(&(chars as u16).to_le_bytes());
        data.extend_from_slice(bytes);
    };
    put(36, &host, 3, &mut fixed);
    put(40, &user, 2, &mut fixed);
    put(44, &pass, 9, &mut fixed);
    let total = (94 + data.len()) as u32;
    fixed[0..4].copy_from_slice(&total.to_le_bytes());
    fixed[4..8].copy_from_slice(&0x7400_0004u32.to_le_bytes());
    let body = [fixed, data].concat();
    let mut p = vec![0x10, 0x01];
    p.extend_from_slice(&((body.len() + 8) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 1, 0]);
    p.extend(body);
    p
}

#[test]
fn login7_password_is_masked_and_the_user_bound() {
    let l = login7();
    let obfuscated: Vec<u8> = l[l.len() - 18..].to_vec();
    let mut ack = vec![0x04, 0x01, 0x00, 0x20, 0, 0, 1, 0];
    ack.extend_from_slice(&[0xad, 0x10, 0x00, 0x01, 0x74, 0x00, 0x00, 0x04, 0x00]);
    ack.resize(0x20, 0);
    for port in [1433, 14330] {
        let r = talk(port, true, &[(true, &l), (false, &ack)], true);
        let kept: Vec<u8> = r.kept.iter().filter(|k| k.0).flat_map(|k| k.1.clone()).collect();
        assert!(!kept.windows(obfuscated.len()).any(|w| w == &obfuscated[..]), "port {port}");
        assert_eq!(r.users(), [("sa".to_string(), Outcome::Success)], "port {port}");
    }
}
