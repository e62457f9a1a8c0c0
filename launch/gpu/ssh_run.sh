#!/usr/bin/env bash
# Runs one arm-jax command on a list of GPU hosts over ssh, one process per host.
set -euo pipefail
PROG="ssh_run.sh"
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

USAGE="Usage: launch/gpu/ssh_run.sh (--hosts H1,H2,... | --hostfile FILE) [options] -- COMMAND...

Starts COMMAND on every host at once over ssh (no scheduler needed), with ARM_COORDINATOR,
ARM_NUM_PROCESSES and ARM_PROCESS_ID set so arm_jax.distributed joins them into one job: the
first host is process 0 and the coordinator. Each host drives all its GPUs. Output lines are
prefixed with the host. If any host fails the others are stopped and the exit status is
non-zero. The code and its .venv must be at DIR on every host (shared filesystem or a copy).

  --hosts H1,H2,...    hosts in process order ([user@]host)
  --hostfile FILE      one host per line instead (blank lines and # comments skipped)
  --dir DIR            repository path on the hosts (default: this repository's path)
  --port PORT          coordinator port on the first host (default \$ARM_COORDINATOR_PORT or 8476)
  --coordinator ADDR   address the others reach the first host at (default: its host name)
  --dry-run            print the ssh commands instead of running them
  --help

Example (2 hosts x 8 H100):
  launch/gpu/ssh_run.sh --hosts gpu1,gpu2 -- \\
    arm-jax pretrain --config configs/gpu_h100.py --workdir /shared/runs/arm_7b_gpu"

HOSTS=() DIR="$REPO" PORT="${ARM_COORDINATOR_PORT:-8476}" COORD="" CMD=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --hosts)
      need_value "$1" "$#"
      IFS=',' read -r -a more <<< "$2"
      HOSTS+=("${more[@]}")
      shift 2 ;;
    --hostfile)
      need_value "$1" "$#"; [[ -f "$2" ]] || die "--hostfile '$2' does not exist"
      while read -r line; do
        line="${line%%#*}"; line="${line//[[:space:]]/}"
        [[ -z "$line" ]] || HOSTS+=("$line")
      done < "$2"
      shift 2 ;;
    --dir) need_value "$1" "$#"; DIR="$2"; shift 2 ;;
    --port) need_value "$1" "$#"; PORT="$2"; shift 2 ;;
    --coordinator) need_value "$1" "$#"; COORD="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage_exit ;;
    --) shift; CMD=("$@"); break ;;
    *) die "unknown option '$1'; put the command after --, see --help" ;;
  esac
done
(( ${#HOSTS[@]} )) || die "no hosts; pass --hosts H1,H2 or --hostfile FILE"
(( ${#CMD[@]} )) || die "no command; put it after --, e.g. -- arm-jax pretrain --config ..."
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || (( PORT < 1 || PORT > 65535 )); then
  die "--port '$PORT' must be 1..65535"
fi
COORD="${COORD:-${HOSTS[0]#*@}}"

pids=()
cleanup() { kill ${pids[@]+"${pids[@]}"} 2>/dev/null || true; }
trap cleanup INT TERM

for i in "${!HOSTS[@]}"; do
  host="${HOSTS[i]}"
  remote="cd $(quote "$DIR") && export PATH=$(quote "$DIR/.venv/bin"):\$PATH \
ARM_COORDINATOR=$COORD:$PORT ARM_NUM_PROCESSES=${#HOSTS[@]} ARM_PROCESS_ID=$i \
XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92} && \
exec $(quote "${CMD[@]}")"
  if [[ "$DRY_RUN" == 1 ]]; then
    run ssh -o BatchMode=yes "$host" "$remote"
    continue
  fi
  ( set -o pipefail; run ssh -o BatchMode=yes "$host" "$remote" 2>&1 | sed -u "s|^|[$host] |" ) &
  pids+=($!)
done

failed=0
for _ in ${pids[@]+"${pids[@]}"}; do
  if ! wait -n; then
    failed=1
    cleanup
  fi
done
(( ! failed )) || die "a host failed (see the [host] lines above); the others were stopped"
