# Sourced by scripts/test.sh: installs (from Debian's packages, when missing) and starts, on
# loopback, the services the integration tests talk to, and stops them when the script exits.
#
# PostgreSQL (the decision log's PostgreSQL sink): a throwaway server in a temporary directory,
# listening on 127.0.0.1 on a free port, trust authentication, fsync off (nothing in it must
# survive). It runs as the unprivileged `postgres` user when this script runs as root (as CI does).
# Exports VERDICT_TEST_PG_DSN. Set VERDICT_TEST_PG_DSN yourself to use a server you already have.
# Under CI=true a failure to start it fails the run; elsewhere the PostgreSQL tests then skip,
# saying why.
#
# Redis (stateful features shared by servers, engine/state/redis_store.py): Debian's redis-server,
# started on 127.0.0.1 on a free port, no persistence, in a temporary directory. Exports
# VERDICT_TEST_REDIS_URL (set it yourself to use a server you already have). Under CI=true a
# failure to start it fails the run; elsewhere the Redis tests then skip, saying why.
#
# promtool (Debian package prometheus): checks and unit-tests deploy/prometheus/alerts.yaml
# (tests/unit/test_deploy_prometheus.py, which fails under CI=true when promtool is missing).
#
# chromium + chromium-driver (Debian packages): the console's browser tests
# (tests/integration/test_console_browser.py, Selenium driving headless Chromium), which fail under
# CI=true when either is missing and skip elsewhere, saying why.

verdict_pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

verdict_install_postgres() {
  echo "== installing PostgreSQL (Debian package postgresql)"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "not root and no sudo: cannot install postgresql" >&2; return 1; }
    sudo=(sudo -n)
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

verdict_install_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  echo "== installing promtool (Debian package prometheus)"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "not root and no sudo: cannot install prometheus" >&2; return 1; }
    sudo=(sudo -n)
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

verdict_start_postgres() {
  local bin
  bin=$(verdict_pg_bin)
  if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    verdict_install_postgres || return 1
    bin=$(verdict_pg_bin)
    [[ -n "$bin" && -x "$bin/initdb" ]] || { echo "postgresql installed but initdb not found" >&2; return 1; }
  fi
  VERDICT_PG_BIN=$bin
  VERDICT_PG_DIR=$(mktemp -d /tmp/verdict-pg.XXXXXX)
  VERDICT_PG_AS=()
  if [[ $(id -u) -eq 0 ]]; then  # the server refuses to run as root
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres "$VERDICT_PG_DIR"
    VERDICT_PG_AS=(runuser -u postgres --)
  fi
  local port
  port=$("${PY:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${VERDICT_PG_AS[@]}" "$bin/initdb" -D "$VERDICT_PG_DIR/data" -U verdict --auth=trust -E UTF8 --no-sync >"$VERDICT_PG_DIR/initdb.log" 2>&1 ||
    { cat "$VERDICT_PG_DIR/initdb.log" >&2; return 1; }
  "${VERDICT_PG_AS[@]}" "$bin/pg_ctl" -D "$VERDICT_PG_DIR/data" -l "$VERDICT_PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $VERDICT_PG_DIR -c fsync=off -c full_page_writes=off" start >/dev/null ||
    { cat "$VERDICT_PG_DIR/server.log" >&2; return 1; }
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U verdict verdict || return 1
  export VERDICT_TEST_PG_DSN="postgresql://verdict@127.0.0.1:$port/verdict"
  echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (VERDICT_TEST_PG_DSN)"
}

# Java (Apache Spark, for the batch tests on a local Spark session): Debian's
# openjdk-17-jre-headless when no `java` is on PATH.
verdict_install_java() {
  command -v java >/dev/null 2>&1 && return 0
  echo "== installing Java (Debian package openjdk-17-jre-headless) for Spark"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "not root and no sudo: cannot install openjdk-17-jre-headless" >&2; return 1; }
    sudo=(sudo -n)
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
}

