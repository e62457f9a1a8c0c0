"""The tokenizer's four objectives and the teacher's sigmoid loss, as pure functions.

Each returns a scalar float32 mean; weights live in config.tokenizer (w_pixel, w_feature,
w_sigmoid, w_caption) and a weight of 0 removes the term (and its compute) from the step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from arm_jax.tokenizer.teacher import l2_normalize, pair_logits


def sigmoid_loss(text_emb: jax.Array, image_emb: jax.Array, logit_scale: jax.Array,
                 logit_bias: jax.Array) -> jax.Array:
  """SigLIP's pairwise sigmoid loss: row i of each is a matching pair, every other is not.

  text_emb, image_emb: [n, e] unit vectors. Sum over all n*n pairs, divided by n (as SigLIP).
  """
  logits = pair_logits(text_emb, image_emb, logit_scale, logit_bias)
  n = logits.shape[0]
  labels = 2.0 * jnp.eye(n, dtype=jnp.float32) - 1.0
  return -jnp.sum(jax.nn.log_sigmoid(labels * logits)) / n


def pixel_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error; both [b, H, W, 3] float in [-1, 1]."""
  return jnp.mean((pred.astype(jnp.float32) - target.astype(jnp.float32)) ** 2)


def cosine_distillation(pred: jax.Array, target: jax.Array) -> jax.Array:
  """1 - mean cosine similarity per patch; [b, n, d] each, target is the frozen teacher's."""
  cos = jnp.sum(l2_normalize(pred) * l2_normalize(jax.lax.stop_gradient(target)), axis=-1)
  return 1.0 - jnp.mean(cos)


def code_entropy_loss(channel_probs: list[jax.Array], codes: jax.Array | None = None) -> jax.Array:
  """LFQ's entropy regulariser (MAGVIT-v2), in nats.

  channel_probs: the quantizer's soft assignment (`soft_assignment`): FSQ gives one
  [..., levels[i]] per channel and the code's distribution is their product; VQ gives one
  [..., K].
  Returns mean per-token entropy (low: each token commits to one code) minus the entropy of the
  batch's average code distribution (high: the batch spreads over the whole codebook). The joint
  code distribution is the product of the channels', so the batch term costs tokens x codebook.

  codes [...] int32 (the tokens' hard codes) balances the batch average: each token weighs
  1 / (tokens on its code), so every code in use counts once. Without it a dominant code (flat
  background: 80% of shapes-world patches) dominates the average, and the cheapest way up is to
  split it by position; balanced, the gradient pushes rare content onto unused codes instead.
  """
  flat = [p.reshape(-1, p.shape[-1]).astype(jnp.float32) for p in channel_probs]
  per_token = sum(jnp.mean(_entropy(p)) for p in flat)
  joint = flat[0]
  for p in flat[1:]:
    joint = (joint[:, :, None] * p[:, None, :]).reshape(joint.shape[0], -1)
  if codes is None:
    return per_token - _entropy(jnp.mean(joint, axis=0))
  c = codes.reshape(-1)
  counts = jnp.bincount(c, length=joint.shape[1]).astype(jnp.float32)
  w = jax.lax.stop_gradient(1.0 / counts[c])
  return per_token - _entropy(jnp.sum(w[:, None] * joint, axis=0) / jnp.sum(w))


def _entropy(p: jax.Array) -> jax.Array:
  return -jnp.sum(p * jnp.log(jnp.maximum(p, 1e-12)), axis=-1)


def caption_loss(logits: jax.Array, ids: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Masked next-token cross-entropy and token accuracy.

  logits [b, T, vocab] float32, ids [b, T] int32, mask [b, T] float (1 = a caption token).
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, ids)
  mask = mask.astype(jnp.float32)
  n = jnp.maximum(mask.sum(), 1.0)
  accuracy = jnp.sum((logits.argmax(-1) == ids) * mask) / n
  return jnp.sum(ce * mask) / n, accuracy
