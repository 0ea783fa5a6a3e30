//! The alert engine: decides, in packet time, when a counter or an event is worth telling the
//! admin about, and how often.
//!
//! It owns the per-(alert, key) state: the counter values of the current window, the history of
//! past windows the baseline is computed from, and the alert's episode (new → ongoing → cleared).
//! What it hands out are [`AlertOut`]s: a [`Notice`] when an episode starts or clears, and a
//! [`Digest`] that rolls up what kept happening in ongoing episodes — so a flood of identical
//! errors is one mail plus digest lines, not one mail each. Suppression is Zeek's: after a mail
//! for (alert, key), no new mail for that pair within `suppress`, however often it re-fires.
//!
//! Everything is driven by packet timestamps (minute flushes and event times), so `analyze` on
//! a file produces the alerts the daemon would have produced live. Memory is bounded: at most
//! [`MAX_KEYS`] keys per alert (further keys are counted in `overflow`), and a baseline history
//! of at most [`BASELINE_DAYS`] days of windows per key, stored as `u32`.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::counters::CounterRow;
use super::{AlertRule, AlertSource, RuleSet};
use crate::filter::Filter;
use crate::time::{Ts, NANOS_PER_SEC};

/// Keys tracked per alert rule.
pub const MAX_KEYS: usize = 1024;
/// Baseline: the rolling median of the same window over this many days.
pub const BASELINE_DAYS: i64 = 7;
/// A baseline needs at least this much history before it can fire (a new box learns first).
pub const MIN_BASELINE_HOURS: i64 = 24;
/// Evidence frames kept per episode, and their total size.
pub const MAX_EVIDENCE_FRAMES: usize = 8;
pub const MAX_EVIDENCE_BYTES: usize = 256 * 1024;

/// Where an alert happened, as far as the source knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    pub ip: Option<String>,
    pub peer: Option<String>,
    pub mac: Option<String>,
    pub user: Option<String>,
    pub frame: Option<u64>,
    pub file: Option<String>,
}

/// What the alert engine needs back after a restart: the stored minutes of the followed
/// counters over the baseline period (oldest first), when each (alert, key) last mailed, and
/// the episodes the previous run left active (read from the store by
/// `store::read::alert_history`).
#[derive(Debug, Default)]
pub struct AlertHistory {
    pub minutes: Vec<super::counters::CounterRow>,
    pub mails: Vec<(String, String, Ts)>,
    pub active: Vec<ActiveEpisode>,
}

/// An alert row still `active` when the daemon stopped.
#[derive(Clone, Debug)]
pub struct ActiveEpisode {
    pub id: i64,
    pub rule: String,
    pub key: String,
    pub since: Ts,
    pub count: u64,
    pub summary: String,
}

/// One captured frame attached to an alert (written as pcapng in the mail).
pub use crate::capture::Evidence;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    New,
    Cleared,
}

/// An episode starts (state new) or ends (state cleared).
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    pub rule: String,
    pub description: String,
    pub key: String,
    pub severity: String,
    pub state: State,
    #[serde(serialize_with = "ser_ts")]
    pub ts: Ts,
    /// Start of the episode.
    #[serde(serialize_with = "ser_ts")]
    pub since: Ts,
    pub summary: String,
    /// Occurrences (events) or the window's value (counters) when the notice was made.
    pub count: u64,
    /// Counter alerts: the window's value, the baseline median and the threshold it crossed.
    pub value: Option<u64>,
    pub baseline: Option<f64>,
    pub threshold: Option<f64>,
    pub window_secs: u64,
    /// The rule asks for mail and the (alert, key) is not suppressed.
    pub mail: bool,
    /// A mail would have been sent, but one went out for this (alert, key) within `suppress`.
    pub suppressed: bool,
    pub context: Context,
    #[serde(skip)]
    pub evidence: Vec<Evidence>,
    /// About the traffic (not the box's own health): the frames around it are kept as an
    /// evidence window when the pcap ring runs.
    #[serde(skip)]
    pub traffic: bool,
}

fn ser_ts<S: serde::Serializer>(t: &Ts, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.rfc3339())
}

