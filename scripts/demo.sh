#!/usr/bin/env bash
# The converge demo: generates an alert storm (scripts/gen_storm.py: about
# 50,000 notice and webhook actions of 3 businesses and 8 strategies over one
# hour of virtual time, with bursts and recoveries), replays it with
# `converge replay` (the bkmonitor profile: upstream's notice defaults with
# business summaries) on the SQLite store in $BUILD_DIR/demo.db and prints a
# short report (scripts/demo_replay.sh, scripts/demo_report.py).
#
# Installs missing Debian packages first (scripts/deps.sh), configures a
# Release build in build/demo, builds the converge command line and runs it.
# Idempotent; quick when already built (the storm is generated once). Each
# run starts from an empty store (the previous run's demo.db is removed, and
# the script says so); RESUME=1 keeps it, and the replay then continues the
# state the previous run left: every action gets its stored decision again.
#
# Environment: BUILD_DIR (default build/demo), ACTIONS (default 50000),
# RESUME (default 0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR=${BUILD_DIR:-build/demo}
ACTIONS=${ACTIONS:-50000}

if [ -f scripts/deps.sh ]; then
  # shellcheck source=scripts/deps.sh
  . scripts/deps.sh
  if declare -F converge_ensure_deps >/dev/null; then
    converge_ensure_deps --demo
  fi
else
  missing=()
  for tool in cmake g++ ninja; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "demo.sh: missing tools: ${missing[*]}" >&2
    echo "demo.sh: on Debian 12: apt-get install build-essential cmake ninja-build" \
      "libabsl-dev libfmt-dev catch2 libboost1.81-dev libboost-json1.81-dev" \
      "libsqlite3-dev" >&2
    exit 1
  fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Configure only once; afterwards ninja re-runs cmake itself when a
# CMakeLists.txt changes.
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  echo "demo.sh: configuring $BUILD_DIR (Release)" >&2
  if ! cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCONVERGE_WITH_JSON=ON -DCONVERGE_WITH_SQLITE=ON \
    -DCONVERGE_BUILD_CLI=ON >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
fi

echo "demo.sh: building the converge command line" >&2
if ! ninja -C "$BUILD_DIR" converge_cli >"$log" 2>&1; then
  cat "$log" >&2
  if grep -q "unknown target" "$log"; then
    echo "demo.sh: $BUILD_DIR has no converge command line; reconfigure it" \
      "with -DCONVERGE_WITH_JSON=ON -DCONVERGE_BUILD_CLI=ON or remove it" >&2
  fi
  exit 1
fi

storm="$BUILD_DIR/storm-$ACTIONS.jsonl"
if [ ! -s "$storm" ]; then
  echo "demo.sh: generating the storm ($ACTIONS actions) into $storm" >&2
  python3 scripts/gen_storm.py --actions "$ACTIONS" "$storm.tmp"
  mv "$storm.tmp" "$storm"
fi

db="$BUILD_DIR/demo.db"
out="$BUILD_DIR/decisions.jsonl"
if ! grep -q 'converge_sqlite' "$BUILD_DIR/build.ninja"; then
  echo "demo.sh: $BUILD_DIR has no SQLite store; reconfigure it with" \
    "-DCONVERGE_WITH_SQLITE=ON or remove it" >&2
  exit 1
fi
scripts/demo_replay.sh "$BUILD_DIR/tools/converge/converge" "$storm" "$db" "$out"
echo "demo.sh: every decision, instance event and summary is in $out;" \
  "the state is in $db (converge inspect --store sqlite:$db;" \
  "RESUME=1 $0 replays the storm on it again)" >&2
