#!/bin/sh
# Runs inside the image's root file system (image/build.sh, after the package is installed):
# makes Debian an appliance that spares its SD card. Read-only root; what must be written goes
# to tmpfs (logs, DHCP leases, the clock's state) or to the data partition (configuration,
# store). The management port (eth0) by DHCP, with its address on the console and the name
# mirrorwatch.local by mDNS; the mirror port (eth1, a USB adapter) left to prepare-port.
set -eu
here=/tmp/rootfs

# The firmware partition as the Pi boots it: root by label (read-only), the serial consoles,
# classic interface names (eth0 the built-in port, eth1 the USB adapter). raspi-firmware's
# kernel hook writes cmdline.txt and copies kernel, initrd and device trees to /boot/firmware.
sed -i 's/^#\?ROOTPART=.*/ROOTPART=LABEL=MWROOT/; s/^#\?CONSOLES=.*/CONSOLES="ttyS1,115200 tty0"/' /etc/default/raspi-firmware
grep -q '^ROOTPART=LABEL=MWROOT' /etc/default/raspi-firmware || echo 'ROOTPART=LABEL=MWROOT' >> /etc/default/raspi-firmware
echo "net.ifnames=0 ro fsck.repair=yes" > /etc/default/raspi-extra-cmdline
# (The hook acts only when told it runs from a package's configure step.)
for k in /boot/vmlinuz-*; do
    DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "${k#/boot/vmlinuz-}"
done
grep -q 'root=LABEL=MWROOT' /boot/firmware/cmdline.txt || { echo "cmdline.txt without the root label" >&2; exit 1; }
echo "cmdline.txt: $(cat /boot/firmware/cmdline.txt)"

echo mirrorwatch > /etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tmirrorwatch\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts

cat > /etc/fstab <<'FSTAB'
# The system is read-only; the firmware partition is written only by the first-boot password
# and the upgrade service (mirrorwatch-*.txt, mirrorwatch_*.deb put there from a PC).
LABEL=MWROOT     /                    ext4   ro,noatime,errors=remount-ro  0 1
LABEL=RASPIFIRM  /boot/firmware       vfat   rw,noatime,umask=0077         0 2
# Configuration and store: the data partition (grown to the card's end at first boot).
LABEL=MWDATA     /srv/mirrorwatch     ext4   rw,noatime,commit=60          0 2
/srv/mirrorwatch/etc    /etc/mirrorwatch      none  bind,x-systemd.requires-mounts-for=/srv/mirrorwatch  0 0
# A USB stick labelled MWSTORE (ext4), when present at boot, holds the store instead of the
# card (more room, and the card spared the store's writes): mirrorwatch-store.service binds
# one or the other on /var/lib/mirrorwatch.
LABEL=MWSTORE    /srv/mirrorwatch-usb ext4   rw,noatime,commit=60,nofail,x-systemd.device-timeout=10s  0 2
tmpfs            /tmp                 tmpfs  mode=1777,nosuid,nodev,size=64M  0 0
tmpfs            /var/tmp             tmpfs  mode=1777,nosuid,nodev,size=16M  0 0
tmpfs            /var/log             tmpfs  mode=0755,nosuid,nodev,size=16M  0 0
tmpfs            /var/lib/systemd/timesync  tmpfs  mode=0755,size=1M,nofail  0 0
FSTAB
# Mount points must exist in the image: the read-only root cannot have them made at boot.
mkdir -p /srv/mirrorwatch /srv/mirrorwatch-usb /boot/firmware /var/lib/systemd/timesync /var/lib/systemd/linger

# The journal in memory only (16 MiB): the box's own faults are in the store's health_events.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' > /etc/systemd/journald.conf.d/mirrorwatch.conf
# A fresh machine-id each boot (the root is read-only); DHCP identifies the box by its MAC, so
# it keeps its lease.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -sf /etc/machine-id /var/lib/dbus/machine-id

mkdir -p /etc/systemd/network
cat > /etc/systemd/network/10-mirror.network <<'NET'
# The mirror port: left to mirrorwatch prepare-port (no address, no ARP, promiscuous).
[Match]
Name=eth1
[Link]
Unmanaged=yes
NET
cat > /etc/systemd/network/20-management.network <<'NET'
# The management port: DHCP, the box announced as mirrorwatch.local.
[Match]
Name=eth0
[Network]
DHCP=yes
MulticastDNS=yes
[DHCPv4]
ClientIdentifier=mac
NET
mkdir -p /etc/systemd/resolved.conf.d
printf '[Resolve]\nMulticastDNS=yes\nLLMNR=no\n' > /etc/systemd/resolved.conf.d/mirrorwatch.conf
ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf

# The console says where the dashboard is (agetty fills in eth0's address).
cat > /etc/issue <<'ISSUE'
mirrorwatch on \n (\l)

  Dashboard: http://\4{eth0}:8080/   or   http://mirrorwatch.local:8080/
  Password:  put it in mirrorwatch-password.txt on the SD card's firmware partition and reboot

ISSUE

mkdir -p /usr/lib/mirrorwatch
install -m 0755 "$here/grow-data" /usr/lib/mirrorwatch/grow-data
install -m 0755 "$here/firstboot-password" /usr/lib/mirrorwatch/firstboot-password
install -m 0755 "$here/upgrade-from-firmware" /usr/lib/mirrorwatch/upgrade-from-firmware
install -m 0644 "$here"/mirrorwatch-grow-data.service "$here"/mirrorwatch-password.service \
    "$here"/mirrorwatch-upgrade.service "$here"/mirrorwatch-store.service /etc/systemd/system/
mkdir -p /etc/systemd/system/mirrorwatch.service.d
printf '[Unit]\nRequires=mirrorwatch-store.service\nAfter=mirrorwatch-store.service\n' \
    > /etc/systemd/system/mirrorwatch.service.d/image.conf

systemctl enable systemd-networkd systemd-resolved systemd-timesyncd \
    mirrorwatch-grow-data mirrorwatch-password mirrorwatch-upgrade mirrorwatch-store mirrorwatch
# A serial console on the Pi's UART and on qemu's.
systemctl enable serial-getty@ttyS1 serial-getty@ttyAMA0 2>/dev/null || true
# No root password: the console logs in no one (the dashboard is the interface).
passwd -l root >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
