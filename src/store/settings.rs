//! `[store]` of the configuration: where the store lives and what it may use of the disk. Here,
//! beside the store, so that the store reads its settings without depending on the whole
//! configuration (`crate::config` gathers every component's section).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite database, pcap ring and evidence live here.
    pub dir: PathBuf,
    /// Upper bound for everything under `dir`, e.g. "4GiB".
    pub disk_budget: String,
    /// Per-minute tables, errors and flows are kept this many days (identities and alerts 3×).
    pub retention_days: u64,
    /// Keep every frame (credentials overwritten) in the pcap ring under `dir`/ring.
    pub ring: bool,
    /// Size at which a ring file is closed and the next begun (at most an eighth of the budget).
    pub ring_file_size: String,
    /// Memory for frames on their way to the ring; frames beyond it are not kept (counted).
    pub ring_buffer: String,
    /// Evidence window kept around each alert: this long before and after it.
    pub evidence_before: String,
    pub evidence_after: String,
    /// Largest evidence file; the frames nearest the alert are kept.
    pub evidence_max: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: PathBuf::from("/var/lib/mirrorwatch"),
            disk_budget: "4GiB".into(),
            retention_days: 30,
            ring: true,
            ring_file_size: "64MiB".into(),
            ring_buffer: "8MiB".into(),
            evidence_before: "60s".into(),
            evidence_after: "60s".into(),
            evidence_max: "32MiB".into(),
        }
    }
}

impl StoreConfig {
    pub fn database(&self) -> PathBuf {
        self.dir.join("mirrorwatch.db")
    }

    /// The evidence window around an alert, µs before and after it.
    pub fn evidence_window(&self) -> anyhow::Result<(i64, i64)> {
        let d = |key: &str, v: &str| {
            crate::units::parse_duration(v)
                .map(|s| s as i64 * 1_000_000)
                .ok_or_else(|| anyhow::anyhow!("[store] {key} = {v:?}: not a duration like \"60s\""))
        };
        Ok((d("evidence_before", &self.evidence_before)?, d("evidence_after", &self.evidence_after)?))
    }
}
