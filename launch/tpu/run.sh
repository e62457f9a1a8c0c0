#!/usr/bin/env bash
# Runs one command on every worker of a TPU slice at once, in ~/arm_jax with its venv.
set -euo pipefail
PROG="run.sh"
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

USAGE="Usage: launch/tpu/run.sh --name NAME --zone ZONE [options] -- COMMAND [ARGS...]

Runs COMMAND on all workers together (gcloud ... ssh --worker=all), in ~/arm_jax with its venv
active; arm_jax finds the other workers itself (jax.distributed on the TPU VM). Output goes to
this terminal and is appended to ~/arm_jax/logs/run.log on each worker (see logs.sh). The exit
status is non-zero when any worker fails.

  --env KEY=VALUE   export this on the workers first (repeatable), e.g. LIBTPU_INIT_ARGS=...
  --detach          start COMMAND in the background and return at once (then logs.sh -f)
  --worker W        all (default), one index, or a list like 0,2
$COMMON_HELP

Example:
  launch/tpu/run.sh --name arm-v5p --zone us-east5-a -- \\
    arm-jax pretrain --config configs/arm_7b.py --workdir gs://BUCKET/arm_7b"

ENVS=() DETACH=0 WORKER=all CMD=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --env) need_value "$1" "$#"; ENVS+=("$2"); shift 2 ;;
    --detach) DETACH=1; shift ;;
    --worker) need_value "$1" "$#"; WORKER="$2"; shift 2 ;;
    --) shift; CMD=("$@"); break ;;
    *) parse_common "$@"; shift "$SHIFT" ;;
  esac
done
require_target
(( ${#CMD[@]} )) || die "no command; put it after --, e.g. -- arm-jax pretrain --config ..."
[[ "$WORKER" =~ ^(all|[0-9]+([,-][0-9]+)*)$ ]] ||
  die "--worker '$WORKER' must be all, one index (3), a list (0,2) or a range (1-3)"

exports=""
for kv in ${ENVS[@]+"${ENVS[@]}"}; do
  [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env '$kv' must be KEY=VALUE"
  exports+="export $(quote "${kv%%=*}")=$(quote "${kv#*=}"); "
done
prelude="cd $REMOTE_DIR && mkdir -p logs && source .venv/bin/activate && ${exports}"
if (( DETACH )); then
  remote="${prelude}nohup $(quote "${CMD[@]}") >> logs/run.log 2>&1 < /dev/null &"
else
  remote="${prelude}set -o pipefail; $(quote "${CMD[@]}") 2>&1 | tee -a logs/run.log"
fi
ssh_workers "$WORKER" "$remote"
