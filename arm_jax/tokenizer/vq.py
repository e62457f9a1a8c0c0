"""A learned VQ codebook with l2-normalised lookup (ViT-VQGAN), the alternative to FSQ.

Inputs and codes are compared as unit vectors (nearest = highest cosine), which keeps the
codebook well spread; the encoder output gets a straight-through gradient. Losses:
  commitment  ||z - sg(e)||^2 * vq_commitment   (encoder stays near its code)
  codebook    ||sg(z) - e||^2                   (codes move to the inputs they win)
  revive      codes no input chose in this batch are pulled to their nearest input.
The shared train step updates parameters by gradients only, so dead-code restarts are written as
that last loss, the gradient form of a restart: a dead code moves onto live data within a few
steps instead of jumping there in one.

Shapes: z [..., dim] -> (z_q [..., dim] unit vectors, indices [...] int32 in [0, codebook_size)).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from arm_jax.tokenizer.teacher import l2_normalize


def nearest(z_unit: jax.Array, codebook_unit: jax.Array) -> jax.Array:
  """Unit vectors [n, dim], [K, dim] -> index of the highest-cosine code [n] int32."""
  return jnp.argmax(z_unit @ codebook_unit.T, axis=-1).astype(jnp.int32)


class VQ(nnx.Module):

  def __init__(self, codebook_size: int, dim: int, *, commitment: float = 0.25,
               revive_dead: bool = True, rngs: nnx.Rngs):
    self.commitment = commitment
    self.revive_dead = revive_dead
    self.codebook = nnx.Param(
        nnx.initializers.normal(1.0)(rngs.params(), (codebook_size, dim), jnp.float32),
        out_sharding=("image_vocab", None))

  @property
  def dim(self) -> int:
    return self.codebook.shape[1]

  @property
  def codebook_size(self) -> int:
    return self.codebook.shape[0]

  def unit_codebook(self) -> jax.Array:
    return l2_normalize(self.codebook[...])

  def indices_to_codes(self, indices: jax.Array) -> jax.Array:
    """[...] int32 -> [..., dim] unit vectors."""
    return jnp.take(self.unit_codebook(), indices, axis=0)

  def soft_assignment(self, z: jax.Array, temperature: float) -> list[jax.Array]:
    """[p [..., K] float32]: p(code) ~ exp(-|unit(z) - unit(code)|^2 / temperature)."""
    sq_dist = 2.0 - 2.0 * (l2_normalize(z) @ self.unit_codebook().T)
    return [jax.nn.softmax(-sq_dist / temperature, axis=-1)]

  def __call__(self, z: jax.Array, rng: jax.Array | None = None):
    """z [..., dim] -> (z_q straight-through, indices, {commitment, codebook, revive} losses)."""
    lead = z.shape[:-1]
    flat = l2_normalize(z.reshape(-1, z.shape[-1]))
    codebook = self.unit_codebook()
    idx = nearest(jax.lax.stop_gradient(flat), jax.lax.stop_gradient(codebook))
    e = jnp.take(codebook, idx, axis=0)
    losses = {
        "vq_commitment": self.commitment * jnp.mean(
            jnp.sum((flat - jax.lax.stop_gradient(e)) ** 2, -1)),
        "vq_codebook": jnp.mean(jnp.sum((jax.lax.stop_gradient(flat) - e) ** 2, -1)),
    }
    if self.revive_dead and rng is not None:
      losses["vq_revive"] = revive_loss(codebook, idx, jax.lax.stop_gradient(flat), rng)
    z_q = flat + jax.lax.stop_gradient(e - flat)
    return z_q.reshape(lead + (z.shape[-1],)), idx.reshape(lead), losses


def revive_loss(codebook_unit: jax.Array, idx: jax.Array, inputs: jax.Array,
                rng: jax.Array) -> jax.Array:
  """Mean squared distance of each unused code to its nearest input of the batch (0 if none).

  The nearest input (not a random one) keeps each dead code's target in one place from step to
  step, so it settles on the part of the data it is closest to; `rng` subsamples the inputs.
  codebook_unit [K, dim], idx [n] int32 (this batch's assignments), inputs [n, dim] (no grad).
  """
  k = codebook_unit.shape[0]
  used = jnp.bincount(idx, length=k) > 0
  pool = inputs[jax.random.choice(rng, inputs.shape[0], (min(inputs.shape[0], 4096),),
                                  replace=False)]
  targets = pool[nearest(jax.lax.stop_gradient(codebook_unit), pool)]
  dead = (~used).astype(jnp.float32)
  dist = jnp.sum((codebook_unit - targets) ** 2, -1)
  return jnp.sum(dead * dist) / jnp.maximum(dead.sum(), 1.0)
