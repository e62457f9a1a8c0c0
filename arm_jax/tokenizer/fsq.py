"""Finite scalar quantization (Mentzer et al. 2023), the paper's quantizer.

Each of the `len(levels)` channels is squashed by tanh into its range and rounded to one of
`levels[i]` values; the code is the tuple of rounded values, so the implicit codebook has
prod(levels) entries and every one of them is reachable (no codebook, no dead codes to revive).
Rounding passes gradients straight through (identity), so the encoder learns through it.

Shapes: z [..., len(levels)] float -> (z_q [..., len(levels)] float32 in [-1, 1],
indices [...] int32 in [0, prod(levels))).
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def round_ste(x: jax.Array) -> jax.Array:
  """round(x) forward, identity backward."""
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


class FSQ(nnx.Module):
  """No parameters: the levels define everything."""

  def __init__(self, levels: Sequence[int], eps: float = 1e-3):
    if len(levels) == 0 or any(int(l) < 2 for l in levels):
      raise ValueError(f"FSQ levels need at least one channel, each with >= 2 levels: {levels}")
    self.levels = tuple(int(l) for l in levels)
    self.eps = eps
    basis = np.concatenate([[1], np.cumprod(self.levels[:-1])]).astype(np.int64)
    self.basis = tuple(int(b) for b in basis)

  @property
  def dim(self) -> int:
    return len(self.levels)

  @property
  def codebook_size(self) -> int:
    return math.prod(self.levels)

  def _consts(self):
    levels = jnp.asarray(self.levels, jnp.float32)
    return levels, jnp.floor(levels / 2)

  def bound(self, z: jax.Array) -> jax.Array:
    """Squash each channel into [-(L-1)/2, (L-1)/2] (shifted by 1/2 for even L) before rounding."""
    levels, _ = self._consts()
    half_l = (levels - 1) * (1 - self.eps) / 2
    offset = jnp.where(levels % 2 == 0, 0.5, 0.0)
    shift = jnp.arctanh(offset / half_l)
    return jnp.tanh(z.astype(jnp.float32) + shift) * half_l - offset

  def quantize(self, z: jax.Array) -> jax.Array:
    """z [..., dim] -> z_q [..., dim] in [-1, 1], with straight-through rounding."""
    _, half_width = self._consts()
    return round_ste(self.bound(z)) / half_width

  def soft_assignment(self, z: jax.Array, temperature: float) -> list[jax.Array]:
    """Soft assignment of each channel to its levels: one [..., levels[i]] float32 per channel
    (the code's distribution is their product).

    p(level l) ~ exp(-(bound(z) - l)^2 / temperature), in level units (neighbours 1 apart), so it
    tends to the hard rounding as temperature -> 0 and stays differentiable in z.
    """
    b = self.bound(z)
    out = []
    for i, n in enumerate(self.levels):
      grid = jnp.arange(n, dtype=jnp.float32) - (n // 2)
      out.append(jax.nn.softmax(-(b[..., i:i + 1] - grid) ** 2 / temperature, axis=-1))
    return out

  def codes_to_indices(self, z_q: jax.Array) -> jax.Array:
    """Quantized [..., dim] -> flat indices [...] int32 (mixed radix over the levels)."""
    _, half_width = self._consts()
    digits = jnp.round(z_q * half_width + half_width).astype(jnp.int32)
    return jnp.sum(digits * jnp.asarray(self.basis, jnp.int32), axis=-1)

  def indices_to_codes(self, indices: jax.Array) -> jax.Array:
    """Flat indices [...] int32 -> quantized [..., dim] float32 in [-1, 1]."""
    levels, half_width = self._consts()
    digits = (indices[..., None] // jnp.asarray(self.basis, jnp.int32)) % levels.astype(jnp.int32)
    return (digits.astype(jnp.float32) - half_width) / half_width

  def __call__(self, z: jax.Array, rng: jax.Array | None = None) -> tuple[jax.Array, jax.Array,
                                                                           dict]:
    """z [..., dim] -> (z_q, indices, aux losses {} — FSQ needs none; `rng` is unused)."""
    del rng
    z_q = self.quantize(z)
    return z_q, self.codes_to_indices(z_q), {}
