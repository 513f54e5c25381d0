#!/usr/bin/env bash
# KapMan's single entry for setting up, running, testing and benchmarking (./dev.sh help).
# Idempotent: a second run skips what is already in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON=${KAPMAN_PYTHON:-python3}
VENV=venv
# shellcheck source=tools/confirm.sh
source tools/confirm.sh

usage() {
  cat <<'USAGE'
usage: ./dev.sh COMMAND [ARGS]

  demo [ARGS]        set everything up and run the whole runbook on the offline sandbox, in a
                     database of its own (kapman_demo); ARGS go to python -m kapman.demo
  test [ARGS]        set everything up and run the whole test suite (ARGS go to pytest)
  test --fast [ARGS] only the unit tests: no database, no server set-up (under a minute)
  bench [ARGS]       run every benchmark and print figures against their targets
  setup              the database server, venv/ with KapMan installed, .env
  db up|down|status|destroy|url   the database server of the chosen kind (below); destroy removes
                     every database on it: it says what and asks (--yes: no question)
  lint               ruff and mypy
  help               this text

Which database server (KAPMAN_DB, in the environment or .env):
  docker    the compose service db (TimescaleDB community edition); tests use testcontainers
  local     PostgreSQL 15 + TimescaleDB (Apache edition) installed and run on this machine, as root
            (tools/localdb.sh; Debian 12 / Ubuntu without Docker)
  external  start nothing: DATABASE_URL (and KAPMAN_TEST_DATABASE_URL for tests) name a server
Unset: docker when a Docker engine answers, else local.
USAGE
}

say() { printf 'dev: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

env_value() {  # a variable from the environment, else from .env
  local name=$1 value=${!1:-}
  if [[ -z $value && -f .env ]]; then
    value=$(grep -E "^$name=" .env | tail -1 | cut -d= -f2- || true)
    value=${value%\"}; value=${value#\"}
  fi
  printf '%s' "$value"
}

docker_answers() { command -v docker >/dev/null 2>&1 && timeout 5 docker info >/dev/null 2>&1; }

db_kind() {
  local kind
  kind=$(env_value KAPMAN_DB)
  case "$kind" in
    docker|local|external) printf '%s' "$kind" ;;
    "") if docker_answers; then printf docker; else printf local; fi ;;
    *) die "KAPMAN_DB=$kind: expected docker, local or external" ;;
  esac
}

setup_venv() {
  local stamp=$VENV/.kapman-installed want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [[ ! -x $VENV/bin/python ]]; then
    say "creating $VENV/"
    "$PYTHON" -m venv "$VENV" 2>/dev/null || {
      apt-get install -y -q python3-venv >/dev/null 2>&1 || true; "$PYTHON" -m venv "$VENV"; }
  fi
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    say "installing KapMan and its dependencies into $VENV/ (what pip fetches, builds and installs:)"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    # pip's own lines of what it does, without its hundreds of "already satisfied" ones; setuptools'
    # advice printed for every editable install (a Python warning) is silenced, errors still show
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -e '.[dev]' \
      | { grep -E '^(Collecting|Building|Installing|Successfully)' | sed 's/^/  pip: /' >&2 || true; }
    echo "$want" >"$stamp"
  fi
}

setup_env_file() {
  [[ -f .env ]] || { cp .env.example .env; say "created .env from .env.example"; }
}

docker_db() {
  docker_answers || die "KAPMAN_DB=docker but no Docker engine answers (docker info)"
  case "$1" in
    up) docker compose up -d --wait db >/dev/null && say "compose service db is up (kapman-db, 127.0.0.1:$(env_value KAPMAN_PGPORT | grep . || echo 5432))" ;;
    down) docker compose stop db ;;
    status) docker compose ps db ;;
    destroy) confirm_destroy "  the compose service db and its volume kapman-trader_pgdata, every database in it" "${@:2}"
             docker compose rm -sf db && docker volume rm -f kapman-trader_pgdata >/dev/null && say "destroyed kapman-trader_pgdata" ;;
    url) printf 'postgresql://kapman:%s@127.0.0.1:%s/%s\n' "$(env_value POSTGRES_PASSWORD)" \
           "$(env_value KAPMAN_PGPORT | grep . || echo 5432)" "${2:-kapman}" ;;
    *) die "db $1: expected up, down, status, destroy or url" ;;
  esac
}

