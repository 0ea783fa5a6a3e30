//! Subcommands. Each validates its arguments once, builds the pipeline with the sources and sinks
//! it needs, and returns whether any input was bad (exit code 1) — `main` only dispatches.

pub mod analyze;
pub mod diff;
pub mod filter;
pub mod passwd;
pub mod prepare_port;
pub mod rules;
pub mod run;

/// Outcome of a command that read inputs: `bad_input` maps to exit code 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub bad_input: bool,
}
