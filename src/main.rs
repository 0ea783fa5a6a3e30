//! `mirrorwatch` command line: parses arguments, dispatches, maps errors to exit codes
//! (0 ok, 1 bad input, 2 usage error).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use mirrorwatch::commands::{analyze, diff, filter, passwd, prepare_port, rules, run, Outcome};

#[derive(Parser)]
#[command(name = "mirrorwatch", version, about = "Passive network watcher for a mirror port")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the appliance daemon: live capture (or --replay a file) into the store.
    Run {
        /// Configuration file [default: /etc/mirrorwatch/mirrorwatch.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Process this capture file instead of a live interface, then keep running.
        #[arg(long)]
        replay: Option<PathBuf>,
        /// Capture interface (overrides [capture] interface).
        #[arg(long)]
        interface: Option<String>,
        /// Database file (overrides [store] dir).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Rule directory (overrides [rules] dir); reloaded when its files change.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Dashboard address (overrides [web] listen); "" turns the dashboard off.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Print the frame numbers that match a Wireshark display filter (like tshark -Y).
    #[command(after_help = filter::fields_help())]
    Filter {
        /// Display filter, e.g. 'tcp.analysis.retransmission && ip.addr == 10.0.0.0/8'
        expr: String,
        /// Capture file (pcap or pcapng).
        file: PathBuf,
        /// Print only the number of matching frames.
        #[arg(long)]
        count: bool,
    },
    /// Run the pipeline over capture files (pcap or pcapng).
    Analyze {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write results to this SQLite database.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration file for flow-table limits.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rule directory: its counters are evaluated and reported.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Then serve the dashboard on the result at this address (e.g. 127.0.0.1:8080) until
        /// stopped; the password comes from [web] password_file (`mirrorwatch passwd`).
        #[arg(long, value_name = "ADDR")]
        serve: Option<String>,
    },
    /// Which exchanges ended differently in a failure capture than in a normal one — or, with
    /// --db, in one stored period than in another ("now against last week").
    Diff {
        /// Capture of normal operation (pcap, pcapng, or either gzip-compressed).
        #[arg(required_unless_present = "db", conflicts_with = "db")]
        normal: Option<PathBuf>,
        /// Capture of the failure, taken under the same conditions.
        #[arg(required_unless_present = "db", conflicts_with = "db")]
        failure: Option<PathBuf>,
        /// Compare two periods of this store instead of two captures (its stored exchanges).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Start of the period under suspicion (with --db): RFC 3339, "2026-12-06 14:00" (UTC),
        /// now, or back from now (-1h).
        #[arg(long, default_value = "-1h", requires = "db", allow_hyphen_values = true)]
        from: String,
        /// End of the period under suspicion (with --db).
        #[arg(long, default_value = "now", requires = "db", allow_hyphen_values = true)]
        to: String,
        /// The normal period (with --db): a span back from --from (7d: the same hours a week
        /// earlier) or the start of a period as long as the suspect one.
        #[arg(long, default_value = "7d", requires = "db")]
        against: String,
        /// text (for a terminal), json (for scripts) or html (one file with ladder diagrams).
        #[arg(long, default_value = "text", value_parser = ["text", "json", "html"])]
        format: String,
        /// Write the report to this file instead of standard output.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Make the capture interface listen-only: up, promiscuous, no address, no IPv6
    /// autoconfiguration, no ARP (run as root before the daemon; the unit does).
    PreparePort {
        /// Configuration file, for [capture] interface [default: /etc/mirrorwatch/mirrorwatch.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// The interface (overrides [capture] interface).
        #[arg(long)]
        interface: Option<String>,
    },
    /// Set the dashboard password (stored as an argon2 hash in [web] password_file).
    Passwd {
        /// Configuration file [default: /etc/mirrorwatch/mirrorwatch.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Read the password from the first line of standard input instead of asking twice.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Rule files.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Write the manual pages (roff, one per command) into a directory; the package build runs
    /// it, so the pages say what this binary's options are.
    #[command(hide = true)]
    Man {
        /// Directory for mirrorwatch.1, mirrorwatch-run.1, …
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Validate rule files; errors as FILE:LINE:COL: message, exit 1.
    Check {
        /// Rule directory [default: /etc/mirrorwatch/rules]
        dir: Option<PathBuf>,
    },
}

fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    // No pages for `help` (man has its own) nor for the hidden page-writer itself.
    let mut cmd = Cli::command()
        .disable_help_subcommand(true)
        .mut_subcommand("rules", |r| r.disable_help_subcommand(true))
        .mut_subcommand("man", |m| m.hide(true));
    cmd.build();
    clap_mangen::generate_to(cmd, dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(Outcome { bad_input: false })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // journald and log files store escape sequences verbatim: colour only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.cmd {
        Cmd::Run { config, replay, interface, db, rules, listen } => {
            run::run(run::RunArgs { config, replay, interface, db, rules, listen })
        }
        Cmd::Filter { expr, file, count } => filter::run(filter::FilterArgs { expr, file, count }),
        Cmd::Analyze { files, db, json, config, rules, serve } => {
            analyze::run(analyze::AnalyzeArgs { files, db, json, config, rules, serve })
        }
        Cmd::Diff { normal, failure, db, from, to, against, format, output } => {
            // clap requires either both captures or --db.
            let input = match db {
                Some(db) => diff::Input::Store { db, from, to, against },
                None => diff::Input::Files { normal: normal.unwrap_or_default(), failure: failure.unwrap_or_default() },
            };
            diff::run(diff::DiffArgs { input, format, output })
        }
        Cmd::PreparePort { config, interface } => {
            prepare_port::run(prepare_port::PreparePortArgs { config, interface })
        }
        Cmd::Passwd { config, password_stdin } => passwd::run(passwd::PasswdArgs { config, password_stdin }),
        Cmd::Man { dir } => write_man_pages(&dir),
        Cmd::Rules { cmd: RulesCmd::Check { dir } } => {
            rules::check(dir.unwrap_or_else(|| PathBuf::from("/etc/mirrorwatch/rules")))
        }
    };
    match result {
        Ok(Outcome { bad_input: false }) => ExitCode::SUCCESS,
        Ok(Outcome { bad_input: true }) => ExitCode::from(1),
        // A reader that stopped reading (`mirrorwatch filter … | head`): the end, quietly, as
        // ripgrep does.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) if e.chain().any(|c| c.is::<mirrorwatch::commands::UsageError>()) => {
            eprintln!("mirrorwatch: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("mirrorwatch: {e:#}");
            ExitCode::from(1)
        }
    }
}
