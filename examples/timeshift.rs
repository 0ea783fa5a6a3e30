//! Replays a classic pcap many times over a longer span of time, to standard output: copy k is
//! shifted by k × EVERY seconds, so one busy trace becomes a simulated day (or week) of traffic
//! without a file of that size. Used by `benches/store_day.sh` to measure the store a day of a
//! busy branch makes:
//!
//!   cargo run --release --example timeshift -- TRACE COPIES EVERY_SECS > /tmp/fifo

use std::io::{BufReader, BufWriter, Read, Write};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || anyhow::anyhow!("usage: timeshift TRACE COPIES EVERY_SECS");
    let path = args.next().ok_or_else(usage)?;
    let copies: u64 = args.next().ok_or_else(usage)?.parse()?;
    let every: u32 = args.next().ok_or_else(usage)?.parse()?;
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    for k in 0..copies {
        let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
        let mut head = [0u8; 24];
        r.read_exact(&mut head)?;
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        anyhow::ensure!(
            magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
            "{path}: not a little-endian classic pcap (editcap -F pcap converts)"
        );
        if k == 0 {
            out.write_all(&head)?;
        }
        let shift = (k as u32).checked_mul(every).ok_or_else(|| anyhow::anyhow!("span beyond 2106"))?;
        let mut rec = [0u8; 16];
        let mut data = vec![0u8; 262_144];
        loop {
            match r.read_exact(&mut rec) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            let secs = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]).wrapping_add(shift);
            rec[..4].copy_from_slice(&secs.to_le_bytes());
            let incl = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]) as usize;
            anyhow::ensure!(incl <= data.len(), "{path}: record of {incl} bytes");
            r.read_exact(&mut data[..incl])?;
            out.write_all(&rec)?;
            out.write_all(&data[..incl])?;
        }
    }
    out.flush()?;
    Ok(())
}
