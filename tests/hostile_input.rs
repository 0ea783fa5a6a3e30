//! Hostile input: seeded mutations of every small corpus capture (byte flips, cuts, forged
//! length fields) through the reader, decoder, flow table and TCP analysis. Nothing may panic,
//! and the reader must end every mutant with either a clean end or a positioned error.
//! The same entry points are cargo-fuzz targets in fuzz/ for longer runs.

mod common;

use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;
use mirrorwatch::flow::FlowConfig;
use mirrorwatch::pipeline::{NullSink, Pipeline, PipelineConfig};
use mirrorwatch::rules::RuleSet;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, orig: &[u8]) -> Vec<u8> {
    let mut v = orig.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(16) {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
        }
        1 => v.truncate(rng.below(v.len())),
        2 => {
            // Forge a 32-bit field somewhere (record and block lengths live at 4-byte offsets).
            let i = rng.below(v.len().saturating_sub(4)) & !3;
            let val = match rng.below(4) {
                0 => 0,
                1 => u32::MAX,
                2 => 0x7fff_ffff,
                _ => rng.next() as u32,
            };
            if i + 4 <= v.len() {
                v[i..i + 4].copy_from_slice(&val.to_le_bytes());
            }
        }
        _ => {
            // Random bytes spliced into the packet area.
            let i = 24 + rng.below(v.len().saturating_sub(24));
            for j in i..(i + 64).min(v.len()) {
                v[j] = rng.next() as u8;
            }
        }
    }
    v
}

#[test]
fn mutated_captures_never_panic() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let rules_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut runs = 0;
    let mut errors = 0;
    for file in common::captures_in(&dir) {
        let orig = std::fs::read(&file).unwrap();
        if orig.len() > 200_000 {
            continue;
        }
        for _ in 0..40 {
            let data = mutate(&mut rng, &orig);
            runs += 1;
            let Ok(mut src) = FileSource::from_reader(Box::new(std::io::Cursor::new(data))) else {
                errors += 1;
                continue;
            };
            let cfg = FlowConfig { max_flows: 64, ..FlowConfig::default() };
            let mut p = Pipeline::new(
                cfg,
                PipelineConfig { max_host_pairs: 16, max_groups: 8, top_groups: 3, ..Default::default() },
                NullSink,
            );
            // The shipped rules run too: every filter field sees the damaged frames.
            p.set_rules(RuleSet::load_dir(&rules_dir).expect("shipped rules"));
            loop {
                match src.next_packet() {
                    Ok(Some(pkt)) => {
                        p.process(&pkt);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!(e.to_string().contains("offset") || e.to_string().contains("bytes"), "{e}");
                        errors += 1;
                        break;
                    }
                }
            }
            p.end_of_file();
            let _ = p.counter_totals();
            assert!(p.flows.stats.active <= 64);
        }
    }
    eprintln!("{runs} mutated captures, {errors} reported as damaged, no panic");
    assert!(runs > 1500);
}

/// Display filters built from fragments of the differential expressions, cut and spliced at
/// random (including inside strings, escapes and sets): compile must answer, never panic, and
/// an error must point inside the text.
#[test]
fn mangled_filters_never_panic() {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filter_expressions.txt"))
            .unwrap();
    let exprs: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let pieces = [
        "\\", "\"", "r\"", "{", "}", "[", "]", "(", ")", "..", ",", "#", "&", "!", "~=", "\\x", "\\777", "é", "/", ":",
    ];
    let mut rng = Rng(0x0f1e_2d3c_4b5a_6978);
    let mut compiled = 0;
    for _ in 0..20_000 {
        let a = exprs[rng.below(exprs.len())];
        let b = exprs[rng.below(exprs.len())];
        let mut s: String = a.chars().take(rng.below(a.len() + 1)).collect();
        if rng.below(2) == 0 {
            s.push_str(pieces[rng.below(pieces.len())]);
        }
        s.extend(b.chars().skip(rng.below(b.len() + 1)));
        match mirrorwatch::filter::Filter::compile(&s) {
            Ok(_) => compiled += 1,
            Err(e) => {
                assert!(e.offset <= s.len(), "{s:?}: offset {} beyond the text", e.offset);
                let _ = e.render(&s);
            }
        }
    }
    eprintln!("20000 mangled filters, {compiled} still valid, no panic");
}

/// An Ethernet/IPv4/TCP frame between two hosts of the lab.
fn tcp_frame(client: bool, cport: u16, sport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (a, b) = ([10u8, 1, 1, 10], [10u8, 2, 2, 20]);
    let (src, dst, sp, dp) = if client { (a, b, cport, sport) } else { (b, a, sport, cport) };
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0];
    f.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// The analyzers on mangled conversations (the entry points of fuzz/fuzz_targets/analyzers.rs):