/// One line of a digest: an episode that kept going (or ended) since the last notice.
#[derive(Clone, Debug, Serialize)]
pub struct DigestLine {
    pub rule: String,
    pub key: String,
    pub severity: String,
    pub summary: String,
    #[serde(serialize_with = "ser_ts")]
    pub since: Ts,
    #[serde(serialize_with = "ser_ts")]
    pub last: Ts,
    /// Occurrences since the previous notice or digest line, and in the whole episode.
    pub new: u64,
    pub total: u64,
    pub ongoing: bool,
    /// The rule asks for mail.
    pub mail: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Digest {
    #[serde(serialize_with = "ser_ts")]
    pub from: Ts,
    #[serde(serialize_with = "ser_ts")]
    pub to: Ts,
    pub lines: Vec<DigestLine>,
}

#[derive(Clone, Debug)]
pub enum AlertOut {
    Notice(Box<Notice>),
    Digest(Box<Digest>),
}

struct Episode {
    since: Ts,
    last: Ts,
    total: u64,
    /// `total` when the last notice or digest line covered this episode.
    reported: u64,
    peak: u64,
    summary: String,
    /// Cleared, waiting for its last digest line.
    cleared: bool,
}

#[derive(Default)]
struct KeyState {
    /// Per-minute values of the sliding window, oldest first: (minute, value).
    recent: VecDeque<(i64, u64)>,
    /// Sums of past tumbling windows (the baseline history), oldest first.
    hist: VecDeque<u32>,
    /// Window index of `cur_sum`.
    cur_w: Option<i64>,
    cur_sum: u64,
    episode: Option<Episode>,
    last_mail: Option<Ts>,
    context: Context,
    evidence: Vec<Evidence>,
}

impl KeyState {
    fn window_sum(&self) -> u64 {
        self.recent.iter().fold(0u64, |s, r| s.saturating_add(r.1))
    }

    /// Adds `v` at `minute` to the sliding window and the tumbling baseline windows.
    fn add(&mut self, minute: i64, v: u64, window_secs: i64, hist_cap: usize) {
        // Time that goes backwards (merged files, a clock stepped back) counts at the newest
        // minute seen: the window stays sorted, so pruning from the front keeps it bounded and
        // its sum is never inflated by values that belong to an older window.
        let minute = self.recent.back().map_or(minute, |b| b.0.max(minute));
        match self.recent.back_mut() {
            Some(last) if last.0 == minute => last.1 = last.1.saturating_add(v),
            _ => self.recent.push_back((minute, v)),
        }
        self.prune(minute, window_secs);
        let w = minute.div_euclid(window_secs);
        match self.cur_w {
            // `minute` is clamped above, so the window index never goes back.
            Some(c) if c >= w => self.cur_sum = self.cur_sum.saturating_add(v),
            Some(c) => {
                self.push_hist(self.cur_sum, hist_cap);
                // Windows without any value count as zero (a quiet night is part of the baseline).
                let missed = (w.saturating_sub(c).saturating_sub(1) as u64).min(hist_cap as u64) as usize;
                for _ in 0..missed {
                    self.push_hist(0, hist_cap);
                }
                self.cur_w = Some(w);
                self.cur_sum = v;
            }
            None => {
                self.cur_w = Some(w);
                self.cur_sum = v;
            }
        }
    }

    /// `minute` is the start of a minute in seconds since the epoch, as everywhere.
    fn prune(&mut self, minute: i64, window_secs: i64) {
        let first = minute.saturating_sub(window_secs).saturating_add(60);
        while self.recent.front().is_some_and(|r| r.0 < first) {
            self.recent.pop_front();
        }
    }

    fn push_hist(&mut self, v: u64, cap: usize) {
        if self.hist.len() >= cap {
            self.hist.pop_front();
        }
        self.hist.push_back(v.min(u32::MAX as u64) as u32);
    }

    /// Median of the baseline history; `None` before there is any.
    fn median(&self) -> Option<f64> {
        let mut v: Vec<u32> = self.hist.iter().copied().collect();
        v.sort_unstable();
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2] as f64),
            _ => Some((v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0),
        }
    }
}

struct RuleState {
    rule: AlertRule,
    where_: Option<Filter>,
    grouped: bool,
    keys: HashMap<String, KeyState>,
    hist_cap: usize,
}

/// The alert engine (see the module documentation).
pub struct AlertEngine {
    rules: Vec<RuleState>,
    digest_every: i64,
    last_digest: Option<Ts>,
    now: Ts,
    /// Keys not tracked because an alert already tracks [`MAX_KEYS`].
    pub overflow: u64,
}

