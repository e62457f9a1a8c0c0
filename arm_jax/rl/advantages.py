"""Advantage estimators: per-rollout rewards of G samples per prompt -> one advantage per rollout.

Rollouts are laid out prompt-major: rows [i*G, (i+1)*G) are the G samples of prompt i, so a
[B] reward vector reshapes to [P, G]. Estimators are pure functions registered by name
(config key `rl.advantage`); a variant is a few lines:

    @register_advantage("my_estimator")
    def my_estimator(rewards_pg):
      return rewards_pg - rewards_pg.max(axis=1, keepdims=True)
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from arm_jax.errors import UserError

# fn(rewards [P, G] float32) -> advantages [P, G] float32
AdvantageFn = Callable[[jax.Array], jax.Array]
_ADVANTAGES: dict[str, AdvantageFn] = {}


def register_advantage(name: str):
  def wrap(fn: AdvantageFn) -> AdvantageFn:
    _ADVANTAGES[name] = fn
    return fn
  return wrap


@register_advantage("grpo")
def grpo(rewards_pg: jax.Array, eps: float = 1e-4) -> jax.Array:
  """GRPO (DeepSeekMath): (r - mean_group) / (std_group + eps).

  A group whose rewards are all equal gets zero advantage (nothing to prefer).
  """
  mean = rewards_pg.mean(axis=1, keepdims=True)
  std = rewards_pg.std(axis=1, keepdims=True)
  return (rewards_pg - mean) / (std + eps)


@register_advantage("dr_grpo")
def dr_grpo(rewards_pg: jax.Array) -> jax.Array:
  """Dr. GRPO (Liu et al. 2025): r - mean_group, no std division (no bias toward easy groups)."""
  return rewards_pg - rewards_pg.mean(axis=1, keepdims=True)


@register_advantage("rloo")
def rloo(rewards_pg: jax.Array) -> jax.Array:
  """RLOO (Ahmadian et al. 2024): r_i minus the mean of the other G-1 rewards of its group."""
  g = rewards_pg.shape[1]
  others = (rewards_pg.sum(axis=1, keepdims=True) - rewards_pg) / (g - 1)
  return rewards_pg - others


def advantage_names() -> list[str]:
  return sorted(_ADVANTAGES)


def get_advantage(name: str) -> AdvantageFn:
  if name not in _ADVANTAGES:
    raise UserError(f"unknown advantage estimator '{name}'; set rl.advantage to one of: "
                    f"{', '.join(advantage_names())}")
  return _ADVANTAGES[name]


def compute_advantages(name: str, rewards: jax.Array, group_size: int) -> jax.Array:
  """rewards [P*G] (prompt-major) -> advantages [P*G] float32 with estimator `name`."""
  if group_size < 2 or rewards.shape[0] % group_size:
    raise UserError(f"rl.group_size must be >= 2 and divide the {rewards.shape[0]} rollouts; "
                    f"got {group_size}")
  rewards_pg = jnp.asarray(rewards, jnp.float32).reshape(-1, group_size)
  return get_advantage(name)(rewards_pg).reshape(-1)
