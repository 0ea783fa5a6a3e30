//! Generated rule files (odd windows, extreme numbers, deep and long filters, many groups) are
//! loaded, and every one that loads runs over real lab captures without a panic: a rule that
//! `rules check` accepts must never crash `analyze` or the daemon.

mod common;

use std::path::Path;

use mirrorwatch::flow::FlowConfig;
use mirrorwatch::offline::process_files;
use mirrorwatch::pipeline::{NullSink, Pipeline, PipelineConfig};
use mirrorwatch::rules::RuleSet;

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

const WINDOWS: &[&str] = &[
    "1s",
    "59s",
    "60s",
    "61s",
    "90s",
    "5m",
    "7m",
    "1h",
    "23h",
    "1d",
    "2d",
    "7d",
    "86400",
    "86460s",
    "0m",
    "213503982334602d",
    "99999999999999999999m",
    "-5m",
    "5x",
];
const NUMBERS: &[&str] = &[
    "1",
    "0",
    "-1",
    "0.0001",
    "1e-300",
    "3.5",
    "1e12",
    "1e13",
    "1e308",
    "nan",
    "inf",
    "-inf",
    "1000000",
    "1e7",
    "9223372036854775807",
    "18446744073709551615",
];
const COUNTS: &[&str] = &["0", "1", "10", "1000000000000", "1000000000001", "9223372036854775807"];
const FILTERS: &[&str] = &[
    "tcp",
    "tcp.analysis.retransmission",
    "ip.addr == 10.0.0.0/8 && tcp.port in {80, 443, 1..1024}",
    "frame contains \"PASS\"",
    "dns.qry.name matches \"^a.*\"",
    "!udp",
    "app_error",
    "pop.request.command == \"USER\"",
    "frame.len > 4294967295",
    "tcp.len >= 0 || not ip",
];
const GROUPS: &[&str] = &["ip.src", "ip.dst", "eth.src", "tcp.dstport", "dns.qry.name", "pop.request.command"];

fn filter(r: &mut Rng) -> String {
    match r.next() % 6 {
        0 => {
            let n = (r.next() % 80) as usize;
            format!("{}{}{}", "(".repeat(n), r.pick(FILTERS), ")".repeat(n))
        }
        1 => format!("{}{}", "!".repeat((r.next() % 80) as usize), r.pick(FILTERS)),
        2 => {
            let n = (r.next() % 1200) as usize + 1;
            (0..n).map(|_| r.pick(FILTERS)).collect::<Vec<_>>().join(" or ")
        }
        _ => r.pick(FILTERS).to_string(),
    }
}

fn rule_file(r: &mut Rng) -> String {
    let mut s = String::new();
    let counters = r.next() % 4 + 1;
    for c in 0..counters {
        s += &format!("[[counter]]\nid = \"c{c}\"\nfilter = {:?}\n", filter(r));
        if r.next() % 2 == 0 {
            let g: Vec<String> = (0..r.next() % 5).map(|_| format!("{:?}", r.pick(GROUPS))).collect();
            s += &format!("group_by = [{}]\n", g.join(", "));
        }
        if r.next() % 3 == 0 {
            s += "app_error = true\n";
        }
        if r.next() % 3 == 0 {
            s += "value = \"bytes\"\n";
        }
    }
    for a in 0..r.next() % 4 {
        s += &format!("[[alert]]\nid = \"a{a}\"\n");
        match r.next() % 3 {
            0 => {
                s += &format!(
                    "event = {:?}\n",
                    r.pick(&["app_error", "identity.new", "identity.shared_mac", "capture.drops"])
                )
            }
            _ => s += &format!("counter = \"c{}\"\n", r.next() % counters),
        }
        s += &format!("window = {:?}\n", r.pick(WINDOWS));
        if r.next() % 2 == 0 {
            s += &format!("above = {}\n", r.pick(NUMBERS));
        }
        if r.next() % 2 == 0 {
            s += &format!("above_baseline = {}\n", r.pick(NUMBERS));
            s += &format!("min_count = {}\n", r.pick(COUNTS));
        }
        s += &format!("suppress = {:?}\nmail = true\n", r.pick(WINDOWS));
    }
    s
}

#[test]
fn generated_rule_files_that_load_run_over_captures() {
    let lab = common::lab_dir();
    let files: Vec<_> = ["lab-http-short-loss8.pcap", "lab-pgsql-errors.pcap", "lab-mail-dovecot.pcap"]
        .iter()
        .map(|f| lab.join(f))
        .collect();
    let (mut loaded, mut refused) = (0, 0);
    for seed in 1..=300u64 {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let text = rule_file(&mut r);
        let set = match RuleSet::parse_text(Path::new("gen.toml"), &text) {
            Ok(s) => s,
            Err(errors) => {
                // Every refusal says where.
                for e in &errors {
                    assert!(e.line >= 1 && e.col >= 1, "seed {seed}: error without a position: {e}");
                }
                refused += 1;
                continue;
            }
        };
        loaded += 1;
        let mut p = Pipeline::new(FlowConfig::default(), PipelineConfig::default(), NullSink);
        p.set_rules(set);
        let reports = process_files(&mut p, &files, None);
        p.finish_alerts();
        assert!(reports.iter().all(|r| r.error.is_none()), "seed {seed}");
    }
    eprintln!("{loaded} generated rule files loaded and ran, {refused} refused with a position");
    assert!(loaded > 50 && refused > 50, "the generator covers both sides: {loaded} / {refused}");
}

#[test]
fn the_reported_crash_rule_is_refused_at_its_line() {
    let text = "[[counter]]\nid = \"r\"\nfilter = \"tcp.analysis.retransmission\"\n[[alert]]\nid = \"a\"\ncounter = \"r\"\nwindow = \"2d\"\nabove_baseline = 3.0\n";
    let e = RuleSet::parse_text(Path::new("x.toml"), text).expect_err("2d window");
    assert_eq!(
        e[0].to_string(),
        "x.toml:7:10: window: \"2d\" is out of range (60s to 1d, whole minutes for a counter alert)"
    );
}
