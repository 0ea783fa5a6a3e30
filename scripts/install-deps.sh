#!/usr/bin/env bash
# Installs the Debian packages mirrorwatch builds and tests with (idempotent, needs root or sudo).
#   libpcap-dev          live capture (pcap crate)
#   tshark               the oracle of the differential tests
#   tcpdump nftables iproute2 ethtool curl python3 iputils-ping
#                        lab captures and the live-capture test (network namespaces)
#   postgresql           the real database whose deadlock the live end-to-end test catches
#   sqlite3              inspecting the database by hand
#   python3-aiosmtpd openssl
#                        the real SMTP server (STARTTLS, AUTH) of the mail tests
#   systemd file         the unit's check (systemd-analyze verify and security) and the package's
#   prometheus rsyslog rsyslog-gnutls python3-pip
#                        the fleet export's tests: a real Prometheus scraping two daemons, a real
#                        rsyslog receiving the syslog stream (TCP and TLS), and the PyPI
#                        `communityid` reference implementation (installed into target/pyref)
#   chromium nodejs npm fonts-ipafont-gothic
#                        the dashboard's browser test (playwright-core from npm drives Debian's
#                        chromium; the font draws the Japanese pages in its screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(libpcap-dev tshark tcpdump nftables iproute2 ethtool curl python3 sqlite3 pkg-config python3-aiosmtpd openssl
      chromium fonts-ipafont-gothic iputils-ping postgresql systemd file python3-pip)
# Installed without their recommendations (prometheus would bring node-exporter and its timers).
lean=(prometheus rsyslog rsyslog-gnutls)
# Node.js from Debian unless one is installed already (the test needs node and npm, any LTS).
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
missing_lean=()
for p in "${lean[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_lean+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ ${#missing_lean[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "installing: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    if [ ${#missing[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [ ${#missing_lean[@]} -gt 0 ]; then
        echo "installing: ${missing_lean[*]}" >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing_lean[@]}" >/dev/null
    fi
fi
# The python3 on PATH may not be Debian's (pyenv): give it aiosmtpd from PyPI then.
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    python3 -m pip install -q aiosmtpd >/dev/null
fi
# The Community ID reference implementation (PyPI `communityid`, pure Python), beside the
# build: the export test runs it with PYTHONPATH=target/pyref. Debian's python is
# externally managed, hence --target (and the flag pip asks for on the system python).
if [ ! -d target/pyref/communityid ]; then
    python3 -m pip install -q --target target/pyref communityid==1.5.0 >/dev/null 2>&1 \
        || python3 -m pip install -q --break-system-packages --target target/pyref communityid==1.5.0 >/dev/null
fi
# playwright-core, pinned by tests/web/package-lock.json (it drives the system chromium and
# downloads no browser).
if [ ! -d tests/web/node_modules/playwright-core ]; then
    npm ci --prefix tests/web --no-audit --no-fund --loglevel=error >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install a Rust toolchain (>= 1.85), e.g. from rustup.rs, then re-run" >&2
    exit 1
fi
# cargo-deb builds the .deb (image/package.sh); the version the package metadata was written for.
if ! cargo deb --version 2>/dev/null | grep -q '3\.8\.'; then
    cargo install cargo-deb --version 3.8.0 --locked --quiet
fi
