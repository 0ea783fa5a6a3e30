//! Live capture through libpcap.
//!
//! Promiscuous, immediate mode, configurable snaplen, kernel buffer and BPF filter. The handle
//! is put in non-blocking mode: a blocking read on an idle TPACKET_V3 socket was seen never to
//! return, which would make the daemon impossible to stop. When nothing is waiting, the source
//! sleeps for [`POLL_INTERVAL`] and returns `Ok(None)`, so the caller's loop keeps control
//! (timers, stop flag). The capture port is only listened on: nothing is ever sent.

use std::time::Duration;

use super::{CaptureError, DropStats, LinkType, PacketSource, RawPacket};
use crate::time::Ts;

/// Sleep when the kernel ring is empty. libpcap keeps buffering meanwhile; 5 ms bounds the added
/// latency and keeps an idle box from spinning.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Live-capture settings (`[capture]` in the configuration).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Interface listening on the mirror port.
    pub interface: String,
    /// Bytes kept per frame. 1600 covers a full Ethernet frame with VLAN tags.
    pub snaplen: u32,
    /// Capture filter in tcpdump syntax; empty = everything.
    pub bpf: String,
    pub promiscuous: bool,
    /// Kernel ring size in MiB: absorbs bursts while the pipeline is busy.
    pub buffer_mib: u32,
    /// A live port without a frame for this long raises `capture.silent` (a pulled cable, a
    /// switch that lost its mirror session): a duration like "5m".
    pub silent_after: String,
}

impl CaptureConfig {
    /// `silent_after` in seconds: from 1 minute to 1 day.
    pub fn silent_after_secs(&self) -> Result<u64, String> {
        match crate::units::parse_duration(&self.silent_after) {
            Some(s) if (60..=86_400).contains(&s) => Ok(s),
            _ => Err(format!("[capture] silent_after {:?}: a duration from 1m to 1d", self.silent_after)),
        }
    }
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: "eth1".into(),
            snaplen: 1600,
            bpf: String::new(),
            promiscuous: true,
            buffer_mib: 8,
            silent_after: "5m".into(),
        }
    }
}

pub struct LiveSource {
    cap: pcap::Capture<pcap::Active>,
    link: LinkType,
    frame: u64,
    finished: bool,
}

impl LiveSource {
    pub fn open(cfg: &CaptureConfig) -> Result<LiveSource, CaptureError> {
        let err = |what: &str, e: pcap::Error| CaptureError::Live(format!("{what} on {}: {e}", cfg.interface));
        let inactive = pcap::Capture::from_device(cfg.interface.as_str()).map_err(|e| err("opening", e))?;
        let mut cap = inactive
            .promisc(cfg.promiscuous)
            .immediate_mode(true)
            .snaplen(cfg.snaplen.min(i32::MAX as u32) as i32)
            .buffer_size((cfg.buffer_mib.clamp(1, 1024) * 1024 * 1024) as i32)
            .timeout(100)
            .open()
            .map_err(|e| err("activating capture", e))?
            .setnonblock()
            .map_err(|e| err("setting non-blocking mode", e))?;
        if !cfg.bpf.trim().is_empty() {
            cap.filter(&cfg.bpf, true).map_err(|e| err("compiling capture filter", e))?;
        }
        let link = LinkType::from_dlt(cap.get_datalink().0);
        Ok(LiveSource { cap, link, frame: 0, finished: false })
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }
}

impl PacketSource for LiveSource {
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        match self.cap.next_packet() {
            Ok(p) => {
                self.frame += 1;
                let h = p.header;
                Ok(Some(RawPacket {
                    frame: self.frame,
                    ts: Ts::from_secs_nanos(h.ts.tv_sec, h.ts.tv_usec * 1000),
                    orig_len: h.len.max(h.caplen),
                    link: self.link,
                    interface: 0,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => {
                std::thread::sleep(POLL_INTERVAL);
                Ok(None)
            }
            Err(e) => {
                self.finished = true;
                Err(CaptureError::Live(e.to_string()))
            }
        }
    }

    fn is_finished(&self) -> bool {
        self.finished
    }

    fn drops(&mut self) -> Option<DropStats> {
        self.cap.stats().ok().map(|s| DropStats {
            received: s.received as u64,
            dropped: s.dropped as u64,
            if_dropped: s.if_dropped as u64,
        })
    }
}
