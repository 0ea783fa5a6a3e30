//! Rule files (`rules/*.toml`): counters and alerts, loaded strictly.
//!
//! A rule file holds `[[counter]]` and `[[alert]]` tables (ARCHITECTURE.md "Rules"). Every
//! problem — unknown key, wrong type, bad display filter, duplicate id, an alert naming a
//! counter that does not exist — is reported as `FILE:LINE:COL: message`, all of a file's
//! problems at once, so an admin fixes a file in one go. Loading never half-applies: a rule set
//! is either entirely valid or rejected (the daemon then keeps the rules it had).

pub mod alerts;
pub mod counters;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::filter::{fields, Filter};
use crate::units::{line_col, parse_duration};

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.msg)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    Packets,
    Bytes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    counter: Vec<RawCounter>,
    #[serde(default)]
    alert: Vec<RawAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounter {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    filter: Spanned<String>,
    #[serde(default)]
    group_by: Vec<Spanned<String>>,
    #[serde(default)]
    value: Option<Spanned<ValueKind>>,
    /// Report every matching frame as an application error (family "pattern").
    #[serde(default)]
    app_error: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    counter: Option<Spanned<String>>,
    event: Option<Spanned<String>>,
    /// For event alerts: a display filter on the event's fields (app_error family, code…).
    #[serde(rename = "where")]
    where_: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    above: Option<Spanned<f64>>,
    above_baseline: Option<Spanned<f64>>,
    /// Baseline alerts stay quiet below this count (quiet networks, tiny baselines).
    min_count: Option<Spanned<u64>>,
    #[serde(default = "default_severity")]
    severity: Spanned<String>,
    #[serde(default)]
    mail: bool,
    suppress: Option<Spanned<String>>,
}

fn default_severity() -> Spanned<String> {
    Spanned::new(0..0, "warning".to_string())
}

/// A counter: frames (or bytes) matching a display filter, per minute, optionally grouped.
#[derive(Debug)]
pub struct CounterRule {
    pub id: String,
    pub description: String,
    pub filter: Filter,
    pub group_by: Vec<&'static fields::FieldDef>,
    pub value: ValueKind,
    /// Matching frames are also application errors (family `pattern`, code = the counter id).
    pub app_error: bool,
    pub file: PathBuf,
}

/// Events an alert can follow instead of a counter.
pub const EVENTS: &[&str] = &[
    "app_error",
    "identity.new",
    "identity.shared_mac",
    "capture.drops",
    "capture.silent",
    "disk.low",
    "store.failing",
];
pub const SEVERITIES: &[&str] = &["info", "warning", "critical"];

/// Ranges every loaded rule stays within, so that a rule `rules check` accepts always runs:
/// windows fit the 7-day baseline several times over, and no product of them overflows.
pub const MAX_WINDOW_SECS: u64 = 86_400;
pub const MAX_SUPPRESS_SECS: u64 = 30 * 86_400;
pub const MAX_ABOVE: f64 = 1e12;
pub const MAX_BASELINE_FACTOR: f64 = 1e6;
pub const MAX_MIN_COUNT: u64 = 1_000_000_000_000;

#[derive(Debug, Clone)]
pub enum AlertSource {
    Counter(String),
    Event(String),
}

#[derive(Debug, Clone)]
pub struct AlertRule {
    pub id: String,
    pub description: String,
    pub source: AlertSource,
    pub where_: Option<String>,
    pub window_secs: u64,
    pub above: Option<f64>,
    pub above_baseline: Option<f64>,
    pub min_count: u64,
    pub severity: String,
    pub mail: bool,
    pub suppress_secs: u64,
    pub file: PathBuf,
    /// Line and column of the alert's `counter`/`event` value, for later cross-file errors.
    pub at: (usize, usize),
}

/// Every counter and alert of a rule directory.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub counters: Vec<CounterRule>,
    pub alerts: Vec<AlertRule>,
    pub files: Vec<PathBuf>,
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<RuleError>,
}

impl Ctx<'_> {
    fn at(&mut self, span: Range<usize>, msg: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.errors.push(RuleError { file: self.file.to_path_buf(), line, col, msg: msg.into() });
    }
}

