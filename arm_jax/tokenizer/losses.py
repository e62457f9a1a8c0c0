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


def caption_loss(logits: jax.Array, ids: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Masked next-token cross-entropy and token accuracy.

  logits [b, T, vocab] float32, ids [b, T] int32, mask [b, T] float (1 = a caption token).
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, ids)
  mask = mask.astype(jnp.float32)
  n = jnp.maximum(mask.sum(), 1.0)
  accuracy = jnp.sum((logits.argmax(-1) == ids) * mask) / n
  return jnp.sum(ce * mask) / n, accuracy
