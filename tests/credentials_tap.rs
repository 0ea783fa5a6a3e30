//! Differential test against Wireshark's credentials tap: every frame `tshark -z credentials`
//! names as carrying a password (FTP, POP3, IMAP, SMTP, HTTP Basic, NTLMSSP…) is one our
//! analyzers put a credential mask on — or, when the frame ends before its secret begins (`PASS `
//! and the password in the next segment), the next segment of the same direction is — on every
//! capture of the shared corpus, the lab and the login captures.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;
use mirrorwatch::pipeline::{NullSink, Pipeline};

/// Frames tshark's credentials tap reports.
fn tap(file: &Path) -> BTreeSet<u64> {
    let out = Command::new("tshark").args(["-n", "-r"]).arg(file).args(["-q", "-z", "credentials"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

/// Frames our analyzers mask something in.
fn masked(file: &Path) -> BTreeSet<u64> {
    let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
    let mut v = BTreeSet::new();
    let Ok(mut src) = FileSource::open(file) else { return v };
    while let Ok(Some(pkt)) = src.next_packet() {
        let frame = pkt.frame;
        p.process_with(&pkt, |c, _| {
            if !c.app.masks.is_empty() {
                v.insert(frame);
            }
        });
    }
    v
}

#[test]
fn every_frame_of_tsharks_credentials_tap_is_masked() {
    if !common::have_tshark() {
        return;
    }
    let Some(corpus) = common::corpus_dir() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = common::captures_in(&corpus);
    files.extend(common::captures_in(&common::lab_dir()));
    files.extend(common::captures_in(&root.join("tests/data/logins")));
    let (mut reported, mut files_with) = (0, 0);
    for f in &files {
        let want = tap(f);
        if want.is_empty() {
            continue;
        }
        let got = masked(f);
        // (stream, source port) of each frame: a secret may begin in the direction's next one.
        let dirs: Vec<(u64, String, String)> =
            common::tshark_fields(f, Some("tcp.len > 0"), &["frame.number", "tcp.stream", "tcp.srcport"])
                .into_iter()
                .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.clone(), r.get(2)?.clone())))
                .collect();
        let next_in_direction = |frame: u64| -> Option<u64> {
            let (_, s, p) = dirs.iter().find(|(n, _, _)| *n == frame)?;
            dirs.iter().find(|(n, s2, p2)| *n > frame && s2 == s && p2 == p).map(|(n, _, _)| *n)
        };
        let missing: Vec<&u64> = want
            .iter()
            .filter(|f| !got.contains(f) && !next_in_direction(**f).is_some_and(|n| got.contains(&n)))
            .collect();
        assert!(missing.is_empty(), "{}: tshark's credential frames {missing:?} carry no mask", f.display());
        reported += want.len();
        files_with += 1;
    }
    eprintln!("{reported} credential frames in {files_with} captures, every one masked");
    assert!(reported >= 80 && files_with >= 10, "{reported} frames in {files_with} files");
}
