#!/usr/bin/env bash
# Creates a Cloud TPU VM slice: on demand, spot, or through a queued resource.
set -euo pipefail
PROG="create.sh"
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

USAGE="Usage: launch/tpu/create.sh --name NAME --zone ZONE --type TYPE [options]

Creates a Cloud TPU VM slice and returns when it is READY.

  --type TYPE        slice, in either naming convention: v5p-64 (= v5p:2x4x4, 32 chips),
                     v4-32, v5litepod-16 (= v5e-16), v6e-16, or a chip shape like v5p:2x2x4
  --version VERSION  TPU software version (default: Google's recommended one for TYPE,
                     e.g. v2-alpha-tpuv5 for v5p)
  --spot             spot capacity: much cheaper, preemptible at any time (then see
                     keep_running.sh)
  --preemptible      the older preemptible model (24 h limit); prefer --spot
  --queued           ask through a queued resource (named NAME) and wait until it is ACTIVE;
                     the way to get large or scarce slices
  --valid-until DUR  with --queued: give up if not provisioned within DUR (e.g. 6h, 2d)
  --reserved         use the project's reservation
  --poll SECONDS     with --queued: seconds between state checks (default 60)
$COMMON_HELP

Example:
  launch/tpu/create.sh --name arm-v5p --zone us-east5-a --type v5p-64 --queued --spot"

TYPE="" VERSION="" SPOT=0 PREEMPTIBLE=0 QUEUED=0 VALID_UNTIL="" RESERVED=0 POLL=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    --type) need_value "$1" "$#"; TYPE="$2"; shift 2 ;;
    --version) need_value "$1" "$#"; VERSION="$2"; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --preemptible) PREEMPTIBLE=1; shift ;;
    --queued) QUEUED=1; shift ;;
    --valid-until) need_value "$1" "$#"; VALID_UNTIL="$2"; shift 2 ;;
    --reserved) RESERVED=1; shift ;;
    --poll) need_value "$1" "$#"; POLL="$2"; shift 2 ;;
    *) parse_common "$@"; shift "$SHIFT" ;;
  esac
done

require_target
[[ -n "$TYPE" ]] || die "no slice type; pass --type (e.g. v5p-64, v5litepod-16, v6e-16)"
[[ "$POLL" =~ ^[0-9]+$ ]] || die "--poll '$POLL' must be a whole number of seconds"
(( SPOT + PREEMPTIBLE + RESERVED <= 1 )) || die "choose one of --spot, --preemptible, --reserved"
(( ! (QUEUED && PREEMPTIBLE) )) || die "queued resources take --spot, not --preemptible"
[[ -z "$VALID_UNTIL" || "$QUEUED" == 1 ]] || die "--valid-until only applies with --queued"
PLATFORM="$(topo "$TYPE" platform)"
[[ "$PLATFORM" == tpu ]] || die "'$TYPE' is not a TPU slice; for GPUs see launch/gpu/"
ACCEL="$(topo "$TYPE" accelerator_type)"
VERSION="${VERSION:-$(topo "$TYPE" runtime_version)}"
location_flags

capacity=()
(( SPOT )) && capacity+=(--spot)
(( PREEMPTIBLE )) && capacity+=(--preemptible)
(( RESERVED )) && capacity+=(--reserved)

if (( ! QUEUED )); then
  run gcloud compute tpus tpu-vm create "$NAME" "${LOCATION[@]}" --accelerator-type="$ACCEL" \
    --version="$VERSION" ${capacity[@]+"${capacity[@]}"}
  exit 0
fi

extra=()
[[ -z "$VALID_UNTIL" ]] || extra+=(--valid-until-duration="$VALID_UNTIL")
run gcloud compute tpus queued-resources create "$NAME" "${LOCATION[@]}" --node-id="$NAME" \
  --accelerator-type="$ACCEL" --runtime-version="$VERSION" ${capacity[@]+"${capacity[@]}"} \
  ${extra[@]+"${extra[@]}"}

describe=(gcloud compute tpus queued-resources describe "$NAME" "${LOCATION[@]}"
          --format="value(state.state)")
if [[ "$DRY_RUN" == 1 ]]; then
  run "${describe[@]}"  # polled until ACTIVE
  exit 0
fi
while true; do
  state="$("${describe[@]}")" || die "cannot read the state of queued resource '$NAME'"
  case "$state" in
    ACTIVE) echo "queued resource $NAME is ACTIVE" >&2; exit 0 ;;
    FAILED|SUSPENDED) die "queued resource '$NAME' is $state; see gcloud compute tpus \
queued-resources describe $NAME --zone=$ZONE" ;;
    *) echo "queued resource $NAME: ${state:-unknown}; checking again in ${POLL}s" >&2 ;;
  esac
  sleep "$POLL"
done
