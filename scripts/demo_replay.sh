#!/usr/bin/env bash
# The demo's replay and report (scripts/demo.sh runs it on the 50,000-action
# storm, the demo.smoke test on a small one): replays STORM with
# `converge replay --profile bkmonitor` on the SQLite store in file DB,
# writes the output lines to OUT and prints the report
# (scripts/demo_report.py).
#
#   demo_replay.sh CONVERGE STORM DB OUT
#
# By default every run starts from an empty store: DB (and its -wal and -shm
# files) is removed first, so the report is the same on every run. With
# RESUME=1 the state the previous run left in DB is kept: the replay then
# continues it, and an action that was decided before gets its stored
# decision again instead of a new one (exactly one decision per action);
# the report says how many did.
#
# Environment: RESUME (0 or 1, default 0), PYTHON (default python3).
set -euo pipefail

if [ "$#" -ne 4 ]; then
  echo "usage: demo_replay.sh CONVERGE STORM DB OUT" >&2
  exit 2
fi
converge=$1 storm=$2 db=$3 out=$4
RESUME=${RESUME:-0}
PYTHON=${PYTHON:-python3}
scripts=$(dirname "${BASH_SOURCE[0]}")

if [ "$RESUME" = 1 ] && [ -f "$db" ]; then
  echo "demo_replay.sh: resuming from the state the previous run left in $db" >&2
else
  if [ -f "$db" ]; then
    echo "demo_replay.sh: starting from an empty store: removed the previous" \
      "run's $db (RESUME=1 keeps it)" >&2
  else
    echo "demo_replay.sh: starting from an empty store in $db" >&2
  fi
  rm -f "$db" "$db-wal" "$db-shm"
fi

err=$(mktemp)
trap 'rm -f "$err"' EXIT
echo "demo_replay.sh: replaying $storm on sqlite:$db" >&2
start=$(date +%s.%N)
if ! "$converge" replay --store "sqlite:$db" --profile bkmonitor "$storm" \
  >"$out" 2>"$err"; then
  cat "$err" >&2
  exit 1
fi
end=$(date +%s.%N)
# "converge replay: N actions were decided before this run in ..." (only
# when some were).
resumed=$(sed -n 's/^converge replay: \([0-9]*\) actions\{0,1\} w[a-z]* decided before this run.*/\1/p' "$err")
echo >&2
"$PYTHON" "$scripts/demo_report.py" "$storm" "$out" \
  "$("$PYTHON" -c "print($end - $start)")" "${resumed:-0}" "sqlite:$db"
