#!/bin/sh
# Prepares a fresh FreeBSD 14/15 host for fleetbox workers: RACCT (rctl) at boot, the lo1 interface for
# jail addresses, the host-only bridge for bhyve, pf with the sandbox anchors, vmm, and the directories.
# It changes /boot/loader.conf, /etc/rc.conf and /etc/pf.conf (keeping a .fleetbox-bak copy); RACCT needs
# a reboot afterwards. Usage: prepare-host.sh [-e external_interface]
set -eu

ext_if=$(route -n get default 2>/dev/null | awk '/interface:/ {print $2}')
while getopts e: opt; do
	case $opt in
	e) ext_if=$OPTARG ;;
	*) echo "usage: $0 [-e ext_if]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
[ -n "$ext_if" ] || { echo "no default route: pass -e <interface>" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)

# rctl needs RACCT, enabled at boot.
grep -q '^kern.racct.enable=1' /boot/loader.conf 2>/dev/null || echo 'kern.racct.enable=1' >>/boot/loader.conf
grep -q '^vmm_load=' /boot/loader.conf 2>/dev/null || echo 'vmm_load="YES"' >>/boot/loader.conf

sysrc cloned_interfaces+="lo1 bridge1"
sysrc ifconfig_lo1="inet 10.77.0.1/16"
sysrc ifconfig_bridge1="inet 10.78.0.1/16 up"
# bhyve: the worker reaches each guest's agent at its IPv6 link-local address on bridge1.
sysrc ifconfig_bridge1_ipv6="inet6 -ifdisabled auto_linklocal"
sysrc pf_enable=YES pflog_enable=YES gateway_enable=YES
grep -q "^net.link.tap.up_on_open=" /etc/sysctl.conf 2>/dev/null || echo "net.link.tap.up_on_open=1" >>/etc/sysctl.conf

if [ -f /etc/pf.conf ] && ! grep -q 'anchor "sbx/\*"' /etc/pf.conf; then
	cp /etc/pf.conf /etc/pf.conf.fleetbox-bak
	echo "existing /etc/pf.conf kept; merge $here/pf.conf.example into it by hand" >&2
elif [ ! -f /etc/pf.conf ]; then
	sed "s/^ext_if=.*/ext_if=\"$ext_if\"/" "$here/pf.conf.example" >/etc/pf.conf
fi

install -d -m 0755 /var/db/fleetbox /var/db/fleetbox/worker /var/log/fleetbox /usr/local/etc/fleetbox \
	/usr/local/etc/newsyslog.conf.d
pw usershow fleetbox >/dev/null 2>&1 || pw useradd fleetbox -d /nonexistent -s /usr/sbin/nologin -c "fleetbox apiserver"
install -m 0555 "$here/rc.d/fleetbox_apiserver" "$here/rc.d/fleetbox_worker" /usr/local/etc/rc.d/
install -m 0644 "$here/newsyslog.conf.d/fleetbox.conf" /usr/local/etc/newsyslog.conf.d/

echo "done; reboot so that kern.racct.enable=1 takes effect (check: sysctl kern.racct.enable)"
