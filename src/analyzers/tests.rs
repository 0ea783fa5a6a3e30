//! Conversations built as real Ethernet/IPv4/TCP frames and run through the whole pipeline
//! (flow table, TCP analysis, detection, the analyzers): what each frame looks like with its
//! masks applied, and what the analyzers reported. The protocol tests use these.

use crate::capture::{LinkType, RawPacket};
use crate::flow::FlowConfig;
use crate::identity::{IdentityFact, Outcome};
use crate::pipeline::{Pipeline, PipelineConfig, StoreEvent};
use crate::time::Ts;

pub const CLIENT: ([u8; 4], u16) = ([10, 1, 1, 10], 40_123);

/// One Ethernet/IPv4/TCP frame.
pub fn tcp_frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    if src.0 == CLIENT.0 {
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    } else {
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    }
    let total = (20 + 20 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

/// What a conversation left behind.
#[derive(Default)]
pub struct Run {
    /// Each data segment's payload as it would be kept (ring, evidence), in order.
    pub kept: Vec<(bool, Vec<u8>)>,
    pub logins: Vec<IdentityFact>,
    pub errors: Vec<String>,
    pub exchanges: Vec<(String, String, String)>,
}

impl Run {
    /// All bytes kept, one direction's or both (`None`).
    pub fn text(&self, from_client: Option<bool>) -> String {
        let v: Vec<u8> = self
            .kept
            .iter()
            .filter(|(c, _)| from_client.is_none_or(|w| w == *c))
            .flat_map(|(_, b)| b.clone())
            .collect();
        String::from_utf8_lossy(&v).into_owned()
    }

    pub fn users(&self) -> Vec<(String, Outcome)> {
        self.logins.iter().map(|f| (f.user.clone().unwrap_or_default(), f.outcome)).collect()
    }
}

/// A TCP conversation between `CLIENT` and a server on `port`: the handshake (when `syn`), then
/// each (from_client, bytes) as one segment, retransmitted once more when `again`, then FIN.
pub fn talk(port: u16, syn: bool, segs: &[(bool, &[u8])], again: bool) -> Run {
    let server = ([10, 2, 2, 20], port);
    let mut p: Pipeline<Vec<StoreEvent>> = Pipeline::new(FlowConfig::default(), PipelineConfig::default(), Vec::new());
    p.track_exchanges();
    let mut run = Run::default();
    let (mut cseq, mut sseq) = (1000u32, 5000u32);
    let mut frame = 0u64;
    let mut send = |p: &mut Pipeline<Vec<StoreEvent>>,
                    run: &mut Run,
                    from_client: bool,
                    seq: u32,
                    ack: u32,
                    flags: u8,
                    data: &[u8]| {
        frame += 1;
        let (s, d) = if from_client { (CLIENT, server) } else { (server, CLIENT) };
        let f = tcp_frame(s, d, seq, ack, flags, data);
        let pkt = RawPacket {
            frame,
            ts: Ts::from_secs_nanos(1_700_000_000, frame as i64 * 1000),
            orig_len: f.len() as u32,
            link: LinkType::ETHERNET,
            interface: 0,
            data: &f,
        };
        p.process_with(&pkt, |c, _| {
            if !data.is_empty() {
                let mut kept = f.clone();
                c.app.masks.apply(&mut kept);
                run.kept.push((from_client, kept[54..].to_vec()));
            }
            run.errors.extend(c.app.errors.iter().map(|e| format!("{} {}", e.family.name(), e.code)));
            run.exchanges
                .extend(c.app.exchanges.iter().map(|x| (x.proto.to_string(), x.name.clone(), x.outcome.clone())));
        });
    };
    if syn {
        send(&mut p, &mut run, true, cseq - 1, 0, SYN, &[]);
        send(&mut p, &mut run, false, sseq - 1, cseq, SYN | ACK, &[]);
        send(&mut p, &mut run, true, cseq, sseq, ACK, &[]);
    }
    for &(from_client, data) in segs {
        let (seq, ack) = if from_client { (cseq, sseq) } else { (sseq, cseq) };
        send(&mut p, &mut run, from_client, seq, ack, ACK | PSH, data);
        if again {
            send(&mut p, &mut run, from_client, seq, ack, ACK | PSH, data);
        }
        if from_client {
            cseq = cseq.wrapping_add(data.len() as u32);
        } else {
            sseq = sseq.wrapping_add(data.len() as u32);
        }
    }
    send(&mut p, &mut run, true, cseq, sseq, ACK | FIN, &[]);
    p.end_of_file();
    run.exchanges.extend(p.take_exchanges().into_iter().map(|x| (x.proto.to_string(), x.name, x.outcome)));
    run.logins = p
        .sink
        .iter()
        .filter_map(|e| match e {
            StoreEvent::Identity(f) => Some((**f).clone()),
            _ => None,
        })
        .collect();
    run
}

/// Every way of cutting the client's `line` (at `index` in `segs`) into two segments.
pub fn every_cut(segs: &[(bool, &[u8])], index: usize) -> Vec<Vec<(bool, Vec<u8>)>> {
    let line = segs[index].1;
    (1..line.len())
        .map(|cut| {
            let mut v: Vec<(bool, Vec<u8>)> = Vec::new();
            for (i, &(c, b)) in segs.iter().enumerate() {
                if i == index {
                    v.push((c, line[..cut].to_vec()));
                    v.push((c, line[cut..].to_vec()));
                } else {
                    v.push((c, b.to_vec()));
                }
            }
            v
        })
        .collect()
}

/// [`talk`] over owned segments.
pub fn talk_owned(port: u16, syn: bool, segs: &[(bool, Vec<u8>)], again: bool) -> Run {
    let borrowed: Vec<(bool, &[u8])> = segs.iter().map(|(c, b)| (*c, &b[..])).collect();
    talk(port, syn, &borrowed, again)
}

/// The checks every login protocol passes: on its port and another, from the connection's start
/// and mid-stream, with the secret line cut at every byte, with each segment retransmitted, the
/// secret never survives; the user and outcome are the same everywhere.
pub fn login_everywhere(ports: [u16; 2], segs: &[(bool, &[u8])], secret_line: usize, secret: &str) -> Run {
    let base = talk(ports[0], true, segs, false);
    assert!(!base.text(None).contains(secret), "{secret} kept on port {}: {}", ports[0], base.text(None));
    for port in ports {
        for syn in [true, false] {
            for again in [false, true] {
                let r = talk(port, syn, segs, again);
                assert!(!r.text(None).contains(secret), "port {port} syn {syn} again {again}: {}", r.text(None));
                if syn {
                    assert_eq!(r.users(), base.users(), "port {port} again {again}");
                }
            }
            for cut in every_cut(segs, secret_line) {
                let r = talk_owned(port, syn, &cut, false);
                let t = r.text(None);
                // No piece of the secret longer than 2 bytes survives anywhere.
                for w in secret.as_bytes().windows(3) {
                    let w = String::from_utf8_lossy(w);
                    assert!(!t.contains(w.as_ref()), "port {port} syn {syn}: {w:?} of {secret} kept: {t}");
                }
                if syn {
                    assert_eq!(r.users(), base.users(), "port {port}, a cut line");
                }
            }
        }
    }
    base
}

#[test]
fn an_unknown_protocol_is_left_alone() {
    let r = talk(9999, true, &[(true, b"hello there\r\n"), (false, b"general kenobi\r\n")], false);
    assert_eq!(r.text(None), "hello there\r\ngeneral kenobi\r\n");
    assert!(r.logins.is_empty());
}

/// What a flow costs: the state kept inline in every flow slot, and the largest analyzer state
/// a flow gets once its protocol is chosen (the note and the unit's MemoryMax reckoning use
/// these). Buffers beyond these are the budget's.
#[test]
fn per_flow_state_is_small_and_bounded() {
    use super::{FlowApp, State};
    use std::mem::size_of;
    let inline = size_of::<FlowApp>();
    let flow = size_of::<crate::flow::Flow<FlowApp>>();
    let state = size_of::<State>();
    eprintln!("FlowApp {inline} B inline, Flow<FlowApp> {flow} B, analyzer state {state} B (boxed, largest variant)");
    for (name, n) in [
        ("pop3", size_of::<super::pop3::Pop3>()),
        ("imap", size_of::<super::imap::Imap>()),
        ("smtp", size_of::<super::smtp::Smtp>()),
        ("ftp", size_of::<super::ftp::Ftp>()),
        ("telnet", size_of::<super::telnet::Telnet>()),
        ("http", size_of::<super::http::Http>()),
        ("pgsql", size_of::<super::pgsql::Pgsql>()),
        ("mysql", size_of::<super::mysql::Mysql>()),
        ("tds", size_of::<super::tds::Tds>()),
        ("ldap", size_of::<super::ldap::Ldap>()),
        ("smb", size_of::<super::smb::Smb>()),
    ] {
        eprintln!("  {name}: {n} B");
    }
    assert!(inline <= 24, "{inline}");
    assert!(state <= 1024, "{state}");
}
