//! RFC 5424 syslog over TCP or TLS with octet-counted framing (RFC 6587 §3.4.1, RFC 5425): each
//! export event's JSON is the MSG, `event_type` the MSGID.
//!
//! The sender keeps a backlog bounded by `[export] syslog_backlog` events while the collector is
//! away, reconnecting with a backoff from 1 s doubling to a minute; beyond the bound the oldest
//! events are given up and counted. Before each write it looks whether the collector closed the
//! connection (a restarted rsyslog), so events are not written into a socket nobody reads.
//!
//! It runs on a thread of its own, fed by the export thread through a short bounded channel: a
//! collector that stalls (writes wait out their timeout) or a host that hangs (connection
//! attempts do) blocks only this thread; the JSON lines file and capture go on, and what the
//! channel has no room for is counted as dropped.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::record::Line;
use super::{ExportConfig, ExportStats};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Bytes handed to one write call (several frames).
const WRITE_CHUNK: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub ca: Option<PathBuf>,
    pub cert: Option<(PathBuf, PathBuf)>,
    pub facility: u8,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{}://{host}:{}", if self.tls { "tls" } else { "tcp" }, self.port)
    }
}

impl Target {
    pub fn parse(cfg: &ExportConfig) -> Result<Target, String> {
        let url = cfg.syslog.trim();
        let (tls, rest) = match url.split_once("://") {
            Some(("tcp", r)) => (false, r),
            Some(("tls", r)) => (true, r),
            _ => return Err(format!("{url:?}: \"tcp://host:port\" or \"tls://host:port\"")),
        };
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => v6.split_once("]:").ok_or(format!("{url:?}: no port"))?,
            None => rest.rsplit_once(':').ok_or(format!("{url:?}: no port (514 for tcp, 6514 for tls)"))?,
        };
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or(format!("{url:?}: {port:?} is no port"))?;
        if host.is_empty() || host.contains('/') {
            return Err(format!("{url:?}: no host"));
        }
        let facility = match cfg.syslog_facility.as_str() {
            "user" => 1,
            "daemon" => 3,
            f => match f.strip_prefix("local").and_then(|n| n.parse::<u8>().ok()).filter(|n| *n <= 7) {
                Some(n) => 16 + n,
                None => return Err(format!("syslog_facility {f:?}: local0 … local7, daemon or user")),
            },
        };
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        let cert = match (path(&cfg.syslog_cert), path(&cfg.syslog_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("syslog_cert and syslog_key go together".into()),
        };
        if !tls && (cert.is_some() || !cfg.syslog_ca.is_empty()) {
            return Err(format!("{url:?}: syslog_ca, syslog_cert and syslog_key need tls://"));
        }
        Ok(Target { tls, host: host.to_string(), port, ca: path(&cfg.syslog_ca), cert, facility })
    }

    /// The TLS client configuration: the CA file's certificates (or the Mozilla roots) and the
    /// client certificate, read now so a wrong file is said at start.
    fn tls_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                for c in CertificateDer::pem_file_iter(ca).with_context(|| format!("syslog_ca {}", ca.display()))? {
                    let c = c.with_context(|| format!("syslog_ca {}", ca.display()))?;
                    roots.add(c).with_context(|| format!("syslog_ca {}", ca.display()))?;
                }
                if roots.is_empty() {
                    anyhow::bail!("syslog_ca {}: no certificate in it", ca.display());
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots);
        let config = match &self.cert {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .with_context(|| format!("syslog_cert {}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("syslog_key {}", key.display()))?;
                builder.with_client_auth_cert(chain, key).context("syslog_cert and syslog_key")?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn sock(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(b),
            Conn::Tls(t) => t.write_all(b).and_then(|()| t.flush()),
        }
    }

    /// Whether the collector is still there: reads what it sent without waiting (collectors
    /// send nothing but TLS records; EOF or an error is a closed connection).
    fn alive(&mut self) -> bool {
        if self.sock().set_nonblocking(true).is_err() {
            return false;
        }
        let alive = match self {
            Conn::Plain(s) => {
                let mut buf = [0u8; 512];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break false,
                        Ok(_) => continue,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break false,
                    }
                }
            }
            Conn::Tls(t) => loop {
                match t.conn.read_tls(&mut t.sock) {
                    Ok(0) => break false,
                    Ok(_) => {
                        if t.conn.process_new_packets().is_err() {
                            break false;
                        }
                        // Application data from a collector is read and ignored.
                        let mut sink = Vec::new();
                        let _ = t.conn.reader().read_to_end(&mut sink);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break false,
                }
            },
        };
        alive && self.sock().set_nonblocking(false).is_ok()
    }
}

/// Batches in flight between the export thread and the syslog thread.
const CHANNEL_BATCHES: usize = 4;

/// The export thread's handle on the syslog thread.
pub struct Syslog {
    tx: Option<SyncSender<Vec<Line>>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<ExportStats>,
}

impl Syslog {
    /// Reads the TLS files (a mistake is said at start) and starts the thread.
    pub fn start(target: Target, host: &str, backlog: usize, stats: Arc<ExportStats>) -> anyhow::Result<Syslog> {
        let mut sender = Sender::new(target, host, backlog, Arc::clone(&stats))?;
        let (tx, rx) = sync_channel(CHANNEL_BATCHES);
        let thread = std::thread::Builder::new()
            .name("export-syslog".into())
            .spawn(move || sender.run(rx))
            .context("starting the syslog thread")?;
        Ok(Syslog { tx: Some(tx), thread: Some(thread), stats })
    }

