#!/bin/sh
# Builds a golden image for the fleetbox bhyve runtime: a ZFS volume <pool>/fleetbox/img/<image> holding a
# FreeBSD VM image (the official VM-IMAGE, raw), snapshotted as @<snapshot>. The sandbox agent is not in the
# image yet (the bhyve runtime does not reach a guest agent yet); add it here once it exists.
#
# Usage: build-bhyve-image.sh [-p pool] [-i image] [-s snapshot] [-r release] [-S size]
set -eu

pool=zroot
image=base
snapshot=base
release=$(freebsd-version -u | sed 's/-p[0-9]*$//')
size=8G

while getopts p:i:s:r:S: opt; do
	case $opt in
	p) pool=$OPTARG ;;
	i) image=$OPTARG ;;
	s) snapshot=$OPTARG ;;
	r) release=$OPTARG ;;
	S) size=$OPTARG ;;
	*) echo "usage: $0 [-p pool] [-i image] [-s snapshot] [-r release] [-S size]" >&2; exit 2 ;;
	esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
arch=$(uname -m)
name="FreeBSD-${release}-${arch}-zfs.raw"
url="https://download.freebsd.org/releases/VM-IMAGES/${release}/${arch}/Latest/${name}.xz"
ds="$pool/fleetbox/img/$image"

if zfs list -H "$ds@$snapshot" >/dev/null 2>&1; then
	echo "$ds@$snapshot exists" >&2
	exit 1
fi
zfs list -H "$pool/fleetbox/img" >/dev/null 2>&1 || zfs create -p -o mountpoint=none "$pool/fleetbox/img"
zfs list -H "$pool/fleetbox/vm" >/dev/null 2>&1 || zfs create -p -o mountpoint=none "$pool/fleetbox/vm"
zfs create -V "$size" -o volmode=dev "$ds"

echo "fetching $url"
fetch -o - "$url" | xz -dc | dd of="/dev/zvol/$ds" bs=1m conv=sparse
zfs snapshot "$ds@$snapshot"
echo "image ready: $ds@$snapshot"
