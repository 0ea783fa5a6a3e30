//! Writes two captures of one LAN client for the flood benchmark (benches/flood.sh), with the
//! same number of frames (full-size frames, as the box captures with snaplen 1600):
//!
//! - `flood.pcap`: connections that open and never finish — an HTTP request whose headers never
//!   end, a POP3 login that never gets its verdict, a MySQL reply whose packet never completes —
//!   so every dissector table (HTTP messages, login sessions, database framers) is full and each
//!   new connection forgets one;
//! - `normal.pcap`: the same connections completing their exchanges.
//!
//! usage: cargo run --release --example flood -- OUT_DIR [CONNECTIONS]

use std::io::Write;

/// Sender address and port, receiver address and port.
type Ends = ([u8; 4], u16, [u8; 4], u16);

fn frame(out: &mut Vec<u8>, ts_us: u64, (src, sp, dst, dp): Ends, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (40 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(f.len() as u32).to_le_bytes());
    out.extend_from_slice(&(f.len() as u32).to_le_bytes());
    out.extend_from_slice(&f);
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: flood OUT_DIR [CONNECTIONS]"));
    let n: u32 = args.next().map(|s| s.parse().expect("a number")).unwrap_or(100_000);
    std::fs::create_dir_all(&dir).unwrap();
    let client = [10, 1, 1, 10];
    let server = [10, 1, 2, 20];
    // A 1400-byte body so frames are full-size.
    let filler = vec![b'x'; 1400];
    for finish in [false, true] {
        let mut out = Vec::new();
        out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0]);
        let mut t = 1_795_000_000_000_000u64;
        for i in 0..n {
            let sp = 1024 + (i % 60_000) as u16;
            let (dp, req, resp): (u16, Vec<u8>, Vec<u8>) = match i % 3 {
                0 => {
                    let mut r = b"POST /form HTTP/1.1\r\nHost: intranet\r\nX-Pad: ".to_vec();
                    r.extend_from_slice(&filler);
                    if finish {
                        r.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
                    }
                    (80, r, if finish { b"HTTP/1.1 204 No Content\r\n\r\n".to_vec() } else { Vec::new() })
                }
                1 => (
                    110,
                    format!("USER user{i}\r\n").into_bytes(),
                    if finish { b"+OK\r\n".to_vec() } else { Vec::new() },
                ),
                _ => {
                    // A MySQL packet header announcing more than is ever sent (or all of it).
                    let body = if finish { &filler[..100] } else { &filler[..] };
                    let len = if finish { body.len() as u32 } else { 0x00ff_ffff };
                    let mut r = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, 1];
                    r.extend_from_slice(body);
                    (3306, b"\x03select 1".to_vec(), r)
                }
            };
            let (cs, ss) = (1000u32.wrapping_add(i), 5000u32.wrapping_add(i));
            let mut step = |f: &mut Vec<u8>, c2s: bool, seq, ack, flags, p: &[u8]| {
                t += 50;
                let ends = if c2s { (client, sp, server, dp) } else { (server, dp, client, sp) };
                frame(f, t, ends, seq, ack, flags, p)
            };
            step(&mut out, true, cs, 0, SYN, &[]);
            step(&mut out, false, ss, cs + 1, SYN | ACK, &[]);
            step(&mut out, true, cs + 1, ss + 1, ACK, &[]);
            step(&mut out, true, cs + 1, ss + 1, PSH_ACK, &req);
            let c_end = cs + 1 + req.len() as u32;
            // The flood's server answers with nothing (or a never-ending reply); the normal one
            // answers and both sides close.
            let r = if resp.is_empty() { &filler[..0] } else { &resp[..] };
            step(&mut out, false, ss + 1, c_end, PSH_ACK, r);
            let s_end = ss + 1 + r.len() as u32;
            let flags = if finish { FIN_ACK } else { ACK };
            step(&mut out, true, c_end, s_end, flags, &[]);
        }
        let name = if finish { "normal.pcap" } else { "flood.pcap" };
        std::fs::File::create(dir.join(name)).unwrap().write_all(&out).unwrap();
        eprintln!("{}: {} frames", dir.join(name).display(), n * 6);
    }
}
