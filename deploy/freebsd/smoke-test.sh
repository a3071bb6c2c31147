#!/bin/sh
# Smoke test an operator runs on a real FreeBSD worker host: drives the whole path through the API
# (create, run_code, pause, resume, snapshot, a sandbox from the snapshot, metrics, egress policy, kill) and checks on the host that the jail runtime's objects appear and are gone
# afterwards (jail, ZFS clone, rctl rules, pf anchor). It prints PASS, FAIL or SKIP per step and exits
# non-zero if anything failed. Needs curl and jq (pkg install curl jq), root for the host checks.
#
# Usage: E2B_API_KEY=... smoke-test.sh [-a http://127.0.0.1:3000] [-t template] [-d zroot/fleetbox/sbx] [-x sbx]
#            [-s zroot/fleetbox/snap] [-c jail-conformance.test] [-C zroot/fleetbox/conformance] [-T zroot/fleetbox/tmpl]
#
# -s names the dataset snapshots are received into (default: "snap" beside -d). The runtime
# conformance suite runs too: with -c (or CONFORMANCE_TEST=path) the test binary built by
# `make freebsd-conformance` runs against real jails first (as root), on datasets below -C (default: a
# "conformance" dataset beside -d, never the worker's own) with the templates of -T (default: "tmpl" beside
# -d); its output goes to a log file whose name the step prints.
set -u

api=http://127.0.0.1:3000
template=base
dataset=zroot/fleetbox/sbx
prefix=sbx
conformance_test=${CONFORMANCE_TEST:-}
conformance_dataset=""
template_dataset=""
snapshot_dataset=""
while getopts a:t:d:x:s:c:C:T: opt; do
	case $opt in
	a) api=$OPTARG ;;
	t) template=$OPTARG ;;
	d) dataset=$OPTARG ;;
	x) prefix=$OPTARG ;;
	s) snapshot_dataset=$OPTARG ;;
	c) conformance_test=$OPTARG ;;
	C) conformance_dataset=$OPTARG ;;
	T) template_dataset=$OPTARG ;;
	*) echo "usage: $0 [-a api] [-t template] [-d dataset] [-x prefix] [-s snapshot-dataset] [-c conformance-test] [-C conformance-dataset] [-T template-dataset]" >&2; exit 2 ;;
	esac
done
: "${conformance_dataset:=${dataset%/*}/conformance}"
: "${template_dataset:=${dataset%/*}/tmpl}"
: "${snapshot_dataset:=${dataset%/*}/snap}"

: "${E2B_API_KEY:?set E2B_API_KEY}"
for c in curl jq; do
	command -v $c >/dev/null 2>&1 || { echo "needs $c (pkg install $c)" >&2; exit 2; }
done

failed=0
pass() { echo "PASS  $1"; }
fail() { echo "FAIL  $1${2:+: $2}"; failed=1; }
skip() { echo "SKIP  $1${2:+: $2}"; }

# Runtime conformance: the jail runtime against real jails, through runtime interfaces only (processes,
# files, pause/resume, snapshots, usage and limits). Independent of the apiserver.
conformance() {
	step="jail runtime conformance"
	if [ -z "$conformance_test" ]; then skip "$step" "no test binary (-c or CONFORMANCE_TEST)"; return; fi
	if [ "$(id -u)" -ne 0 ]; then skip "$step" "not root"; return; fi
	if [ ! -x "$conformance_test" ]; then fail "$step" "$conformance_test is not an executable file"; return; fi
	log=$(mktemp "${TMPDIR:-/tmp}/fleetbox-conformance.XXXXXX") || { fail "$step" "mktemp"; return; }
	if env FLEETBOX_JAIL_CONFORMANCE=1 \
		FLEETBOX_JAIL_SANDBOX_DATASET="$conformance_dataset" \
		FLEETBOX_JAIL_TEMPLATE_DATASET="$template_dataset" \
		"$conformance_test" -test.run '^TestJailConformance$' -test.v -test.count=1 -test.timeout 10m >"$log" 2>&1; then
		if grep -q '^--- SKIP: TestJailConformance' "$log"; then
			skip "$step" "the suite skipped itself (see $log)"
		else
			pass "$step ($(grep -c -- '--- PASS: TestJailConformance/' "$log") subtests, log $log)"
		fi
	else
		fail "$step" "see $log"
		grep -E -- '--- (FAIL|SKIP)|\.go:[0-9]+:' "$log" | head -40
	fi
}
conformance

