//! Subcommands. Each validates its arguments once, builds the pipeline with the sources and sinks
//! it needs, and returns whether any input was bad (exit code 1) — `main` only dispatches.

pub mod analyze;
pub mod diff;
pub mod filter;
pub mod passwd;
pub mod prepare_port;
pub mod rules;
pub mod run;

/// A mistake in how the command was called (a rule directory that does not exist, …): exit
/// code 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A rule directory given on the command line or in the configuration must exist: a typo must
/// not run the box without rules.
pub fn rules_dir_exists(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(UsageError(format!("{}: no such rule directory", dir.display())).into())
    }
}

/// Outcome of a command that read inputs: `bad_input` maps to exit code 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub bad_input: bool,
}