    /// Hands `lines` over without waiting; with the thread behind, they are dropped and counted.
    pub fn send(&mut self, lines: Vec<Line>) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(lines) {
            Ok(()) => {}
            Err(TrySendError::Full(l)) | Err(TrySendError::Disconnected(l)) => {
                self.stats.syslog_dropped.fetch_add(l.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// Lets the thread write what it holds (one more try at most) and waits for it: a
    /// collector that does not answer costs at most the write or connect timeout.
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Sender {
    target: Target,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// HOSTNAME of the header: printable ASCII, as RFC 5424 allows.
    hostname: String,
    pid: u32,
    conn: Option<Conn>,
    /// Framed messages not yet written, oldest first.
    backlog: VecDeque<Vec<u8>>,
    cap: usize,
    next_try: Instant,
    backoff: Duration,
    stats: Arc<ExportStats>,
}

impl Sender {
    fn run(&mut self, rx: Receiver<Vec<Line>>) {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(lines) => lines.iter().for_each(|l| self.push(l)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.drain();
        }
        // Stopping: one more try now, however long the backoff.
        self.next_try = Instant::now();
        self.drain();
        let left = self.backlog.len() as u64;
        if left > 0 {
            self.stats.syslog_dropped.fetch_add(left, Ordering::Relaxed);
            tracing::warn!("[export] syslog {}: {left} events not sent at shutdown", self.target);
        }
    }

    fn new(target: Target, host: &str, cap: usize, stats: Arc<ExportStats>) -> anyhow::Result<Sender> {
        let tls = match target.tls {
            true => Some(target.tls_config().context("[export] syslog")?),
            false => None,
        };
        let hostname: String =
            host.chars().take(255).map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect::<String>();
        let hostname = if hostname.is_empty() { "-".into() } else { hostname };
        Ok(Sender {
            target,
            tls,
            hostname,
            pid: std::process::id(),
            conn: None,
            backlog: VecDeque::new(),
            cap: cap.max(1),
            next_try: Instant::now(),
            backoff: BACKOFF_FIRST,
            stats,
        })
    }

    /// Frames one event: `LEN SP <PRI>1 TIMESTAMP HOSTNAME mirrorwatch PROCID MSGID - MSG`.
    fn frame(&self, line: &Line) -> Vec<u8> {
        let pri = u16::from(self.target.facility) * 8 + u16::from(line.severity.min(7));
        let now = crate::time::wall_now().rfc3339();
        let head = format!("<{pri}>1 {now} {} mirrorwatch {} {} - ", self.hostname, self.pid, line.event_type);
        let len = head.len() + line.json.len();
        let mut out = Vec::with_capacity(len + 8);
        out.extend_from_slice(format!("{len} ").as_bytes());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&line.json);
        out
    }

    /// Queues one event; a full backlog is written out first if the collector is there, and
    /// only then is the oldest event given up.
    fn push(&mut self, line: &Line) {
        if self.backlog.len() >= self.cap {
            self.drain();
        }
        let f = self.frame(line);
        self.backlog.push_back(f);
        if self.backlog.len() > self.cap {
            self.backlog.pop_front();
            self.stats.syslog_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn set_error(&self, e: String) {
        if let Ok(mut s) = self.stats.syslog_error.lock() {
            *s = e;
        }
    }

    fn lost_connection(&mut self, why: String) {
        if self.conn.take().is_some() || self.stats.syslog_connected.load(Ordering::Relaxed) {
            tracing::warn!("[export] syslog {}: {why}; reconnecting", self.target);
        }
        self.stats.syslog_connected.store(false, Ordering::Relaxed);
        self.set_error(why);
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn connect(&mut self) -> Result<Conn, String> {
        let addrs: Vec<_> = (self.target.host.as_str(), self.target.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.target.host))?
            .collect();
        let mut last = format!("no address for {}", self.target.host);
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
                    let _ = s.set_read_timeout(Some(WRITE_TIMEOUT));
                    let _ = s.set_nodelay(true);
                    let Some(cfg) = &self.tls else { return Ok(Conn::Plain(s)) };
                    let name = ServerName::try_from(self.target.host.clone())
                        .map_err(|e| format!("{}: {e}", self.target.host))?;
                    let conn = rustls::ClientConnection::new(Arc::clone(cfg), name).map_err(|e| e.to_string())?;
                    let mut tls = rustls::StreamOwned::new(conn, s);
                    while tls.conn.is_handshaking() {
                        tls.conn.complete_io(&mut tls.sock).map_err(|e| format!("TLS handshake: {e}"))?;
                    }
                    return Ok(Conn::Tls(Box::new(tls)));
                }
                Err(e) => last = format!("cannot connect to {a}: {e}"),
            }
        }
        Err(last)
    }

    /// Writes the backlog if the collector is there (connecting when it is time to try: a
    /// stopping daemon tries once more, no waiting).
    fn drain(&mut self) {
        if self.backlog.is_empty() && self.conn.is_none() {
            return;
        }
        if self.conn.as_mut().is_some_and(|c| !c.alive()) {
            self.lost_connection("the collector closed the connection".into());
        }
        if self.conn.is_none() {
            if Instant::now() < self.next_try {
                return;
            }
            match self.connect() {
                Ok(c) => {
                    self.conn = Some(c);
                    self.backoff = BACKOFF_FIRST;
                    self.stats.syslog_connected.store(true, Ordering::Relaxed);
                    self.stats.syslog_connects.fetch_add(1, Ordering::Relaxed);
                    self.set_error(String::new());
                    tracing::info!("[export] syslog {}: connected", self.target);
                }
                Err(e) => {
                    if self.stats.syslog_error.lock().is_ok_and(|s| *s != e) {
                        tracing::warn!("[export] syslog {}: {e}", self.target);
                    }
                    self.set_error(e);
                    self.next_try = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    return;
                }
            }
        }
        while !self.backlog.is_empty() {
            let mut chunk = Vec::with_capacity(WRITE_CHUNK);
            let mut n = 0;
            for f in &self.backlog {
                if n > 0 && chunk.len() + f.len() > WRITE_CHUNK {
                    break;
                }
                chunk.extend_from_slice(f);
                n += 1;
            }
            let Some(c) = self.conn.as_mut() else { return };
            match c.write_all(&chunk) {
                Ok(()) => {
                    self.backlog.drain(..n);
                    self.stats.syslog_sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    self.lost_connection(format!("write failed: {e}"));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ExportConfig {
        ExportConfig { syslog: url.into(), ..Default::default() }
    }

    #[test]
    fn targets_parse() {
        let t = Target::parse(&cfg("tcp://logs.example.com:514")).unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port, t.facility), (false, "logs.example.com", 514, 16));
        let t = Target::parse(&cfg("tls://[fd00::5]:6514")).unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (true, "fd00::5", 6514));
        assert_eq!(t.to_string(), "tls://[fd00::5]:6514");
        for bad in ["udp://x:514", "tcp://x", "tcp://:514", "tcp://x:0", "x:514"] {
            assert!(Target::parse(&cfg(bad)).is_err(), "{bad}");
        }
        let mut c = cfg("tcp://x:514");
        c.syslog_ca = "/etc/ca.pem".into();
        assert!(Target::parse(&c).is_err(), "a CA file on plain TCP is a mistake");
    }

    #[test]
    fn frames_are_octet_counted_rfc5424() {
        let t = Target::parse(&cfg("tcp://127.0.0.1:514")).unwrap();
        let s = Sender::new(t, "box 1\n", 10, Arc::new(ExportStats::default())).unwrap();
        let line = Line { event_type: "alert", severity: 4, json: br#"{"a":"\u00e9"}"#.to_vec() };
        let f = s.frame(&line);
        let text = String::from_utf8(f).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        let parts: Vec<&str> = msg.splitn(8, ' ').collect();
        assert_eq!(parts[0], "<132>1", "local0.warning");
        assert_eq!(parts[2], "box_1_");
        assert_eq!((parts[3], parts[5], parts[6]), ("mirrorwatch", "alert", "-"));
        assert_eq!(parts[7], r#"{"a":"\u00e9"}"#);
    }
}