/// Loads one rule file's text. `seen` holds ids already defined (across files).
fn load_text(file: &Path, text: &str, set: &mut RuleSet, seen: &mut HashMap<String, String>) -> Vec<RuleError> {
    let mut cx = Ctx { file, text, errors: Vec::new() };
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            cx.at(e.span().unwrap_or(0..0), e.message().to_string());
            return cx.errors;
        }
    };
    for c in raw.counter {
        let id_span = c.id.span();
        let id = c.id.into_inner();
        check_id(&mut cx, &id, id_span.clone(), seen);
        let fspan = c.filter.span();
        let ftext = c.filter.into_inner();
        let filter = match Filter::compile(&ftext) {
            Ok(f) => Some(f),
            Err(e) => {
                // The span includes the opening quote; point into the string.
                let col_in = e.offset.min(ftext.len());
                cx.at(fspan.start + 1 + col_in..fspan.end, format!("filter: {}", e.msg));
                None
            }
        };
        let mut group_by = Vec::new();
        for g in c.group_by {
            let span = g.span();
            let name = g.into_inner();
            match fields::lookup(&name) {
                Some(def) if def.ftype == fields::FType::Proto => {
                    cx.at(span, format!("group_by: \"{name}\" is a protocol, not a field with a value"))
                }
                Some(def) => group_by.push(def),
                None => match fields::nearest(&name) {
                    Some(n) => cx.at(span, format!("group_by: unknown field \"{name}\" (did you mean \"{n}\"?)")),
                    None => cx.at(span, format!("group_by: unknown field \"{name}\"")),
                },
            }
        }
        if group_by.len() > 4 {
            cx.at(id_span.clone(), "group_by: at most 4 fields");
        }
        if let Some(filter) = filter {
            set.counters.push(CounterRule {
                id,
                description: c.description,
                filter,
                group_by,
                value: c.value.map(|v| v.into_inner()).unwrap_or(ValueKind::Packets),
                app_error: c.app_error,
                file: file.to_path_buf(),
            });
        }
    }
    for a in raw.alert {
        let id_span = a.id.span();
        let id = a.id.into_inner();
        check_id(&mut cx, &id, id_span.clone(), seen);
        let src_span = a.counter.as_ref().or(a.event.as_ref()).map(|s| s.span()).unwrap_or(id_span.clone());
        let at = line_col(text, src_span.start);
        let source = match (a.counter, a.event) {
            (Some(c), None) => AlertSource::Counter(c.into_inner()),
            (None, Some(e)) => {
                let span = e.span();
                let e = e.into_inner();
                if !EVENTS.contains(&e.as_str()) {
                    cx.at(span, format!("unknown event \"{e}\" (known: {})", EVENTS.join(", ")));
                }
                AlertSource::Event(e)
            }
            (Some(c), Some(_)) => {
                cx.at(c.span(), "an alert follows either a counter or an event, not both");
                continue;
            }
            (None, None) => {
                cx.at(id_span, "an alert needs `counter = \"…\"` or `event = \"…\"`");
                continue;
            }
        };
        let is_counter = matches!(source, AlertSource::Counter(_));
        let dur = |cx: &mut Ctx,
                   v: Option<Spanned<String>>,
                   default: u64,
                   what: &str,
                   ok: &dyn Fn(u64) -> bool,
                   range: &str| {
            let Some(s) = v else { return default };
            let span = s.span();
            match parse_duration(s.get_ref()) {
                Some(d) if ok(d) => d,
                Some(_) => {
                    cx.at(span, format!("{what}: \"{}\" is out of range ({range})", s.get_ref()));
                    default
                }
                None => {
                    cx.at(span, format!("{what}: \"{}\" is not a duration (e.g. 90s, 5m, 1h, 7d)", s.get_ref()));
                    default
                }
            }
        };
        let window_secs = if is_counter {
            // Counters are per minute: a counter window is whole minutes.
            let ok = |d: u64| (60..=MAX_WINDOW_SECS).contains(&d) && d % 60 == 0;
            dur(&mut cx, a.window, 300, "window", &ok, "60s to 1d, whole minutes for a counter alert")
        } else {
            dur(&mut cx, a.window, 300, "window", &|d| d <= MAX_WINDOW_SECS, "1s to 1d")
        };
        let suppress_secs = dur(&mut cx, a.suppress, 3600, "suppress", &|d| d <= MAX_SUPPRESS_SECS, "1s to 30d");
        let sev_span = a.severity.span();
        let severity = a.severity.into_inner();
        if !SEVERITIES.contains(&severity.as_str()) {
            cx.at(sev_span, format!("severity must be one of {}", SEVERITIES.join(", ")));
        }
        for (v, name, max) in
            [(&a.above, "above", MAX_ABOVE), (&a.above_baseline, "above_baseline", MAX_BASELINE_FACTOR)]
        {
            if let Some(v) = v {
                if !(v.get_ref().is_finite() && *v.get_ref() > 0.0 && *v.get_ref() <= max) {
                    cx.at(v.span(), format!("{name} must be a number above 0 and at most {max}"));
                }
            }
        }
        if let Some(m) = a.min_count.as_ref().filter(|m| *m.get_ref() > MAX_MIN_COUNT) {
            cx.at(m.span(), format!("min_count must be at most {MAX_MIN_COUNT}"));
        }
        if is_counter && a.above.is_none() && a.above_baseline.is_none() {
            cx.at(id_span.clone(), "a counter alert needs `above` and/or `above_baseline`");
        }
        let where_ = match a.where_ {
            Some(w) if !matches!(&source, AlertSource::Event(e) if e == "app_error") => {
                cx.at(
                    w.span(),
                    "`where` filters the frames of app_error alerts; other sources have no frame to filter",
                );
                None
            }
            Some(w) => {
                let span = w.span();
                let text = w.into_inner();
                if let Err(e) = Filter::compile(&text) {
                    cx.at(span.start + 1 + e.offset..span.end, format!("where: {}", e.msg));
                }
                Some(text)
            }
            None => None,
        };
        set.alerts.push(AlertRule {
            id,
            description: a.description,
            source,
            where_,
            window_secs,
            above: a.above.map(|v| v.into_inner()),
            above_baseline: a.above_baseline.map(|v| v.into_inner()),
            min_count: a.min_count.map(|m| m.into_inner()).unwrap_or(10),
            severity,
            mail: a.mail,
            suppress_secs,
            file: file.to_path_buf(),
            at,
        });
    }
    cx.errors
}