if curl -fsS "$api/health" >/dev/null 2>&1; then pass "apiserver health"; else fail "apiserver health" "$api"; exit 1; fi

body=$(curl -fsS -X POST "$api/sandboxes" -H "X-API-Key: $E2B_API_KEY" -H 'Content-Type: application/json' \
	-d "{\"templateID\":\"$template\",\"timeout\":120}") || { fail "create sandbox"; exit 1; }
id=$(echo "$body" | jq -r .sandboxID)
token=$(echo "$body" | jq -r '.envdAccessToken // empty')
if [ -n "$id" ] && [ "$id" != null ]; then pass "create sandbox $id"; else fail "create sandbox" "$body"; exit 1; fi

host_checks() { # $1: "present" or "absent"
	[ "$(id -u)" -eq 0 ] || { skip "host objects $1" "not root"; return; }
	want=$1
	check() { # name, command that succeeds when the object exists
		if sh -c "$2" >/dev/null 2>&1; then got=present; else got=absent; fi
		if [ "$got" = "$want" ]; then pass "$1 $want"; else fail "$1 $want" "found $got"; fi
	}
	check "jail $prefix-$id" "jls -j $prefix-$id jid"
	check "dataset $dataset/$id" "zfs list -H $dataset/$id"
	check "rctl rules jail:$prefix-$id" "rctl jail:$prefix-$id | grep -q ."
	check "pf anchor $prefix/$id" "pfctl -a $prefix -s Anchors | grep -qx '  *$prefix/$id'"
}
host_checks present

# run_code SANDBOX CODE: prints the NDJSON lines of one execution.
run_code() {
	curl -sS -X POST "$api/execute" -H "E2b-Sandbox-Id: $1" -H "E2b-Sandbox-Port: 49999" \
		${token:+-H "X-Access-Token: $token"} -H 'Content-Type: application/json' \
		-d "$(jq -n --arg code "$2" '{code: $code}')"
}
# api METHOD PATH [BODY]: prints the HTTP status, then the body.
api() {
	curl -sS -o /tmp/fleetbox-smoke.$$ -w '%{http_code}\n' -X "$1" "$api$2" -H "X-API-Key: $E2B_API_KEY" \
		-H 'Content-Type: application/json' ${3:+-d "$3"}
	cat /tmp/fleetbox-smoke.$$ 2>/dev/null
	rm -f /tmp/fleetbox-smoke.$$
}

out=$(run_code "$id" 'import os, socket; x = 41; open("/home/user/smoke.txt", "w").write("kept"); print(6*7, os.getcwd(), socket.gethostname())')
if echo "$out" | grep -q '42 /home/user'; then pass "run_code"; else fail "run_code" "$out"; fi

out=$(api POST "/sandboxes/$id/pause" '{}')
if [ "$(echo "$out" | head -1)" = 204 ]; then pass "pause"; else fail "pause" "$out"; fi
if [ "$(id -u)" -eq 0 ]; then
	states=$(ps -J "$prefix-$id" -o state= 2>/dev/null | cut -c1 | sort -u | tr -d '\n')
	if [ "$states" = T ]; then pass "every process of the jail stopped"; else fail "every process of the jail stopped" "states: $states"; fi
fi
out=$(run_code "$id" 'print(1)')
if echo "$out" | grep -q '"code":409'; then pass "run_code refused while paused"; else fail "run_code refused while paused" "$out"; fi

