//! Identity events: a user or host seen for the first time on a MAC (`identity.new`), and one
//! MAC carrying several successfully logged-in users within a window (`identity.shared_mac`) —
//! the signature of a router or NAT someone plugged in behind the branch switch.
//!
//! Bounded: at most [`MAX_MACS`] MACs tracked, [`MAX_USERS_PER_MAC`] recent users each; time is
//! packet time.

use std::collections::HashMap;

use super::{IdentityFact, Outcome};
use crate::decode::mac_text;
use crate::time::{Ts, NANOS_PER_SEC};

pub const MAX_MACS: usize = 10_000;
pub const MAX_USERS_PER_MAC: usize = 16;
/// Default window for "several users on one MAC".
pub const SHARED_MAC_WINDOW_SECS: i64 = 3600;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IdentityEvent {
    /// `identity.new` or `identity.shared_mac`
    pub kind: &'static str,
    pub ts: String,
    /// `ts` as a timestamp (for the alert engine).
    #[serde(skip)]
    pub at: Ts,
    pub frame: u64,
    pub mac: String,
    pub ip: Option<String>,
    /// For shared_mac: every user seen on the MAC within the window, oldest first.
    pub users: Vec<String>,
    pub hostname: Option<String>,
}

#[derive(Default)]
struct MacState {
    /// (user, last successful login)
    users: Vec<(String, Ts)>,
    /// Names (user or host) ever seen on this MAC, for identity.new.
    seen: Vec<String>,
}

pub struct IdentityEvents {
    macs: HashMap<[u8; 6], MacState>,
    window_ns: i64,
    pub overflow: u64,
}

impl Default for IdentityEvents {
    fn default() -> Self {
        IdentityEvents { macs: HashMap::new(), window_ns: SHARED_MAC_WINDOW_SECS * NANOS_PER_SEC, overflow: 0 }
    }
}

impl IdentityEvents {
    pub fn observe(&mut self, f: &IdentityFact, out: &mut Vec<IdentityEvent>) {
        let Some(mac) = f.mac else { return };
        if !self.macs.contains_key(&mac) && self.macs.len() >= MAX_MACS {
            self.overflow += 1;
            return;
        }
        let st = self.macs.entry(mac).or_default();
        let name = f.user.clone().or_else(|| f.hostname.clone());
        let event = |kind: &'static str, users: Vec<String>| IdentityEvent {
            kind,
            ts: f.ts.rfc3339(),
            at: f.ts,
            frame: f.frame,
            mac: mac_text(&mac),
            ip: f.ip.map(|i| i.to_string()),
            users,
            hostname: f.hostname.clone(),
        };
        if let Some(n) = &name {
            if f.outcome != Outcome::Failure && !st.seen.contains(n) {
                if st.seen.len() >= MAX_USERS_PER_MAC {
                    st.seen.remove(0);
                }
                st.seen.push(n.clone());
                out.push(event("identity.new", f.user.iter().cloned().collect()));
            }
        }
        let (Some(user), Outcome::Success) = (&f.user, f.outcome) else { return };
        let window = self.window_ns;
        st.users.retain(|(_, t)| f.ts.since(*t) <= window);
        let known = st.users.iter().position(|(u, _)| u == user);
        match known {
            Some(i) => st.users[i].1 = f.ts,
            None => {
                if st.users.len() >= MAX_USERS_PER_MAC {
                    st.users.remove(0);
                }
                st.users.push((user.clone(), f.ts));
                if st.users.len() >= 2 {
                    let users = st.users.iter().map(|(u, _)| u.clone()).collect();
                    out.push(event("identity.shared_mac", users));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Source;

    fn login(user: &str, mac: u8, secs: i64, outcome: Outcome) -> IdentityFact {
        IdentityFact {
            source: Source::Pop3,
            mac: Some([2, 0, 0, 0, 0, mac]),
            ip: None,
            user: Some(user.into()),
            realm: None,
            hostname: None,
            outcome,
            error: None,
            ts: Ts::from_secs_nanos(secs, 0),
            frame: 1,
        }
    }

    #[test]
    fn two_users_on_one_mac_within_the_hour_raise_shared_mac_once() {
        let mut ev = IdentityEvents::default();
        let mut out = Vec::new();
        ev.observe(&login("alice", 1, 0, Outcome::Success), &mut out);
        ev.observe(&login("alice", 1, 60, Outcome::Success), &mut out);
        ev.observe(&login("bob", 2, 70, Outcome::Success), &mut out); // another MAC
        ev.observe(&login("mallory", 1, 90, Outcome::Failure), &mut out); // failed: not a user
        assert!(out.iter().all(|e| e.kind == "identity.new"));
        ev.observe(&login("carol", 1, 120, Outcome::Success), &mut out);
        let shared: Vec<&IdentityEvent> = out.iter().filter(|e| e.kind == "identity.shared_mac").collect();
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].users, ["alice", "carol"]);
        assert_eq!(shared[0].mac, "02:00:00:00:00:01");
        ev.observe(&login("carol", 1, 130, Outcome::Success), &mut out);
        assert_eq!(out.iter().filter(|e| e.kind == "identity.shared_mac").count(), 1);
    }

    #[test]
    fn users_hours_apart_are_not_shared() {
        let mut ev = IdentityEvents::default();
        let mut out = Vec::new();
        ev.observe(&login("alice", 1, 0, Outcome::Success), &mut out);
        ev.observe(&login("bob", 1, 2 * 3600, Outcome::Success), &mut out);
        assert!(out.iter().all(|e| e.kind != "identity.shared_mac"));
    }
}
