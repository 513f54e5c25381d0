# Sourced by dev.sh and tools/localdb.sh: a destructive set-up command says what it destroys and
# goes ahead only on --yes or when the operator types "destroy" on a terminal.
#
#   confirm_destroy "<what is destroyed, one line per item>" "$@"   (returns when confirmed)
confirm_destroy() {
  local what=$1; shift
  printf 'this destroys, for good:\n%s\n' "$what" >&2
  local arg
  for arg in "$@"; do [[ $arg == --yes || $arg == -y ]] && return 0; done
  if [[ ! -t 0 ]]; then
    printf 'error: not confirmed: run it on a terminal to be asked, or pass --yes\n' >&2
    exit 2
  fi
  local answer
  read -r -p "type destroy to go ahead (anything else keeps it): " answer
  [[ $answer == destroy ]] || { printf 'nothing destroyed\n' >&2; exit 1; }
}
