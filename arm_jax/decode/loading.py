"""What inference loads from a workdir: the decoder of a train checkpoint and the tokenizers.

Any stage that trains the decoder (pretrain, the RL stages) writes
`<workdir>/checkpoints/<stage>/<step>/state` with the decoder's `params`; other stages (teacher,
tokenizer) share the folder, so a step is picked only if its params are a decoder's.
"""
from __future__ import annotations

import glob
import os
import pathlib

from arm_jax.errors import UserError


def _steps(workdir: str) -> list[str]:
  pattern = os.path.join(workdir, "checkpoints", "*", "*", "state")
  return [os.path.dirname(p) for p in glob.glob(pattern)
          if os.path.basename(os.path.dirname(p)).isdigit()]


def is_decoder_step(step_dir: str) -> bool:
  """Does this step's saved state hold decoder params (an `image_head`)?"""
  import orbax.checkpoint as ocp
  try:
    tree = ocp.PyTreeCheckpointHandler().metadata(pathlib.Path(step_dir, "state")).tree
  except Exception:  # unreadable metadata: not a usable decoder step
    return False
  params = tree.get("params") if isinstance(tree, dict) else None
  return isinstance(params, dict) and "image_head" in params


def find_decoder_step(workdir: str, checkpoint: str = "") -> str:
  """--checkpoint (step, state or stage dir) or else the newest decoder step in the workdir."""
  if checkpoint:
    from arm_jax.interop.checkpoint_params import find_step_dir
    step_dir = find_step_dir(workdir, checkpoint)
    if not is_decoder_step(step_dir):
      raise UserError(f"{step_dir} is not a decoder checkpoint (no params.image_head); give a "
                      f"pretrain or RL checkpoint")
    return step_dir
  found = [s for s in _steps(workdir) if is_decoder_step(s)]
  if not found:
    raise UserError(f"no decoder checkpoint under {os.path.join(workdir, 'checkpoints')}; run "
                    f"`arm-jax pretrain` first or pass --checkpoint")
  return max(found, key=os.path.getmtime)


def load_decoder(config, step_dir: str):
  """(the run's config, graphdef, params sharded per config.mesh) of a decoder checkpoint."""
  from flax import nnx
  from arm_jax.interop.checkpoint_params import restore_params, trained_config
  from arm_jax.train.pretrain import decoder_fn
  config = _keep_decode(trained_config(config, step_dir), config)
  params = restore_params(step_dir, config)
  graphdef = nnx.split(nnx.eval_shape(lambda: decoder_fn(config)(nnx.Rngs(0))))[0]
  return config, graphdef, params


def _keep_decode(trained, given):
  """The run's network sections, but the caller's `decode` section: sampling settings are
  chosen at inference (e.g. --config.decode.cfg_scale=3), not inherited from training."""
  from arm_jax.config import flat_keys, set_value
  out = trained.copy_and_resolve_references()
  for key in flat_keys(given.decode):
    set_value(out, f"decode.{key}", given.decode[key])
  out.lock()
  return out


def load_text_tokenizer(config, workdir: str):
  from arm_jax.data.text_tokenizer import load_text_tokenizer as load
  return load(config, config.data.data_dir or os.path.join(workdir, "data"))


def load_codec(config, workdir: str):
  from arm_jax.tokenizer.api import load_visual_tokenizer
  return load_visual_tokenizer(config, workdir)
