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
    pub export: ExportConfig,
}

pub use crate::export::ExportConfig;

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
    /// The names the dashboard answers to: `hostnames`, and the box's own name with and
    /// without `.local` (the name mDNS announces), so `http://mirrorwatch.local:8080/` works on
    /// a box nobody configured.
    pub fn answered_names(&self) -> Vec<String> {
        let mut names = self.hostnames.clone();
        let own = hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
        let own = own.trim();
        if !own.is_empty() && own != "localhost" {
            names.push(own.to_string());
            if !own.contains('.') {
                names.push(format!("{own}.local"));
            }
        }
        names
    }

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

    /// How long a dashboard login lasts (at least a minute, at most 30 days).
    pub fn session_lifetime(&self) -> anyhow::Result<std::time::Duration> {
        match crate::units::parse_duration(&self.session_lifetime) {
            Some(s) if (60..=30 * 86_400).contains(&s) => Ok(std::time::Duration::from_secs(s)),
            _ => anyhow::bail!("[web] session_lifetime {:?}: a duration from 1m to 30d", self.session_lifetime),
        }
    }
}

impl MailConfig {
    /// The first setting that must be one of a few names and is not: (key, why).
    pub fn bad_name(&self) -> Option<(&'static str, String)> {
        if !matches!(self.tls.as_str(), "none" | "starttls" | "tls") {
            return Some(("tls", format!("{:?}: none, starttls or tls", self.tls)));
        }
        if crate::i18n::Lang::parse(&self.language).is_none() {
            return Some(("language", format!("{:?}: en or ja", self.language)));
        }
        None
    }

    pub fn digest_every_secs(&self) -> u64 {
        crate::units::parse_duration(&self.digest_every).unwrap_or(3600)
    }
}

impl Config {
    /// Parses a configuration; errors say FILE:LINE:COL and what was wrong, for the file's shape
    /// (unknown keys, wrong types) and for the values read later (sizes, durations, cron
    /// expressions): a daemon that starts is a daemon whose settings all made sense.
    pub fn parse(text: &str, origin: &Path) -> anyhow::Result<Config> {
        let config = toml::from_str::<Config>(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            anyhow::anyhow!("{}:{}:{}: {}", origin.display(), line, col, e.message())
        })?;
        if let Some((section, key, message)) = config.bad_values().into_iter().next() {
            let (line, col) = key_position(text, section, key).unwrap_or((0, 0));
            anyhow::bail!("{}:{line}:{col}: {message}", origin.display());
        }
        Ok(config)
    }

    /// The settings that are text to be read later, each checked by its reader (the same
    /// function the daemon calls, so the two never disagree): (section, key, message).
    fn bad_values(&self) -> Vec<(&'static str, &'static str, String)> {
        use crate::units::parse_size;
        let mut bad: Vec<(&'static str, &'static str, String)> = Vec::new();
        let mut check = |section, key, r: Result<(), String>| {
            if let Err(why) = r {
                bad.push((section, key, why));
            }
        };
        let err = |e: anyhow::Error| format!("{e:#}");
        let st = &self.store;
        // Sizes the ring reads when it starts (not at all with `ring = false`): read here.
        for (key, v, min) in [
            ("disk_budget", &st.disk_budget, 1u64 << 20),
            ("ring_file_size", &st.ring_file_size, 0),
            ("ring_buffer", &st.ring_buffer, 0),
            ("evidence_max", &st.evidence_max, 0),
        ] {
            let r = match parse_size(v) {
                Some(b) if b >= min => Ok(()),
                Some(_) => {
                    Err(format!("[store] {key}: {v:?} is too small (at least {})", crate::units::format_size(min)))
                }
                None => Err(format!("[store] {key}: {v:?} is not a size like \"4GiB\"")),
            };
            check("store", key, r);
        }
        let window = st.evidence_window().map(|_| ()).map_err(err);
        let key = if crate::units::parse_duration(&st.evidence_before).is_none() {
            "evidence_before"
        } else {
            "evidence_after"
        };
        check("store", key, window);
        check("pipeline", "analyzer_buffers", self.pipeline.analyzer_buffer_bytes().map(|_| ()).map_err(err));
        check("capture", "silent_after", self.capture.silent_after_secs().map(|_| ()));
        check("web", "session_lifetime", self.web.session_lifetime().map(|_| ()).map_err(err));
        let key = if self.web.max_connections == 0 { "max_connections" } else { "max_connections_per_address" };
        check("web", key, self.web.limits().map(|_| ()).map_err(err));
        let m = &self.mail;
        if let Some((key, why)) = m.bad_name() {
            check("mail", key, Err(format!("[mail] {key}: {why}")));
        }
        for (key, v, range, says) in [
            ("digest_every", &m.digest_every, 60..=7 * 86_400, "1m to 7d"),
            ("retry_initial", &m.retry_initial, 1..=86_400, "1s to 1d"),
            ("retry_max", &m.retry_max, 1..=7 * 86_400, "1s to 7d"),
            ("timeout", &m.timeout, 1..=600, "1s to 10m"),
        ] {
            let ok = crate::units::parse_duration(v).is_some_and(|s| range.contains(&s));
            check("mail", key, if ok { Ok(()) } else { Err(format!("[mail] {key}: {v:?}: a duration from {says}")) });
        }
        if let Some((key, why)) = self.export.bad_value() {
            check("export", key, Err(why));
        }
        let j = &self.jobs;
        for (key, expr) in
            [("digest", &j.digest), ("retention", &j.retention), ("disk", &j.disk), ("optimize", &j.optimize)]
        {
            check("jobs", key, crate::units::parse_cron(expr).map(|_| ()).map_err(|e| format!("[jobs] {key}: {e}")));
        }
        bad
    }

    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Config::parse(&text, path)
    }
}

/// Where `key` of table `[section]` is set in a TOML text (line and column, from 1), found by
/// reading the lines as TOML lays them out: table headers, then `key = value`.
fn key_position(text: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    let mut table = "";
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(h) = t.strip_prefix('[') {
            table = h.split(']').next().unwrap_or("").trim();
            continue;
        }
        if table == section {
            let name = t.split('=').next().unwrap_or("").trim().trim_matches(['"', '\'']);
            if name == key && t.contains('=') {
                return Some((n + 1, line.len() - t.len() + 1));
            }
        }
    }
    None
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

    #[test]
    fn a_value_read_later_is_checked_with_its_line() {
        let text = "[capture]\ninterface = \"eth0\"\n\n[store]\nretention_days = 7\n  disk_budget = \"4 gigs\"\n";
        let msg = Config::parse(text, Path::new("m.toml")).unwrap_err().to_string();
        assert_eq!(msg, "m.toml:6:3: [store] disk_budget: \"4 gigs\" is not a size like \"4GiB\"");
        let msg = Config::parse("[jobs]\ndisk = \"every five minutes\"\n", Path::new("m.toml")).unwrap_err();
        assert!(msg.to_string().starts_with("m.toml:2:1: [jobs] disk: \"every five minutes\""), "{msg}");
        let msg = Config::parse("[mail]\ntls = \"ssl\"\n", Path::new("m.toml")).unwrap_err().to_string();
        assert_eq!(msg, "m.toml:2:1: [mail] tls: \"ssl\": none, starttls or tls");
        assert!(Config::parse("", Path::new("m.toml")).is_ok(), "the defaults are valid");
    }
}
