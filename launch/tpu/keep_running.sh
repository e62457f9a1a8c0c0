#!/usr/bin/env bash
# Keeps a training command running to completion on a preemptible TPU slice.
set -euo pipefail
PROG="keep_running.sh"
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

USAGE="Usage: launch/tpu/keep_running.sh --name NAME --zone ZONE --type TYPE [options] \\
         -- arm-jax COMMAND --workdir gs://BUCKET/RUN [--config.KEY=VALUE ...]

Runs COMMAND on all workers until it finishes, surviving preemption: when the slice is missing
or preempted it is (re)created (create.sh), the code copied (copy.sh) and installed
(install.sh), and COMMAND run again (run.sh). The trainer resumes by itself from the latest
checkpoint in --workdir, which must therefore outlive the VM: use a gs:// workdir.

Done when COMMAND exits 0 and the slice is still READY afterwards (a trainer stopped by
SIGTERM also exits 0, so the state decides). A non-zero exit on a READY slice is a failure,
retried up to --max-failures times.

  --type TYPE          slice, as for create.sh (v5p-64, v5p:2x4x4, v6e-16, ...)
  --spot | --preemptible | --reserved | --queued [--valid-until DUR]   as for create.sh
  --max-restarts N     re-creations of the slice before giving up (default 20)
  --max-failures N     reruns after COMMAND fails on a READY slice (default 2)
  --settle SECONDS     wait this long after COMMAND ends before reading the slice state, so
                       a preemption that is under way shows (default 60)
  --poll SECONDS       between state checks while the slice is CREATING etc. (default 60)
$COMMON_HELP

Example:
  launch/tpu/keep_running.sh --name arm-v5p --zone us-east5-a --type v5p-64 --spot -- \\
    arm-jax pretrain --config configs/arm_7b.py --workdir gs://BUCKET/arm_7b"

TYPE="" CREATE_FLAGS=() QUEUED=0 MAX_RESTARTS=20 MAX_FAILURES=2 SETTLE=60 POLL=60 CMD=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --type) need_value "$1" "$#"; TYPE="$2"; shift 2 ;;
    --spot|--preemptible|--reserved) CREATE_FLAGS+=("$1"); shift ;;
    --queued) QUEUED=1; CREATE_FLAGS+=("$1"); shift ;;
    --valid-until) need_value "$1" "$#"; CREATE_FLAGS+=("$1" "$2"); shift 2 ;;
    --max-restarts) need_value "$1" "$#"; MAX_RESTARTS="$2"; shift 2 ;;
    --max-failures) need_value "$1" "$#"; MAX_FAILURES="$2"; shift 2 ;;
    --settle) need_value "$1" "$#"; SETTLE="$2"; shift 2 ;;
    --poll) need_value "$1" "$#"; POLL="$2"; shift 2 ;;
    --) shift; CMD=("$@"); break ;;
    *) parse_common "$@"; shift "$SHIFT" ;;
  esac
done
require_target
[[ -n "$TYPE" ]] || die "no slice type; pass --type (e.g. v5p-64), needed to re-create it"
for n in "$MAX_RESTARTS" "$MAX_FAILURES" "$SETTLE" "$POLL"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "'$n' is not a whole number (--max-restarts, --max-failures, \
--settle and --poll take one)"
done
(( ${#CMD[@]} )) || die "no command; put it after --, e.g. -- arm-jax pretrain --workdir gs://..."
workdir=""
for ((i = 0; i < ${#CMD[@]}; i++)); do
  case "${CMD[i]}" in
    --workdir=*) workdir="${CMD[i]#--workdir=}" ;;
    --workdir) workdir="${CMD[i + 1]:-}" ;;
  esac
done
[[ -n "$workdir" ]] || die "the command has no --workdir; it is where the run resumes from"
[[ "$workdir" == gs://* ]] || echo "${PROG}: warning: --workdir '$workdir' is not on gs://; \
a re-created VM starts empty, so the run would restart from step 0" >&2
topo "$TYPE" accelerator_type >/dev/null  # a bad --type fails now, not after a preemption
location_flags

say() { echo "${PROG}: $*" >&2; }

slice_state() {  # READY, CREATING, PREEMPTED, ... or NOT_FOUND
  gcloud compute tpus tpu-vm describe "$NAME" "${LOCATION[@]}" --format="value(state)" \
    2>/dev/null || echo NOT_FOUND
}

provision() {  # a fresh slice with the code installed
  local delete_flags=()
  (( QUEUED )) && delete_flags+=(--queued)
  if [[ "$1" != NOT_FOUND || "$QUEUED" == 1 ]]; then
    sibling delete.sh ${delete_flags[@]+"${delete_flags[@]}"} || true
  fi
  sibling create.sh --type "$TYPE" --poll "$POLL" ${CREATE_FLAGS[@]+"${CREATE_FLAGS[@]}"}
  sibling copy.sh
  sibling install.sh
}

if [[ "$DRY_RUN" == 1 ]]; then  # the first pass, as if the slice did not exist yet
  echo "+ $(quote gcloud compute tpus tpu-vm describe "$NAME" "${LOCATION[@]}" \
              --format="value(state)")"
  provision NOT_FOUND
  sibling run.sh -- "${CMD[@]}"
  exit 0
fi

restarts=0 failures=0 provisioned=0
while true; do
  state="$(slice_state)"
  case "$state" in
    READY) ;;
    CREATING|STARTING|RESTARTING|REPAIRING)
      say "slice $NAME is $state; checking again in ${POLL}s"; sleep "$POLL"; continue ;;
    *)
      # The first creation is free; every later one (and every failed attempt) is a restart.
      if (( provisioned )); then
        (( restarts < MAX_RESTARTS )) || die "slice $NAME is $state and --max-restarts \
($MAX_RESTARTS) is used up; the checkpoints in $workdir are intact"
        restarts=$((restarts + 1))
        say "slice $NAME is $state: re-creating it (restart $restarts of $MAX_RESTARTS)"
      fi
      provisioned=1
      if ! provision "$state"; then
        say "provisioning failed; retrying in ${POLL}s"
        sleep "$POLL"
        continue
      fi
      ;;
  esac
  provisioned=1
  rc=0
  sibling run.sh -- "${CMD[@]}" || rc=$?
  sleep "$SETTLE"
  state="$(slice_state)"
  if [[ "$state" == READY ]]; then
    (( rc == 0 )) && { say "done: the command finished on a healthy slice"; exit 0; }
    (( failures < MAX_FAILURES )) || die "the command failed (exit $rc) on a READY slice \
$((failures + 1)) times; see launch/tpu/logs.sh --name $NAME --zone $ZONE"
    failures=$((failures + 1))
    say "the command failed (exit $rc) on a READY slice; rerun $failures of $MAX_FAILURES"
  else
    say "the command ended (exit $rc) and slice $NAME is $state: preempted, resuming"
  fi
done
