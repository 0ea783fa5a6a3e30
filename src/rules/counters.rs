//! Per-minute counters: every rule's display filter is evaluated on every frame; matching
//! frames (or their bytes) are summed per minute, and per group when the rule has `group_by`.
//!
//! Bounds: each counter keeps at most `max_groups` distinct group keys per minute (a scan or a
//! flood of spoofed sources cannot grow memory); frames of further keys go to the "other"
//! bucket and are counted as overflow. At the end of a minute the `top_groups` largest groups
//! are stored, the rest summed into "other". Group keys are fixed-size binary values, so
//! counting allocates nothing; text is made once a minute when rows are stored.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{CounterRule, ValueKind};
use crate::capture::mask::offset_in;
use crate::filter::fields::{self, Ctx, FType, FastVal, FieldDef, Val, Values};

/// Group key: the first value of each `group_by` field, tagged and packed. Equality and hash
/// look only at the used bytes (most keys are a few bytes of a 72-byte buffer).
#[derive(Clone, Copy)]
pub struct GroupKey {
    bytes: [u8; 72],
    len: u8,
}

impl GroupKey {
    fn used(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, o: &Self) -> bool {
        self.used() == o.used()
    }
}

impl Eq for GroupKey {}

impl std::hash::Hash for GroupKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write(self.used());
    }
}

const MAX_STR_IN_KEY: usize = 32;

/// The first bytes of a value for a group key, with the frame's credentials masked: a key is
/// stored, shown and exported, so a value taken from payload bytes (`tcp.payload`, `frame`)
/// leaves the process as the ring keeps it. A byte value that is not in the frame (a reassembled
/// datagram's payload) is masked whole when the frame has any credential.
fn key_bytes<'b>(c: &Ctx<'_, '_>, ftype: FType, v: &[u8], buf: &'b mut [u8; MAX_STR_IN_KEY]) -> &'b [u8] {
    let n = v.len().min(MAX_STR_IN_KEY);
    buf[..n].copy_from_slice(&v[..n]);
    let masks = &c.app.masks;
    if !masks.is_empty() {
        match offset_in(c.d.data, v) {
            Some(at) => masks.apply_at(at, &mut buf[..n]),
            None if ftype != FType::Str => buf[..n].fill(crate::capture::mask::MASK_BYTE),
            None => {}
        }
    }
    &buf[..n]
}

