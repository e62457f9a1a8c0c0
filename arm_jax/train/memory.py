"""Per-device memory of a pretraining step, estimated analytically (no compile, no devices).

For targets this host cannot compile for (GPUs: there is no GPU topology description without a
GPU) and as a cross-check of the TPU compiler's own figure (`arm-jax aot` prints both). The
state part is exact: the train state's abstract shapes are sharded with the config's mesh rules
on an abstract mesh of the target's size. The step part is a model of what XLA keeps live:

  state        params + optimizer state (their real shards)
  grads        one f32 gradient per parameter shard (live at the update)
  layer        one layer's weights gathered in the compute dtype (x2: the next one is prefetched)
               and its full f32 gradient before the reduce-scatter
  saved        what the remat policy keeps for the backward pass, per layer, for one
               micro-batch (`SAVED_PER_TOKEN`)
  loss         the logits of one micro-batch in the compute dtype, their f32 copy and gradient,
               with the output heads gathered in the compute dtype and their f32 gradients

peak = state + grads + saved + max(layer, loss).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, AxisType

from arm_jax import sharding as shd
from arm_jax.model.transformer import ModelConfig

GIB = 1024**3


def saved_per_token(cfg: ModelConfig, policy: str, attention: str, seq_len: int) -> int:
  """Bytes one layer keeps per token for the backward pass under a remat policy.

  Always the layer input (the scan carry). `dots_with_no_batch_dims_saveable` adds the outputs
  of the weight matmuls (q, k, v, o, gate, up, down); `dots_saveable` also the attention score
  and value matmuls when XLA attention materialises them (fused kernels keep them inside);
  `none` keeps every intermediate (about twice the matmul outputs, plus f32 norm inputs).
  """
  c = jnp.dtype(cfg.dtype).itemsize
  carry = cfg.d_model * c
  dots = c * (cfg.n_heads * cfg.head_dim + 2 * cfg.n_kv_heads * cfg.head_dim +
              2 * cfg.d_model + 2 * cfg.d_ff)
  scores = cfg.n_heads * seq_len * 4 if attention == "xla" else 0
  return {"full": carry,
          "dots_with_no_batch_dims_saveable": carry + dots,
          "dots_saveable": carry + dots + scores,
          "none": carry + 2 * dots + 2 * 4 * cfg.d_model + scores}[policy]


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
  """Bytes per device of each part (see the module docstring)."""
  state: int
  grads: int
  layer: int
  saved: int
  loss: int

  @property
  def total(self) -> int:
    return self.state + self.grads + self.saved + max(self.layer, self.loss)

  def lines(self) -> list[str]:
    parts = dataclasses.asdict(self)
    return [f"  {k:<12} {v / GIB:8.2f} GiB" for k, v in parts.items()] + [
        f"  {'peak':<12} {self.total / GIB:8.2f} GiB"]


def abstract_mesh(mesh_cfg, devices: int) -> AbstractMesh:
  """The config's mesh over `devices` devices, without any device."""
  shape = shd.mesh_shape(mesh_cfg.axes, mesh_cfg.shape, devices)
  return AbstractMesh(shape, tuple(mesh_cfg.axes), axis_types=(AxisType.Auto,) * len(shape))


def _shard_bytes(tree) -> int:
  """Bytes of one device's shards of a pytree of sharded ShapeDtypeStructs."""
  return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
             for x in jax.tree.leaves(tree))


def micro_batch_per_device(config, devices: int) -> float:
  """Sequences one device computes per micro-batch (batch sharded over every device)."""
  t = config.train
  return t.batch_size / t.grad_accum / devices


def estimate(config, devices: int) -> MemoryEstimate:
  """Per-device memory of config's pretraining step on `devices` devices of the config's mesh."""
  from arm_jax.train.optimizer import make_optimizer
  from arm_jax.train.pretrain import decoder_fn
  from arm_jax.train.state import state_spec
  mcfg = ModelConfig.from_config(config.model)
  mesh = abstract_mesh(config.mesh, devices)
  _, spec = state_spec(decoder_fn(config), make_optimizer(config.train), mesh,
                       shd.rules_of(config.mesh), 0)
  params = spec.abstract["params"]
  state = _shard_bytes(spec.abstract)
  grads = _shard_bytes(params) * 4 // jnp.dtype(mcfg.param_dtype).itemsize
  c = jnp.dtype(mcfg.dtype).itemsize
  sizes = dict(zip(mesh.axis_names, mesh.axis_sizes))
  tensor = sizes.get("tensor", 1)
  layer_params = sum(x.size for x in jax.tree.leaves(params["blocks"])) // mcfg.n_layers
  layer = layer_params * (2 * c + 4) // tensor
  head_params = sum(x.size for k, v in params.items() if k.endswith("head")
                    for x in jax.tree.leaves(v))
  tokens = micro_batch_per_device(config, devices) * config.train.seq_len
  vocab = mcfg.vocab.total_size
  loss = int(tokens * vocab * (c + 4 + 4) / tensor) + head_params * (c + 4) // tensor
  saved = int(tokens * mcfg.n_layers *
              saved_per_token(mcfg, mcfg.remat, mcfg.attention, config.train.seq_len))
  return MemoryEstimate(state=state, grads=grads, layer=layer, saved=saved, loss=loss)