cmd_db() {
  local action=${1:-status} kind
  kind=$(db_kind)
  case "$kind" in
    docker) docker_db "$action" "${@:2}" ;;
    local) exec tools/localdb.sh "$action" "${@:2}" ;;
    external)
      [[ $action == url ]] && { env_value DATABASE_URL; echo; exit 0; }
      say "KAPMAN_DB=external: the server is not managed here (DATABASE_URL names it)" ;;
  esac
}

start_db() {
  case "$1" in
    docker) setup_env_file; docker_db up ;;
    local) tools/localdb.sh up ;;
    external) ;;
  esac
}

# Headless Chromium for the report pages' browser tests; they skip with a reason without it.
setup_browser() {
  command -v chromium >/dev/null 2>&1 && return 0
  say "installing chromium (browser tests of the report pages)"
  { apt-get install -y -q chromium >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } ||
    say "could not install chromium; the browser tests will be skipped"
}

cmd_setup() {
  local kind
  kind=$(db_kind)
  start_db "$kind"
  setup_browser
  setup_venv
  setup_env_file
}

cmd_test() {
  if [[ ${1:-} == --fast ]]; then
    shift
    setup_venv
    exec "$VENV/bin/python" -m pytest -q tests/unit "$@"
  fi
  local kind
  kind=$(db_kind)
  setup_venv
  setup_env_file
  # docker: testcontainers starts a TimescaleDB of the tests' own; external: KAPMAN_TEST_DATABASE_URL.
  if [[ $kind == local ]]; then
    tools/localdb.sh up
    export KAPMAN_TEST_DATABASE_URL=${KAPMAN_TEST_DATABASE_URL:-$(tools/localdb.sh url postgres)}
  fi
  # the README states this command: keep them the same (tests/unit/test_dev_sh.py). Two worker
  # processes (pytest-xdist): the runbook's end-to-end test and the rest share the two cores.
  exec "$VENV/bin/python" -m pytest -q -n 2 --durations=15 "$@"
}

wants_help() { local a; for a in "$@"; do [[ $a == -h || $a == --help ]] && return 0; done; return 1; }

# The demo's help before anything is installed or started: the venv's when it has KapMan, else the
# demo's description read straight from its source with the system Python, which a reader gone
# (| head -1) stops quietly as SIGPIPE does every KapMan command (exit 141, nothing on stderr).
demo_help() {
  if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import kapman.demo' 2>/dev/null; then
    exec "$VENV/bin/python" -m kapman.demo --help
  fi
  "$PYTHON" -c 'import ast, pathlib, signal
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
print(ast.get_docstring(ast.parse(pathlib.Path("kapman/demo.py").read_text())))
print("\nThe full list of options: ./dev.sh setup, then ./dev.sh demo --help.")'
}

cmd_demo() {
  if wants_help "$@"; then demo_help; return; fi
  cmd_setup
  exec "$VENV/bin/python" -m kapman.demo "$@"
}

cmd_bench() {
  cmd_setup
  export KAPMAN_BENCH_DATABASE_URL=${KAPMAN_BENCH_DATABASE_URL:-$(cmd_db url postgres)}
  exec "$VENV/bin/python" -m bench "$@"
}

cmd_lint() {
  setup_venv
  "$VENV/bin/ruff" check kapman scripts tests bench
  "$VENV/bin/mypy"
}

case "${1:-help}" in
  setup) cmd_setup ;;
  test) shift; cmd_test "$@" ;;
  demo) shift; cmd_demo "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  lint) cmd_lint ;;
  db) shift; cmd_db "$@" ;;
  help|-h|--help) usage ;;
  *) usage >&2; say "unknown command: $1"; exit 2 ;;
esac
