//! `mirrorwatch rules check [DIR]`: validates rule files; errors as FILE:LINE:COL: message.

use std::path::{Path, PathBuf};

use super::Outcome;
use crate::rules::{RuleError, RuleSet};

/// Loads a rule directory, printing every error of the first bad file to stderr.
pub fn load_or_report(dir: &Path) -> Option<RuleSet> {
    match RuleSet::load_dir(dir) {
        Ok(r) => Some(r),
        Err(errors) => {
            report(&errors);
            None
        }
    }
}

pub fn report(errors: &[RuleError]) {
    for e in errors {
        eprintln!("{e}");
    }
}

pub fn check(dir: PathBuf) -> anyhow::Result<Outcome> {
    super::rules_dir_exists(&dir)?;
    match load_or_report(&dir) {
        Some(r) => {
            println!(
                "{}: {} files, {} counters, {} alerts: ok",
                dir.display(),
                r.files.len(),
                r.counters.len(),
                r.alerts.len()
            );
            Ok(Outcome::default())
        }
        None => Ok(Outcome { bad_input: true }),
    }
}
