"""Weights on disk in arm_jax's own layout: what `arm-jax import-hf` writes and `pretrain --init`
reads.

    OUT/params.safetensors             (or params-0000i-of-0000n.safetensors + index json)
                                       leaves of nnx.to_pure_dict(Decoder), named like
                                       "blocks.attn.q_proj.kernel" [layers, d_model, heads*hd]
    OUT/model_config.json              {"model": {config.model keys the weights fit}, ...}
    OUT/tokenizer.json ...             the text tokenizer, copied from the source checkpoint

    params = load_params(OUT)                                  # numpy, whole
    params = load_params(OUT, config=cfg, shardings=p_sh)      # checked, placed shard by shard
"""
from __future__ import annotations

import json
import os
from typing import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from arm_jax.errors import UserError
from arm_jax.interop.hf_config import check_model_keys
from arm_jax.interop.lazy_array import LazyArray
from arm_jax.interop.safetensors_io import TensorIndex, TensorSpec, write_sharded

PREFIX = "params"
MODEL_JSON = "model_config.json"
SEP = "."


def flatten(tree: Mapping, prefix: str = "") -> dict:
  """Nested dict -> {"a.b.c": leaf}."""
  out = {}
  for k, v in tree.items():
    name = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten(v, name + SEP))
    else:
      out[name] = v
  return out


def unflatten(flat: Mapping) -> dict:
  out: dict = {}
  for name, v in flat.items():
    node = out
    *parents, leaf = name.split(SEP)
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return out


def abstract_params(config) -> dict:
  """The decoder's params as a pure dict of ShapeDtypeStruct (no arrays allocated)."""
  from arm_jax.train.pretrain import decoder_fn
  state = nnx.state(nnx.eval_shape(lambda: decoder_fn(config)(nnx.Rngs(0))))
  return nnx.to_pure_dict(state)


def save_params(out_dir: str, arrays: Mapping[str, LazyArray], dtype, model: dict,
                shard_mb: float, extra: dict | None = None) -> list[str]:
  """Writes flat {name: LazyArray} as `dtype` (chunk by chunk) and the model json."""
  dtype = jnp.dtype(dtype)
  specs = [TensorSpec(name, a.shape, dtype,
                      lambda a=a: a.chunks(itemsize=max(dtype.itemsize, 4)))
           for name, a in arrays.items()]
  files = write_sharded(out_dir, PREFIX, specs, int(shard_mb * 2**20),
                        metadata={"format": "arm_jax"})
  with open(os.path.join(out_dir, MODEL_JSON), "w") as f:
    json.dump(dict({"model": model}, **(extra or {})), f, indent=2)
  return files


def read_model_json(path: str) -> dict:
  model_json = os.path.join(path, MODEL_JSON)
  if not os.path.isfile(model_json):
    if os.path.isfile(os.path.join(path, "config.json")):
      raise UserError(f"{path} is a Hugging Face checkpoint; convert it first: arm-jax import-hf "
                      f"--hf {path} --out DIR --config RECIPE, then --init DIR")
    raise UserError(f"{path} has no {MODEL_JSON}; give a directory written by arm-jax import-hf")
  with open(model_json) as f:
    return json.load(f)


def load_params(path: str, *, config=None, shardings=None) -> dict:
  """An import-hf directory -> nnx pure dict of the decoder's params.

  With `config`, the weights' model keys and every leaf shape are checked against it (one-line
  error naming the key or tensor). With `shardings` (pure dict of NamedSharding, as from
  train.state.param_shardings), leaves come back as jax.Arrays placed shard by shard; without,
  as whole numpy arrays.
  """
  info = read_model_json(path)
  index = TensorIndex.open(path)
  if config is not None:
    check_model_keys(info["model"], config.model, f"the weights in {path}")
    want = flatten(abstract_params(config))
    for name, a in want.items():
      index.expect(name, a.shape)
    names = list(want)
    dtypes = {n: a.dtype for n, a in want.items()}
  else:
    names = index.names()
    dtypes = {n: index.info(n).dtype for n in names}
  flat_sh = flatten(shardings) if shardings is not None else {}
  out = {}
  for name in names:
    lazy = LazyArray(index.info(name).shape, lambda idx, n=name: index.read(n, idx))
    if name in flat_sh:
      out[name] = lazy.place(dtypes[name], flat_sh[name])
    else:
      out[name] = np.asarray(lazy.get(), dtypes[name])
  return unflatten(out)