fn check_id(cx: &mut Ctx, id: &str, span: Range<usize>, seen: &mut HashMap<String, String>) {
    let ok = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        cx.at(span.clone(), format!("id \"{id}\" may only contain letters, digits, '-', '_' and '.'"));
    }
    let (line, col) = line_col(cx.text, span.start);
    let here = format!("{}:{line}:{col}", cx.file.display());
    if let Some(first) = seen.get(id) {
        let msg = format!("duplicate id \"{id}\" (first defined at {first})");
        cx.at(span, msg);
    } else {
        seen.insert(id.to_string(), here);
    }
}

impl RuleSet {
    /// Loads every `*.toml` of `dir` (sorted by name). Returns all errors of the first bad file
    /// (later files are not checked against a broken one), or the rule set.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<RuleError>> {
        RuleSet::load_dir_with(dir, None)
    }

    /// [`RuleSet::load_dir`] as it would be with `edit` = (file name, text) saved in `dir`
    /// (a new file or a changed one): what the dashboard's editor checks before saving.
    pub fn load_dir_with(dir: &Path, edit: Option<(&str, &str)>) -> Result<RuleSet, Vec<RuleError>> {
        let rd = std::fs::read_dir(dir).map_err(|e| {
            vec![RuleError {
                file: dir.to_path_buf(),
                line: 0,
                col: 0,
                msg: format!("cannot read rule directory: {e}"),
            }]
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        let edited = edit.map(|(name, _)| dir.join(name));
        if let Some(e) = &edited {
            if !files.contains(e) {
                files.push(e.clone());
            }
        }
        files.sort();
        let mut set = RuleSet::default();
        let mut seen = HashMap::new();
        for f in files {
            let text = match (&edited, edit) {
                (Some(e), Some((_, text))) if *e == f => text.to_string(),
                _ => std::fs::read_to_string(&f).map_err(|e| {
                    vec![RuleError { file: f.clone(), line: 0, col: 0, msg: format!("cannot read: {e}") }]
                })?,
            };
            let errors = load_text(&f, &text, &mut set, &mut seen);
            if !errors.is_empty() {
                return Err(errors);
            }
            set.files.push(f);
        }
        // Alerts must name counters that exist (in any file).
        let mut errors = Vec::new();
        for a in &set.alerts {
            if let AlertSource::Counter(c) = &a.source {
                if !set.counters.iter().any(|k| &k.id == c) {
                    errors.push(RuleError {
                        file: a.file.clone(),
                        line: a.at.0,
                        col: a.at.1,
                        msg: format!("alert \"{}\" follows counter \"{c}\", which no rule file defines", a.id),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Parses one file's text (for tests and the dashboard's rule editor).
    pub fn parse_text(file: &Path, text: &str) -> Result<RuleSet, Vec<RuleError>> {
        let mut set = RuleSet::default();
        let errors = load_text(file, text, &mut set, &mut HashMap::new());
        if errors.is_empty() {
            set.files.push(file.to_path_buf());
            Ok(set)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests;
