//! The identity parsers on arbitrary payloads: Kerberos (UDP message and TCP record), DHCP,
//! and the text-protocol login state machine fed as client and server segments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mirrorwatch::identity::{dhcp, kerberos, text};
use mirrorwatch::time::Ts;

fuzz_target!(|data: &[u8]| {
    let _ = kerberos::parse(data);
    let _ = kerberos::parse_tcp(data);
    let _ = dhcp::parse(data);
    let mut logins = text::TextLogins::default();
    let mut out = Vec::new();
    for (i, chunk) in data.chunks(64).enumerate() {
        let from_client = i % 2 == 0;
        let seg = text::Segment {
            conv: (0, 0),
            payload: chunk,
            from_client,
            client_mac: None,
            client_ip: None,
            ts: Ts(0),
            frame: i as u64,
        };
        for port in [110, 143, 25, 21, 80] {
            let (s, d) = if from_client { (40000, port) } else { (port, 40000) };
            logins.segment(&seg, s, d, &mut out);
        }
    }
    logins.flush(&mut out);
});
