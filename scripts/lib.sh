# Shared by scripts/demo, scripts/test and scripts/bench: install what is missing, then build.
# Sourced, not run. Everything a fresh Debian 12 machine needs is listed here and nowhere else.

ITINERA_PACKAGES=(
  g++ cmake ninja-build pkg-config tzdata
  tao-pegtl-dev nlohmann-json3-dev libhowardhinnant-date-dev libtomlplusplus-dev
  libkainjow-mustache-dev libgtest-dev libbenchmark-dev
  libsqlite3-dev libssl-dev libboost-dev libcpp-httplib-dev
  libpqxx-dev libjemalloc-dev postgresql
  python3 python3-aiosmtpd openssl
)

# What the benchmarks drive or measure against (scripts/bench; scripts/test runs a smoke of each):
# wrk (HTTP load), postfix (smtp-sink and smtp-source; installed unconfigured, no mail server
# starts), curl (waits for the servers it starts), PostgreSQL's pgbench (in postgresql, above).
ITINERA_BENCH_PACKAGES=(wrk postfix curl)

itinera_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# Installs the packages in ITINERA_PACKAGES (plus any given) that are not installed yet.
itinera_install() {
  local missing=()
  for p in "${ITINERA_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  # Postfix only for its smtp-sink and smtp-source tools: no configured mail server.
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Configures and builds into build/ with two jobs.
itinera_build() {
  local root
  root=$(itinera_root)
  echo "==> building in $root/build"
  cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE="${ITINERA_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
  cmake --build "$root/build" -j2
}
