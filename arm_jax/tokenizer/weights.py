"""Stage hyper-parameters and trained weights shared by the teacher and tokenizer stages.

Checkpoints are the shared loop's (`<workdir>/checkpoints/<stage>/<step>/state`); inference
reads only the `params` subtree of the newest step, placed on the default device.
"""
from __future__ import annotations

import os

import jax
import ml_collections as mc
import orbax.checkpoint as ocp
from flax import nnx

from arm_jax.errors import UserError


class MissingCheckpointError(UserError):
  """A stage's weights were asked for before the stage was run."""


def stage_hparams(config, section) -> mc.ConfigDict:
  """config.train with this stage's steps / batch_size / lr / warmup_steps (a copy)."""
  t = mc.ConfigDict(config.train.to_dict())
  for key in ("steps", "batch_size", "lr", "warmup_steps"):
    t[key] = section[key]
  return t


def abstract_params(model_fn) -> dict:
  """Pure dict of ShapeDtypeStructs of the model's state."""
  _, state = nnx.split(nnx.eval_shape(lambda: model_fn(nnx.Rngs(0))))
  return nnx.to_pure_dict(state)


def latest_step(workdir: str, stage: str) -> int | None:
  directory = os.path.join(workdir, "checkpoints", stage)
  if not os.path.isdir(directory):
    return None
  steps = [int(s) for s in os.listdir(directory) if s.isdigit()]
  return max(steps) if steps else None


def load_params(workdir: str, stage: str, model_fn, *, command: str) -> dict:
  """The newest `stage` checkpoint's params (pure dict of arrays on the default device)."""
  step = latest_step(workdir, stage)
  if step is None:
    raise MissingCheckpointError(f"no {stage} checkpoint under {workdir}/checkpoints/{stage}; "
                                 f"run `arm-jax {command}` with this --workdir first")
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                        abstract_params(model_fn))
  path = os.path.abspath(os.path.join(workdir, "checkpoints", stage, str(step), "state"))
  restored = ocp.PyTreeCheckpointer().restore(
      path, args=ocp.args.PyTreeRestore(
          item={"params": target}, partial_restore=True,
          restore_args=ocp.checkpoint_utils.construct_restore_args({"params": target})))
  return restored["params"]


def save_params(workdir: str, stage: str, params: dict, meta: dict | None = None) -> None:
  """Writes params as step 0 of `stage` (imported weights that were never trained here)."""
  from arm_jax.train.checkpoint import Checkpoints
  ckpt = Checkpoints(os.path.join(workdir, "checkpoints", stage), keep=1, async_save=False)
  try:
    ckpt.save(0, {"params": params}, meta=meta or {}, force=True)
  finally:
    ckpt.close()


def model_from_params(model_fn, params: dict) -> nnx.Module:
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: model_fn(nnx.Rngs(0))))
  return nnx.merge(graphdef, params)
