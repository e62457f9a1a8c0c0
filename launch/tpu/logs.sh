#!/usr/bin/env bash
# Shows ~/arm_jax/logs/run.log of one worker of a TPU slice.
set -euo pipefail
PROG="logs.sh"
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

USAGE="Usage: launch/tpu/logs.sh --name NAME --zone ZONE [--worker N] [--lines N] [-f]

Prints the end of ~/arm_jax/logs/run.log on one worker (worker 0 logs the metrics).

  --worker N     which worker (default 0)
  --lines N      how many lines (default 100)
  -f, --follow   keep printing new lines (Ctrl-C to stop; the run goes on)
$COMMON_HELP"

WORKER=0 LINES=100 FOLLOW=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --worker) need_value "$1" "$#"; WORKER="$2"; shift 2 ;;
    --lines) need_value "$1" "$#"; LINES="$2"; shift 2 ;;
    -f|--follow) FOLLOW=1; shift ;;
    *) parse_common "$@"; shift "$SHIFT" ;;
  esac
done
require_target
[[ "$WORKER" =~ ^[0-9]+$ ]] || die "--worker '$WORKER' must be one worker index, e.g. 0"
[[ "$LINES" =~ ^[0-9]+$ ]] || die "--lines '$LINES' must be a whole number"

follow=""
(( FOLLOW )) && follow=" -F"
ssh_workers "$WORKER" "tail -n $LINES$follow $REMOTE_DIR/logs/run.log"
