"""The decoder params alone, out of a train checkpoint (<workdir>/checkpoints/<stage>/<step>).

Only the `params` subtree of the saved state is read (orbax partial restore): the optimizer
moments, twice the params' size for AdamW, never leave the disk. The step's `meta` holds the
config the run trained with; export uses its model/data/tokenizer sections, so the exported
network is the trained one whatever recipe the command line names.
"""
from __future__ import annotations

import glob
import json
import logging
import os

import jax
import orbax.checkpoint as ocp
from etils import epath

from arm_jax import sharding as shd
from arm_jax.config import set_value
from arm_jax.errors import UserError
from arm_jax.interop import weights

log = logging.getLogger(__name__)

# Sections of the run's own config that describe the trained network and its vocabulary.
TRAINED_SECTIONS = ("model", "data", "tokenizer", "decode")


def _steps(stage_dir: str) -> list[str]:
  return sorted((p for p in glob.glob(os.path.join(stage_dir, "*"))
                 if os.path.basename(p).isdigit() and os.path.isdir(os.path.join(p, "state"))),
                key=lambda p: int(os.path.basename(p)))


def find_step_dir(workdir: str, checkpoint: str = "") -> str:
  """--checkpoint (a step dir, its state dir, or a stage dir -> newest step), else the most
  recently written step of any stage under <workdir>/checkpoints."""
  if checkpoint:
    path = os.path.normpath(checkpoint)
    if os.path.basename(path) == "state":
      path = os.path.dirname(path)
    if os.path.isdir(os.path.join(path, "state")):
      return path
    if _steps(path):
      return _steps(path)[-1]
    raise UserError(f"--checkpoint {checkpoint} is not a checkpoint step or stage directory "
                    f"(expected <workdir>/checkpoints/<stage>/<step>/state)")
  found = [s for stage in glob.glob(os.path.join(workdir, "checkpoints", "*"))
           for s in _steps(stage)]
  if not found:
    raise UserError(f"no checkpoint under {workdir}/checkpoints; train first or pass "
                    f"--checkpoint")
  return max(found, key=os.path.getmtime)


def trained_config(config, step_dir: str):
  """`config` with the trained sections replaced by the run's own (from the step's meta)."""
  meta_file = os.path.join(step_dir, "meta", "metadata")
  if not os.path.isfile(meta_file):
    return config
  with open(meta_file) as f:
    saved = json.loads(json.load(f).get("config") or "{}")
  out = config.copy_and_resolve_references()
  out.unlock()
  changed = []
  for section in TRAINED_SECTIONS:
    for key, value in (saved.get(section) or {}).items():
      if key in out[section] and value != json.loads(json.dumps(out[section][key])):
        set_value(out, f"{section}.{key}", value)
        changed.append(f"{section}.{key}")
  if changed:
    log.info("using the checkpoint's own %s (the run's config)", ", ".join(changed[:8]))
  out.lock()
  return out


def restore_params(step_dir: str, config, mesh=None, rules=None) -> dict:
  """The step's params as jax.Arrays sharded per the config's mesh rules."""
  from arm_jax.train.pretrain import decoder_fn
  from arm_jax.train.state import param_shardings
  mesh = shd.make_mesh(config.mesh) if mesh is None else mesh
  rules = shd.rules_of(config.mesh) if rules is None else rules
  _, abstract, shardings = param_shardings(decoder_fn(config), mesh, rules)
  state_dir = os.path.abspath(os.path.join(step_dir, "state"))
  saved = ocp.PyTreeCheckpointHandler().metadata(epath.Path(state_dir)).tree.get("params")
  if saved is None:
    raise UserError(f"{state_dir} holds no params; give a train checkpoint step")
  flat_saved = weights.flatten(saved)
  for name, a in weights.flatten(abstract).items():
    got = flat_saved.get(name)
    if got is None or tuple(got.shape) != tuple(a.shape):
      found = "missing" if got is None else f"of shape {tuple(got.shape)}"
      raise UserError(f"params.{name} in {state_dir} is {found} but the config builds "
                      f"{tuple(a.shape)}; pass the recipe the run was trained with")
  target = {"params": jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)}
  args = ocp.args.PyTreeRestore(item=target,
                                restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                                partial_restore=True)
  return ocp.PyTreeCheckpointer().restore(state_dir, args=args)["params"]