out=$(api POST "/sandboxes/$id/connect" '{"timeout":120}')
if [ "$(echo "$out" | head -1)" = 201 ]; then pass "resume (connect)"; else fail "resume (connect)" "$out"; fi
out=$(run_code "$id" 'print(x + 1)')
if echo "$out" | grep -q '42'; then pass "kernel state kept across pause"; else fail "kernel state kept across pause" "$out"; fi

out=$(api POST "/sandboxes/$id/snapshots" "{\"name\":\"smoke-$id\"}")
snap=$(echo "$out" | tail -n +2 | jq -r '.snapshotID // empty' 2>/dev/null)
if [ "$(echo "$out" | head -1)" = 201 ] && [ -n "$snap" ]; then pass "snapshot $snap"; else fail "snapshot" "$out"; fi
if [ -n "$snap" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		if zfs list -H "$snapshot_dataset/$snap" >/dev/null 2>&1; then pass "dataset $snapshot_dataset/$snap present"; else fail "dataset $snapshot_dataset/$snap present"; fi
	fi
	body=$(curl -fsS -X POST "$api/sandboxes" -H "X-API-Key: $E2B_API_KEY" -H 'Content-Type: application/json' \
		-d "{\"templateID\":\"$snap\",\"timeout\":60}")
	id2=$(echo "$body" | jq -r '.sandboxID // empty' 2>/dev/null)
	if [ -n "$id2" ]; then
		pass "sandbox $id2 from the snapshot"
		out=$(token=$(echo "$body" | jq -r '.envdAccessToken // empty') run_code "$id2" 'print(open("/home/user/smoke.txt").read())')
		if echo "$out" | grep -q kept; then pass "snapshot's file in the new sandbox"; else fail "snapshot's file in the new sandbox" "$out"; fi
		curl -fsS -X DELETE "$api/sandboxes/$id2" -H "X-API-Key: $E2B_API_KEY" >/dev/null || fail "kill sandbox from the snapshot"
	else
		fail "sandbox from the snapshot" "$body"
	fi
	out=$(api DELETE "/templates/$snap")
	if [ "$(echo "$out" | head -1)" = 204 ]; then pass "delete snapshot"; else fail "delete snapshot" "$out"; fi
	if [ "$(id -u)" -eq 0 ]; then
		if zfs list -H "$snapshot_dataset/$snap" >/dev/null 2>&1; then fail "dataset $snapshot_dataset/$snap absent"; else pass "dataset $snapshot_dataset/$snap absent"; fi
	fi
fi

out=$(api GET "/sandboxes/$id/metrics")
if [ "$(echo "$out" | head -1)" = 200 ] && [ "$(echo "$out" | tail -n +2 | jq '.[-1].memUsed > 0' 2>/dev/null)" = true ]; then
	pass "metrics"
else
	fail "metrics" "$out"
fi

# Egress: the sandbox reaches 1.1.1.1:53 only while its policy allows it (needs the host to reach it).
probe='import socket
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("1.1.1.1", 53)); print("egress-open")
except OSError as e:
    print("egress-closed", e)'
if nc -z -w 3 1.1.1.1 53 >/dev/null 2>&1; then
	api PUT "/sandboxes/$id/network" '{"allow_internet_access":false}' | head -1 | grep -qx 204 || fail "network policy: deny all"
	if run_code "$id" "$probe" | grep -q egress-closed; then pass "egress denied by policy"; else fail "egress denied by policy"; fi
	api PUT "/sandboxes/$id/network" '{"allow_internet_access":false,"allowOut":["1.1.1.1/32"]}' | head -1 | grep -qx 204 || fail "network policy: allow 1.1.1.1"
	if run_code "$id" "$probe" | grep -q egress-open; then pass "egress allowed by policy, live"; else fail "egress allowed by policy, live"; fi
else
	skip "egress policy" "this host cannot reach 1.1.1.1:53 itself"
fi

if curl -fsS -X DELETE "$api/sandboxes/$id" -H "X-API-Key: $E2B_API_KEY" >/dev/null; then pass "kill"; else fail "kill"; fi
sleep 2
host_checks absent

[ "$failed" -eq 0 ] && echo "all checks passed" || echo "some checks FAILED"
exit "$failed"
