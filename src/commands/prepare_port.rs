//! `mirrorwatch prepare-port [--config FILE] [--interface IF]`: makes the capture interface a
//! listen-only port before the daemon starts (the unit runs it as root in `ExecStartPre=+`, the
//! daemon itself has no right to write kernel settings): up and promiscuous, no IPv4 or IPv6
//! address, no IPv6 autoconfiguration or router solicitation, no ARP, no multicast — so the box
//! never transmits a frame on the mirror port.

use std::path::PathBuf;
use std::process::Command;

use super::Outcome;
use crate::config::{Config, DEFAULT_PATH};

pub struct PreparePortArgs {
    pub config: Option<PathBuf>,
    pub interface: Option<String>,
}

/// A Linux interface name (at most 15 bytes, no slash, no whitespace, not `.` or `..`).
pub fn valid_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let o = Command::new("ip").args(args).output().map_err(|e| anyhow::anyhow!("ip {}: {e}", args.join(" ")))?;
    anyhow::ensure!(o.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
    Ok(())
}

/// Applies the settings to `iface`; returns what was done, one line each.
pub fn prepare(iface: &str) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(valid_interface(iface), "{iface:?} is not an interface name");
    let mut done = Vec::new();
    // IPv6 first, so that bringing the link up sends no router solicitation or DAD probe.
    let conf = format!("/proc/sys/net/ipv6/conf/{iface}");
    if std::path::Path::new(&conf).is_dir() {
        for (key, value) in [("accept_ra", "0"), ("autoconf", "0"), ("disable_ipv6", "1")] {
            std::fs::write(format!("{conf}/{key}"), value).map_err(|e| anyhow::anyhow!("{conf}/{key}: {e}"))?;
            done.push(format!("net.ipv6.conf.{iface}.{key} = {value}"));
        }
    }
    ip(&["addr", "flush", "dev", iface])?;
    done.push(format!("{iface}: addresses removed"));
    ip(&["link", "set", "dev", iface, "arp", "off", "multicast", "off", "promisc", "on", "up"])?;
    done.push(format!("{iface}: up, promiscuous, no ARP, no multicast"));
    Ok(done)
}

pub fn run(args: PreparePortArgs) -> anyhow::Result<Outcome> {
    let iface = match args.interface {
        Some(i) => i,
        None => {
            let path = args.config.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
            Config::load(&path)?.capture.interface
        }
    };
    for line in prepare(&iface)? {
        println!("{line}");
    }
    Ok(Outcome::default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn interface_names() {
        use super::valid_interface as v;
        assert!(v("eth1") && v("enp1s0") && v("mw-cap.10"));
        assert!(!v("") && !v("..") && !v("a/b") && !v("eth 1") && !v("averyveryverylongname"));
    }
}
