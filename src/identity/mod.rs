//! Who is behind each MAC: user and host names seen on the wire, tied to the client's MAC and IP.
//!
//! The analyzers ([`crate::analyzers`]) emit [`IdentityFact`]s (one per login attempt or DHCP
//! message) with the outcome the server gave; [`Bindings`] folds them into distinct bindings
//! (mac, ip, user, realm, hostname, source, outcome) with first/last seen and a count. Failed and
//! unanswered attempts are kept: the outcome says which. [`events`] raises the shared-MAC alert,
//! [`volume`] counts each user's traffic.
//!
//! Passwords are never stored: the analyzers read past them, and no type in this module has a
//! field that could hold one.

pub mod events;
pub mod volume;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::mac_text;
use crate::time::Ts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Kerberos,
    Pop3,
    Imap,
    Smtp,
    Ftp,
    HttpBasic,
    Dhcp,
    Ldap,
    Postgresql,
    Mysql,
    Tds,
    Telnet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

/// One observation: a login attempt (user) or a host-name announcement (hostname).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityFact {
    pub source: Source,
    pub mac: Option<[u8; 6]>,
    pub ip: Option<IpAddr>,
    pub user: Option<String>,
    pub realm: Option<String>,
    pub hostname: Option<String>,
    pub outcome: Outcome,
    /// Why a failure failed, where the protocol says (Kerberos: `KDC_ERR_PREAUTH_FAILED (24)`).
    pub error: Option<String>,
    pub ts: Ts,
    /// Frame of the request that carried the name.
    pub frame: u64,
}

/// Longest name kept (user, realm, host). Longer wire values are cut: a name is for people to
/// read, and the bound keeps hostile input from growing memory.
pub const MAX_NAME: usize = 128;

/// Cuts a wire value to [`MAX_NAME`] bytes and makes it valid UTF-8 (lossy), exactly as on the
/// wire otherwise (no case folding).
pub fn name_from_wire(b: &[u8]) -> String {
    let b = &b[..b.len().min(MAX_NAME)];
    String::from_utf8_lossy(b).into_owned()
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    mac: Option<[u8; 6]>,
    ip: Option<IpAddr>,
    user: Option<String>,
    realm: Option<String>,
    hostname: Option<String>,
    source: Source,
    outcome: Outcome,
    error: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub first_seen: Ts,
    pub last_seen: Ts,
    pub count: u64,
    pub first_frame: u64,
}

/// Distinct bindings of a run, bounded.
pub struct Bindings {
    map: HashMap<Key, Binding>,
    max: usize,
    /// Facts dropped because the table was full.
    pub overflow: u64,
}

/// Distinct bindings kept per run; a branch office has a few hundred users and devices.
pub const MAX_BINDINGS: usize = 10_000;

impl Default for Bindings {
    fn default() -> Self {
        Bindings { map: HashMap::new(), max: MAX_BINDINGS, overflow: 0 }
    }
}

impl Bindings {
    pub fn add(&mut self, f: &IdentityFact) {
        let key = Key {
            mac: f.mac,
            ip: f.ip,
            user: f.user.clone(),
            realm: f.realm.clone(),
            hostname: f.hostname.clone(),
            source: f.source,
            outcome: f.outcome,
            error: f.error.clone(),
        };
        if let Some(b) = self.map.get_mut(&key) {
            b.count += 1;
            b.first_seen = b.first_seen.min(f.ts);
            b.last_seen = b.last_seen.max(f.ts);
            return;
        }
        if self.map.len() >= self.max {
            self.overflow += 1;
            return;
        }
        self.map.insert(key, Binding { first_seen: f.ts, last_seen: f.ts, count: 1, first_frame: f.frame });
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `identities[]` of `analyze --json`, in order of first appearance.
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        let mut v: Vec<(&Key, &Binding)> = self.map.iter().collect();
        v.sort_by_key(|(_, b)| (b.first_seen, b.first_frame));
        v.into_iter()
            .map(|(k, b)| {
                serde_json::json!({
                    "mac": k.mac.as_ref().map(mac_text),
                    "ip": k.ip.map(|i| i.to_string()),
                    "user": k.user,
                    "realm": k.realm,
                    "hostname": k.hostname,
                    "source": k.source,
                    "outcome": k.outcome,
                    "error": k.error,
                    "first_seen": b.first_seen.rfc3339(),
                    "last_seen": b.last_seen.rfc3339(),
                    "count": b.count,
                })
            })
            .collect()
    }
}
