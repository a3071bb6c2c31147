#!/bin/sh
# Builds a golden image for the fleetbox bhyve runtime: a ZFS volume <pool>/fleetbox/img/<image> holding a
# FreeBSD VM image (the official VM-IMAGE, UFS flavour, raw) prepared for sandboxes, snapshotted as
# @<snapshot>. What it adds to the official image:
#   - the sandbox agent: /usr/local/sbin/sbx-agent (-a, built with
#     GOOS=freebsd GOARCH=amd64 CGO_ENABLED=0 go build -o bin/freebsd/sbx-agent ./worker/cmd/sbx-agent)
#     and its rc.d script (rc.d/sbx_agent here), enabled: it starts at boot, as root, on port 49982;
#   - IPv6 link-local on vtnet0 (the worker reaches the agent at fe80::<EUI-64 of the VM's MAC>%<bridge>;
#     no DHCP is needed) and no wait for DHCP;
#   - the sandbox user "user" (uid 1000) and the 9p share "home" at /home/user (virtio_p9fs from
#     loader.conf, fstab "home /home/user p9fs rw 0 0"): the worker shares <data>/vms/<id>/home;
#   - packages (-P, default python3 for code contexts), the root file system grown to the volume's size,
#     no loader menu delay and no first-boot scripts (every VM boots a fresh clone of this image).
#
# Usage: build-bhyve-image.sh [-p pool] [-i image] [-s snapshot] [-r release] [-S size] [-a sbx-agent] [-P "pkg ..."]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
pool=zroot
image=base
snapshot=base
release=$(freebsd-version -u | sed 's/-p[0-9]*$//')
size=8G
agent="$here/../../bin/freebsd/sbx-agent"
packages="python3"

while getopts p:i:s:r:S:a:P: opt; do
	case $opt in
	p) pool=$OPTARG ;;
	i) image=$OPTARG ;;
	s) snapshot=$OPTARG ;;
	r) release=$OPTARG ;;
	S) size=$OPTARG ;;
	a) agent=$OPTARG ;;
	P) packages=$OPTARG ;;
	*) echo "usage: $0 [-p pool] [-i image] [-s snapshot] [-r release] [-S size] [-a sbx-agent] [-P packages]" >&2; exit 2 ;;
	esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
[ -x "$agent" ] || { echo "no sbx-agent binary at $agent (build it, or pass -a)" >&2; exit 1; }
file "$agent" | grep -q 'FreeBSD' || { echo "$agent is not a FreeBSD executable" >&2; exit 1; }
arch=$(uname -m)
name="FreeBSD-${release}-${arch}-ufs.raw"
url="https://download.freebsd.org/releases/VM-IMAGES/${release}/${arch}/Latest/${name}.xz"
ds="$pool/fleetbox/img/$image"

if zfs list -H "$ds@$snapshot" >/dev/null 2>&1; then
	echo "$ds@$snapshot exists" >&2
	exit 1
fi

work=$(mktemp -d /var/tmp/fleetbox-image.XXXXXX)
md=""
mnt="$work/mnt"
cleanup() {
	umount "$mnt" 2>/dev/null || true
	[ -z "$md" ] || mdconfig -d -u "$md" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "fetching $url"
fetch -o - "$url" | xz -dc >"$work/disk.raw"
truncate -s "$size" "$work/disk.raw"
md=$(mdconfig -a -t vnode -f "$work/disk.raw")
gpart recover "$md" >/dev/null
idx=$(gpart show "$md" | awk '/freebsd-ufs/ {print $3}' | tail -1)
[ -n "$idx" ] || { echo "no freebsd-ufs partition in $name" >&2; exit 1; }
gpart resize -i "$idx" "$md"
growfs -y "/dev/${md}p${idx}"
mkdir -p "$mnt"
mount "/dev/${md}p${idx}" "$mnt"

# The agent and its rc.d script.
install -d -m 0755 "$mnt/usr/local/sbin" "$mnt/usr/local/etc/rc.d" "$mnt/usr/local/etc/newsyslog.conf.d"
install -m 0555 "$agent" "$mnt/usr/local/sbin/sbx-agent"
install -m 0555 "$here/rc.d/sbx_agent" "$mnt/usr/local/etc/rc.d/sbx_agent"
echo "/var/log/sbx-agent.log 644 3 1000 * JC /var/run/sbx_agent.pid" >"$mnt/usr/local/etc/newsyslog.conf.d/sbx-agent.conf"

# Network: IPv6 link-local on vtnet0 (EUI-64 from the MAC the worker chose); DHCP only in the background.
rc="$mnt/etc/rc.conf"
sysrc -f "$rc" -x ifconfig_DEFAULT >/dev/null 2>&1 || true
sysrc -f "$rc" ifconfig_vtnet0="DHCP" ifconfig_vtnet0_ipv6="inet6 -ifdisabled auto_linklocal" \
	background_dhclient="YES" synchronous_dhclient="NO" sbx_agent_enable="YES" \
	sshd_enable="NO" sendmail_enable="NONE" growfs_enable="NO" dumpdev="NO"

# The shared home: p9fs (virtio-9p share "home", see bhyve(8) and p9fs(4)).
loader="$mnt/boot/loader.conf"
grep -q '^virtio_p9fs_load=' "$loader" 2>/dev/null || echo 'virtio_p9fs_load="YES"' >>"$loader"
grep -q '^autoboot_delay=' "$loader" 2>/dev/null || echo 'autoboot_delay="0"' >>"$loader"
grep -q ' /home/user ' "$mnt/etc/fstab" 2>/dev/null || echo "home /home/user p9fs rw 0 0" >>"$mnt/etc/fstab"

# The sandbox user; E2B sandboxes run as "user" with home /home/user (the mount point).
pw -R "$mnt" groupadd user -g 1000 2>/dev/null || true
pw -R "$mnt" useradd user -u 1000 -g user -d /home/user -s /bin/sh -c "sandbox user" 2>/dev/null || true
mkdir -p "$mnt/home/user"
chown 1000:1000 "$mnt/home/user"

# Packages, installed with the host's pkg into the image's root.
if [ -n "$packages" ]; then
	cp /etc/resolv.conf "$mnt/etc/resolv.conf"
	ASSUME_ALWAYS_YES=yes pkg --rootdir "$mnt" bootstrap -f || true
	# shellcheck disable=SC2086
	ASSUME_ALWAYS_YES=yes pkg --rootdir "$mnt" install $packages
	rm -f "$mnt/etc/resolv.conf"
fi

# Every VM boots a fresh clone: first-boot scripts (growfs, freebsd-update) would run at each boot.
rm -f "$mnt/firstboot"

umount "$mnt"
mdconfig -d -u "$md"
md=""

zfs list -H "$pool/fleetbox/img" >/dev/null 2>&1 || zfs create -p -o mountpoint=none "$pool/fleetbox/img"
zfs list -H "$pool/fleetbox/vm" >/dev/null 2>&1 || zfs create -p -o mountpoint=none "$pool/fleetbox/vm"
zfs create -V "$size" -o volmode=dev "$ds"
dd if="$work/disk.raw" of="/dev/zvol/$ds" bs=1m conv=sparse
zfs snapshot "$ds@$snapshot"
echo "image ready: $ds@$snapshot"
