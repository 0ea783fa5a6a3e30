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
    /// The last two addresses looked up, with what they are owed so far: a branch's traffic
    /// is long runs of frames between the same two hosts, so most frames are counted here
    /// without a lookup, and settled into `minute` when the address leaves the cache, a
    /// binding changes or the minute ends.
    cache: [Option<Cached>; 2],
    next: usize,
}

struct Cached {
    ip: IpAddr,
    user: Option<String>,
    owed: Volume,
}

impl Default for UserVolume {
    fn default() -> Self {
        UserVolume {
            bound: LruMap::new(MAX_ADDRESSES),
            minute: Users::default(),
            run: Users::default(),
            overflow_bytes: 0,
            cache: [None, None],
            next: 0,
        }
    }
}

impl UserVolume {
    /// Learns from a login: a successful user login binds its address to the user.
    pub fn observe(&mut self, f: &IdentityFact) {
        let (Some(ip), Some(user), Outcome::Success) = (f.ip, &f.user, f.outcome) else { return };
        // What the cache owes goes to the user it was owed by, before the binding changes.
        self.settle_all();
        self.bound.insert(ip, user.clone());
    }

    /// Moves what cache slot `i` owes into the minute's table.
    fn settle(&mut self, i: usize) {
        let Some(c) = self.cache[i].take() else { return };
        let Some(user) = c.user else { return };
        if c.owed.packets == 0 {
            return;
        }
        let full = self.minute.len() >= MAX_USERS_PER_MINUTE;
        match self.minute.get_mut(user.as_str()) {
            Some(v) => v.add(&c.owed),
            None if full => self.overflow_bytes += c.owed.bytes_in + c.owed.bytes_out,
            // A new user this minute: the one allocation, once per user and minute.
            None => {
                self.minute.insert(user, c.owed);
            }
        }
    }

    fn settle_all(&mut self) {
        self.settle(0);
        self.settle(1);
    }

    /// Accounts one frame between `src` and `dst`.
    pub fn packet(&mut self, src: IpAddr, dst: IpAddr, bytes: u64) {
        if self.bound.is_empty() {
            return;
        }
        for (ip, down) in [(dst, true), (src, false)] {
            let i = match self.cache.iter().position(|c| c.as_ref().is_some_and(|c| c.ip == ip)) {
                Some(i) => i,
                None => {
                    let i = self.next;
                    self.next ^= 1;
                    self.settle(i);
                    let user = self.bound.peek(&ip).cloned();
                    self.cache[i] = Some(Cached { ip, user, owed: Volume::default() });
                    i
                }
            };
            let Some(c) = self.cache[i].as_mut().filter(|c| c.user.is_some()) else { continue };
            if down {
                c.owed.bytes_in += bytes;
            } else {
                c.owed.bytes_out += bytes;
            }
            c.owed.packets += 1;
        }
    }

    /// The minute's per-user volumes (for the store), folded into the run totals.
    pub fn flush(&mut self, mut emit: impl FnMut(&str, &Volume)) {
        self.settle_all();
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
