//! The open minute reaches the store with every batch: a pipeline ticked every few packets (as
//! the daemon ticks once a second) hands the store exactly the per-minute rows of a pipeline that
//! writes each minute once at its end — traffic, TCP pairs, error counts, user volume and
//! counters with their top groups (changing while the minute is open) — once the deltas are
//! added up as the store's upserts add them. So a crash loses what arrived since the last tick,
//! not the minute.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;
use mirrorwatch::flow::FlowConfig;
use mirrorwatch::pipeline::{Pipeline, PipelineConfig, StoreEvent};
use mirrorwatch::rules::RuleSet;

type Rows = BTreeMap<String, i64>;

fn add(rows: &mut Rows, k: String, v: i64) {
    *rows.entry(k).or_default() += v;
}

/// Adds up the store events as the store's upserts do; zero rows are left out (the store
/// deletes a counter row that went to zero).
fn as_store(events: &[StoreEvent]) -> Rows {
    let mut r = Rows::new();
    for e in events {
        match e {
            StoreEvent::Minute(m) => {
                add(&mut r, format!("traffic {} packets", m.minute), m.packets as i64);
                add(&mut r, format!("traffic {} bytes", m.minute), m.bytes as i64);
                add(&mut r, format!("traffic {} retrans", m.minute), m.tcp.retransmissions as i64);
                add(&mut r, format!("traffic {} private", m.minute), m.private_retransmissions as i64);
            }
            StoreEvent::Pair(p) => {
                let k = format!("pair {} {:?} {:?}", p.minute, p.src, p.dst);
                add(&mut r, format!("{k} packets"), p.packets as i64);
                add(&mut r, format!("{k} dup"), p.tcp.duplicate_acks as i64);
            }
            StoreEvent::Counter(c) => add(&mut r, format!("counter {} {} {}", c.minute, c.counter, c.key), c.delta),
            StoreEvent::AppErrorMinute(c) => {
                add(&mut r, format!("error {} {:?} {} {:?}", c.minute, c.family, c.code, c.server), c.count as i64)
            }
            StoreEvent::UserVolume { minute, user, volume } => {
                add(&mut r, format!("volume {minute} {user}"), volume.bytes_in as i64)
            }
            _ => {}
        }
    }
    r.retain(|_, v| *v != 0);
    r
}

fn run(files: &[&Path], rules: &str, tick_every: Option<u64>) -> Rows {
    // Two top groups per minute, so the top changes while a minute is open.
    let cfg = PipelineConfig { top_groups: 2, ..Default::default() };
    let mut p = Pipeline::new(FlowConfig::default(), cfg, Vec::new());
    p.set_rules(RuleSet::parse_text(Path::new("t.toml"), rules).unwrap());
    for f in files {
        let mut src = FileSource::open(f).unwrap();
        let mut n = 0u64;
        while let Some(pkt) = src.next_packet().unwrap() {
            let ts = pkt.ts;
            p.process(&pkt);
            n += 1;
            if tick_every.is_some_and(|k| n % k == 0) {
                p.tick(ts);
            }
        }
        p.end_of_file();
    }
    as_store(&p.sink)
}

#[test]
fn ticking_every_few_packets_stores_what_minute_ends_store() {
    let lab = common::lab_dir();
    let files = [
        lab.join("lab-http-short-loss8.pcap"),
        lab.join("lab-pgsql-errors.pcap"),
        lab.join("lab-nat-two-users-basic.pcap"),
        lab.join("lab-dns-dnsmasq.pcap"),
    ];
    let files: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let rules = r#"
[[counter]]
id = "by-port"
filter = "tcp || udp"
group_by = ["tcp.srcport"]
[[counter]]
id = "by-src"
filter = "ip"
group_by = ["ip.src", "ip.dst"]
value = "bytes"
[[counter]]
id = "retrans"
filter = "tcp.analysis.retransmission"
"#;
    let whole = run(&files, rules, None);
    assert!(whole.keys().any(|k| k.starts_with("counter") && k.ends_with(" other")), "top groups change");
    assert!(whole.keys().any(|k| k.starts_with("error")) && whole.keys().any(|k| k.starts_with("volume")));
    for every in [1, 7, 50] {
        assert_eq!(run(&files, rules, Some(every)), whole, "ticking every {every} packets");
    }
}

#[test]
fn a_tick_hands_over_the_open_minute_at_once() {
    let mut p = Pipeline::new(FlowConfig::default(), PipelineConfig::default(), Vec::new());
    let mut src = FileSource::open(&common::lab_dir().join("lab-http-short-loss8.pcap")).unwrap();
    let mut last = None;
    for _ in 0..10 {
        let pkt = src.next_packet().unwrap().unwrap();
        last = Some(pkt.ts);
        p.process(&pkt);
    }
    assert!(p.sink.is_empty(), "nothing is stored before a tick");
    p.tick(last.unwrap());
    let packets: u64 = p.sink.iter().map(|e| if let StoreEvent::Minute(m) = e { m.packets } else { 0 }).sum();
    assert_eq!(packets, 10, "the ten frames of the open minute are in the store after one tick");
}
