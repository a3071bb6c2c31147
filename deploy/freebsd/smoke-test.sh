#!/bin/sh
# Smoke test an operator runs on a real FreeBSD worker host: drives the whole path through the API
# (create, run_code, kill) and checks on the host that the jail runtime's objects appear and are gone
# afterwards (jail, ZFS clone, rctl rules, pf anchor). It prints PASS, FAIL or SKIP per step and exits
# non-zero if anything failed. Needs curl and jq (pkg install curl jq), root for the host checks.
#
# Usage: E2B_API_KEY=... smoke-test.sh [-a http://127.0.0.1:3000] [-t template] [-d zroot/fleetbox/sbx] [-x sbx]
#
# Pause, resume and snapshot are not exposed by the apiserver yet: those steps print SKIP. The runtime
# conformance suite (worker/internal/runtime/runtimetest) covers them once it runs against the jail runtime.
set -u

api=http://127.0.0.1:3000
template=base
dataset=zroot/fleetbox/sbx
prefix=sbx
while getopts a:t:d:x: opt; do
	case $opt in
	a) api=$OPTARG ;;
	t) template=$OPTARG ;;
	d) dataset=$OPTARG ;;
	x) prefix=$OPTARG ;;
	*) echo "usage: $0 [-a api] [-t template] [-d dataset] [-x prefix]" >&2; exit 2 ;;
	esac
done

: "${E2B_API_KEY:?set E2B_API_KEY}"
for c in curl jq; do
	command -v $c >/dev/null 2>&1 || { echo "needs $c (pkg install $c)" >&2; exit 2; }
done

failed=0
pass() { echo "PASS  $1"; }
fail() { echo "FAIL  $1${2:+: $2}"; failed=1; }
skip() { echo "SKIP  $1${2:+: $2}"; }

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

out=$(curl -fsS -X POST "$api/execute" -H "E2b-Sandbox-Id: $id" -H "E2b-Sandbox-Port: 49999" \
	${token:+-H "X-Access-Token: $token"} -H 'Content-Type: application/json' \
	-d '{"code":"import os, socket; print(6*7, os.getcwd(), socket.gethostname())"}')
if echo "$out" | grep -q '42'; then pass "run_code"; else fail "run_code" "$out"; fi

skip "pause" "no pause endpoint in the apiserver yet"
skip "resume" "no resume endpoint in the apiserver yet"
skip "snapshot" "no snapshot endpoint in the apiserver yet"

if curl -fsS -X DELETE "$api/sandboxes/$id" -H "X-API-Key: $E2B_API_KEY" >/dev/null; then pass "kill"; else fail "kill"; fi
sleep 2
host_checks absent

[ "$failed" -eq 0 ] && echo "all checks passed" || echo "some checks FAILED"
exit "$failed"
