//! A map with a fixed capacity that forgets its least recently used entry in O(1) amortized
//! time, for the dissectors' per-conversation tables.
//!
//! A full table used to find its victim by scanning every entry, so a host that opens many
//! conversations which never finish (half-open requests, logins that never end) made every new
//! one cost a scan of thousands: an amplification an attacker on the LAN could use to pin a Pi
//! core. Here each use stamps the entry with a clock value and appends (key, stamp) to a queue;
//! the victim is the first queued pair whose stamp is still the entry's (older pairs are stale
//! and skipped, each paid for by the use that queued it). The queue is compacted when it grows
//! past twice the capacity, so memory stays bounded and the work per use stays constant.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

type Hasher = foldhash::fast::RandomState;

struct Slot<V> {
    value: V,
    stamp: u64,
}

pub struct LruMap<K, V> {
    map: HashMap<K, Slot<V>, Hasher>,
    order: VecDeque<(K, u64)>,
    clock: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> LruMap<K, V> {
    /// A map holding at most `cap` entries (at least one).
    pub fn new(cap: usize) -> LruMap<K, V> {
        LruMap { map: HashMap::default(), order: VecDeque::new(), clock: 0, cap: cap.max(1) }
    }

    /// [`LruMap::new`] with room for `cap` entries reserved at once (no rehash as it fills).
    pub fn with_capacity(cap: usize) -> LruMap<K, V> {
        LruMap {
            map: HashMap::with_capacity_and_hasher(cap.max(1), Default::default()),
            order: VecDeque::new(),
            clock: 0,
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    /// The keys, in no particular order.
    pub fn iter_keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    /// Reads an entry without counting it as a use.
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|s| &s.value)
    }

    /// An entry to change, not counted as a use (one lookup, nothing queued): for tables
    /// whose entries end by themselves and where the order of eviction matters little.
    pub fn peek_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|s| &mut s.value)
    }

    /// An entry, counted as a use (it becomes the most recently used).
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.clock += 1;
        let stamp = self.clock;
        let slot = self.map.get_mut(k)?;
        slot.stamp = stamp;
        self.order.push_back((k.clone(), stamp));
        self.compact();
        self.map.get_mut(k).map(|s| &mut s.value)
    }

    /// Inserts or replaces `k` as the most recently used entry; when the map is full and `k` is
    /// new, the least recently used entry is removed and returned.
    pub fn insert(&mut self, k: K, v: V) -> Option<(K, V)> {
        let evicted = if !self.map.contains_key(&k) && self.map.len() >= self.cap { self.pop_lru() } else { None };
        self.clock += 1;
        self.order.push_back((k.clone(), self.clock));
        self.map.insert(k, Slot { value: v, stamp: self.clock });
        self.compact();
        evicted
    }

    /// Drops stale queue pairs once the queue is twice the capacity: each use queues one pair,
    /// so this O(cap) pass runs at most once per `cap` uses.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.cap + 16 {
            let map = &self.map;
            self.order.retain(|(k, s)| map.get(k).is_some_and(|slot| slot.stamp == *s));
        }
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_lru(&mut self) -> Option<(K, V)> {
        while let Some((k, s)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|slot| slot.stamp == s) {
                return self.map.remove(&k).map(|slot| (k, slot.value));
            }
        }
        None
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        // Its queued stamps become stale and are skipped or compacted away.
        self.map.remove(k).map(|s| s.value)
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    /// Removes every entry, handing each over, least recently used first.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        std::iter::from_fn(move || self.pop_lru())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut m = LruMap::new(3);
        for k in 0..3 {
            assert!(m.insert(k, k * 10).is_none());
        }
        *m.get_mut(&0).unwrap() += 1; // 0 is now the newest
        assert_eq!(m.insert(3, 30), Some((1, 10)));
        assert_eq!(m.insert(4, 40), Some((2, 20)));
        assert_eq!(m.insert(5, 50), Some((0, 1)));
        m.remove(&3);
        assert_eq!(m.insert(6, 60), None, "room after a remove");
        assert_eq!(m.insert(7, 70), Some((4, 40)));
    }

    #[test]
    fn the_queue_stays_bounded_under_constant_use() {
        let mut m = LruMap::new(100);
        for k in 0..100 {
            m.insert(k, ());
        }
        for i in 0..1_000_000u64 {
            m.get_mut(&(i % 7));
            assert!(m.order.len() <= 2 * 100 + 16);
        }
        // The 7 used keys are the newest: the next eviction takes another.
        let (k, _) = m.insert(1000, ()).unwrap();
        assert!(k >= 7);
    }
}
