//! Differential test against tshark for the binary credentials no password search can find:
//! every SMB2 SESSION_SETUP request's security blob (NTLMSSP responses, Kerberos tickets and
//! authenticators), every NTLMSSP NTLMv2 response and every LDAP bind's credentials that
//! tshark's dissectors show in a frame of the shared corpus, the lab and the login captures
//! (slapd simple binds, also on a non-standard port tshark is told of) are, byte for byte,
//! under our analyzers' masks — in every segment that carries any of their bytes: the frame
//! tshark shows them in, the earlier segments of a message cut across several, and every
//! retransmitted copy.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;
use mirrorwatch::decode::{decode, Transport};
use mirrorwatch::pipeline::{NullSink, Pipeline};

/// Fields holding credential bytes (tshark prints them in hex), and `ldap.simple`, which it
/// prints as text.
const FIELDS: &[&str] = &["smb2.security_blob", "ntlmssp.ntlmv2_response", "ldap.credentials", "ldap.simple"];
/// The client's frames that carry them: SMB2 SESSION_SETUP requests, NTLMSSP AUTHENTICATE
/// messages (in any protocol), LDAP BindRequests.
const FILTER: &str =
    "(smb2.cmd == 1 && smb2.flags.response == 0) || ntlmssp.messagetype == 3 || ldap.bindRequest_element";

/// One TCP segment with payload: its direction, sequence number, and its payload as captured
/// and as our masks leave it.
struct Seg {
    dir: (IpAddr, u16, IpAddr, u16),
    seq: u32,
    orig: Vec<u8>,
    masked: Vec<u8>,
}

/// Every payload-carrying TCP segment of the capture, by frame number.
fn segments(file: &Path) -> BTreeMap<u64, Seg> {
    let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
    let mut src = FileSource::open(file).unwrap();
    let mut out = BTreeMap::new();
    // A capture cut short is read up to its cut, as tshark reads it.
    while let Ok(Some(pkt)) = src.next_packet() {
        p.process(&pkt);
        let d = decode(&pkt);
        let (Transport::Tcp(t), Some(ip)) = (d.transport, d.ip) else { continue };
        if d.payload.is_empty() {
            continue;
        }
        let at = d.payload.as_ptr() as usize - pkt.data.as_ptr() as usize;
        let mut data = pkt.data.to_vec();
        p.masks().apply(&mut data);
        let (orig, masked) = (d.payload.to_vec(), data[at..at + d.payload.len()].to_vec());
        out.insert(pkt.frame, Seg { dir: (ip.src, t.src_port, ip.dst, t.dst_port), seq: t.seq, orig, masked });
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
}

/// Where `blob` lies in the sequence space of frame `n`'s direction: tshark shows a field of
/// a message cut across segments in the message's last frame, so the direction's bytes up to
/// that frame's end are put back together (first copy of each byte) and searched, the last
/// occurrence winning. `None` when it is not there.
fn seq_range(segs: &BTreeMap<u64, Seg>, n: u64, blob: &[u8]) -> Option<u32> {
    let last = segs.get(&n)?;
    let end = last.seq.wrapping_add(last.orig.len() as u32);
    // The direction's segments up to frame n, within 64 KiB before its end.
    let window = 65_536u32;
    let base = end.wrapping_sub(window);
    let mut stream = vec![None; window as usize];
    for s in segs.range(..=n).map(|(_, s)| s).filter(|s| s.dir == last.dir) {
        for (i, b) in s.orig.iter().enumerate() {
            let off = s.seq.wrapping_add(i as u32).wrapping_sub(base) as usize;
            if let Some(slot) = stream.get_mut(off) {
                slot.get_or_insert(*b);
            }
        }
    }
    let bytes: Vec<u8> = stream.iter().map(|b| b.unwrap_or(0)).collect();
    let known: Vec<bool> = stream.iter().map(Option::is_some).collect();
    let at = (0..=bytes.len().checked_sub(blob.len())?)
        .rev()
        .find(|&i| &bytes[i..i + blob.len()] == blob && known[i..i + blob.len()].iter().all(|k| *k))?;
    Some(base.wrapping_add(at as u32))
}

/// Bytes of `[from, from + len)` in sequence space that some segment of the direction (any
/// copy, a retransmission too) carries unmasked.
fn open_bytes(segs: &BTreeMap<u64, Seg>, dir: (IpAddr, u16, IpAddr, u16), from: u32, len: usize) -> usize {
    let mut open = 0;
    for s in segs.values().filter(|s| s.dir == dir) {
        for (i, (o, m)) in s.orig.iter().zip(&s.masked).enumerate() {
            let off = s.seq.wrapping_add(i as u32).wrapping_sub(from) as usize;
            if off < len && o == m && *o != b'*' {
                open += 1;
            }
        }
    }
    open
}

#[test]
fn credential_blobs_tshark_shows_are_masked() {
    if !common::have_tshark() {
        return;
    }
    let Some(corpus) = common::corpus_dir() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = common::captures_in(&corpus);
    files.extend(common::captures_in(&common::lab_dir()));
    files.extend(common::captures_in(&root.join("tests/data/logins")));
    let (mut checked, mut bytes, mut files_with) = (0usize, 0usize, 0usize);
    for f in files {
        let mut want: Vec<(u64, &str, Vec<u8>)> = Vec::new();
        let columns: Vec<&str> = ["frame.number"].iter().chain(FIELDS).copied().collect();
        // The login captures' other port for LDAP (see tests/lab/make-login-captures.sh).
        let decode = f.ends_with("login-ldap-alt.pcap").then_some("tcp.port==3389,ldap");
        for row in common::tshark_fields_as(&f, decode, Some(FILTER), &columns) {
            let Some(n) = row.first().and_then(|n| n.parse().ok()) else { continue };
            for (field, v) in FIELDS.iter().zip(&row[1..]) {
                let v = if *field == "ldap.simple" { v.as_bytes().to_vec() } else { unhex(v) };
                if v.len() >= 4 {
                    want.push((n, field, v));
                }
            }
        }
        if want.is_empty() {
            continue;
        }
        files_with += 1;
        let segs = segments(&f);
        for (n, field, blob) in &want {
            let Some(from) = seq_range(&segs, *n, blob) else {
                panic!("{}: frame {n}: {field} of {} bytes not found in its stream", f.display(), blob.len())
            };
            let open = open_bytes(&segs, segs[n].dir, from, blob.len());
            assert_eq!(
                open,
                0,
                "{}: frame {n}: {open} bytes of {field} ({} bytes) are not masked",
                f.display(),
                blob.len()
            );
            checked += 1;
            bytes += blob.len();
        }
    }
    eprintln!("{checked} credential fields ({bytes} bytes) in {files_with} captures, every byte masked");
    assert!(checked >= 30 && files_with >= 3, "{checked} fields in {files_with} files");
}
