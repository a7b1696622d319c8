# Sourced by scripts/demo.sh and scripts/test.sh: installs the Debian 12
# packages converge needs when they are missing. Idempotent; quick when
# everything is present (one dpkg-query).

# What scripts/demo.sh needs: the compiler, the libraries of the core,
# converge::json and converge::sqlite, and python3 for the storm.
CONVERGE_DEMO_PACKAGES=(
  build-essential cmake ninja-build pkg-config python3 libsqlite3-dev
  libabsl-dev libfmt-dev catch2
  libboost1.81-dev libboost-json1.81-dev
)

# What scripts/test.sh needs: everything, the test servers included.
CONVERGE_DEB_PACKAGES=(
  build-essential cmake ninja-build pkg-config python3 libsqlite3-dev
  libabsl-dev libfmt-dev catch2
  libboost1.81-dev libboost-json1.81-dev
  libhiredis-dev redis-server  # converge::redis, and the server its tests run
  libmariadb-dev mariadb-server  # converge::mysql, and the server its tests run
  prometheus  # promtool, for the metrics.promtool_check test; converged's real-client test
  prometheus-alertmanager curl  # converged's real-client test and bench/http_vs_alertmanager.sh
)

converge_missing_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  echo "${missing[@]:-}"
}

# converge_ensure_deps [--demo] [PACKAGE...]: the test list (or with
# --demo, the demo's), and the packages named.
converge_ensure_deps() {
  local missing list=("${CONVERGE_DEB_PACKAGES[@]}")
  if [ "${1:-}" = --demo ]; then
    list=("${CONVERGE_DEMO_PACKAGES[@]}")
    shift
  fi
  missing=$(converge_missing_packages "${list[@]}" "$@")
  if [ -z "${missing// /}" ]; then
    return 0
  fi
  echo "converge: installing missing packages: $missing" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "converge: need root (or sudo) to install: $missing" >&2
      return 1
    fi
  fi
  # Through env: sudo drops the environment. The lock timeout waits for an
  # apt run already going (a fresh machine's unattended upgrades).
  local apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get
    -o DPkg::Lock::Timeout=300)
  "${apt[@]}" update -qq
  # shellcheck disable=SC2086
  "${apt[@]}" install -y -qq --no-install-recommends $missing >/dev/null
}
