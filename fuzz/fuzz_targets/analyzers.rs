//! The analyzers on arbitrary conversations: the input's first byte chooses the server port
//! (standard or not), the rest is cut into alternating client and server segments and sent as
//! TCP frames through the pipeline (detection, every analyzer, credential masks); the Kerberos,
//! DHCP, SNMP and LDAP parsers on the raw bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mirrorwatch::analyzers::{dhcp, kerberos, ldap, snmp};
use mirrorwatch::capture::{LinkType, RawPacket};
use mirrorwatch::pipeline::{NullSink, Pipeline};
use mirrorwatch::time::Ts;

fn frame(client: bool, port: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let (a, b) = ([10u8, 1, 1, 10], [10u8, 2, 2, 20]);
    let (src, dst, sp, dp) = if client { (a, b, 40000, port) } else { (b, a, port, 40000) };
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0];
    f.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fuzz_target!(|data: &[u8]| {
    let _ = kerberos::parse(data);
    let _ = kerberos::parse_tcp(data);
    let _ = dhcp::parse(data);
    let _ = snmp::community(data);
    let _ = ldap::is_request(data);
    let Some((&b, rest)) = data.split_first() else { return };
    let ports = [110u16, 143, 25, 21, 23, 80, 88, 389, 445, 1433, 3306, 5432, 1110, 8088, 40001];
    let port = ports[b as usize % ports.len()];
    let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
    let mut seq = [1000u32, 9000u32];
    for (i, chunk) in rest.chunks(1 + b as usize % 61).enumerate() {
        let client = i % 2 == 0;
        let s = &mut seq[usize::from(!client)];
        let f = frame(client, port, *s, chunk);
        *s = s.wrapping_add(chunk.len() as u32);
        let pkt = RawPacket { frame: i as u64 + 1, ts: Ts(i as i64), orig_len: f.len() as u32, link: LinkType::ETHERNET, interface: 0, data: &f };
        p.process(&pkt);
        let mut kept = f.clone();
        p.masks().apply(&mut kept);
    }
    p.end_of_file();
});