/// login dialogues, HTTP requests, database and LDAP messages, on their ports and others, cut
/// at random, their bytes changed, segments repeated, skipped and reordered; the Kerberos and
/// DHCP parsers on the same bytes. No panic.
#[test]
fn analyzers_never_panic() {
    use mirrorwatch::analyzers::{dhcp, kerberos, ldap, snmp};
    let seeds: [&[u8]; 12] = [
        b"+OK ready\r\nUSER alice\r\nPASS x\r\n",
        b"* OK hi\r\na1 LOGIN {5}\r\nbob {2}\r\npw\r\na2 AUTHENTICATE PLAIN\r\nAGJvYgBwdw==\r\n",
        b"220 mail ESMTP\r\nAUTH LOGIN\r\nYWxpY2U=\r\ncHc=\r\nDATA\r\n.\r\n",
        b"+OK\r\n-ERR no\r\na1 OK done\r\n235 ok\r\n530 no\r\n",
        b"POST /l?pw=1 HTTP/1.1\r\nAuthorization: Basic YWxpY2U6cHc=\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 60\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"pass\"\r\n\r\nx\r\n--b--",
        b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"\x00\x00\x00\x21\x00\x03\x00\x00user\x00app\x00database\x00d\x00\x00p\x00\x00\x00\x08pw\x00",
        b"\x4a\x00\x00\x00\x0a10.11.6\x00\x20\x00\x00\x01\x85\xa6\x0f\x00\x00\x00\x00\x01",
        b"\x10\x01\x00\x60\x00\x00\x01\x00",
        b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00",
        b"\xff\xfd\x18login: bob\r\nPassword: x\r\n",
        &[0, 0, 0, 20, 0x6a, 0x10, 0x30, 0x0e, 0xa1, 0x03, 0x02, 0x01, 0x02, 0xa2, 0x03, 0x04, 0x01, 0x1e, 0, 0],
    ];
    let mut rng = Rng(0x1d3a_7e11_c0de_f00d);
    let ports = [110u16, 143, 25, 21, 23, 80, 5432, 3306, 1433, 389, 88, 1110, 8088, 40000];
    for round in 0..400u64 {
        let mut p =
            Pipeline::new(FlowConfig { max_flows: 32, ..FlowConfig::default() }, PipelineConfig::default(), NullSink);
        let mut seqs = [[1000u32, 9000u32]; 8];
        for i in 0..60u64 {
            let conv = rng.below(8);
            let mut data = seeds[rng.below(seeds.len())].to_vec();
            for _ in 0..rng.below(6) {
                let j = rng.below(data.len());
                data[j] = rng.next() as u8;
            }
            let cut = rng.below(data.len() + 1);
            let piece = if rng.below(2) == 0 { &data[..cut] } else { &data[cut..] };
            let client = rng.below(2) == 0;
            let seq = &mut seqs[conv][usize::from(!client)];
            // Now and then a hole, a repeat or a step back.
            match rng.below(10) {
                0 => *seq = seq.wrapping_add(rng.below(50) as u32),
                1 => *seq = seq.wrapping_sub(rng.below(50) as u32),
                _ => {}
            }
            let flags = [0x18u8, 0x18, 0x18, 0x02, 0x12, 0x11, 0x04][rng.below(7)];
            let f = tcp_frame(
                client,
                40_000 + conv as u16,
                ports[(conv + round as usize) % ports.len()],
                *seq,
                flags,
                piece,
            );
            *seq = seq.wrapping_add(piece.len() as u32);
            let pkt = mirrorwatch::capture::RawPacket {
                frame: i + 1,
                ts: mirrorwatch::time::Ts(1_700_000_000_000_000_000 + i as i64 * 1000),
                orig_len: f.len() as u32,
                link: mirrorwatch::capture::LinkType::ETHERNET,
                interface: 0,
                data: &f,
            };
            p.process(&pkt);
            let _ = kerberos::parse(piece);
            let _ = kerberos::parse_tcp(piece);
            let _ = snmp::community(piece);
            let _ = ldap::is_request(piece);
            let mut dhcp_msg = vec![0u8; 240];
            dhcp_msg[236..240].copy_from_slice(&[99, 130, 83, 99]);
            dhcp_msg.extend_from_slice(piece);
            let _ = dhcp::parse(&dhcp_msg);
        }
        p.end_of_file();
    }
    eprintln!("400 mangled runs of 60 segments, no panic");
}
