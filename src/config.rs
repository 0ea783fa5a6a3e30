//! Appliance configuration (TOML, default `/etc/mirrorwatch/mirrorwatch.toml`).
//!
//! Every key has a default, so a file with only `[capture] interface = "eth1"` works; unknown
//! keys are an error that names the line (strict for settings that change behaviour).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capture::live::CaptureConfig;
use crate::flow::FlowConfig;
use crate::pipeline::PipelineConfig;
use crate::units::line_col;

pub const DEFAULT_PATH: &str = "/etc/mirrorwatch/mirrorwatch.toml";

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureConfig,
    pub store: StoreConfig,
    pub rules: RulesConfig,
    pub web: WebConfig,
    pub mail: MailConfig,
    pub jobs: JobsConfig,
    pub flows: FlowConfig,
    pub pipeline: PipelineConfig,
}

pub use crate::store::settings::StoreConfig;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    pub dir: PathBuf,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig { dir: PathBuf::from("/etc/mirrorwatch/rules") }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Address the dashboard listens on; "" turns the dashboard off.
    pub listen: String,
    /// Bearer token for `/metrics`; without the file `/metrics` answers 404.
    pub metrics_token_file: PathBuf,
    /// The dashboard password's argon2 hash, written by `mirrorwatch passwd`. Until it exists the
    /// dashboard only says how to set one (there is no default password).
    pub password_file: PathBuf,
    /// How long a login lasts, e.g. "12h".
    pub session_lifetime: String,
    /// Names the dashboard answers to besides its addresses and `localhost` (a request for any
    /// other name is refused: DNS rebinding), e.g. ["mirrorwatch.branch.lan"].
    pub hostnames: Vec<String>,
    /// Open connections at once, in all (keep it below the unit's LimitNOFILE).
    pub max_connections: usize,
    /// Open connections at once from one client address.
    pub max_connections_per_address: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "0.0.0.0:8080".into(),
            metrics_token_file: PathBuf::from("/etc/mirrorwatch/metrics.token"),
            password_file: PathBuf::from("/etc/mirrorwatch/dashboard.passwd"),
            session_lifetime: "12h".into(),
            hostnames: Vec::new(),
            max_connections: 256,
            max_connections_per_address: 16,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub server: String,
    pub port: u16,
    /// none | starttls | tls
    pub tls: String,
    pub username: String,
    pub password_file: PathBuf,
    pub from: String,
    pub to: Vec<String>,
    /// Extra CA certificate (PEM) trusted for the SMTP server, e.g. a company CA.
    pub ca_file: Option<PathBuf>,
    /// Link base in mails, e.g. "http://mirrorwatch.branch.lan:8080".
    pub dashboard_url: String,
    /// Ongoing alerts are rolled into a digest this often (packet time), e.g. "1h".
    pub digest_every: String,
    /// Evidence pcapng files larger than this are not attached (the dashboard has them).
    pub attach_max_bytes: u64,
    /// First retry after a failed send, doubling up to `retry_max` (durations like "30s").
    pub retry_initial: String,
    pub retry_max: String,
    /// SMTP connection and command timeout.
    pub timeout: String,
    /// Language of the mails: "en" or "ja".
    pub language: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            server: String::new(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            password_file: PathBuf::from("/etc/mirrorwatch/smtp.pass"),
            from: "mirrorwatch@localhost".into(),
            to: Vec::new(),
            ca_file: None,
            dashboard_url: "http://mirrorwatch.local:8080".into(),
            digest_every: "1h".into(),
            attach_max_bytes: 1024 * 1024,
            retry_initial: "30s".into(),
            retry_max: "1h".into(),
            timeout: "30s".into(),
            language: "en".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Daily report mail.
    pub digest: String,
    /// Deletes data older than `[store] retention_days`.
    pub retention: String,
    /// Disk watchdog (`disk.low`).
    pub disk: String,
    /// SQLite `PRAGMA optimize` and WAL checkpoint.
    pub optimize: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            digest: "0 8 * * *".into(),
            retention: "*/15 * * * *".into(),
            disk: "*/5 * * * *".into(),
            optimize: "30 3 * * *".into(),
        }
    }
}

impl WebConfig {
    /// How long a dashboard login lasts (at least a minute, at most 30 days).
    /// The dashboard's connection caps.
    pub fn limits(&self) -> anyhow::Result<crate::web::serve::Limits> {
        if self.max_connections == 0 || self.max_connections_per_address == 0 {
            anyhow::bail!("[web] max_connections and max_connections_per_address must be at least 1");
        }
        Ok(crate::web::serve::Limits {
            max_connections: self.max_connections,
            per_address: self.max_connections_per_address.min(self.max_connections),
        })
    }

    pub fn session_lifetime(&self) -> anyhow::Result<std::time::Duration> {
        match crate::units::parse_duration(&self.session_lifetime) {
            Some(s) if (60..=30 * 86_400).contains(&s) => Ok(std::time::Duration::from_secs(s)),
            _ => anyhow::bail!("[web] session_lifetime {:?}: a duration from 1m to 30d", self.session_lifetime),
        }
    }
}

impl MailConfig {
    pub fn digest_every_secs(&self) -> u64 {
        crate::units::parse_duration(&self.digest_every).unwrap_or(3600)
    }
}

impl Config {
    /// Parses a configuration; errors say FILE:LINE:COL and what was wrong.
    pub fn parse(text: &str, origin: &Path) -> anyhow::Result<Config> {
        toml::from_str::<Config>(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            anyhow::anyhow!("{}:{}:{}: {}", origin.display(), line, col, e.message())
        })
    }

    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Config::parse(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse("[capture]\ninterface = \"eth0\"\n", Path::new("m.toml")).unwrap();
        assert_eq!(c.capture.interface, "eth0");
        assert_eq!(c.capture.snaplen, 1600);
        assert_eq!(c.flows.max_flows, 65_536);
        assert_eq!(c.store.database(), PathBuf::from("/var/lib/mirrorwatch/mirrorwatch.db"));
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let e = Config::parse("[capture]\ninterface = \"eth0\"\nsnaplne = 3\n", Path::new("m.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("m.toml:3:1: unknown field `snaplne`"), "{msg}");
    }
}
