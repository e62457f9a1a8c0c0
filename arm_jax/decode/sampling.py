"""Picking one token per row from logits: temperature, top-k, top-p (nucleus), greedy.

Every knob is a per-row array, so one compiled sampler serves rows with different settings (RL
mixes T2I rows at temperature 0.7 with editing rows at 1.0) and changing a value never
recompiles. Each row draws from its own key, so a row's sample does not depend on which other
rows share its batch or how the batch was padded.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


def filter_top_k_top_p(logits: jax.Array, top_k: jax.Array, top_p: jax.Array) -> jax.Array:
  """Sets logits outside the top-k, then outside the top-p mass, to -inf.

  logits [B, V] float32 (already divided by the temperature); top_k [B] int32 (0 = off);
  top_p [B] float32 (1 = off). As in Hugging Face's processors, top-p is taken over the
  distribution renormalised after top-k. Ties with the threshold logit are kept.
  """
  vocab = logits.shape[-1]
  sorted_desc = -jnp.sort(-logits, axis=-1)
  k = jnp.where(top_k > 0, jnp.minimum(top_k, vocab), vocab)
  rank = jnp.arange(vocab)[None, :]
  in_k = rank < k[:, None]
  probs = jax.nn.softmax(jnp.where(in_k, sorted_desc, NEG_INF), axis=-1)
  # Keep a sorted entry while the mass strictly before it is below p: the smallest prefix whose
  # mass reaches p, and always at least the top entry.
  keep = in_k & ((jnp.cumsum(probs, axis=-1) - probs) < top_p[:, None])
  keep = keep.at[:, 0].set(True)
  n_keep = keep.sum(axis=-1)
  threshold = jnp.take_along_axis(sorted_desc, (n_keep - 1)[:, None], axis=-1)
  return jnp.where(logits >= threshold, logits, NEG_INF)


def sample_tokens(keys: jax.Array, logits: jax.Array, temperature: jax.Array,
                  top_k: jax.Array, top_p: jax.Array) -> jax.Array:
  """One token per row.

  keys: [B] typed PRNG keys; logits [B, V] float32 (disallowed entries already -inf);
  temperature [B] float32 (0 = greedy); top_k [B] int32; top_p [B] float32.
  Returns [B] int32.
  """
  greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  scaled = logits / jnp.where(temperature > 0, temperature, 1.0)[:, None]
  # The sort behind top-k/top-p is the costliest part of a step at a large vocabulary: skip it
  # when no row asks for filtering.
  needs_filter = jnp.any(top_k > 0) | jnp.any(top_p < 1.0)
  scaled = jax.lax.cond(needs_filter, filter_top_k_top_p, lambda x, *_: x, scaled, top_k, top_p)
  # Drawing costs a threefry hash per vocabulary entry per row: skip it for all-greedy batches.
  drawn = jax.lax.cond(jnp.any(temperature > 0),
                       lambda: jax.vmap(jax.random.categorical)(keys, scaled).astype(jnp.int32),
                       lambda: greedy)
  return jnp.where(temperature > 0, drawn, greedy)
