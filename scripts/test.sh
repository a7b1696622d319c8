#!/usr/bin/env bash
# Builds everything and runs every test. Installs missing Debian packages
# first (apt-get; idempotent). The Redis and MySQL tests run on a
# redis-server and a mariadbd that CTest itself starts on loopback (and a
# unix socket) and stops by PID (fixtures redis_server and mysql_server,
# tests/CMakeLists.txt), so a plain `ctest` runs them too.
#
# Environment: BUILD_DIR (default build/test), JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
converge_ensure_deps

BUILD_DIR=${BUILD_DIR:-build/test}
JOBS=${JOBS:-$(nproc)}
# -g1: line tables only (enough for sanitizer reports and backtraces); full
# debug info makes the build about a third slower, and CI runs on 2 cores.
OPT_FLAGS="-O2 -g1 -DNDEBUG"

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$OPT_FLAGS" -DCONVERGE_WERROR=ON -DCONVERGE_WITH_JSON=ON -DCONVERGE_WITH_SQLITE=ON \
  -DCONVERGE_WITH_REDIS=ON -DCONVERGE_WITH_MYSQL=ON >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"

# On any exit (a failure, Ctrl-C): the test servers CTest started are
# stopped by their PIDs (CTest skips its cleanup fixtures when interrupted),
# and the scratch folder goes.
BUILD_ABS=$(cd "$BUILD_DIR" && pwd)
PREFIX=""
cleanup() {
  local s
  for s in redis mysql; do
    if [ -x "$BUILD_ABS/tests/converge_test_${s}_server" ]; then
      "$BUILD_ABS/tests/converge_test_${s}_server" stop \
        "$BUILD_ABS/tests/${s}-server" >/dev/null 2>&1 || true
    fi
  done
  if [ -n "$PREFIX" ]; then rm -rf "$PREFIX"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# No stage may hang the run: each program run here is bounded, and so is
# each test (ctest --timeout; tests that set TIMEOUT keep theirs).
T="timeout 900"

# The benchmark must keep building and running; its figures are reported,
# not asserted here (speed is measured in bench/, not in tests).
$T "$BUILD_DIR"/bench/converge_storm_bench --actions 20000 --dimensions 200 >/dev/null
$T "$BUILD_DIR"/bench/converge_sqlite_bench --actions 4000 --dimensions 40 \
  --durable-actions 200 --dir "$BUILD_DIR" >/dev/null
# MySQL: a tiny run on a mariadbd of its own (test settings).
$T "$BUILD_DIR"/bench/converge_mysql_bench --actions 2000 --one-actions 200 \
  --dimensions 20 --fast 1 >/dev/null

# converged against prometheus-alertmanager, a tiny run (the full one is
# bench/http_vs_alertmanager.sh; docs/http-api.md, section 10).
BUILD_DIR="$BUILD_DIR" $T bench/http_vs_alertmanager.sh --smoke >/dev/null

# Consumers: an installed package found with find_package, and the source
# tree pulled in with add_subdirectory.
PREFIX=$(mktemp -d)
cmake --install "$BUILD_DIR" --prefix "$PREFIX/install" >/dev/null
cmake -S tests/consumer -B "$PREFIX/find" -G Ninja \
  -DCMAKE_PREFIX_PATH="$PREFIX/install" >/dev/null
cmake --build "$PREFIX/find" >/dev/null
"$PREFIX/find/consumer"
cmake -S tests/consumer -B "$PREFIX/subdir" -G Ninja \
  -DCONVERGE_SOURCE_DIR="$PWD" >/dev/null
cmake --build "$PREFIX/subdir" >/dev/null
"$PREFIX/subdir/consumer"

# The concurrency cases again under ThreadSanitizer (house style). Set
# CONVERGE_TSAN=0 to skip this stage locally.
if [ "${CONVERGE_TSAN:-1}" != 0 ]; then
  TSAN_DIR=${TSAN_DIR:-build/tsan}
  cmake -S . -B "$TSAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$OPT_FLAGS" \
    -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCONVERGE_BUILD_BENCH=OFF \
    -DCONVERGE_BUILD_EXAMPLES=OFF -DCONVERGE_WITH_JSON=ON \
    -DCONVERGE_WITH_SQLITE=ON -DCONVERGE_WITH_REDIS=ON >/dev/null
  cmake --build "$TSAN_DIR" -j "$JOBS" --target converge_unit_tests \
    scenarios_memory conformance_memory scenarios_sqlite conformance_sqlite \
    scenarios_redis conformance_redis
  TSAN_OPTIONS=halt_on_error=1 $T "$TSAN_DIR"/tests/converge_unit_tests "[memory]"
  TSAN_OPTIONS=halt_on_error=1 $T "$TSAN_DIR"/tests/scenarios_memory \
    "[concurrency],[manager],[processor]"
  TSAN_OPTIONS=halt_on_error=1 $T "$TSAN_DIR"/tests/conformance/conformance_memory \
    "[concurrency]"
  # SQLite: batches, the per-connection memo and the checkpointer thread.
  TSAN_OPTIONS=halt_on_error=1 $T "$TSAN_DIR"/tests/scenarios_sqlite \
    "[concurrency],[manager],[processor]"
  TSAN_OPTIONS=halt_on_error=1 $T "$TSAN_DIR"/tests/conformance/conformance_sqlite \
    "[concurrency]"
  # Redis: the connection pool shared by threads. Run by hand, each of these
  # starts a redis-server of its own (tests/support/redis_test_env.h).
  TSAN_OPTIONS=halt_on_error=1 $T "$TSAN_DIR"/tests/scenarios_redis \
    "[concurrency],[manager],[processor]"
  TSAN_OPTIONS=halt_on_error=1 $T "$TSAN_DIR"/tests/conformance/conformance_redis \
    "[concurrency]"
fi

# Last, so that its summary closes the output.
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS" --timeout 600
