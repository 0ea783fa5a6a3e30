//! The mail alerter: drains the `outbox` table over SMTP (lettre), with retries.
//!
//! The pipeline never talks to a mail server: alerts and digests are written to the outbox in
//! the same transaction as the alert itself, and this module sends them from its own thread.
//! So an SMTP outage or a reboot loses nothing (rows stay `pending` and are retried with
//! exponential backoff), and a sent row is marked `sent` at once so nothing is sent twice; the
//! Message-ID is derived from the row, so even a crash between the server's 250 and the update
//! gives the receiving side a duplicate it can recognise. A permanent refusal (5xx) marks the
//! row `failed` with the server's answer, for the dashboard.
//!
//! Every string that came from the wire (user names, error texts, host names) is hostile:
//! [`header_text`] makes it safe for a header (no CR/LF or other controls, bounded length; lettre
//! encodes non-ASCII), and the HTML part escapes it with [`html_escape`].

pub mod compose;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};
use rusqlite::{params, Connection, OptionalExtension};

use crate::config::MailConfig;
use crate::store::wall_us;
use crate::units::parse_duration;

/// One outbox row waiting to be sent.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub created_us: i64,
    pub kind: String,
    pub alert_id: Option<i64>,
    pub payload: String,
    pub evidence: Option<Vec<u8>>,
    pub attempts: i64,
}

/// What one pass over the outbox did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub sent: u64,
    pub retry: u64,
    pub failed: u64,
}

pub struct Mailer {
    cfg: MailConfig,
    db: PathBuf,
    from: Mailbox,
    to: Vec<Mailbox>,
    password: Option<String>,
    ca: Option<Vec<u8>>,
    retry_initial: i64,
    retry_max: i64,
    timeout: Duration,
}

/// Is mail configured at all (a server and at least one recipient)?
pub fn enabled(cfg: &MailConfig) -> bool {
    !cfg.server.is_empty() && !cfg.to.is_empty()
}