/// What an event is, for the rules that follow it.
pub struct Event<'a> {
    /// `app_error`, `identity.shared_mac`, `identity.new`, `capture.drops`, `capture.silent`, `disk.low`.
    pub kind: &'a str,
    pub key: String,
    pub ts: Ts,
    pub count: u64,
    pub summary: String,
    pub context: Context,
    /// The frame that carried the event, copied only if an episode keeps it.
    pub evidence: Option<EvidenceFrame<'a>>,
}

/// A frame as the pipeline sees it (borrowed).
#[derive(Clone, Copy)]
pub struct EvidenceFrame<'a> {
    pub ts: Ts,
    pub link: u16,
    pub orig_len: u32,
    pub data: &'a [u8],
    /// The frame's credentials, masked in the copy that is kept.
    pub masks: crate::capture::mask::Masks,
}

impl AlertEngine {
    /// `digest_every_secs`: how often (in packet time) ongoing episodes are rolled into a digest.
    pub fn new(set: &RuleSet, digest_every_secs: u64) -> AlertEngine {
        let rules = set
            .alerts
            .iter()
            .map(|a| {
                let grouped = match &a.source {
                    AlertSource::Counter(c) => set.counters.iter().any(|k| &k.id == c && !k.group_by.is_empty()),
                    AlertSource::Event(_) => false,
                };
                // Windows in the baseline period (at least one, for windows of a day or more).
                let windows = (BASELINE_DAYS as u64 * 86_400 / a.window_secs.max(60)).max(1) as usize;
                RuleState {
                    rule: a.clone(),
                    where_: a.where_.as_deref().and_then(|w| Filter::compile(w).ok()),
                    grouped,
                    keys: HashMap::new(),
                    hist_cap: windows,
                }
            })
            .collect();
        AlertEngine {
            rules,
            digest_every: digest_every_secs.max(60) as i64 * NANOS_PER_SEC,
            last_digest: None,
            now: Ts(0),
            overflow: 0,
        }
    }

