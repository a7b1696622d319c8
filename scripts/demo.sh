#!/usr/bin/env bash
# The converge demo: replays a bundled alert storm (examples/data/storm.jsonl,
# 5,000 actions over one hour of virtual time, written by
# scripts/gen_storm.py) through the converge manager on the in-memory stores
# and prints what was converged.
#
# Installs missing Debian packages first (scripts/deps.sh), configures a
# Release build in build/demo, builds converge_replay_demo and runs it.
# Idempotent; quick when already built.
#
# Environment: BUILD_DIR (default build/demo), STORM (default
# examples/data/storm.jsonl).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR=${BUILD_DIR:-build/demo}
STORM=${STORM:-examples/data/storm.jsonl}

if [ -f scripts/deps.sh ]; then
  # shellcheck source=scripts/deps.sh
  . scripts/deps.sh
  if declare -F converge_ensure_deps >/dev/null; then
    converge_ensure_deps
  fi
else
  missing=()
  for tool in cmake g++ ninja; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "demo.sh: missing tools: ${missing[*]}" >&2
    echo "demo.sh: on Debian 12: apt-get install build-essential cmake ninja-build" \
      "libabsl-dev libfmt-dev catch2 libboost1.81-dev libboost-json1.81-dev" >&2
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
    -DCONVERGE_WITH_JSON=ON >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
fi

echo "demo.sh: building converge_replay_demo" >&2
if ! ninja -C "$BUILD_DIR" converge_replay_demo >"$log" 2>&1; then
  cat "$log" >&2
  if grep -q "unknown target" "$log"; then
    echo "demo.sh: $BUILD_DIR has no converge::json (Boost.JSON); reconfigure" \
      "it with -DCONVERGE_WITH_JSON=ON or remove it" >&2
  fi
  exit 1
fi

echo >&2
"$BUILD_DIR/examples/converge_replay_demo" "$STORM"
