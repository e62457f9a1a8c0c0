#!/usr/bin/env bash
# Deletes a TPU slice (or its queued resource and the slice with it).
set -euo pipefail
PROG="delete.sh"
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

USAGE="Usage: launch/tpu/delete.sh --name NAME --zone ZONE [--queued]

Deletes the TPU VM slice NAME without asking. Checkpoints in a gs:// workdir stay.

  --queued   it was made with create.sh --queued: delete the queued resource and its slice
$COMMON_HELP"

QUEUED=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --queued) QUEUED=1; shift ;;
    *) parse_common "$@"; shift "$SHIFT" ;;
  esac
done
require_target
location_flags
if (( QUEUED )); then
  run gcloud compute tpus queued-resources delete "$NAME" "${LOCATION[@]}" --force --quiet
else
  run gcloud compute tpus tpu-vm delete "$NAME" "${LOCATION[@]}" --quiet
fi
