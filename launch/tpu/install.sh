#!/usr/bin/env bash
# Installs arm_jax with jax[tpu] into ~/arm_jax/.venv on every worker of a TPU slice.
set -euo pipefail
PROG="install.sh"
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

USAGE="Usage: launch/tpu/install.sh --name NAME --zone ZONE [--python VERSION] [--jax VERSION]

On every worker (--worker=all): installs uv, makes ~/arm_jax/.venv with Python VERSION (TPU VM
images ship Python 3.10; jax needs 3.11+), installs requirements.txt plus jax[tpu] (libtpu)
and arm_jax itself. Run copy.sh first.

  --python VERSION  Python for the venv (default 3.11)
  --jax VERSION     jax[tpu] version (default: the jax pin in requirements.txt)
$COMMON_HELP"

PYTHON_VERSION="3.11"
JAX_VERSION="$(sed -n 's/^jax==\([0-9.]*\).*/\1/p' "$REPO/requirements.txt")"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) need_value "$1" "$#"; PYTHON_VERSION="$2"; shift 2 ;;
    --jax) need_value "$1" "$#"; JAX_VERSION="$2"; shift 2 ;;
    *) parse_common "$@"; shift "$SHIFT" ;;
  esac
done
require_target
[[ "$PYTHON_VERSION" =~ ^3\.[0-9]+$ ]] || die "--python '$PYTHON_VERSION' must look like 3.11"
[[ "$JAX_VERSION" =~ ^[0-9]+(\.[0-9]+)*$ ]] ||
  die "no jax version (none pinned in requirements.txt?); pass --jax VERSION"

pip="uv pip install -q --python .venv/bin/python"
ssh_workers all "set -e; cd $REMOTE_DIR; export PATH=\$HOME/.local/bin:\$PATH; \
command -v uv >/dev/null || python3 -m pip install -q --user uv; \
uv venv -q --allow-existing --python $PYTHON_VERSION .venv; \
$pip -r requirements.txt 'jax[tpu]==$JAX_VERSION'; $pip --no-deps -e .; \
.venv/bin/python -c 'import jax; print(jax.process_index(), jax.local_device_count(), \
jax.devices()[0].device_kind)'"
