//! Traffic per user: bytes to and from the address a user last logged in from successfully
//! (the top downloaders by name, not just by MAC).
//!
//! Bounded: at most [`MAX_ADDRESSES`] address → user bindings (least recently bound dropped),
//! and [`MAX_USERS_PER_MINUTE`] users per minute (further traffic counted in an overflow).

use crate::bounded::LruMap;
use std::collections::HashMap;
use std::net::IpAddr;

use super::{IdentityFact, Outcome};

pub const MAX_ADDRESSES: usize = 10_000;
pub const MAX_USERS_PER_MINUTE: usize = 1000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    /// Bytes sent to the user's address (downloads).
    pub bytes_in: u64,
    /// Bytes sent from it.
    pub bytes_out: u64,
    pub packets: u64,
}

impl Volume {
    fn add(&mut self, o: &Volume) {
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.packets += o.packets;
    }
}

type Users = HashMap<String, Volume, foldhash::fast::RandomState>;

pub struct UserVolume {
    /// address → user; when full, the address bound longest ago is forgotten
    bound: LruMap<IpAddr, String>,
    minute: Users,
    run: Users,
    pub overflow_bytes: u64,
}

impl Default for UserVolume {
    fn default() -> Self {
        UserVolume {
            bound: LruMap::new(MAX_ADDRESSES),
            minute: Users::default(),
            run: Users::default(),
            overflow_bytes: 0,
        }
    }
}

impl UserVolume {
    /// Learns from a login: a successful user login binds its address to the user.
    pub fn observe(&mut self, f: &IdentityFact) {
        let (Some(ip), Some(user), Outcome::Success) = (f.ip, &f.user, f.outcome) else { return };
        self.bound.insert(ip, user.clone());
    }

    /// Accounts one frame between `src` and `dst`.
    pub fn packet(&mut self, src: IpAddr, dst: IpAddr, bytes: u64) {
        if self.bound.is_empty() {
            return;
        }
        for (ip, down) in [(dst, true), (src, false)] {
            let Some(user) = self.bound.peek(&ip) else { continue };
            // One lookup per frame (the traffic of a logged-in user is most of a branch's).
            let full = self.minute.len() >= MAX_USERS_PER_MINUTE;
            let v = match self.minute.get_mut(user.as_str()) {
                Some(v) => v,
                None if full => {
                    self.overflow_bytes += bytes;
                    continue;
                }
                // A new user this minute: the one allocation, once per user and minute.
                None => self.minute.entry(user.clone()).or_default(),
            };
            if down {
                v.bytes_in += bytes;
            } else {
                v.bytes_out += bytes;
            }
            v.packets += 1;
        }
    }

    /// The minute's per-user volumes (for the store), folded into the run totals.
    pub fn flush(&mut self, mut emit: impl FnMut(&str, &Volume)) {
        for (u, v) in self.minute.drain() {
            emit(&u, &v);
            if self.run.len() < MAX_USERS_PER_MINUTE || self.run.contains_key(&u) {
                self.run.entry(u).or_default().add(&v);
            }
        }
    }

    /// Run totals, most downloaded first.
    pub fn top(&self, n: usize) -> Vec<(String, Volume)> {
        let mut v: Vec<(String, Volume)> = self.run.iter().map(|(u, v)| (u.clone(), *v)).collect();
        v.sort_by(|a, b| b.1.bytes_in.cmp(&a.1.bytes_in).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}
