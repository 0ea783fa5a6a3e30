//! No credential leaves the box in an evidence file: every frame of the lab login captures
//! (POP3, IMAP, SMTP AUTH, FTP, HTTP Basic, Kerberos), each data segment first sent split in two
//! and then retransmitted whole, goes through the pipeline and is kept with the masks the
//! analyzers gave it, as the ring and the alert evidence keep it; the evidence pcapng holds none
//! of the passwords (plain or base64) and the Kerberos PA-ENC-TIMESTAMP cipher text is masked —
//! and the file still opens in Wireshark with every frame.

mod common;

use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::{LinkType, PacketSource, RawPacket};
use mirrorwatch::decode::{decode, Transport};
use mirrorwatch::pipeline::{NullSink, Pipeline};
use mirrorwatch::rules::alerts::Evidence;

fn secrets() -> Vec<Vec<u8>> {
    common::lab_secrets()
}

fn frames(file: &str) -> Vec<Evidence> {
    let mut src = FileSource::open(&common::lab_dir().join(file)).unwrap();
    let mut v = Vec::new();
    while let Some(p) = src.next_packet().unwrap() {
        v.push(Evidence { ts: p.ts, link: p.link.0, orig_len: p.orig_len, data: p.data.to_vec() });
    }
    v
}

/// A TCP segment with payload cut in two segments at `k` (IP length and sequence adjusted).
fn split(e: &Evidence, k: usize) -> Option<(Evidence, Evidence)> {
    let pkt =
        RawPacket { frame: 1, ts: e.ts, orig_len: e.orig_len, link: LinkType(e.link), interface: 0, data: &e.data };
    let d = decode(&pkt);
    let Transport::Tcp(t) = d.transport else { return None };
    let ip = d.ip?;
    // Untagged Ethernet only: the IP header starts at byte 14.
    if e.link != 1 || d.payload.len() <= k || e.orig_len as usize != e.data.len() {
        return None;
    }
    let ip_at = 14;
    let start = d.payload.as_ptr() as usize - e.data.as_ptr() as usize;
    let tcp_seq_at = start - t.header_len as usize + 4;
    let mut a = e.data[..start + k].to_vec();
    let mut b = e.data[..start].to_vec();
    b.extend_from_slice(&e.data[start + k..]);
    for (f, len) in [(&mut a, k), (&mut b, d.payload.len() - k)] {
        if ip.is_v4() {
            let total = (start - ip_at + len) as u16;
            f[ip_at + 2..ip_at + 4].copy_from_slice(&total.to_be_bytes());
        } else {
            let pl = (start - ip_at - 40 + len) as u16;
            f[ip_at + 4..ip_at + 6].copy_from_slice(&pl.to_be_bytes());
        }
    }
    let seq = u32::from_be_bytes(b[tcp_seq_at..tcp_seq_at + 4].try_into().unwrap()).wrapping_add(k as u32);
    b[tcp_seq_at..tcp_seq_at + 4].copy_from_slice(&seq.to_be_bytes());
    let mk = |data: Vec<u8>| Evidence { ts: e.ts, link: e.link, orig_len: data.len() as u32, data };
    Some((mk(a), mk(b)))
}

#[test]
fn evidence_of_every_login_protocol_holds_no_credential() {
    let secrets = secrets();
    let dir = tempfile::tempdir().unwrap();
    for file in
        ["lab-mail-dovecot.pcap", "lab-ftp-smtp-logins.pcap", "lab-nat-two-users-basic.pcap", "lab-kerberos-kdc.pcap"]
    {
        let orig = frames(file);
        let all_orig: Vec<u8> = orig.iter().flat_map(|e| e.data.clone()).collect();
        assert!(
            secrets.iter().any(|s| all_orig.windows(s.len()).any(|w| w == s.as_slice())) || file.contains("kerberos"),
            "{file}: the capture carries credentials to redact"
        );
        // Each data segment split in two (at 1, 3, 5 or 8 bytes, in turn), then retransmitted
        // whole; every frame through the pipeline, kept with its masks.
        let mut sent = Vec::new();
        let mut splits = 0;
        for (i, e) in orig.iter().enumerate() {
            match split(e, [1, 3, 5, 8][i % 4]) {
                Some((a, b)) => {
                    sent.extend([a, b, e.clone()]);
                    splits += 1;
                }
                None => sent.push(e.clone()),
            }
        }
        assert!(splits >= 4, "{file}: segments split");
        let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
        let mut ev = Vec::new();
        for (n, e) in sent.iter().enumerate() {
            let pkt = RawPacket {
                frame: n as u64 + 1,
                ts: e.ts,
                orig_len: e.orig_len,
                link: LinkType(e.link),
                interface: 0,
                data: &e.data,
            };
            p.process(&pkt);
            let mut kept = e.clone();
            p.masks().apply(&mut kept.data);
            ev.push(kept);
        }
        let out = mirrorwatch::store::pcapng::pcapng(&ev);
        // Frames one by one: a secret must not survive in any frame, whole or split.
        let path = dir.path().join(format!("{file}.pcapng"));
        std::fs::write(&path, &out).unwrap();
        let mut back = FileSource::open(&path).unwrap();
        let mut n = 0;
        while let Some(p) = back.next_packet().unwrap() {
            n += 1;
            for s in &secrets {
                assert!(
                    !p.data.windows(s.len()).any(|w| w == s.as_slice()),
                    "{file}: frame {n} of the evidence holds {:?}",
                    String::from_utf8_lossy(s)
                );
            }
        }
        assert_eq!(n, ev.len(), "{file}: every frame written with its length");
        if common::have_tshark() {
            let t = std::process::Command::new("tshark")
                .arg("-r")
                .arg(&path)
                .args(["-T", "fields", "-e", "frame.number"])
                .output()
                .unwrap();
            assert!(t.status.success(), "{file}: Wireshark opens the evidence");
            assert_eq!(String::from_utf8_lossy(&t.stdout).lines().count(), ev.len());
            if file.contains("kerberos") {
                let c = common::tshark_fields(&path, Some("kerberos.padata_type == 2"), &["kerberos.cipher"]);
                // (A KRB-ERROR lists PA-ENC-TIMESTAMP among the methods it wants, without value.)
                let ciphers: Vec<&str> = c.iter().flat_map(|r| r[0].split(',')).filter(|c| !c.is_empty()).collect();
                assert!(ciphers.len() >= 2, "PA-ENC-TIMESTAMP still dissected: {c:?}");
                for cipher in ciphers {
                    // '*' is 0x2a: every byte of the cipher text masked.
                    assert!(cipher.as_bytes().chunks(2).all(|b| b == b"2a"), "cipher text not masked: {cipher}");
                }
            }
        } else {
            common::skip_or_fail("tshark is not installed: the Wireshark checks of the evidence did not run");
        }
    }
}
