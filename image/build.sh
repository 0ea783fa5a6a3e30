#!/usr/bin/env bash
# The flashable mirrorwatch image for Raspberry Pi 3 and 4 (64-bit): Debian 12 arm64 from
# Debian's own packages (linux-image-arm64, raspi-firmware, as Debian's Raspberry Pi images are
# made) with the mirrorwatch .deb installed, assembled without loop mounts or device-mapper:
# mmdebstrap makes the root file system in a directory (arm64 programs run under qemu-user),
# mkfs.ext4 -d and mkfs.vfat + mtools make the partitions from directories, sfdisk lays them out.
#
#   image/build.sh [DEB] [OUT]     (root; ~10 min on a 2-core x86_64 machine)
#
#   DEB  the arm64 package (default: target/debian/mirrorwatch_<version>-1_arm64.deb, made by
#        image/cross-build.sh and image/package.sh --arch arm64 --no-build)
#   OUT  the image (default: target/image/mirrorwatch-<version>-rpi-arm64.img, with a .bmap)
#
# Partitions (MBR, as the Pi's boot ROM wants):
#   1  RASPIFIRM  FAT32  256 MiB  firmware, kernel, initrd, cmdline.txt; mirrorwatch-password.txt
#                                 put here sets the dashboard password at the next boot
#   2  MWROOT     ext4   ~1 GiB   the system, mounted read-only (an SD card wears out by writes)
#   3  MWDATA     ext4   grown at first boot to the rest of the card: configuration (bound on
#                                 /etc/mirrorwatch) and store (bound on /var/lib/mirrorwatch);
#                                 a USB stick labelled MWSTORE, if present at boot, holds the store
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(cd "$root" && cargo pkgid | sed 's/.*[#@]//')
deb=$(realpath "${1:-$root/target/debian/mirrorwatch_${version}-1_arm64.deb}")
out=${2:-$root/target/image/mirrorwatch-${version}-rpi-arm64.img}
[ "$(id -u)" = 0 ] || { echo "$0: run as root" >&2; exit 1; }
[ -f "$deb" ] || { echo "$0: $deb missing (image/cross-build.sh, then image/package.sh --arch arm64 --no-build)" >&2; exit 1; }
for c in mmdebstrap mkfs.ext4 mkfs.vfat mcopy sfdisk qemu-aarch64-static; do
    command -v "$c" >/dev/null || { echo "$0: $c missing (apt-get install mmdebstrap e2fsprogs dosfstools mtools fdisk qemu-user-static)" >&2; exit 1; }
done
start=$(date +%s)

# arm64 programs in the chroot run under qemu-user: register it with the kernel if no one has
# (this kind of build machine has binfmt_misc unmounted and no systemd-binfmt).
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
fi

work=$(mktemp -d /tmp/mirrorwatch-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
cp "$deb" "$work/mirrorwatch.deb"

echo "== root file system (mmdebstrap, bookworm arm64)"
# systemd-resolved: DNS for the mail relay and mDNS (mirrorwatch.local); systemd-timesyncd: the
# clock (a Pi has no battery); networkd: the management port by DHCP. No SSH server: the box is
# managed through its dashboard (add openssh-server to PACKAGES to have one).
packages=systemd-sysv,systemd-resolved,systemd-timesyncd,udev,kmod,dbus,iproute2,libpcap0.8
packages+=,linux-image-arm64,raspi-firmware,initramfs-tools,e2fsprogs,fdisk,util-linux
packages+=,ca-certificates,less,${PACKAGES:-}
mmdebstrap --arch=arm64 --variant=minbase --include="${packages%,}" \
    --components="main non-free-firmware" \
    --customize-hook='copy-in '"$work/mirrorwatch.deb"' /tmp' \
    --customize-hook='chroot "$1" apt-get install -y -qq /tmp/mirrorwatch.deb' \
    --customize-hook='rm "$1/tmp/mirrorwatch.deb"' \
    --customize-hook='copy-in '"$root/image/rootfs"' /tmp' \
    --customize-hook='chroot "$1" sh /tmp/rootfs/setup.sh' \
    --customize-hook='rm -r "$1/tmp/rootfs"' \
    bookworm "$rootfs" "deb http://deb.debian.org/debian bookworm main non-free-firmware" \
    "deb http://deb.debian.org/debian-security bookworm-security main non-free-firmware"

echo "== partitions"
# The firmware partition's contents: what raspi-firmware's kernel hook put in /boot/firmware.
mkdir -p "$work/firm" "$work/data"
cp -a "$rootfs/boot/firmware/." "$work/firm/"
rm -rf "${rootfs:?}/boot/firmware/"*
# The data partition's contents: the configuration as the package installed it, an empty store.
mv "$rootfs/etc/mirrorwatch" "$work/data/etc"
mkdir "$rootfs/etc/mirrorwatch"
mv "$rootfs/var/lib/mirrorwatch" "$work/data/store"
mkdir "$rootfs/var/lib/mirrorwatch"
chmod 0750 "$work/data/store"
# The package's copy stays in the image: a new data partition (or a factory reset) starts
# from it.
mkdir -p "$rootfs/usr/share/mirrorwatch"
cp -a "$work/data/etc" "$rootfs/usr/share/mirrorwatch/etc-default"

fat_mib=256
data_mib=128
root_mib=$(( $(du -sm "$rootfs" | cut -f1) * 115 / 100 + 64 ))
mkfs.vfat -n RASPIFIRM -F 32 -C "$work/firm.img" $((fat_mib * 1024)) >/dev/null
mcopy -i "$work/firm.img" -s "$work/firm/"* ::
mkfs.ext4 -q -L MWROOT -d "$rootfs" -E root_owner=0:0 "$work/root.img" "${root_mib}M"
mkfs.ext4 -q -L MWDATA -d "$work/data" -E root_owner=0:0 "$work/data.img" "${data_mib}M"

echo "== disk image"
mkdir -p "$(dirname "$out")"
total=$((1 + fat_mib + root_mib + data_mib))
rm -f "$out"
truncate -s "${total}M" "$out"
sfdisk --quiet "$out" <<EOF
label: dos
start=1MiB, size=${fat_mib}MiB, type=c, bootable
size=${root_mib}MiB, type=83
size=${data_mib}MiB, type=83
EOF
dd if="$work/firm.img" of="$out" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$out" bs=1M seek=$((1 + fat_mib)) conv=notrunc,sparse status=none
dd if="$work/data.img" of="$out" bs=1M seek=$((1 + fat_mib + root_mib)) conv=notrunc,sparse status=none
# For `qemu-system-aarch64 -M virt` (image/boot-qemu.sh): the kernel and initrd beside it.
cp "$work/firm/vmlinuz" "${out%.img}.vmlinuz" 2>/dev/null || cp "$rootfs"/boot/vmlinuz-* "${out%.img}.vmlinuz"
cp "$work/firm/initrd.img" "${out%.img}.initrd" 2>/dev/null || cp "$rootfs"/boot/initrd.img-* "${out%.img}.initrd"
command -v bmaptool >/dev/null && bmaptool create -o "${out%.img}.bmap" "$out"
sfdisk -l "$out" | tail -4
echo "image: $out, $(du -m --apparent-size "$out" | cut -f1) MiB ($(du -m "$out" | cut -f1) MiB used), built in $(( $(date +%s) - start )) s"
