#!/usr/bin/env bash
# Runs the whole system on one machine: the apiserver with an embedded NATS server (JetStream data under
# $FLEETBOX_DATA/nats) on 127.0.0.1:3000 and one worker on the Linux process runtime. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=${FLEETBOX_DATA:-.data}
ADDR=${FLEETBOX_ADDR:-127.0.0.1:3000}
NATS_LISTEN=${FLEETBOX_NATS_LISTEN:-127.0.0.1:4222}
PYTHON=${FLEETBOX_PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=$(command -v python3); fi
fi
if [ -z "${E2B_API_KEY:-}" ]; then
  E2B_API_KEY="e2b_$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
  echo "No E2B_API_KEY set; generated one for this run."
fi
export E2B_API_KEY

mkdir -p "$DATA"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

bin/apiserver -addr "$ADDR" -nats-listen "$NATS_LISTEN" -data "$DATA/nats" &
pids+=($!)
# healthy asks GET /health with bash's own /dev/tcp (no curl needed on a fresh machine).
healthy() {
  local line
  exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}" 2>/dev/null || return 1
  printf 'GET /health HTTP/1.0\r\nHost: %s\r\n\r\n' "$ADDR" >&3
  read -r line <&3
  exec 3>&-
  [[ $line == *" 200 "* ]]
}
for _ in $(seq 1 100); do
  healthy && break
  sleep 0.1
done
healthy || { echo "apiserver did not become healthy" >&2; exit 1; }

bin/worker -nats "nats://$NATS_LISTEN" -data "$DATA/worker" -python "$PYTHON" &
pids+=($!)

cat <<MSG

fleetbox is running. Point the E2B SDKs at it:

  export E2B_API_URL=http://$ADDR
  export E2B_SANDBOX_URL=http://$ADDR
  export E2B_API_KEY=$E2B_API_KEY

Ctrl-C stops it.
MSG
wait -n "${pids[@]}"
