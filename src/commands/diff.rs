//! `mirrorwatch diff NORMAL FAILURE [--format text|json|html] [-o FILE]`: which exchange ended
//! differently in a failure capture than in a normal one taken under the same conditions.
//! `mirrorwatch diff --db STORE [--from T] [--to T] [--against SPAN|T]`: the same between two
//! stored periods (default: the last hour against the same hour a week earlier).

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use super::Outcome;

pub enum Input {
    Files { normal: PathBuf, failure: PathBuf },
    Store { db: PathBuf, from: String, to: String, against: String },
}

pub struct DiffArgs {
    pub input: Input,
    /// text | json | html
    pub format: String,
    pub output: Option<PathBuf>,
}

pub fn run(args: DiffArgs) -> anyhow::Result<Outcome> {
    if !matches!(args.format.as_str(), "text" | "json" | "html") {
        anyhow::bail!("--format {:?}: text, json or html", args.format);
    }
    let (normal, failure) = match &args.input {
        Input::Files { normal, failure } => (normal, failure),
        Input::Store { db, from, to, against } => return stored(&args, db, from, to, against),
    };
    let pb = std::io::stderr().is_terminal().then(|| {
        let total: u64 = [normal, failure].iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    });
    let (normal_path, failure_path) = (normal, failure);
    let normal = crate::offline::transactions(normal_path, pb.as_ref(), 0);
    let done = std::fs::metadata(normal_path).map(|m| m.len()).unwrap_or(0);
    let failure = crate::offline::transactions(failure_path, pb.as_ref(), done);
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let (n, f) = match (normal, failure) {
        (Ok(n), Ok(f)) => (n, f),
        (a, b) => {
            for e in [a.err(), b.err()].into_iter().flatten() {
                eprintln!("mirrorwatch: {e}");
            }
            return Ok(Outcome { bad_input: true });
        }
    };
    report(&args, &n, &f, normal_path, failure_path)
}

fn report(
    args: &DiffArgs,
    n: &crate::transactions::CaptureTx,
    f: &crate::transactions::CaptureTx,
    normal: &std::path::Path,
    failure: &std::path::Path,
) -> anyhow::Result<Outcome> {
    let findings = crate::diff::compare(n, f);
    let out = match args.format.as_str() {
        "json" => serde_json::to_string_pretty(&crate::diff::json(n, f, &findings))? + "\n",
        "html" => crate::diff::html::report(crate::i18n::Lang::En, n, f, &findings, normal, failure),
        _ => crate::diff::text(n, f, &findings),
    };
    match &args.output {
        Some(p) => std::fs::write(p, out).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())?,
    }
    Ok(Outcome::default())
}

/// Two periods of a store, from its exchanges.
fn stored(args: &DiffArgs, db: &std::path::Path, from: &str, to: &str, against: &str) -> anyhow::Result<Outcome> {
    use crate::diff::stored;
    if !db.is_file() {
        anyhow::bail!("--db {}: no such store", db.display());
    }
    // Opened as the daemon opens it (an older schema is brought up to date, rollups included).
    let conn = crate::store::open(db).map_err(|e| anyhow::anyhow!("--db {}: {e:#}", db.display()))?;
    // "now" is the end of the newest stored minute: a replayed capture is compared at its time.
    let now = crate::store::dashboard::anchor(&conn, crate::time::wall_now().secs())
        .map_err(|e| anyhow::anyhow!("--db {}: {e}", db.display()))?;
    let ((nf, nt), (ff, ft)) = stored::periods(from, to, against, now).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = db.display().to_string();
    let read = |a, b| {
        stored::period(&conn, a, b, stored::label(&name, a, b))
            .map_err(|e| anyhow::anyhow!("--db {}: {e}", db.display()))
    };
    let (n, f) = (read(nf, nt)?, read(ff, ft)?);
    report(args, &n, &f, std::path::Path::new(&n.file), std::path::Path::new(&f.file))
}
