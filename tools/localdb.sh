#!/usr/bin/env bash
# The local TimescaleDB server for machines without Docker (Debian 12 / Ubuntu, as root).
#
#   tools/localdb.sh install   PostgreSQL 15 from the distribution + TimescaleDB built from
#                              Debian 13's source package (Apache-2 edition, as Debian builds it)
#   tools/localdb.sh up        install if needed, initialise, start, create the kapman role/db
#   tools/localdb.sh down      stop the server (data kept)
#   tools/localdb.sh status    is it running, and where
#   tools/localdb.sh destroy   stop and delete the whole cluster, every database in it (the
#                              runbook's Step 0); says what it destroys and asks, or --yes
#   tools/localdb.sh url       print the DATABASE_URL for it
#
# Settings (environment or .env): POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
# KAPMAN_PGPORT (5432), KAPMAN_PGROOT (/var/lib/kapman: data, socket and log live there so the
# unprivileged postgres user can reach them even when the checkout is under /root).
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -f "$ROOT_DIR/.env" ]]; then
  # Only the variables this script uses; .env may hold other things.
  while IFS='=' read -r key value; do
    case "$key" in POSTGRES_USER|POSTGRES_PASSWORD|POSTGRES_DB|KAPMAN_PGPORT|KAPMAN_PGROOT)
      value=${value%\"}; value=${value#\"}
      [[ -z "${!key:-}" ]] && export "$key=$value";; esac
  done < <(grep -E '^[A-Z_]+=' "$ROOT_DIR/.env" || true)
fi

PG_VERSION=15
TS_VERSION=2.19.3
TS_SOURCE_VERSION="2.19.3+dfsg-1+deb13u1"
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
PG_USER_OS=postgres
DB_USER=${POSTGRES_USER:-kapman}
DB_PASSWORD=${POSTGRES_PASSWORD:-kapman-local-dev}
DB_NAME=${POSTGRES_DB:-kapman}
PORT=${KAPMAN_PGPORT:-5432}
PGROOT=${KAPMAN_PGROOT:-/var/lib/kapman}
PGDATA=$PGROOT/pg$PG_VERSION
SOCKET_DIR=$PGROOT/run
LOG_FILE=$PGROOT/server.log
BUILD_DIR=${KAPMAN_BUILD_DIR:-/var/cache/kapman/timescaledb}
# shellcheck source=tools/confirm.sh
source "$ROOT_DIR/tools/confirm.sh"

say() { printf 'localdb: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }
need_root() { [[ $(id -u) -eq 0 ]] || die "run as root (sudo $0 $1): it installs packages and runs the server as the postgres user"; }
as_pg() { runuser -u "$PG_USER_OS" -- "$@"; }

timescaledb_installed() {
  [[ -f /usr/lib/postgresql/$PG_VERSION/lib/timescaledb-$TS_VERSION.so ]] &&
    [[ -f /usr/share/postgresql/$PG_VERSION/extension/timescaledb.control ]]
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
}

build_timescaledb() {
  say "building TimescaleDB $TS_VERSION (Apache-2 edition) from Debian's source package"
  local src_list=/etc/apt/sources.list.d/kapman-trixie-src.sources
  if [[ ! -f $src_list ]]; then
    cat >"$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -q >/dev/null
  fi
  apt_install dpkg-dev cmake gcc make libssl-dev "postgresql-server-dev-$PG_VERSION"
  rm -rf "$BUILD_DIR" && mkdir -p "$BUILD_DIR" && cd "$BUILD_DIR"
  apt-get source -q --download-only "timescaledb=$TS_SOURCE_VERSION" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get source -q --download-only "timescaledb=$TS_SOURCE_VERSION" >/dev/null; }
  dpkg-source -x --no-check ./*.dsc src >/dev/null
  # The flags of Debian's debian/rules: Apache-only, no telemetry; tests are not built.
  cmake -S src -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_CONFIG="$PG_BIN/pg_config" \
    -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF -DAPACHE_ONLY=1 \
    -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF >build.log 2>&1 || { tail -20 build.log; die "cmake failed"; }
  make -C build -j"$(nproc)" >>build.log 2>&1 || { tail -20 build.log; die "build failed"; }
  make -C build install >>build.log 2>&1 || die "install failed"
  cd / && rm -rf "$BUILD_DIR/src" "$BUILD_DIR/build"
}

cmd_install() {
  need_root install
  apt_install "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION"
  timescaledb_installed || build_timescaledb
  say "PostgreSQL $PG_VERSION with TimescaleDB $TS_VERSION installed"
}

running() { [[ -f $PGDATA/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

psql_admin() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -d postgres "$@"; }

cmd_up() {
  need_root up
  cmd_install
  mkdir -p "$PGROOT" "$SOCKET_DIR"
  chown "$PG_USER_OS:$PG_USER_OS" "$PGROOT" "$SOCKET_DIR"
  if [[ ! -f $PGDATA/PG_VERSION ]]; then
    say "initialising $PGDATA"
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U "$PG_USER_OS" --auth-local=peer --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<CONF
# kapman local server
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 15min
CONF
  fi
  if ! running; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$LOG_FILE" -w -t 60 start >/dev/null ||
      { tail -20 "$LOG_FILE" >&2; die "server did not start (log: $LOG_FILE)"; }
  fi
  psql_admin -v user="$DB_USER" -v pw="$DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN SUPERUSER PASSWORD %L', :'user', :'pw')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'user', :'pw') \gexec
SQL
  psql_admin -v db="$DB_NAME" -v user="$DB_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
  say "running on 127.0.0.1:$PORT (data $PGDATA)"
}

cmd_down() {
  if running; then as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; say "stopped"; else say "not running"; fi
}

cmd_status() {
  if running; then say "running on 127.0.0.1:$PORT (data $PGDATA, log $LOG_FILE)"; else say "not running"; return 3; fi
}

cmd_destroy() {
  need_root destroy
  [[ -d $PGDATA ]] || { say "nothing to destroy: $PGDATA does not exist"; return 0; }
  local databases="(the server is stopped: not listed)"
  if running; then
    databases=$(psql_admin -At -c "SELECT string_agg(format('%s (%s)', datname, pg_size_pretty(pg_database_size(oid))), ', ' ORDER BY datname) FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'")
  fi
  confirm_destroy "  the local PostgreSQL cluster $PGDATA ($(du -sh "$PGDATA" 2>/dev/null | cut -f1)), every database in it:
  ${databases:-none}" "$@"
  cmd_down
  rm -rf "$PGDATA"
  say "destroyed $PGDATA"
}

cmd_url() { printf 'postgresql://%s:%s@127.0.0.1:%s/%s\n' "$DB_USER" "$DB_PASSWORD" "$PORT" "${1:-$DB_NAME}"; }

case "${1:-}" in
  install) cmd_install ;;
  up|start) cmd_up ;;
  down|stop) cmd_down ;;
  status) cmd_status ;;
  destroy) cmd_destroy "${@:2}" ;;
  url) cmd_url "${2:-}" ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
