//! `mirrorwatch diff NORMAL FAILURE [--format text|json|html] [-o FILE]`: which exchange ended
//! differently in a failure capture than in a normal one taken under the same conditions.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use super::Outcome;

pub struct DiffArgs {
    pub normal: PathBuf,
    pub failure: PathBuf,
    /// text | json | html
    pub format: String,
    pub output: Option<PathBuf>,
}

pub fn run(args: DiffArgs) -> anyhow::Result<Outcome> {
    if !matches!(args.format.as_str(), "text" | "json" | "html") {
        anyhow::bail!("--format {:?}: text, json or html", args.format);
    }
    let pb = std::io::stderr().is_terminal().then(|| {
        let total: u64 =
            [&args.normal, &args.failure].iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    });
    let normal = crate::offline::transactions(&args.normal, pb.as_ref(), 0);
    let done = std::fs::metadata(&args.normal).map(|m| m.len()).unwrap_or(0);
    let failure = crate::offline::transactions(&args.failure, pb.as_ref(), done);
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
    let findings = crate::diff::compare(&n, &f);
    let out = match args.format.as_str() {
        "json" => serde_json::to_string_pretty(&crate::diff::json(&n, &f, &findings))? + "\n",
        "html" => crate::diff::html::report(crate::i18n::Lang::En, &n, &f, &findings, &args.normal, &args.failure),
        _ => crate::diff::text(&n, &f, &findings),
    };
    match &args.output {
        Some(p) => std::fs::write(p, out).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())?,
    }
    Ok(Outcome::default())
}
