//! Who may see the dashboard: the argon2 password file, login sessions with their CSRF tokens,
//! the login rate limit and the `/metrics` bearer token.
//!
//! There is no default password: until `mirrorwatch passwd` has written the hash, every page
//! says how to set one and `POST /login` refuses. Sessions live in memory (a restart logs
//! everyone out, which is what a box that rebooted should do), bounded in number and lifetime.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::bounded::LruMap;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "mw_session";
/// Sessions at once; the least recently used is logged out beyond it (a script that logs in
/// every minute does not log the admin out).
pub const MAX_SESSIONS: usize = 1024;
/// Failed logins per client address within [`LIMIT_WINDOW`] before it must wait.
pub const LIMIT_PER_CLIENT: u32 = 5;
pub const LIMIT_WINDOW: Duration = Duration::from_secs(60);
/// Clients the limiter remembers (the least recently seen is forgotten beyond it).
const LIMIT_CLIENTS: usize = 4096;
/// Shortest password `passwd` accepts.
pub const MIN_PASSWORD: usize = 8;

/// 32 random bytes, hex: session ids and CSRF tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Equal without leaking where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The argon2id PHC string of `password` with a fresh salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash =
        Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// What the password file says.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordState {
    /// No file (or an empty one): the dashboard tells how to set a password.
    Unset,
    Set(String),
    /// The file exists but cannot be read or holds no argon2 hash.
    Broken(String),
}