verdict_install_chromium() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return 0
  echo "== installing chromium and chromium-driver (Debian packages) for the console's browser tests"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "not root and no sudo: cannot install chromium" >&2; return 1; }
    sudo=(sudo -n)
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
}

verdict_start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing Redis (Debian package redis-server)"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
      command -v sudo >/dev/null 2>&1 || { echo "not root and no sudo: cannot install redis-server" >&2; return 1; }
      sudo=(sudo -n)
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null || return 1
  fi
  VERDICT_REDIS_DIR=$(mktemp -d /tmp/verdict-redis.XXXXXX)
  local port
  port=$("${PY:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$port" --dir "$VERDICT_REDIS_DIR" --save "" --appendonly no \
    --daemonize yes --pidfile "$VERDICT_REDIS_DIR/redis.pid" --logfile "$VERDICT_REDIS_DIR/redis.log" || return 1
  local i
  for i in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 || { cat "$VERDICT_REDIS_DIR/redis.log" >&2; return 1; }
  export VERDICT_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  echo "== Redis $(redis-server --version | awk '{print $3}') on 127.0.0.1:$port (VERDICT_TEST_REDIS_URL)"
}

# The EXIT trap: every command here must succeed (|| true), or under `set -e` it would replace the
# test run's exit status with its own (a Redis still writing its files made `rm` fail once).
verdict_stop_services() {
  if [[ -n "${VERDICT_REDIS_DIR:-}" && -f "$VERDICT_REDIS_DIR/redis.pid" ]]; then
    local pid i
    pid=$(cat "$VERDICT_REDIS_DIR/redis.pid" 2>/dev/null || true)
    if [[ -n "$pid" ]]; then
      kill "$pid" 2>/dev/null || true
      for i in $(seq 50); do  # up to 5 s for it to exit before its directory is removed
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -rf "$VERDICT_REDIS_DIR" 2>/dev/null || true
  fi
  if [[ -n "${VERDICT_PG_DIR:-}" && -d "$VERDICT_PG_DIR" ]]; then
    "${VERDICT_PG_AS[@]}" "$VERDICT_PG_BIN/pg_ctl" -D "$VERDICT_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$VERDICT_PG_DIR" 2>/dev/null || true
  fi
  return 0
}

if ! verdict_install_promtool; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "== promtool could not be installed; the alerting-rules tests need it" >&2
    exit 1
  fi
  echo "== promtool could not be installed: the alerting-rules tests will skip" >&2
fi

if ! verdict_install_chromium; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "== chromium/chromium-driver could not be installed; the console's browser tests need them" >&2
    exit 1
  fi
  echo "== chromium could not be installed: the console's browser tests will skip" >&2
fi

if [[ -z "${VERDICT_TEST_PG_DSN:-}" ]]; then
  trap verdict_stop_services EXIT
  if ! verdict_start_postgres; then
    if [[ "${CI:-}" == "true" ]]; then
      echo "== PostgreSQL could not be started; the decision log's PostgreSQL tests need it" >&2
      exit 1
    fi
    echo "== PostgreSQL could not be started: its tests will skip (set VERDICT_TEST_PG_DSN to use a server)" >&2
  fi
fi

if [[ -z "${VERDICT_TEST_REDIS_URL:-}" ]]; then
  trap verdict_stop_services EXIT
  if ! verdict_start_redis; then
    if [[ "${CI:-}" == "true" ]]; then
      echo "== Redis could not be started; the Redis state store tests need it" >&2
      exit 1
    fi
    echo "== Redis could not be started: its tests will skip (set VERDICT_TEST_REDIS_URL to use a server)" >&2
  fi
fi

if ! verdict_install_java; then
  echo "== Java could not be installed; the Spark batch tests need it" >&2
  [[ "${CI:-}" == "true" ]] && exit 1
fi
