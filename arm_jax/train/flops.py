"""Model FLOPs for MFU, counted analytically (cost_analysis() counts a scanned layer only once).

MFU = model FLOPs per step / step time / peak FLOP/s, with the peak measured in the same run
(`measure_peak_flops`) or taken from the accelerator's published figure.
"""
from __future__ import annotations

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