impl GroupKey {
    fn build(fields: &[&'static FieldDef], fast: &[Option<FastVal>], c: &Ctx<'_, '_>) -> GroupKey {
        let mut k = GroupKey { bytes: [0; 72], len: 0 };
        let quoted = c.d.quoted_ip.is_some();
        let mut buf = [0u8; MAX_STR_IN_KEY];
        for (i, f) in fields.iter().enumerate() {
            if let (Some(get), false) = (fast.get(i).copied().flatten(), quoted) {
                match get(c) {
                    None => k.push(0, &[]),
                    Some(Val::V4(a)) => k.push(2, &a),
                    Some(Val::V6(a)) => k.push(3, &a),
                    Some(Val::Mac(m)) => k.push(4, &m),
                    Some(Val::U(u)) => k.push(1, &u.to_be_bytes()),
                    Some(Val::Bytes(b)) => k.push(5, key_bytes(c, f.ftype, b, &mut buf)),
                }
                continue;
            }
            let mut vals = Values::new();
            (f.get)(c, &mut vals);
            let first = vals.iter().next().map(|(_, v)| *v);
            let (tag, data): (u8, &[u8]) = match &first {
                None => (0, &[]),
                Some(Val::U(u)) => {
                    k.push(1, &u.to_be_bytes());
                    continue;
                }
                Some(Val::V4(a)) => (2, a),
                Some(Val::V6(a)) => (3, a),
                Some(Val::Mac(m)) => (4, m),
                Some(Val::Bytes(b)) => (5, key_bytes(c, f.ftype, b, &mut buf)),
            };
            k.push(tag, data);
        }
        k
    }

    fn push(&mut self, tag: u8, data: &[u8]) {
        let at = self.len as usize;
        let n = data.len().min(self.bytes.len().saturating_sub(at + 2));
        if at + 2 > self.bytes.len() {
            return;
        }
        self.bytes[at] = tag;
        self.bytes[at + 1] = n as u8;
        self.bytes[at + 2..at + 2 + n].copy_from_slice(&data[..n]);
        self.len = (at + 2 + n) as u8;
    }

    /// Text form: field values separated by " ", "-" for an absent field.
    pub fn text(&self, fields: &[&'static FieldDef]) -> String {
        let mut out = String::new();
        let mut i = 0;
        let b = &self.bytes[..self.len as usize];
        for (n, f) in fields.iter().enumerate() {
            if i + 2 > b.len() {
                break;
            }
            if n > 0 {
                out.push(' ');
            }
            let (tag, len) = (b[i], b[i + 1] as usize);
            let d = &b[i + 2..(i + 2 + len).min(b.len())];
            i += 2 + len;
            let _ = match tag {
                0 => write!(out, "-"),
                1 => write!(out, "{}", u64::from_be_bytes(d.try_into().unwrap_or([0; 8]))),
                2 => write!(out, "{}", Ipv4Addr::from(<[u8; 4]>::try_from(d).unwrap_or([0; 4]))),
                3 => write!(out, "{}", Ipv6Addr::from(<[u8; 16]>::try_from(d).unwrap_or([0; 16]))),
                4 => write!(out, "{}", d.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")),
                _ if f.ftype == FType::Str => write!(out, "{}", String::from_utf8_lossy(d)),
                _ => write!(out, "{}", d.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")),
            };
        }
        out
    }
}

type GroupMap = HashMap<GroupKey, u64, foldhash::fast::RandomState>;

struct State {
    total: u64,
    groups: GroupMap,
    overflow: u64,
}

impl State {
    fn new(cap: usize) -> State {
        State { total: 0, groups: GroupMap::with_capacity_and_hasher(cap, Default::default()), overflow: 0 }
    }
    fn add(&mut self, key: Option<GroupKey>, v: u64, cap: usize) {
        self.total += v;
        if let Some(k) = key {
            if self.groups.len() < cap || self.groups.contains_key(&k) {
                *self.groups.entry(k).or_insert(0) += v;
            } else {
                self.overflow += v;
            }
        }
    }
}

/// One stored row: a counter's value in one minute for one group ("" = the counter's total,
/// "other" = groups beyond the top).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterRow {
    pub minute: i64,
    pub counter: String,
    pub key: String,
    pub value: u64,
}

/// Run totals of one counter, for `analyze --json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CounterTotal {
    pub total: u64,
    pub groups: Vec<GroupCount>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupCount {
    pub key: String,
    pub count: u64,
}

pub struct CounterEngine {
    rules: Vec<CounterRule>,
    /// Fast readers of the group-by fields, where there is one.
    fast: Vec<Vec<Option<FastVal>>>,
    minute: Vec<State>,
    run: Vec<State>,
    max_groups: usize,
    top_groups: usize,
    /// Frames of group keys that did not fit (per minute tables), summed over the run.
    pub group_overflow: u64,
    /// Counters with `app_error = true` that matched the frame just observed.
    pub matched_patterns: Vec<usize>,
    /// Counters whose matching frames are kept as alert evidence, and those that matched the
    /// frame just observed.
    pub keep_evidence: Vec<bool>,
    pub matched_evidence: Vec<usize>,
    /// Some counter's filter has a guard ([`crate::filter::Filter::could_match`]).
    guarded: bool,
}

impl CounterEngine {
    pub fn new(rules: Vec<CounterRule>, max_groups: usize, top_groups: usize) -> CounterEngine {
        let minute = rules.iter().map(|r| State::new(if r.group_by.is_empty() { 0 } else { max_groups })).collect();
        let run = rules.iter().map(|r| State::new(if r.group_by.is_empty() { 0 } else { max_groups })).collect();
        let fast = rules.iter().map(|r| r.group_by.iter().map(|f| fields::fast_val(f.name)).collect()).collect();
        let guarded = rules.iter().any(|r| r.filter.guarded());
        CounterEngine {
            guarded,
            rules,
            fast,
            minute,
            run,
            max_groups,
            top_groups,
            group_overflow: 0,
            matched_patterns: Vec::new(),
            keep_evidence: Vec::new(),
            matched_evidence: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Counts one frame.
    pub fn observe(&mut self, c: &Ctx<'_, '_>) {
        self.matched_patterns.clear();
        self.matched_evidence.clear();
        // What the frame has, once for all the counters: filters that need something else are
        // skipped without being evaluated.
        let present = if self.guarded { crate::filter::present(c) } else { u32::MAX };
        for (i, r) in self.rules.iter().enumerate() {
            if !r.filter.could_match(present) || !r.filter.matches(c) {
                continue;
            }
            if r.app_error {
                self.matched_patterns.push(i);
            }
            if self.keep_evidence.get(i).copied().unwrap_or(false) {
                self.matched_evidence.push(i);
            }
            let v = match r.value {
                ValueKind::Packets => 1,
                ValueKind::Bytes => c.d.frame_len as u64,
            };
            let key = (!r.group_by.is_empty()).then(|| GroupKey::build(&r.group_by, &self.fast[i], c));
            self.minute[i].add(key, v, self.max_groups);
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Index of the counter `id`.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// The id of counter `i`.
    pub fn id(&self, i: usize) -> &str {
        &self.rules[i].id
    }

    /// Rows of the minute so far (total, top groups, "other"), without ending it: the store
    /// gets them with each batch, so a crash loses at most the last second of counts.
    pub fn rows(&self, minute: i64, mut emit: impl FnMut(CounterRow)) {
        for (i, r) in self.rules.iter().enumerate() {
            let st = &self.minute[i];
            if st.total == 0 {
                continue;
            }
            emit(CounterRow { minute, counter: r.id.clone(), key: String::new(), value: st.total });
            if !r.group_by.is_empty() {
                let mut groups: Vec<(GroupKey, u64)> = st.groups.iter().map(|(k, v)| (*k, *v)).collect();
                // Ties broken by key, so successive snapshots of one minute agree on the top.
                groups.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.used().cmp(b.0.used())));
                let rest: u64 = groups.iter().skip(self.top_groups).map(|g| g.1).sum::<u64>() + st.overflow;
                for (k, v) in groups.iter().take(self.top_groups) {
                    emit(CounterRow { minute, counter: r.id.clone(), key: k.text(&r.group_by), value: *v });
                }
                if rest > 0 {
                    emit(CounterRow { minute, counter: r.id.clone(), key: "other".into(), value: rest });
                }
            }
        }
    }

    /// Rows of the minute that ends, and a fresh minute.
    pub fn flush(&mut self, minute: i64, emit: impl FnMut(CounterRow)) {
        self.rows(minute, emit);
        for (i, r) in self.rules.iter().enumerate() {
            let st = &mut self.minute[i];
            if st.total == 0 {
                continue;
            }
            if !r.group_by.is_empty() {
                self.group_overflow += st.overflow;
            }
            // Run totals are the sum of the minutes.
            let run = &mut self.run[i];
            run.total += st.total;
            run.overflow += st.overflow;
            for (k, v) in st.groups.iter() {
                if run.groups.len() < self.max_groups || run.groups.contains_key(k) {
                    *run.groups.entry(*k).or_insert(0) += v;
                } else {
                    run.overflow += v;
                }
            }
            st.total = 0;
            st.overflow = 0;
            st.groups.clear();
        }
    }

    /// Totals over the run, largest groups first (top `top_groups`, then "other").
    pub fn totals(&self) -> Vec<(String, CounterTotal)> {
        self.rules
            .iter()
            .zip(&self.run)
            .map(|(r, st)| {
                let mut groups: Vec<(GroupKey, u64)> = st.groups.iter().map(|(k, v)| (*k, *v)).collect();
                groups.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.used().cmp(b.0.used())));
                let rest: u64 = groups.iter().skip(self.top_groups).map(|g| g.1).sum::<u64>() + st.overflow;
                let mut out: Vec<GroupCount> = groups
                    .iter()
                    .take(self.top_groups)
                    .map(|(k, v)| GroupCount { key: k.text(&r.group_by), count: *v })
                    .collect();
                if rest > 0 {
                    out.push(GroupCount { key: "other".into(), count: rest });
                }
                (r.id.clone(), CounterTotal { total: st.total, groups: out })
            })
            .collect()
    }
}
