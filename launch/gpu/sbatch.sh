#!/usr/bin/env bash
# Submits an arm-jax run to SLURM on GPU nodes (one process per node, 8 GPUs each).
set -euo pipefail
PROG="sbatch.sh"
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

USAGE="Usage: launch/gpu/sbatch.sh [options] CONFIG WORKDIR [--config.KEY=VALUE ...]

Submits launch/gpu/job.sbatch: arm-jax COMMAND --config CONFIG --workdir WORKDIR [overrides]
on NODES nodes, one process per node driving all its GPUs; jax.distributed is set up from the
SLURM variables. The repository (with its .venv) and WORKDIR must be on a shared filesystem.
A rerun (or --requeue after a node failure) resumes from the latest checkpoint in WORKDIR.

  --nodes N            nodes (default 1)
  --gpus-per-node N    GPUs per node (default 8)
  --command NAME       arm-jax subcommand (default pretrain)
  --partition P, --account A, --qos Q, --time T     passed to sbatch
  --requeue            let SLURM requeue the job after a node failure or preemption
  --dry-run            print the sbatch command instead of submitting
  --help

Example (2 hosts x 8 H100):
  launch/gpu/sbatch.sh --nodes 2 --partition gpu configs/gpu_h100.py /shared/runs/arm_7b_gpu"

NODES=1 GPUS=8 COMMAND=pretrain SBATCH_EXTRA=() POSITIONAL=() OVERRIDES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) need_value "$1" "$#"; NODES="$2"; shift 2 ;;
    --gpus-per-node) need_value "$1" "$#"; GPUS="$2"; shift 2 ;;
    --command) need_value "$1" "$#"; COMMAND="$2"; shift 2 ;;
    --partition|--account|--qos|--time)
      need_value "$1" "$#"; SBATCH_EXTRA+=("$1=$2"); shift 2 ;;
    --requeue) SBATCH_EXTRA+=(--requeue); shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage_exit ;;
    --config.*=*) OVERRIDES+=("$1"); shift ;;
    -*) die "unknown option '$1'; see --help" ;;
    *) POSITIONAL+=("$1"); shift ;;
  esac
done
(( ${#POSITIONAL[@]} == 2 )) || die "need CONFIG and WORKDIR (got ${#POSITIONAL[@]} \
arguments); e.g. sbatch.sh configs/gpu_h100.py /shared/runs/x"
CONFIG="${POSITIONAL[0]}" WORKDIR="${POSITIONAL[1]}"
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "--nodes '$NODES' must be a positive whole number"
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node '$GPUS' must be a positive whole number"
[[ "$COMMAND" =~ ^[a-z][-a-z0-9]*$ ]] || die "--command '$COMMAND' is not an arm-jax subcommand"
[[ -f "$CONFIG" || -f "$REPO/$CONFIG" || -f "$REPO/configs/$CONFIG.py" ]] ||
  die "config '$CONFIG' not found; give a recipe file such as configs/gpu_h100.py"
name="$(basename "${CONFIG%.py}")"
# The job runs in the repository: paths given relative to here must still point to the same place.
[[ ! -f "$CONFIG" || "$CONFIG" == /* ]] || CONFIG="$PWD/$CONFIG"
[[ "$WORKDIR" == /* || "$WORKDIR" == *://* ]] || WORKDIR="$PWD/$WORKDIR"

run sbatch --job-name="arm-jax-$name" --nodes="$NODES" --ntasks-per-node=1 \
  --gpus-per-node="$GPUS" --chdir="$REPO" --export="ALL,ARM_REPO=$REPO" \
  ${SBATCH_EXTRA[@]+"${SBATCH_EXTRA[@]}"} \
  "$REPO/launch/gpu/job.sbatch" arm-jax "$COMMAND" --config "$CONFIG" --workdir "$WORKDIR" \
  ${OVERRIDES[@]+"${OVERRIDES[@]}"}
