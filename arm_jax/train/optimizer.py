"""AdamW with warmup-cosine schedule and global-norm clipping; non-finite steps are skipped.

`optax.apply_if_finite` turns a NaN/Inf gradient into a skipped update and counts consecutive
skips in its state; the loop reads that count and halts after `train.max_nan_steps`, so a
poisoned update is never applied (the inner limit is set out of reach on purpose).
"""
from __future__ import annotations

import jax
import optax

_NEVER = 2**30


def learning_rate_schedule(tcfg) -> optax.Schedule:
  warmup = min(tcfg.warmup_steps, max(tcfg.steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=tcfg.lr, warmup_steps=warmup,
      decay_steps=max(tcfg.steps, warmup + 1), end_value=tcfg.lr * tcfg.end_lr_factor)


def _decay_mask(params):
  # Decay matrices only: norm scales and biases are left alone, as in Qwen/Llama recipes.
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(tcfg) -> optax.GradientTransformation:
  """`tcfg` has the fields of `config.train` (lr, steps, warmup_steps, b1, b2, ...)."""
  tx = optax.chain(
      optax.clip_by_global_norm(tcfg.clip_norm),
      optax.adamw(learning_rate_schedule(tcfg), b1=tcfg.b1, b2=tcfg.b2,
                  weight_decay=tcfg.weight_decay, mask=_decay_mask),
  )
  return optax.apply_if_finite(tx, max_consecutive_errors=_NEVER)


def nonfinite_streak(opt_state) -> jax.Array:
  """Consecutive skipped (non-finite) steps so far, from the apply_if_finite state."""
  return opt_state.notfinite_count
