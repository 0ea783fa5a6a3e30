//! `mirrorwatch passwd [--config FILE] [--password-stdin]`: sets the dashboard password, stored
//! as an argon2id hash in `[web] password_file` (never the password itself). A running daemon
//! reads the file at each login, so no restart is needed.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use super::Outcome;
use crate::config::{Config, DEFAULT_PATH};
use crate::web::auth;

pub struct PasswdArgs {
    pub config: Option<PathBuf>,
    pub password_stdin: bool,
}

pub fn run(args: PasswdArgs) -> anyhow::Result<Outcome> {
    let path = args.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    let cfg = if args.config.is_some() || path.exists() { Config::load(&path)? } else { Config::default() };
    let file = cfg.web.password_file.clone();
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("not a terminal: use --password-stdin to read the password from standard input");
        }
        let first = rpassword::prompt_password("New dashboard password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            eprintln!("mirrorwatch: the two passwords differ; nothing changed");
            return Ok(Outcome { bad_input: true });
        }
        first
    };
    if password.chars().count() < auth::MIN_PASSWORD {
        eprintln!("mirrorwatch: the password must have at least {} characters; nothing changed", auth::MIN_PASSWORD);
        return Ok(Outcome { bad_input: true });
    }
    auth::write_password_file(&file, &password)?;
    println!("dashboard password set ({})", file.display());
    Ok(Outcome::default())
}
