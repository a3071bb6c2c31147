#!/bin/sh
# Builds a jail template dataset for the fleetbox jail runtime and snapshots it:
#   <pool>/fleetbox/tmpl/<template>@<snapshot>, mounted at /usr/local/fleetbox/tmpl/<template>
# from a FreeBSD base.txz plus packages (python3 at least), with the sandbox user "user" (uid 1000).
#
# Usage: build-jail-template.sh [-p pool] [-t template] [-s snapshot] [-r release] [-P "pkg ..."]
# Example: build-jail-template.sh -p zroot -t base -r 14.3-RELEASE -P "python3 py311-pip"
# Without ZFS (-n DIR): builds the template as a plain directory DIR/<template> (the runtime copies it).
set -eu

pool=zroot
template=base
snapshot=base
release=$(freebsd-version -u | sed 's/-p[0-9]*$//')
packages="python3"
nozfs=""

while getopts p:t:s:r:P:n: opt; do
	case $opt in
	p) pool=$OPTARG ;;
	t) template=$OPTARG ;;
	s) snapshot=$OPTARG ;;
	r) release=$OPTARG ;;
	P) packages=$OPTARG ;;
	n) nozfs=$OPTARG ;;
	*) echo "usage: $0 [-p pool] [-t template] [-s snapshot] [-r release] [-P packages] [-n dir]" >&2; exit 2 ;;
	esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
arch=$(uname -m)
url="https://download.freebsd.org/releases/${arch}/${release}/base.txz"

if [ -n "$nozfs" ]; then
	root="$nozfs/$template"
	[ ! -e "$root" ] || { echo "$root exists" >&2; exit 1; }
	mkdir -p "$root"
else
	ds="$pool/fleetbox/tmpl/$template"
	root="/usr/local/fleetbox/tmpl/$template"
	if zfs list -H "$ds@$snapshot" >/dev/null 2>&1; then
		echo "$ds@$snapshot exists" >&2
		exit 1
	fi
	zfs list -H "$pool/fleetbox/tmpl" >/dev/null 2>&1 || zfs create -p -o mountpoint=none "$pool/fleetbox/tmpl"
	zfs list -H "$pool/fleetbox/sbx" >/dev/null 2>&1 || zfs create -p -o mountpoint=none "$pool/fleetbox/sbx"
	zfs list -H "$pool/fleetbox/snap" >/dev/null 2>&1 || zfs create -p -o mountpoint=none "$pool/fleetbox/snap"
	zfs create -o mountpoint="$root" "$ds"
fi

echo "fetching $url"
fetch -o - "$url" | tar -xf - -C "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"

# Packages, installed with the host's pkg into the template's root (no jail needed).
if [ -n "$packages" ]; then
	ASSUME_ALWAYS_YES=yes pkg --rootdir "$root" bootstrap -f || true
	# shellcheck disable=SC2086
	ASSUME_ALWAYS_YES=yes pkg --rootdir "$root" install $packages
fi

# The sandbox user; E2B sandboxes run as "user" with home /home/user.
pw -R "$root" groupadd user -g 1000 2>/dev/null || true
pw -R "$root" useradd user -u 1000 -g user -d /home/user -s /bin/sh -c "sandbox user" 2>/dev/null || true
mkdir -p "$root/home/user"
chown 1000:1000 "$root/home/user"
chmod 1777 "$root/tmp"

if [ -z "$nozfs" ]; then
	zfs snapshot "$ds@$snapshot"
	echo "template ready: $ds@$snapshot"
else
	echo "template ready: $root"
fi