/// Reads the password file (each time: `mirrorwatch passwd` takes effect without a restart).
pub fn password_state(path: &Path) -> PasswordState {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().is_empty() => PasswordState::Unset,
        Ok(s) => {
            let s = s.trim().to_string();
            match PasswordHash::new(&s) {
                Ok(_) => PasswordState::Set(s),
                Err(e) => PasswordState::Broken(format!("{}: not an argon2 hash ({e})", path.display())),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PasswordState::Unset,
        Err(e) => PasswordState::Broken(format!("{}: {e}", path.display())),
    }
}

/// Checks `password` against a PHC hash (slow on purpose: run it off the async workers).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Writes the hash of `password` to `path` (mode 0600, replaced atomically).
pub fn write_password_file(path: &Path, password: &str) -> anyhow::Result<()> {
    if password.chars().count() < MIN_PASSWORD {
        anyhow::bail!("the password must have at least {MIN_PASSWORD} characters");
    }
    let hash = hash_password(password)?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
        // `passwd` runs as root, the daemon as its own user: the hash is readable by the group
        // that owns the configuration directory (the package makes it root:mirrorwatch 0750).
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let gid = std::fs::metadata(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?.gid();
        if f.metadata()?.gid() != gid {
            std::os::unix::fs::fchown(&f, None, Some(gid)).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
        }
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o640))?;
        writeln!(f, "{hash}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

/// One login.
#[derive(Clone, Debug)]
pub struct Session {
    pub csrf: String,
    pub expires: Instant,
}

/// The logged-in sessions, bounded.
pub struct Sessions {
    map: LruMap<String, Session>,
    lifetime: Duration,
}

impl Sessions {
    pub fn new(lifetime: Duration) -> Sessions {
        Sessions { map: LruMap::new(MAX_SESSIONS), lifetime }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session: (id for the cookie, its CSRF token).
    pub fn create(&mut self) -> (String, String) {
        let (id, csrf) = (random_token(), random_token());
        self.map.insert(id.clone(), Session { csrf: csrf.clone(), expires: Instant::now() + self.lifetime });
        (id, csrf)
    }

    /// The live session of a cookie value; an expired one is forgotten.
    pub fn get(&mut self, id: &str) -> Option<Session> {
        let id = id.to_string();
        match self.map.get_mut(&id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                self.map.remove(&id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&mut self, id: &str) {
        self.map.remove(&id.to_string());
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The login limiter's key for a client: its IPv4 address, or its IPv6 /64 (one host owns a
/// whole /64 and could otherwise try from as many addresses as it likes).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// What [`LoginLimiter::begin`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Check the password. `clean`: the client had no failure in the window (its check goes in
    /// the clean queue, which failing clients cannot fill).
    Check { clean: bool },
    /// Refused for now; seconds to wait.
    Wait(u64),
}

#[derive(Clone, Copy, Debug)]
struct Client {
    start: Instant,
    failures: u32,
    checking: bool,
}

/// Logins per client over a sliding window, counted **before** the password is checked: a
/// client has at most one check at a time, each check counts as a failure until it succeeds,
/// and a client with [`LIMIT_PER_CLIENT`] failures in [`LIMIT_WINDOW`] waits. There is no
/// limit across clients (a flood from other addresses must never refuse the right password
/// from one that has not failed); the cost of a flood is bounded by the number of checks that
/// run at once (`WebState::verify_clean` / `verify_failing`).
pub struct LoginLimiter {
    clients: LruMap<IpAddr, Client>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter { clients: LruMap::new(LIMIT_CLIENTS) }
    }
}

impl LoginLimiter {
    /// Before checking a password from `ip`.
    pub fn begin(&mut self, ip: IpAddr, now: Instant) -> Admission {
        let key = client_key(ip);
        let wait = |start: Instant| LIMIT_WINDOW.saturating_sub(now.saturating_duration_since(start)).as_secs().max(1);
        let c = match self.clients.get_mut(&key) {
            Some(c) if now.saturating_duration_since(c.start) >= LIMIT_WINDOW && !c.checking => {
                *c = Client { start: now, failures: 0, checking: false };
                c
            }
            Some(c) => c,
            None => {
                self.clients.insert(key, Client { start: now, failures: 0, checking: false });
                match self.clients.get_mut(&key) {
                    Some(c) => c,
                    None => return Admission::Wait(1),
                }
            }
        };
        if c.checking {
            return Admission::Wait(1);
        }
        if c.failures >= LIMIT_PER_CLIENT {
            return Admission::Wait(wait(c.start));
        }
        let clean = c.failures == 0;
        c.failures += 1;
        c.checking = true;
        Admission::Check { clean }
    }

    /// After the check that [`LoginLimiter::begin`] allowed (or when it was abandoned: the
    /// client went away): a right password clears the client's failures, a wrong one leaves
    /// it counted. The client's failures in the window.
    pub fn end(&mut self, ip: IpAddr, ok: bool) -> u32 {
        let key = client_key(ip);
        if ok {
            self.clients.remove(&key);
            return 0;
        }
        match self.clients.get_mut(&key) {
            Some(c) => {
                c.checking = false;
                c.failures
            }
            None => 0,
        }
    }
}

/// The `/metrics` token (first line of the file); `None` when the file is absent or empty.
pub fn metrics_token(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let t = s.lines().next().unwrap_or("").trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_and_file_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/dash.passwd");
        assert_eq!(password_state(&p), PasswordState::Unset);
        assert!(write_password_file(&p, "short").is_err());
        write_password_file(&p, "correct horse").unwrap();
        let PasswordState::Set(h) = password_state(&p) else { panic!("not set") };
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsE"));
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // Readable by the daemon's group (the directory's), by no one else.
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.gid(), std::fs::metadata(p.parent().unwrap()).unwrap().gid());
        std::fs::write(&p, "plaintext").unwrap();
        assert!(matches!(password_state(&p), PasswordState::Broken(_)));
    }

    #[test]
    fn limiter_counts_before_the_check_and_locks_only_the_failing_client() {
        let mut l = LoginLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(l.begin(a, t0), Admission::Check { clean: true });
        // One check at a time per client: a burst gets one.
        assert_eq!(l.begin(a, t0), Admission::Wait(1));
        l.end(a, false);
        for _ in 1..LIMIT_PER_CLIENT {
            assert_eq!(l.begin(a, t0), Admission::Check { clean: false });
            l.end(a, false);
        }
        assert!(matches!(l.begin(a, t0), Admission::Wait(w) if w <= 60));
        // Another client is not affected, however many failed elsewhere.
        assert_eq!(l.begin(b, t0), Admission::Check { clean: true });
        l.end(b, true);
        assert_eq!(l.begin(b, t0), Admission::Check { clean: true });
        l.end(b, true);
        // The window passes.
        assert_eq!(l.begin(a, t0 + LIMIT_WINDOW), Admission::Check { clean: true });
    }

    #[test]
    fn an_ipv6_host_is_one_client_for_its_whole_64() {
        let mut l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..LIMIT_PER_CLIENT {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert!(matches!(l.begin(ip, t0), Admission::Check { .. }));
            l.end(ip, false);
        }
        assert!(matches!(l.begin("2001:db8:1:2:ffff::9".parse().unwrap(), t0), Admission::Wait(_)));
        assert!(matches!(l.begin("2001:db8:1:3::1".parse().unwrap(), t0), Admission::Check { clean: true }));
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn sessions_are_bounded_and_expire() {
        let mut s = Sessions::new(Duration::from_secs(3600));
        let (first, _) = s.create();
        for _ in 0..MAX_SESSIONS {
            s.create();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get(&first).is_none());
        let mut short = Sessions::new(Duration::ZERO);
        let (id, _) = short.create();
        assert!(short.get(&id).is_none());
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(cookie("a=1; mw_session=abc; b=2", SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie("mw_session_x=1", SESSION_COOKIE), None);
    }
}