    /// Keeps the state of alerts that survive a rule reload (same id and source), so a reload
    /// neither re-mails ongoing alerts nor forgets their baselines.
    pub fn carry_over(&mut self, mut old: AlertEngine) {
        for rs in self.rules.iter_mut() {
            if let Some(o) = old.rules.iter_mut().find(|o| o.rule.id == rs.rule.id && same_source(&o.rule, &rs.rule)) {
                rs.keys = std::mem::take(&mut o.keys);
            }
        }
        self.last_digest = old.last_digest;
        self.now = old.now;
        self.overflow = old.overflow;
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The counter alert `rule` follows, if it follows one.
    pub fn counter_of(&self, rule: &str) -> Option<&str> {
        self.rules.iter().find(|r| r.rule.id == rule).and_then(|r| match &r.rule.source {
            AlertSource::Counter(c) => Some(c.as_str()),
            AlertSource::Event(_) => None,
        })
    }

    /// Counters that counter alerts follow (their stored minutes rebuild baselines).
    pub fn followed_counters(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .rules
            .iter()
            .filter_map(|r| match &r.rule.source {
                AlertSource::Counter(c) => Some(c.clone()),
                AlertSource::Event(_) => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// After a restart: replays stored counter minutes (in minute order) into the windows and
    /// baselines of the alerts following `row.counter`, without evaluating them — a reboot of
    /// the box must neither forget a week of baseline nor alarm on history.
    pub fn restore_minute(&mut self, row: &CounterRow) {
        for rs in self.rules.iter_mut() {
            if !matches!(&rs.rule.source, AlertSource::Counter(c) if *c == row.counter) {
                continue;
            }
            if rs.grouped == row.key.is_empty() || row.key == "other" {
                continue;
            }
            if let Some(ks) = key_state(&mut rs.keys, &row.key, &mut self.overflow) {
                ks.add(row.minute, row.value, rs.rule.window_secs as i64, rs.hist_cap);
            }
        }
    }

    /// After a restart: an episode the previous run left active goes on in this one, so the
    /// rule that raised it also clears it (and a recurrence extends it instead of opening a
    /// duplicate). Returns false when no rule of this engine can continue it (the rule was
    /// removed or changed its source, or the same alert and key is already restored): the
    /// caller clears that row itself.
    pub fn restore_episode(&mut self, ep: &ActiveEpisode) -> bool {
        let Some(rs) = self.rules.iter_mut().find(|r| r.rule.id == ep.rule) else { return false };
        let Some(ks) = key_state(&mut rs.keys, &ep.key, &mut self.overflow) else { return false };
        if ks.episode.as_ref().is_some_and(|e| !e.cleared) {
            return false;
        }
        // Its last occurrence is not stored: an event episode clears a window after its start
        // unless events keep coming; a counter episode at the first minute below its threshold.
        ks.episode = Some(Episode {
            since: ep.since,
            last: ep.since,
            total: ep.count,
            reported: ep.count,
            peak: ep.count,
            summary: ep.summary.clone(),
            cleared: false,
        });
        self.now = self.now.max(ep.since);
        true
    }

    /// After a restart: when (alert, key) last sent a mail, so suppression holds across it.
    pub fn restore_mail(&mut self, rule: &str, key: &str, at: Ts) {
        for rs in self.rules.iter_mut().filter(|r| r.rule.id == rule) {
            if let Some(ks) = key_state(&mut rs.keys, key, &mut self.overflow) {
                ks.last_mail = Some(ks.last_mail.map_or(at, |t| t.max(at)));
            }
        }
    }

    /// Whether any alert follows events of `kind` (lets the caller skip building them).
    pub fn wants(&self, kind: &str) -> bool {
        self.rules.iter().any(|r| matches!(&r.rule.source, AlertSource::Event(e) if e == kind))
    }

    /// The `where` filters of the alerts following `kind`, for the caller to evaluate on the
    /// frame: `matches(i)` tells whether alert i's filter accepts it.
    pub fn event(&mut self, ev: Event<'_>, matches: impl Fn(&Filter) -> bool, out: &mut Vec<AlertOut>) {
        self.now = self.now.max(ev.ts);
        let minute = ev.ts.minute();
        for rs in self.rules.iter_mut() {
            if !matches!(&rs.rule.source, AlertSource::Event(e) if e == ev.kind) {
                continue;
            }
            if rs.where_.as_ref().is_some_and(|f| !matches(f)) {
                continue;
            }
            let Some(ks) = key_state(&mut rs.keys, &ev.key, &mut self.overflow) else { continue };
            ks.add(minute, ev.count, rs.rule.window_secs as i64, rs.hist_cap);
            ks.context = ev.context.clone();
            let sum = ks.window_sum();
            let threshold = rs.rule.above.unwrap_or(0.0);
            match &mut ks.episode {
                Some(ep) if !ep.cleared => {
                    ep.last = ep.last.max(ev.ts);
                    ep.total = ep.total.saturating_add(ev.count);
                    ep.peak = ep.peak.max(sum);
                }
                _ if sum as f64 > threshold => {
                    ks.evidence.clear();
                    push_evidence(&mut ks.evidence, ev.evidence);
                    let summary = ev.summary.clone();
                    start(&rs.rule, &ev.key, ks, ev.ts, sum, summary, None, None, out);
                }
                _ => {}
            }
        }
    }

    /// The counter rows of a minute that just ended (all counters; the engine picks its own).
    pub fn counter_minute(&mut self, minute: i64, rows: &[CounterRow], out: &mut Vec<AlertOut>) {
        let end = minute_end(minute);
        self.now = self.now.max(end);
        for rs in self.rules.iter_mut() {
            let AlertSource::Counter(counter) = &rs.rule.source else { continue };
            let window = rs.rule.window_secs as i64;
            for r in rows.iter().filter(|r| &r.counter == counter) {
                // Grouped counters alert per group; their total row ("") and "other" are not a key.
                if rs.grouped == r.key.is_empty() || r.key == "other" {
                    continue;
                }
                if let Some(ks) = key_state(&mut rs.keys, &r.key, &mut self.overflow) {
                    ks.add(minute, r.value, window, rs.hist_cap);
                }
            }
            // Every key is evaluated each minute: a key without rows this minute may clear.
            for (key, ks) in rs.keys.iter_mut() {
                if ks.recent.back().is_none_or(|b| b.0 != minute) {
                    ks.add(minute, 0, window, rs.hist_cap);
                }
                evaluate_counter(&rs.rule, key, ks, end, out);
            }
            // Keys with nothing in the window, no episode and no baseline to learn are dropped.
            rs.keys.retain(|_, ks| ks.window_sum() > 0 || ks.episode.is_some() || !ks.hist.is_empty());
        }
    }

    /// Packet time moved to `now` (a minute flush or a timer): event episodes without events for
    /// a whole window clear, and a digest is made when one is due.
    pub fn tick(&mut self, now: Ts, out: &mut Vec<AlertOut>) {
        self.now = self.now.max(now);
        let now = self.now;
        for rs in self.rules.iter_mut() {
            if !matches!(rs.rule.source, AlertSource::Event(_)) {
                continue;
            }
            let window = rs.rule.window_secs as i64 * NANOS_PER_SEC;
            for (key, ks) in rs.keys.iter_mut() {
                if let Some(ep) = ks.episode.as_mut().filter(|e| !e.cleared) {
                    if now.0.saturating_sub(ep.last.0) >= window {
                        let (since, total) = (ep.since, ep.total);
                        ep.cleared = true;
                        out.push(notice(&rs.rule, key, ks, State::Cleared, now, since, total, None, None));
                    }
                }
            }
            // Quiet keys are forgotten once nothing depends on them (no events in the window, no
            // episode, no suppression running), so months of distinct errors never fill the
            // table and stop new alerts.
            let suppress = rs.rule.suppress_secs as i64 * NANOS_PER_SEC;
            rs.keys.retain(|_, ks| {
                let minute = now.minute();
                ks.prune(minute, rs.rule.window_secs as i64);
                ks.window_sum() > 0
                    || ks.episode.is_some()
                    || ks.last_mail.is_some_and(|t| now.0.saturating_sub(t.0) < suppress)
            });
        }
        let last = *self.last_digest.get_or_insert(now);
        if now.0.saturating_sub(last.0) >= self.digest_every {
            self.digest(now, out);
        }
    }

    /// Rolls ongoing and cleared episodes with unreported occurrences into a digest.
    pub fn digest(&mut self, now: Ts, out: &mut Vec<AlertOut>) {
        let from = self.last_digest.unwrap_or(now);
        self.last_digest = Some(now);
        let mut lines = Vec::new();
        for rs in self.rules.iter_mut() {
            for (key, ks) in rs.keys.iter_mut() {
                let Some(ep) = ks.episode.as_mut() else { continue };
                let new = ep.total - ep.reported;
                if new > 0 || ep.cleared {
                    lines.push(DigestLine {
                        rule: rs.rule.id.clone(),
                        key: key.clone(),
                        severity: rs.rule.severity.clone(),
                        summary: ep.summary.clone(),
                        since: ep.since,
                        last: ep.last,
                        new,
                        total: ep.total,
                        ongoing: !ep.cleared,
                        mail: rs.rule.mail,
                    });
                    ep.reported = ep.total;
                }
                if ep.cleared {
                    ks.episode = None;
                }
            }
        }
        if !lines.is_empty() {
            lines.sort_by(|a, b| (a.since, &a.rule, &a.key).cmp(&(b.since, &b.rule, &b.key)));
            out.push(AlertOut::Digest(Box::new(Digest { from, to: now, lines })));
        }
    }

    /// End of input (`analyze`, the end of a replay): the last digest.
    pub fn finish(&mut self, out: &mut Vec<AlertOut>) {
        let now = self.now;
        self.digest(now, out);
    }
}

/// The last nanosecond of a minute (timestamps from the wire may be anything: saturating).
pub fn minute_end(minute: i64) -> Ts {
    Ts(minute.saturating_add(60).saturating_mul(NANOS_PER_SEC).saturating_sub(1))
}

fn same_source(a: &AlertRule, b: &AlertRule) -> bool {
    match (&a.source, &b.source) {
        (AlertSource::Counter(x), AlertSource::Counter(y)) | (AlertSource::Event(x), AlertSource::Event(y)) => {
            x == y && a.window_secs == b.window_secs
        }
        _ => false,
    }
}

fn key_state<'a>(keys: &'a mut HashMap<String, KeyState>, key: &str, overflow: &mut u64) -> Option<&'a mut KeyState> {
    if !keys.contains_key(key) {
        if keys.len() >= MAX_KEYS {
            *overflow += 1;
            return None;
        }
        keys.insert(key.to_string(), KeyState::default());
    }
    keys.get_mut(key)
}

/// Keeps a copy of the frame that starts an episode, within the size bounds.
fn push_evidence(ev: &mut Vec<Evidence>, e: Option<EvidenceFrame<'_>>) {
    let Some(e) = e.filter(|_| ev.len() < MAX_EVIDENCE_FRAMES) else { return };
    let used: usize = ev.iter().map(|x| x.data.len()).sum();
    if used + e.data.len() <= MAX_EVIDENCE_BYTES {
        let mut data = e.data.to_vec();
        e.masks.apply(&mut data);
        ev.push(Evidence { ts: e.ts, link: e.link, orig_len: e.orig_len, data });
    }
}

fn evaluate_counter(rule: &AlertRule, key: &str, ks: &mut KeyState, now: Ts, out: &mut Vec<AlertOut>) {
    let sum = ks.window_sum();
    let mut threshold: Option<f64> = rule.above;
    let mut baseline = None;
    let mut firing = rule.above.is_none_or(|a| sum as f64 > a);
    if let Some(factor) = rule.above_baseline {
        // At least one past window, whatever the window length (a 1-day window needs one day).
        let windows_needed = (MIN_BASELINE_HOURS * 3600 / rule.window_secs.max(60) as i64).max(1) as usize;
        let median = ks.median().filter(|_| sum >= rule.min_count && ks.hist.len() >= windows_needed);
        if let Some(median) = median {
            baseline = Some(median);
            let t = factor * median;
            threshold = Some(threshold.map_or(t, |a| a.max(t)));
            firing &= sum as f64 > t;
        } else {
            firing = false;
        }
    }
    let active = ks.episode.as_ref().is_some_and(|e| !e.cleared);
    match (active, firing) {
        (false, true) => {
            let what = match baseline {
                Some(b) => format!("{sum} in {} (usual {b:.1}, ×{:.1})", window_text(rule.window_secs), ratio(sum, b)),
                None => format!("{sum} in {}, above {}", window_text(rule.window_secs), rule.above.unwrap_or(0.0)),
            };
            let summary = match key {
                "" => format!("{}: {what}", rule.description_or_id()),
                k => format!("{} ({k}): {what}", rule.description_or_id()),
            };
            start(rule, key, ks, now, sum, summary, baseline, threshold, out);
            if let Some(ep) = ks.episode.as_mut() {
                ep.reported = ep.total;
            }
        }
        (true, true) => {
            let ep = ks.episode.as_mut().expect("active");
            ep.last = now;
            ep.peak = ep.peak.max(sum);
            // Counter episodes count minutes over the threshold: a digest says how long it lasted.
            ep.total += 1;
        }
        (true, false) => {
            let ep = ks.episode.as_mut().expect("active");
            let (since, total) = (ep.since, ep.total);
            ep.cleared = true;
            out.push(notice(rule, key, ks, State::Cleared, now, since, total, baseline, threshold));
        }
        (false, false) => {}
    }
}

fn ratio(sum: u64, base: f64) -> f64 {
    if base > 0.0 {
        sum as f64 / base
    } else {
        f64::INFINITY
    }
}

fn window_text(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

impl AlertRule {
    fn description_or_id(&self) -> &str {
        if self.description.is_empty() {
            &self.id
        } else {
            &self.description
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn start(
    rule: &AlertRule,
    key: &str,
    ks: &mut KeyState,
    now: Ts,
    count: u64,
    summary: String,
    baseline: Option<f64>,
    threshold: Option<f64>,
    out: &mut Vec<AlertOut>,
) {
    ks.episode =
        Some(Episode { since: now, last: now, total: count, reported: count, peak: count, summary, cleared: false });
    out.push(notice(rule, key, ks, State::New, now, now, count, baseline, threshold));
    // The evidence went with the notice; an ongoing episode keeps none (memory is per key).
    ks.evidence = Vec::new();
    if let AlertOut::Notice(n) = out.last().expect("just pushed") {
        if n.mail {
            ks.last_mail = Some(now);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn notice(
    rule: &AlertRule,
    key: &str,
    ks: &KeyState,
    state: State,
    now: Ts,
    since: Ts,
    count: u64,
    baseline: Option<f64>,
    threshold: Option<f64>,
) -> AlertOut {
    let suppress = rule.suppress_secs as i64 * NANOS_PER_SEC;
    let recently = ks.last_mail.is_some_and(|t| now.0.saturating_sub(t.0) < suppress);
    let is_counter = matches!(rule.source, AlertSource::Counter(_));
    let summary = ks.episode.as_ref().map(|e| e.summary.clone()).unwrap_or_default();
    let summary = match state {
        State::New => summary,
        State::Cleared => format!("cleared: {summary}"),
    };
    AlertOut::Notice(Box::new(Notice {
        rule: rule.id.clone(),
        description: rule.description.clone(),
        key: key.to_string(),
        severity: rule.severity.clone(),
        state,
        ts: now,
        since,
        summary,
        count,
        value: is_counter.then(|| ks.window_sum()),
        baseline,
        threshold,
        window_secs: rule.window_secs,
        // Clearing is told in the digest, not in a mail of its own.
        mail: rule.mail && state == State::New && !recently,
        suppressed: rule.mail && state == State::New && recently,
        context: ks.context.clone(),
        evidence: if state == State::New { ks.evidence.clone() } else { Vec::new() },
        traffic: !matches!(&rule.source, AlertSource::Event(e) if BOX_EVENTS.contains(&e.as_str())),
    }))
}

/// Events about the box itself: no evidence window is cut for them.
const BOX_EVENTS: [&str; 4] = ["capture.drops", "capture.silent", "disk.low", "store.failing"];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn engine(toml: &str) -> AlertEngine {
        AlertEngine::new(&RuleSet::parse_text(Path::new("t.toml"), toml).unwrap(), 3600)
    }

    fn notices(out: &[AlertOut]) -> Vec<(State, String, bool)> {
        out.iter()
            .filter_map(|o| match o {
                AlertOut::Notice(n) => Some((n.state, n.key.clone(), n.mail)),
                _ => None,
            })
            .collect()
    }

    const APP: &str = r#"
[[alert]]
id = "db-deadlock"
event = "app_error"
window = "5m"
severity = "critical"
mail = true
suppress = "1h"
"#;

    fn err(e: &mut AlertEngine, secs: i64, key: &str, out: &mut Vec<AlertOut>) {
        let ev = Event {
            kind: "app_error",
            key: key.into(),
            ts: Ts(secs * NANOS_PER_SEC),
            count: 1,
            summary: "deadlock".into(),
            context: Context::default(),
            evidence: None,
        };
        e.event(ev, |_| true, out);
    }

    #[test]
    fn a_flood_is_one_mail_and_a_digest() {
        let mut e = engine(APP);
        let mut out = Vec::new();
        for i in 0..10_000 {
            err(&mut e, 1_000_000 + i / 100, "postgresql 40P01 10.0.0.5", &mut out);
        }
        e.finish(&mut out);
        assert_eq!(notices(&out), vec![(State::New, "postgresql 40P01 10.0.0.5".into(), true)]);
        let AlertOut::Digest(d) = out.last().unwrap() else { panic!("no digest") };
        assert_eq!((d.lines[0].new, d.lines[0].total, d.lines[0].ongoing), (9_999, 10_000, true));
    }

    #[test]
    fn event_episodes_clear_and_suppression_holds_back_the_next_mail() {
        let mut e = engine(APP);
        let mut out = Vec::new();
        err(&mut e, 1000, "k", &mut out);
        e.tick(Ts(1200 * NANOS_PER_SEC), &mut out);
        e.tick(Ts(1301 * NANOS_PER_SEC), &mut out); // 5 min without an error: cleared
        err(&mut e, 2000, "k", &mut out); // again within the hour: recorded, not mailed
        e.tick(Ts(2400 * NANOS_PER_SEC), &mut out);
        err(&mut e, 1000 + 3601, "k", &mut out); // after the hour: mailed again
        let n = notices(&out);
        assert_eq!(
            n,
            vec![
                (State::New, "k".into(), true),
                (State::Cleared, "k".into(), false),
                (State::New, "k".into(), false),
                (State::Cleared, "k".into(), false),
                (State::New, "k".into(), true)
            ]
        );
    }

    #[test]
    fn baseline_fires_once_on_a_rise_and_clears() {
        let mut e = engine(
            r#"
[[counter]]
id = "retrans"
filter = "tcp.analysis.retransmission"
[[alert]]
id = "retrans-rising"
counter = "retrans"
window = "5m"
above_baseline = 3.0
min_count = 20
mail = true
"#,
        );
        let mut out = Vec::new();
        let row = |m: i64, v: u64| {
            vec![CounterRow { minute: m * 60, counter: "retrans".into(), key: String::new(), value: v }]
        };
        let start = 1_700_000_000 / 60;
        // A quiet week: 2 to 5 retransmissions a minute.
        for m in start..start + 7 * 1440 {
            e.counter_minute(m * 60, &row(m, 2 + (m % 4) as u64)[..], &mut out);
        }
        assert!(notices(&out).is_empty(), "quiet week fired: {:?}", notices(&out));
        // Thirty bad minutes: 40 a minute (about 10× the usual 5-minute sum).
        let bad = start + 7 * 1440;
        for m in bad..bad + 30 {
            e.counter_minute(m * 60, &row(m, 40)[..], &mut out);
        }
        for m in bad + 30..bad + 60 {
            e.counter_minute(m * 60, &row(m, 3)[..], &mut out);
        }
        let n = notices(&out);
        assert_eq!(n.len(), 2, "{n:?}");
        assert_eq!(n[0].0, State::New);
        assert_eq!(n[1].0, State::Cleared);
        let AlertOut::Notice(first) = out.iter().find(|o| matches!(o, AlertOut::Notice(_))).unwrap() else { panic!() };
        assert!(first.baseline.unwrap() > 10.0 && first.baseline.unwrap() < 20.0, "{:?}", first.baseline);
    }

    #[test]
    fn a_new_box_does_not_alarm_without_history() {
        let mut e = engine(
            r#"
[[counter]]
id = "c"
filter = "tcp"
[[alert]]
id = "a"
counter = "c"
above_baseline = 2.0
min_count = 1
"#,
        );
        let mut out = Vec::new();
        for m in 0..120 {
            e.counter_minute(
                m * 60,
                &[CounterRow { minute: m * 60, counter: "c".into(), key: String::new(), value: 500 }],
                &mut out,
            );
        }
        assert!(notices(&out).is_empty());
    }

    #[test]
    fn a_day_long_baseline_window_runs_without_history() {
        // Was a panic (median of an empty history) for windows longer than the 24 h warm-up.
        let mut e = engine(
            "[[counter]]\nid = \"c\"\nfilter = \"tcp\"\n[[alert]]\nid = \"a\"\ncounter = \"c\"\nwindow = \"1d\"\nabove_baseline = 2.0\nmin_count = 1\n",
        );
        let mut out = Vec::new();
        for m in 0..3 * 1440 {
            let v = if m > 2 * 1440 { 50 } else { 1 };
            e.counter_minute(
                m * 60,
                &[CounterRow { minute: m * 60, counter: "c".into(), key: String::new(), value: v }],
                &mut out,
            );
        }
        assert_eq!(notices(&out).len(), 1, "fires once the first day is history");
    }

    #[test]
    fn time_going_backwards_neither_inflates_nor_grows_the_window() {
        let mut e = engine(APP.replace("window = \"5m\"", "window = \"5m\"\nabove = 1000").as_str());
        let mut out = Vec::new();
        // Alternating between two instants a year apart, as a merged or damaged file does.
        for i in 0..20_000 {
            let t = if i % 2 == 0 { 1_700_000_000 + i } else { 1_668_000_000 };
            err(&mut e, t, "k", &mut out);
        }
        let ks = &e.rules[0].keys["k"];
        assert!(ks.recent.len() <= 6, "window holds {} minutes", ks.recent.len());
        assert!(ks.window_sum() <= 20_000);
        assert!(ks.recent.iter().zip(ks.recent.iter().skip(1)).all(|(a, b)| a.0 < b.0), "window sorted");
    }

    #[test]
    fn months_of_distinct_errors_never_fill_the_key_table() {
        // Was: keys were kept forever, so after 1024 distinct (family, code, server) keys every
        // new kind of error overflowed and never alerted again.
        let mut e = engine(APP);
        let mut out = Vec::new();
        for i in 0..5000i64 {
            let t = 1_000_000 + i * 7200; // two hours apart: beyond the window and the suppression
            err(&mut e, t, &format!("http 500 10.0.{}.{}:80", i / 250, i % 250), &mut out);
            e.tick(Ts((t + 3600) * NANOS_PER_SEC), &mut out);
        }
        assert_eq!(e.overflow, 0);
        assert!(e.rules[0].keys.len() <= 2, "{} keys kept", e.rules[0].keys.len());
        let mailed = notices(&out).iter().filter(|n| n.0 == State::New && n.2).count();
        assert_eq!(mailed, 5000, "every new kind of error is mailed");
        assert!(e.rules[0].keys.values().all(|k| k.evidence.is_empty()), "no evidence kept after the notice");
    }

    #[test]
    fn suppression_survives_a_restart() {
        let mut e = engine(APP);
        e.restore_mail("db-deadlock", "k", Ts(1000 * NANOS_PER_SEC));
        let mut out = Vec::new();
        err(&mut e, 1000 + 1800, "k", &mut out); // half an hour after the last mail: held back
        assert_eq!(notices(&out), vec![(State::New, "k".into(), false)]);
    }
}
