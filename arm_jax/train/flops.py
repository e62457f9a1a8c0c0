"""Model FLOPs for MFU, counted analytically (cost_analysis() counts a scanned layer only once).

MFU = model FLOPs per step / step time / peak FLOP/s, with the peak measured in the same run
(`measure_peak_flops`) or taken from the accelerator's published figure.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from arm_jax.model.transformer import ModelConfig


def decoder_matmul_params(cfg: ModelConfig) -> int:
  """Parameters that take part in matmuls (the embedding lookup does not)."""
  d, hd, L = cfg.d_model, cfg.head_dim, cfg.n_layers
  attn = d * hd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads)
  mlp = 3 * d * cfg.d_ff
  heads = d * cfg.vocab.total_size
  return L * (attn + mlp) + heads


def decoder_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
  """Training FLOPs per token: 6 N (fwd + bwd matmuls) + causal attention scores and values."""
  attention = 6 * cfg.n_layers * seq_len * cfg.n_heads * cfg.head_dim   # 12 L T H hd / 2
  return 6 * decoder_matmul_params(cfg) + attention


def measure_peak_flops(n: int = 2048, reps: int = 5, dtype=jnp.bfloat16) -> float:
  """FLOP/s of an n^3 matmul on the default device in `dtype` (f32 accumulation)."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(reps):
    r = f(a)
  r.block_until_ready()
  return 2 * n ** 3 * reps / (time.perf_counter() - t)


@dataclasses.dataclass(frozen=True)
class Peak:
  """The best matmul rate measured on this device: the benchmarks' one MFU denominator."""
  flops: float   # FLOP/s
  n: int         # side of the square matmul that reached it
  dtype: str
  device: str    # jax device_kind

  def __str__(self) -> str:
    return (f"{self.flops / 1e9:,.0f} GFLOP/s ({self.dtype} {self.n}x{self.n} matmul, best of the "
            f"sizes and dtypes tried, on {self.device})")


def best_peak(sizes: tuple[int, ...] | None = None,
              dtypes: tuple[str, ...] = ("bfloat16", "float32"), reps: int = 3) -> Peak:
  """The fastest of n^3 matmuls over `sizes` x `dtypes` (default sizes: up to 4096 on CPU,
  16384 on accelerators). MFU is then against the best this machine does, whichever dtype
  that is: bf16 on a chip with bf16 units, f32 on a CPU without them."""
  if sizes is None:
    sizes = (1024, 2048, 4096) if jax.default_backend() == "cpu" else (4096, 8192, 16384)
  rate, n, dtype = max((measure_peak_flops(n, reps, jnp.dtype(d)), n, d)
                       for n in sizes for d in dtypes)
  return Peak(rate, n, dtype, jax.devices()[0].device_kind)


# ---------------------------------------------------------------------------------------------
# Predicted step time on a slice (what `arm-jax aot` reports)
# ---------------------------------------------------------------------------------------------

def pretrain_step_flops(config) -> float:
  """Model FLOPs of one pretraining optimizer step (all micro-batches, all devices)."""
  t = config.train
  return decoder_flops_per_token(ModelConfig.from_config(config.model), t.seq_len) * (
      t.batch_size * t.seq_len)


def fsdp_bytes_per_chip(config, n_params: int, fsdp: int, tensor: int) -> float:
  """Bytes one chip receives per optimizer step for FSDP over `fsdp` chips.

  Per micro-batch the weights are all-gathered in the compute dtype twice (forward, and again
  for the rematerialised backward) and the f32 gradients reduce-scattered once; each moves
  (fsdp - 1) / fsdp of the (tensor-sharded) parameters into every chip.
  """
  if fsdp <= 1:
    return 0.0
  compute = jnp.dtype(config.model.dtype).itemsize
  per_micro = n_params / tensor * (2 * compute + 4) * (fsdp - 1) / fsdp
  return config.train.grad_accum * per_micro


def data_parallel_bytes_per_chip(n_params: int, data: int, fsdp: int, tensor: int) -> float:
  """Bytes one chip receives per step all-reducing its f32 gradient shard over `data` replicas
  (a ring all-reduce moves 2 (data - 1) / data of it)."""
  if data <= 1:
    return 0.0
  return 2 * n_params * 4 / (fsdp * tensor) * (data - 1) / data


def link_seconds(nbytes: float, gbps: float) -> float:
  """Time to receive `nbytes` at half a published bidirectional bandwidth (one direction)."""
  return nbytes / (gbps / 2 * 1e9 / 8) if gbps else float("inf")
