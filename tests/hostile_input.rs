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
            let mut p =
                Pipeline::new(cfg, PipelineConfig { max_host_pairs: 16, max_groups: 8, top_groups: 3 }, NullSink);
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

/// The identity parsers on random and mangled payloads (the entry points of
/// fuzz/fuzz_targets/identity.rs), seeded with login lines and Kerberos/DHCP shapes.
#[test]
fn identity_parsers_never_panic() {
    use mirrorwatch::identity::{dhcp, kerberos, text};
    let seeds: [&[u8]; 8] = [
        b"USER alice\r\nPASS x\r\n",
        b"a1 LOGIN \"bob\" pw\r\na2 AUTHENTICATE PLAIN\r\nAGJvYgBwdw==\r\n",
        b"AUTH LOGIN\r\nYWxpY2U=\r\ncHc=\r\n",
        b"+OK\r\n-ERR no\r\na1 OK done\r\n235 ok\r\n530 no\r\n",
        b"GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6cHc=\r\n\r\n",
        b"HTTP/1.1 401 Unauthorized\r\n\r\n",
        &[0x6a, 0x81, 0x80, 0x30, 0x81, 0x7d, 0xa1, 0x03, 0x02, 0x01, 0x05, 0xa2, 0x03, 0x02, 0x01, 0x0a],
        &[0, 0, 0, 20, 0x7e, 0x10, 0x30, 0x0e, 0xa0, 0x03, 0x02, 0x01, 0x05, 0xa1, 0x03, 0x02, 0x01, 0x1e, 0, 0],
    ];
    let mut rng = Rng(0x1d3a_7e11_c0de_f00d);
    let mut logins = text::TextLogins::default();
    let mut out = Vec::new();
    for i in 0..30_000u64 {
        let mut p = seeds[rng.below(seeds.len())].to_vec();
        for _ in 0..rng.below(6) {
            let j = rng.below(p.len());
            p[j] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            p.truncate(rng.below(p.len() + 1));
        }
        let _ = kerberos::parse(&p);
        let _ = kerberos::parse_tcp(&p);
        let mut dhcp_msg = vec![0u8; 240];
        dhcp_msg[236..240].copy_from_slice(&[99, 130, 83, 99]);
        dhcp_msg.extend_from_slice(&p);
        let _ = dhcp::parse(&dhcp_msg);
        let from_client = rng.below(2) == 0;
        let seg = text::Segment {
            conv: (rng.below(4) as u32, 0),
            payload: &p,
            from_client,
            client_mac: None,
            client_ip: None,
            ts: mirrorwatch::time::Ts(i as i64),
            frame: i,
        };
        let port = [110u16, 143, 25, 21, 8080][rng.below(5)];
        let (s, d) = if from_client { (40000, port) } else { (port, 40000) };
        logins.segment(&seg, s, d, &mut out);
    }
    logins.flush(&mut out);
    eprintln!("30000 mangled payloads, {} login facts, no panic", out.len());
}
