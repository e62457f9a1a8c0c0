#!/usr/bin/env bash
# Copies this checkout to ~/arm_jax on every worker of a TPU slice.
set -euo pipefail
PROG="copy.sh"
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

USAGE="Usage: launch/tpu/copy.sh --name NAME --zone ZONE [--src DIR]

Packs the code (no .git, .venv, runs/, caches) into one tarball, copies it to every worker
(--worker=all) and unpacks it into ~/arm_jax there. A venv already in ~/arm_jax stays.

  --src DIR   what to copy (default: this repository)
$COMMON_HELP"

SRC="$REPO"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --src) need_value "$1" "$#"; SRC="$2"; shift 2 ;;
    *) parse_common "$@"; shift "$SHIFT" ;;
  esac
done
require_target
[[ -d "$SRC" ]] || die "--src '$SRC' is not a directory"
location_flags

tarball="${TMPDIR:-/tmp}/arm_jax_code_$$.tgz"
trap 'rm -f "$tarball"' EXIT
run tar -czf "$tarball" --exclude=./.git --exclude=./.venv --exclude=./runs \
  --exclude=__pycache__ --exclude=.pytest_cache --exclude='*.egg-info' -C "$SRC" .
run gcloud compute tpus tpu-vm scp "$tarball" "$NAME:$REMOTE_DIR.tgz" "${LOCATION[@]}" \
  --worker=all
ssh_workers all "mkdir -p $REMOTE_DIR && tar -xzf $REMOTE_DIR.tgz -C $REMOTE_DIR \
&& rm $REMOTE_DIR.tgz"
