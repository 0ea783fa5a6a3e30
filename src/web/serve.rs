//! The dashboard's listener: which connections it takes and how long each may take. The box's
//! web port faces the whole branch LAN, so one host must not be able to hold it: connections
//! are capped in all ([`Limits::max_connections`], below the unit's `LimitNOFILE`) and per
//! client address ([`Limits::per_address`]); a connection beyond a cap is closed at once.
//! hyper's header read timeout closes a connection that has not sent a whole request head in
//! [`HEADER_TIMEOUT`] — also an idle keep-alive one, as the timer runs while hyper waits for
//! the next head; a request body that stalls for [`BODY_IDLE_TIMEOUT`] ends the request
//! (tower-http), and a client that stops reading its answer for [`WRITE_TIMEOUT`] is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

/// A whole request head must arrive within this (and an idle keep-alive connection is closed
/// after it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between two pieces of a request body.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a client may leave an answer unread.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// hyper's read buffer per connection: a request head must fit (browsers send a few KiB).
pub const READ_BUFFER: usize = 32 * 1024;

/// Connection caps, from `[web]`.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: 256, per_address: 16 }
    }
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Table {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; leaving frees its place.
struct Admitted {
    table: Arc<Mutex<Table>>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.lock() {
            t.total = t.total.saturating_sub(1);
            if let Some(n) = t.by_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    t.by_ip.remove(&self.ip);
                }
            }
        }
    }
}

fn admit(table: &Arc<Mutex<Table>>, ip: IpAddr, limits: &Limits) -> Option<Admitted> {
    let mut t = table.lock().ok()?;
    let mine = t.by_ip.get(&ip).copied().unwrap_or(0);
    if t.total >= limits.max_connections || mine >= limits.per_address {
        return None;
    }
    t.total += 1;
    *t.by_ip.entry(ip).or_default() += 1;
    Some(Admitted { table: Arc::clone(table), ip })
}

/// Serves `app` on `listener` until `stop` completes. Connections still open then end with the
/// runtime.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, limits: Limits, stop: impl Future<Output = ()>) {
    let table = Arc::new(Mutex::new(Table::default()));
    let mut refused = Refusals::default();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors (EMFILE) or memory: wait for connections to end
                    // rather than spin.
                    refused.note(&format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = admit(&table, peer.ip(), &limits) else {
            refused.note(&format!("connection from {} refused: connection cap reached", peer.ip()));
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc = app.map_request(move |mut r: hyper::Request<Incoming>| {
                r.extensions_mut().insert(ConnectInfo(peer));
                r
            });
            let mut io = tokio_io_timeout::TimeoutStream::new(stream);
            io.set_write_timeout(Some(WRITE_TIMEOUT));
            let io = TokioIo::new(Box::pin(io));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(READ_BUFFER)
                .serve_connection(io, TowerToHyperService::new(svc));
            let _ = conn.await;
            drop(admitted);
        });
    }
}

/// Refused connections are logged at most once a minute (an attack must not fill the log).
#[derive(Default)]
struct Refusals {
    last: Option<Instant>,
    since: u64,
}

impl Refusals {
    fn note(&mut self, what: &str) {
        self.since += 1;
        if self.last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!("dashboard: {what} ({} refused since the last report)", self.since);
            self.last = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// Whether `host` (a request's Host header) names this box: an address literal (a rebinding
/// attack needs a name), `localhost`, or one of the configured `names`; any port.
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let h = host.trim();
    let name = if let Some(rest) = h.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        h.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())).map(|(n, _)| n).unwrap_or(h)
    };
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost") || names.iter().any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(name))
}

/// The address a browser reaches `addr` by, for messages.
pub fn display_addr(addr: SocketAddr) -> String {
    match addr.ip() {
        ip if ip.is_unspecified() => format!("localhost:{}", addr.port()),
        _ => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_all() {
        let table = Arc::new(Mutex::new(Table::default()));
        let limits = Limits { max_connections: 3, per_address: 2 };
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let a1 = admit(&table, a, &limits).unwrap();
        let _a2 = admit(&table, a, &limits).unwrap();
        assert!(admit(&table, a, &limits).is_none(), "a third from one address");
        let _b1 = admit(&table, b, &limits).unwrap();
        assert!(admit(&table, c, &limits).is_none(), "beyond the total");
        drop(a1);
        let c1 = admit(&table, c, &limits);
        assert!(c1.is_some(), "a place freed is taken again");
        assert_eq!(table.lock().unwrap().by_ip.len(), 3);
        drop(c1);
        assert_eq!(table.lock().unwrap().total, 2);
    }

    #[test]
    fn host_names() {
        let names = vec!["mirrorwatch.branch.lan".to_string()];
        for ok in [
            "127.0.0.1:8080",
            "192.168.1.5",
            "[::1]:8080",
            "localhost:8080",
            "MirrorWatch.Branch.Lan",
            "mirrorwatch.branch.lan.:80",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "",
            "[evil]:80",
            "mirrorwatch.branch.lan.evil.example",
            "localhost.evil.example",
        ] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }
}
