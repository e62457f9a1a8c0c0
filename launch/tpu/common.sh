# shellcheck shell=bash disable=SC2034
# (SC2034: the variables set here are read by the scripts that source this file)
# Flags and gcloud helpers shared by the Cloud TPU VM scripts (sourced, not run).
#
# Every script takes: --name NAME --zone ZONE [--project PROJECT] [--dry-run] [--help]
# (defaults from ARM_TPU_NAME, ARM_TPU_ZONE, ARM_TPU_PROJECT, ARM_DRY_RUN=1).
# Code lives in ~/arm_jax on every worker, its venv in ~/arm_jax/.venv, logs in ~/arm_jax/logs.

# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

NAME="${ARM_TPU_NAME:-}"
ZONE="${ARM_TPU_ZONE:-}"
PROJECT="${ARM_TPU_PROJECT:-}"
REMOTE_DIR="arm_jax"  # relative to the home directory, where gcloud ssh/scp land

COMMON_HELP="common: --name NAME (\$ARM_TPU_NAME)  --zone ZONE (\$ARM_TPU_ZONE)
        --project PROJECT (\$ARM_TPU_PROJECT, else gcloud's default)
        --dry-run (or ARM_DRY_RUN=1): print the gcloud commands instead of running them
        --help"

# parse_common "$@": consumes one common flag, sets SHIFT to how many args it used.
parse_common() {
  case "$1" in
    --name) need_value "$1" "$#"; NAME="$2"; SHIFT=2 ;;
    --zone) need_value "$1" "$#"; ZONE="$2"; SHIFT=2 ;;
    --project) need_value "$1" "$#"; PROJECT="$2"; SHIFT=2 ;;
    --dry-run) DRY_RUN=1; SHIFT=1 ;;
    -h|--help) usage_exit ;;
    *) die "unknown option '$1'; see --help" ;;
  esac
}

require_target() {
  [[ -n "$NAME" ]] || die "no TPU name; pass --name NAME or set ARM_TPU_NAME"
  [[ -n "$ZONE" ]] || die "no zone; pass --zone ZONE (e.g. us-east5-a) or set ARM_TPU_ZONE"
  [[ "$NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] ||
    die "TPU name '$NAME' must be lowercase letters, digits and '-', starting with a letter"
}

# Flags every gcloud TPU call gets: the zone and, when given, the project.
location_flags() {
  LOCATION=("--zone=$ZONE")
  [[ -z "$PROJECT" ]] || LOCATION+=("--project=$PROJECT")
}

# ssh_workers WORKERS REMOTE_COMMAND: one command on the given workers ("all" = all at once).
ssh_workers() {
  location_flags
  run gcloud compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker="$1" --command="$2"
}

# The other scripts of this directory, with the common flags passed on.
sibling() {
  local script="$1"
  shift
  local flags=(--name "$NAME" --zone "$ZONE")
  [[ -z "$PROJECT" ]] || flags+=(--project "$PROJECT")
  [[ "$DRY_RUN" != 1 ]] || flags+=(--dry-run)
  bash "$(dirname "${BASH_SOURCE[0]}")/$script" "${flags[@]}" "$@"
}
