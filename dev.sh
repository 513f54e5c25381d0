#!/usr/bin/env bash
# KapMan's single entry for setting up, running, testing and benchmarking.
#
#   ./dev.sh demo        set everything up and run the whole runbook on the offline sandbox
#   ./dev.sh test [ARGS] set everything up and run the whole test suite (ARGS go to pytest)
#   ./dev.sh bench       run every benchmark and print figures against their targets
#   ./dev.sh setup       system packages, the local TimescaleDB, venv/ with KapMan installed
#   ./dev.sh db up|down|status|destroy|url   the local TimescaleDB server (tools/localdb.sh)
#   ./dev.sh lint        ruff and mypy
#
# Idempotent: a second run skips what is already in place.  Needs root for the system packages
# and the local server (Debian 12 / Ubuntu without Docker).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON=${KAPMAN_PYTHON:-python3}
VENV=venv

say() { printf 'dev: %s\n' "$*" >&2; }

setup_venv() {
  local stamp=$VENV/.kapman-installed want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [[ ! -x $VENV/bin/python ]]; then
    say "creating $VENV/"
    "$PYTHON" -m venv "$VENV" 2>/dev/null || {
      apt-get install -y -q python3-venv >/dev/null 2>&1 || true; "$PYTHON" -m venv "$VENV"; }
  fi
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    say "installing KapMan and its dependencies into $VENV/"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    echo "$want" >"$stamp"
  fi
}

setup_env_file() {
  [[ -f .env ]] || { cp .env.example .env; say "created .env from .env.example"; }
}

cmd_setup() {
  tools/localdb.sh up
  setup_venv
  setup_env_file
}

cmd_test() {
  cmd_setup
  export KAPMAN_TEST_DATABASE_URL=${KAPMAN_TEST_DATABASE_URL:-$(tools/localdb.sh url postgres)}
  exec "$VENV/bin/python" -m pytest -q "$@"
}

cmd_demo() {
  cmd_setup
  exec "$VENV/bin/python" -m kapman.demo "$@"
}

cmd_bench() {
  cmd_setup
  export KAPMAN_BENCH_DATABASE_URL=${KAPMAN_BENCH_DATABASE_URL:-$(tools/localdb.sh url postgres)}
  exec "$VENV/bin/python" -m bench "$@"
}

cmd_lint() {
  setup_venv
  "$VENV/bin/ruff" check kapman scripts tests bench
  "$VENV/bin/mypy"
}

case "${1:-}" in
  setup) cmd_setup ;;
  test) shift; cmd_test "$@" ;;
  demo) shift; cmd_demo "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  lint) cmd_lint ;;
  db) shift; exec tools/localdb.sh "${1:-status}" "${@:2}" ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
