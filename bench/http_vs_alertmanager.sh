#!/usr/bin/env bash
# The same load against Debian's prometheus-alertmanager and converged (on
# the SQLite store): REQUESTS POSTs of 100 alerts to /api/v2/alerts from
# THREADS keep-alive connections (bench/http_load.cc), over each group
# count of GROUPS_LIST. Prints alerts/s and the RSS growth per alert of each
# server, and converged's ratios. Every server is started here on a free
# loopback port in a temporary directory and stopped by PID.
#
# usage: bench/http_vs_alertmanager.sh [--smoke]
# Environment: SQLITE_PARAMS (appended to converged's store URI, e.g.
# "?synchronous=normal"; default empty = synchronous FULL), OUTPUTS_FILE
# (1: converged keeps its outputs in a file of its own, outputs.file;
# default 0 = in memory), BUILD_DIR (default build-rel; needs the targets converged and
# converge_http_load), REQUESTS (1000), THREADS (2), GROUPS_LIST
# ("1000 10000"). --smoke: 20 requests over 100 groups (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-rel}
REQUESTS=${REQUESTS:-1000}
THREADS=${THREADS:-2}
GROUPS_LIST=${GROUPS_LIST:-"1000 10000"}
PER=100
if [ "${1:-}" = --smoke ]; then
  REQUESTS=20
  GROUPS_LIST=100
fi
CONVERGED=$BUILD_DIR/tools/converged/converged
LOAD=$BUILD_DIR/bench/converge_http_load
AM=$(command -v prometheus-alertmanager)
for bin in "$CONVERGED" "$LOAD" "$AM"; do
  [ -x "$bin" ] || { echo "missing $bin (build converged and converge_http_load; apt-get install prometheus-alertmanager)" >&2; exit 1; }
done

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
wait_ready() {  # URL
  for _ in $(seq 100); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server at $1 did not become ready" >&2
  return 1
}
stop() {  # PID
  kill "$1" && wait "$1" 2>/dev/null || true
  PIDS=("${PIDS[@]/$1/}")
}

# run NAME GROUPS: starts the server, loads it, prints one result line.
run() {
  local name=$1 groups=$2 dir port pid
  dir=$(mktemp -d "$WORK/$name.XXXX")
  if [ "$name" = alertmanager ]; then
    port=$(free_port)
    cat > "$dir/am.yml" <<YML
route:
  receiver: hook
  group_by: ['alertname', 'grp']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
- name: hook
  webhook_configs:
  - url: http://127.0.0.1:9/
YML
    "$AM" --config.file="$dir/am.yml" --storage.path="$dir/data" \
      --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
      --log.level=warn > "$dir/log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_ready "http://127.0.0.1:$port/-/ready"
  else
    local outputs=""
    if [ "${OUTPUTS_FILE:-0}" = 1 ]; then
      outputs="\"outputs\": {\"file\": \"$dir/outputs.db\"},"
    fi
    cat > "$dir/config.json" <<JSON
{"listen": "127.0.0.1:0", "store": "sqlite:$dir/converged.db${SQLITE_PARAMS:-}", $outputs
 "alertmanager": {"converge_config": {"is_enabled": true,
   "converge_func": "collect", "timedelta": 60, "count": 1,
   "condition": [{"dimension": "labels.alertname", "value": ["self"]},
                 {"dimension": "labels.grp", "value": ["self"]}]}}}
JSON
    "$CONVERGED" --config "$dir/config.json" --port-file "$dir/port" > "$dir/log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
    port=$(cat "$dir/port")
    wait_ready "http://127.0.0.1:$port/readyz"
  fi
  local idle after result
  idle=$(rss_kb "$pid")
  result=$(timeout 600 "$LOAD" --port "$port" --requests "$REQUESTS" --per-request $PER \
    --groups "$groups" --threads "$THREADS")
  after=$(rss_kb "$pid")
  stop "$pid"
  python3 - "$name" "$groups" "$idle" "$after" "$result" <<'PY'
import json, sys
name, groups, idle, after, result = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
per_alert = (after - idle) * 1024 / max(result["alerts"], 1)
print(json.dumps({"server": name, "groups": groups, "alerts": result["alerts"],
                  "errors": result["errors"], "alerts_per_s": result["alerts_per_s"],
                  "req_p50_ms": result["req_p50_ms"], "req_p99_ms": result["req_p99_ms"],
                  "rss_idle_mb": round(idle / 1024, 1), "rss_after_mb": round(after / 1024, 1),
                  "rss_bytes_per_alert": round(per_alert)}))
PY
}

echo "# $REQUESTS requests x $PER alerts, $THREADS client threads, $(nproc) cores, $("$AM" --version 2>&1 | head -1)"
RESULTS=()
for groups in $GROUPS_LIST; do
  for name in alertmanager converged; do
    # Not in $(...): run's server PIDs must reach cleanup in this shell.
    run "$name" "$groups" > "$WORK/line"
    line=$(cat "$WORK/line")
    echo "$line"
    RESULTS+=("$line")
  done
done
python3 - "${RESULTS[@]}" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print("\n| groups | server | alerts/s | RSS growth per alert (bytes) | p50 / p99 ms |")
print("|---:|---|---:|---:|---|")
for r in rows:
    print(f"| {r['groups']:,} | {r['server']} | {r['alerts_per_s']:,.0f} | {r['rss_bytes_per_alert']:,} | {r['req_p50_ms']} / {r['req_p99_ms']} |")
by = {(r["groups"], r["server"]): r for r in rows}
for g in sorted({r["groups"] for r in rows}):
    am, cv = by[(g, "alertmanager")], by[(g, "converged")]
    speed = cv["alerts_per_s"] / am["alerts_per_s"]
    mem = cv["rss_bytes_per_alert"] / am["rss_bytes_per_alert"] if am["rss_bytes_per_alert"] > 0 else float("nan")
    print(f"groups {g:,}: converged/alertmanager alerts/s x{speed:.2f} (target >= 3), "
          f"RSS per alert x{mem:.2f} (target <= 0.5)")
if any(r["errors"] for r in rows):
    sys.exit("errors in the load (see the lines above)")
PY
