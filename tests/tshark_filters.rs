//! Differential test of the display-filter language against tshark 4.0.
//!
//! Every expression of `tests/filter_expressions.txt` is run over every undamaged capture of the
//! shared corpus and every lab capture. To keep tshark's start-up cost to one run per
//! expression, the files are concatenated (`mergecap -a`, so each file's frames stay together
//! and in order) and results are mapped back to (expression, file) cases. Both tools read the
//! same merged file, so what is compared is exactly like for like.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mirrorwatch::capture::file::FileSource;
use mirrorwatch::capture::PacketSource;
use mirrorwatch::filter::Filter;
use mirrorwatch::pipeline::{NullSink, Pipeline};

/// (expression, file) cases where we knowingly differ, each pinned by a named test in
/// tests/filter_cases.rs that says why.
const KNOWN: &[(&str, &str)] = &[
    // A fast retransmission repeating a whole single-segment response: tshark dissects it again
    // (frames 42 and 86), mirrorwatch counts a response once.
    ("http.response.code == 200", "tcp-retrans-mixed-spurious.pcap"),
];

fn expressions() -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filter_expressions.txt")).unwrap();
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

fn inputs() -> Option<Vec<PathBuf>> {
    let dir = corpus_dir()?;
    let mut files: Vec<PathBuf> = captures_in(&dir)
        .into_iter()
        .filter(|f| {
            let n = f.file_name().unwrap().to_string_lossy();
            // Damaged files (mergecap stops at the damage) and the bench file (copies of others).
            !n.starts_with("trunc-cut") && !n.contains("cut-mid-packet") && !n.starts_with("bench-")
        })
        .collect();
    files.extend(captures_in(&lab_dir()));
    Some(files)
}

fn tshark_frames(file: &Path, expr: &str) -> Result<BTreeSet<u64>, String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args(["-Y", expr, "-T", "fields", "-e", "frame.number"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.contains("Running as user")).collect());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect())
}

#[test]
fn display_filters_agree_with_tshark() {
    let Some(files) = inputs() else { return };
    if !have_tshark() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let merged = tmp.path().join("merged.pcapng");
    let st = Command::new("mergecap").args(["-a", "-F", "pcapng", "-w"]).arg(&merged).args(&files).status().unwrap();
    assert!(st.success(), "mergecap failed");

    // Frame ranges of the original files inside the merged one.
    let mut bounds = Vec::new(); // (first frame, last frame, name)
    let mut next = 1u64;
    for f in &files {
        let mut src = FileSource::open(f).unwrap();
        let mut n = 0;
        while let Ok(Some(_)) = src.next_packet() {
            n += 1;
        }
        bounds.push((next, next + n - 1, f.file_name().unwrap().to_string_lossy().to_string()));
        next += n;
    }

    let exprs = expressions();
    assert!(exprs.len() >= 150, "only {} expressions", exprs.len());
    let filters: Vec<Result<Filter, String>> =
        exprs.iter().map(|e| Filter::compile(e).map_err(|err| err.render(e))).collect();

    // Ours: one pass, every filter on every frame.
    let mut ours: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); filters.len()];
    let mut src = FileSource::open(&merged).unwrap();
    let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
    while let Ok(Some(pkt)) = src.next_packet() {
        p.process_with(&pkt, |ctx, _| {
            let present = mirrorwatch::filter::present(ctx);
            assert_eq!(present, mirrorwatch::filter::present_by_deps(ctx), "frame {}", ctx.d.frame);
            for (i, f) in filters.iter().enumerate() {
                if f.as_ref().is_ok_and(|f| f.matches(ctx)) {
                    ours[i].insert(ctx.d.frame);
                    // The counters skip a filter its guard rules out: never one that matches.
                    let guard_ok = f.as_ref().is_ok_and(|f| f.could_match(present));
                    assert!(guard_ok, "the guard of {:?} rules out frame {}, which matches", exprs[i], ctx.d.frame);
                }
            }
        });
    }
    assert_eq!(next - 1, src_frames(&merged), "frame count");

    // tshark: one run per expression, two at a time.
    let theirs: Vec<Result<BTreeSet<u64>, String>> = std::thread::scope(|s| {
        let half = exprs.len() / 2;
        let (a, b) = exprs.split_at(half);
        let ha = s.spawn(|| a.iter().map(|e| tshark_frames(&merged, e)).collect::<Vec<_>>());
        let hb = s.spawn(|| b.iter().map(|e| tshark_frames(&merged, e)).collect::<Vec<_>>());
        let mut v = ha.join().unwrap();
        v.extend(hb.join().unwrap());
        v
    });

    let mut cases = 0usize;
    let mut agree = 0usize;
    let mut known = 0usize;
    let mut failures = Vec::new();
    let mut per_expr: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, e) in exprs.iter().enumerate() {
        let t = match (&theirs[i], &filters[i]) {
            (Ok(t), Ok(_)) => t,
            (Err(msg), Ok(_)) => {
                failures.push(format!("tshark rejects {e:?} but we accept it: {msg}"));
                continue;
            }
            (Ok(_), Err(msg)) => {
                failures.push(format!("we reject {e:?} but tshark accepts it: {msg}"));
                continue;
            }
            (Err(_), Err(_)) => {
                // Both reject it: counts as agreement for every file.
                cases += bounds.len();
                agree += bounds.len();
                continue;
            }
        };
        for (lo, hi, name) in &bounds {
            cases += 1;
            let o: BTreeSet<u64> = ours[i].range(lo..=hi).copied().collect();
            let tt: BTreeSet<u64> = t.range(lo..=hi).copied().collect();
            if o == tt {
                agree += 1;
                continue;
            }
            if KNOWN.contains(&(e.as_str(), name.as_str())) {
                known += 1;
                continue;
            }
            *per_expr.entry(e).or_default() += 1;
            let only_t: Vec<u64> = tt.difference(&o).take(5).map(|f| f - lo + 1).collect();
            let only_o: Vec<u64> = o.difference(&tt).take(5).map(|f| f - lo + 1).collect();
            failures.push(format!("{e:?} on {name}: tshark only frames {only_t:?}, ours only {only_o:?}"));
        }
    }
    eprintln!(
        "display filters: {agree} of {cases} (expression, file) cases agree with tshark ({:.2} %), {known} known \
         differences, {} expressions x {} files",
        100.0 * agree as f64 / cases.max(1) as f64,
        exprs.len(),
        bounds.len()
    );
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}

fn src_frames(f: &Path) -> u64 {
    let mut src = FileSource::open(f).unwrap();
    let mut n = 0;
    while let Ok(Some(_)) = src.next_packet() {
        n += 1;
    }
    n
}