impl Mailer {
    /// Checks the configuration (addresses, TLS mode, password file) before the daemon starts.
    pub fn new(cfg: &MailConfig, db: &Path) -> anyhow::Result<Mailer> {
        let from: Mailbox = cfg.from.parse().with_context(|| format!("[mail] from: \"{}\"", cfg.from))?;
        let to = cfg
            .to
            .iter()
            .map(|t| t.parse::<Mailbox>().with_context(|| format!("[mail] to: \"{t}\"")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some((key, why)) = cfg.bad_name() {
            anyhow::bail!("[mail] {key}: {why}");
        }
        let password = if cfg.username.is_empty() {
            None
        } else {
            let p = std::fs::read_to_string(&cfg.password_file)
                .with_context(|| format!("[mail] password_file {}", cfg.password_file.display()))?;
            Some(p.trim_end_matches(['\r', '\n']).to_string())
        };
        let ca = match &cfg.ca_file {
            Some(f) => Some(std::fs::read(f).with_context(|| format!("[mail] ca_file {}", f.display()))?),
            None => None,
        };
        let secs = |s: &str, what: &str| {
            parse_duration(s).map(|v| v as i64).with_context(|| format!("[mail] {what}: \"{s}\" is not a duration"))
        };
        Ok(Mailer {
            cfg: cfg.clone(),
            db: db.to_path_buf(),
            from,
            to,
            password,
            ca,
            retry_initial: secs(&cfg.retry_initial, "retry_initial")? * 1_000_000,
            retry_max: secs(&cfg.retry_max, "retry_max")? * 1_000_000,
            timeout: Duration::from_secs(secs(&cfg.timeout, "timeout")? as u64),
        })
    }

    fn transport(&self) -> anyhow::Result<SmtpTransport> {
        let params = || -> anyhow::Result<TlsParameters> {
            let mut b = TlsParameters::builder(self.cfg.server.clone());
            if let Some(pem) = &self.ca {
                b = b
                    .add_root_certificate(Certificate::from_pem(pem).context("[mail] ca_file: not a PEM certificate")?);
            }
            Ok(b.build_rustls()?)
        };
        let tls = match self.cfg.tls.as_str() {
            "none" => Tls::None,
            "tls" => Tls::Wrapper(params()?),
            _ => Tls::Required(params()?),
        };
        let mut b =
            SmtpTransport::builder_dangerous(&self.cfg.server).port(self.cfg.port).tls(tls).timeout(Some(self.timeout));
        if let Some(p) = &self.password {
            b = b.credentials(Credentials::new(self.cfg.username.clone(), p.clone()));
        }
        Ok(b.build())
    }

    fn open(&self) -> anyhow::Result<Connection> {
        let conn = crate::store::open_existing(&self.db).with_context(|| format!("opening {}", self.db.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }

    /// Sends every row that is due. Returns what happened; a database problem is an error.
    pub fn drain_once(&self) -> anyhow::Result<Pass> {
        if !self.db.exists() {
            // No store (not made yet, or gone with its stick): the store's health says so.
            return Ok(Pass::default());
        }
        let conn = self.open()?;
        let now = wall_us();
        let rows: Vec<OutboxRow> = {
            let mut st = conn.prepare(
                "SELECT id, created_us, kind, alert_id, payload, evidence, attempts FROM outbox
                 WHERE state = 'pending' AND next_try_us <= ?1 ORDER BY id LIMIT 100",
            )?;
            let r = st.query_map([now], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    created_us: r.get(1)?,
                    kind: r.get(2)?,
                    alert_id: r.get(3)?,
                    payload: r.get(4)?,
                    evidence: r.get(5)?,
                    attempts: r.get(6)?,
                })
            })?;
            r.collect::<Result<_, _>>()?
        };
        let mut pass = Pass::default();
        if rows.is_empty() {
            return Ok(pass);
        }
        let transport = self.transport()?;
        for row in rows {
            let users = |ip: &str| lookup_user(&conn, ip);
            let msg = compose::message(&row, &self.cfg, &self.from, &self.to, users);
            let result = match msg {
                Ok(m) => transport.send(&m).map(|_| ()).map_err(|e| (e.is_permanent(), send_error(&e))),
                Err(e) => Err((true, format!("cannot compose: {e:#}"))),
            };
            match result {
                Ok(()) => {
                    conn.execute(
                        "UPDATE outbox SET state = 'sent', sent_us = ?2, attempts = attempts + 1, last_error = NULL
                         WHERE id = ?1",
                        params![row.id, wall_us()],
                    )?;
                    pass.sent += 1;
                }
                Err((permanent, err)) => {
                    let attempts = row.attempts + 1;
                    let backoff = (self.retry_initial << (attempts - 1).clamp(0, 20)).min(self.retry_max);
                    let state = if permanent { "failed" } else { "pending" };
                    conn.execute(
                        "UPDATE outbox SET state = ?2, attempts = ?3, next_try_us = ?4, last_error = ?5 WHERE id = ?1",
                        params![row.id, state, attempts, wall_us() + backoff, err],
                    )?;
                    if permanent {
                        tracing::error!("mail {} refused for good: {err}", row.id);
                        pass.failed += 1;
                    } else {
                        tracing::warn!(
                            "mail {} not sent (attempt {attempts}, retry in {} s): {err}",
                            row.id,
                            backoff / 1_000_000
                        );
                        pass.retry += 1;
                        // The server is unreachable: the rest would fail the same way.
                        break;
                    }
                }
            }
        }
        Ok(pass)
    }

    /// Runs [`Mailer::drain_once`] every `every` until `stop` is set.
    pub fn spawn(self, stop: Arc<AtomicBool>, every: Duration) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("mailer".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = self.drain_once() {
                        tracing::error!("mailer: {e:#}");
                    }
                    let until = std::time::Instant::now() + every;
                    while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                // A last pass: what the pipeline wrote while stopping goes out too.
                if let Err(e) = self.drain_once() {
                    tracing::error!("mailer: {e:#}");
                }
            })
            .expect("spawning the mailer thread")
    }
}

/// The user last logged in successfully from an address, if the identities table knows one.
fn lookup_user(conn: &Connection, ip: &str) -> Option<String> {
    conn.query_row(
        "SELECT user FROM identities WHERE ip = ?1 AND user != '' AND outcome = 'success' ORDER BY last_us DESC LIMIT 1",
        [ip],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .ok()
    .flatten()
}

/// A wire string made safe for a mail header: controls (CR, LF, NUL…) become spaces, runs of
/// spaces collapse, the length is bounded. Non-ASCII stays (lettre encodes it per RFC 2047).
pub fn header_text(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars));
    let mut space = false;
    for c in s.chars() {
        let c = if c.is_control() || c == '\u{2028}' || c == '\u{2029}' { ' ' } else { c };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if out.chars().count() >= max_chars {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// Text escaped for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A send error as the mail health shows it. A connection the kernel refused with EPERM is the
/// unit's IP allow list (private networks only), not the relay: say how to let the relay in.
fn send_error(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(1) {
                text.push_str(
                    " (refused by the unit's IPAddressAllow, which admits private networks only: add the \
                     relay's address with `systemctl edit mirrorwatch`)",
                );
                break;
            }
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_removes_line_breaks() {
        assert_eq!(header_text("alice\r\nBcc: victim@example.com", 100), "alice Bcc: victim@example.com");
        assert_eq!(header_text("a\u{0}b\tc", 100), "a b c");
        assert_eq!(header_text("xxxxxxxxxx", 4), "xxxx…");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("<script>alert('x')</script>&"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;");
    }
}
