# shellcheck shell=bash
# Shared by the launch scripts (sourced, not run). Each script sets PROG and USAGE first.
#
#   die MSG          one-line error on stderr, exit 2
#   run CMD...       prints "+ CMD" (shell-quoted); runs it unless DRY_RUN=1
#   quote CMD...     CMD as one shell-quoted string (for remote --command strings)
#   topo NAME FIELD  a field of arm_jax.topology for a slice name (v5p-64, v5p:2x4x4, ...)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN="${ARM_DRY_RUN:-0}"

die() {
  echo "${PROG}: error: $*" >&2
  exit 2
}

quote() {  # readable and copy-pastable: bare words stay bare, the rest in single quotes
  local out="" arg q="'"
  for arg in "$@"; do
    if [[ "$arg" =~ ^[-A-Za-z0-9_./:=@%+,]+$ ]]; then
      out+="$arg "
    else
      out+="'${arg//$q/$q\\$q$q}' "
    fi
  done
  printf '%s' "${out% }"
}

run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "+ $(quote "$@")"
    return 0
  fi
  echo "+ $(quote "$@")" >&2
  "$@"
}

usage_exit() {
  printf '%s\n' "$USAGE"
  exit 0
}

need_value() {  # need_value FLAG "$#": a flag that takes a value got one
  [[ "$2" -ge 2 ]] || die "$1 needs a value; see --help"
}

python_bin() {
  if [[ -n "${ARM_PYTHON:-}" ]]; then
    echo "$ARM_PYTHON"
  elif [[ -x "$REPO/.venv/bin/python" ]]; then
    echo "$REPO/.venv/bin/python"
  else
    echo python3
  fi
}

topo() {
  local value
  value="$(PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$(python_bin)" -m arm_jax.topology \
           "$1" --field "$2" 2>&1)" || die "${value#topology: error: }"
  printf '%s' "$value"
}
