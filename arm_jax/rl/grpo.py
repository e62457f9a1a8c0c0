"""GRPO (DeepSeekMath, Shao et al. 2024) on image tokens: clipped ratio + k3 KL to a reference.

For a rollout batch of P prompts x G samples, with per-token log-probs of the policy being
trained (logp), of the policy that drew the samples (old_logp, fixed for all mu updates) and of
the frozen reference (ref_logp), and one advantage A per sample (or per token, with
rl.cell_credit: arm_jax/rl/credit.py):

    ratio  = exp(logp - old_logp)
    policy = min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)
    kl     = exp(ref_logp - logp) - (ref_logp - logp) - 1          (the k3 estimator, >= 0)
    loss   = -mean over image tokens of (policy - beta * kl)

Only positions whose target is a generated image code count (`loss_mask`): prompt text, the
source image of an edit and the <boi>/shape/<eoi> tokens the grammar forces carry no choice.
Every image has the same number of codes, so the token mean equals GRPO's per-sequence mean.
Log-probs are over the image head alone (the grammar masks everything else inside an image) at
the row's sampling temperature. The old and reference log-probs are recomputed by the same
teacher-forced forward (not taken from the sampler's KV-cache pass), so the first update's
ratio is exactly 1.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from arm_jax.errors import UserError
from arm_jax.model.vocab import VocabLayout


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRPOConfig:
  """The algorithm's knobs, named as in the GRPO paper (from `config.rl`).

  group_size: G, rollouts per prompt.        beta: KL weight to the reference.
  clip_eps: epsilon of the clipped ratio.    updates_per_batch: mu, updates per rollout batch.
  """
  group_size: int = 16
  beta: float = 0.01
  clip_eps: float = 0.2
  updates_per_batch: int = 1
  advantage: str = "grpo"

  def __post_init__(self):
    if self.group_size < 2:
      raise UserError(f"rl.group_size must be >= 2 (advantages compare samples); got "
                      f"{self.group_size}")
    if self.beta < 0 or not 0 < self.clip_eps < 1:
      raise UserError(f"rl.beta must be >= 0 and rl.clip_eps in (0, 1); got beta={self.beta}, "
                      f"clip_eps={self.clip_eps}")
    if self.updates_per_batch < 1:
      raise UserError(f"rl.updates_per_batch must be >= 1; got {self.updates_per_batch}")

  @staticmethod
  def from_config(rl_cfg) -> "GRPOConfig":
    return GRPOConfig(group_size=rl_cfg.group_size, beta=rl_cfg.beta, clip_eps=rl_cfg.clip_eps,
                      updates_per_batch=rl_cfg.updates_per_batch, advantage=rl_cfg.advantage)


def image_token_logp(model, tokens: jax.Array, vocab: VocabLayout,
                     temperature: jax.Array | None = None) -> jax.Array:
  """Teacher-forced log-probs of each next token under the image head.

  tokens [B, T] int32, each row a real sequence followed by padding (causal attention never
  looks ahead, so right padding changes nothing and no attention mask is needed: the fused
  causal kernels apply); temperature [B] (None = 1): the sampling temperature the log-probs are
  taken at (as TRL's GRPO does, so the ratio compares the distributions samples came from).
  Returns [B, T-1] float32; position t scores tokens[:, t+1]. Entries whose target is not an
  image code are garbage (index clipped) and must be masked by the caller.
  """
  h, _ = model.hidden(tokens[:, :-1])
  logits = model.image_logits(h).astype(jnp.float32)
  if temperature is not None:
    logits = logits / temperature[:, None, None]
  logp = jax.nn.log_softmax(logits, axis=-1)
  codes = jnp.clip(tokens[:, 1:] - vocab.image_offset, 0, vocab.image_size - 1)
  return jnp.take_along_axis(logp, codes[..., None], axis=-1)[..., 0]


def kl_k3(logp: jax.Array, ref_logp: jax.Array) -> jax.Array:
  """Per-token k3 estimate of KL(policy || reference): exp(r - l) - (r - l) - 1, >= 0."""
  d = ref_logp - logp
  return jnp.exp(d) - d - 1.0


def clipped_objective(logp: jax.Array, old_logp: jax.Array, adv_b: jax.Array,
                      eps: float) -> tuple[jax.Array, jax.Array]:
  """Per-token PPO/GRPO surrogate (to maximise) and whether the clip was active.

  logp, old_logp [B, L]; adv_b [B] (one per sample) or [B, L] (per token, rl/credit.py)
  -> ([B, L] objective, [B, L] bool clipped).
  """
  ratio = jnp.exp(logp - old_logp)
  adv = adv_b[:, None] if adv_b.ndim == 1 else adv_b
  unclipped = ratio * adv
  clipped = jnp.clip(ratio, 1.0 - eps, 1.0 + eps) * adv
  return jnp.minimum(unclipped, clipped), clipped < unclipped


def grpo_token_loss(logp, old_logp, ref_logp, adv_b, mask, *, clip_eps: float, beta: float):
  """The GRPO loss from log-probs: all [B, L] float32, adv_b [B] or [B, L]. -> (loss, metrics)."""
  mask = mask.astype(jnp.float32)
  n = jnp.maximum(mask.sum(), 1.0)
  objective, was_clipped = clipped_objective(logp, old_logp, adv_b, clip_eps)
  kl = kl_k3(logp, ref_logp)
  loss = -((objective - beta * kl) * mask).sum() / n
  metrics = {"kl": (kl * mask).sum() / n,
             "clip_frac": (was_clipped * mask).sum() / n,
             "ratio": (jnp.exp(logp - old_logp) * mask).sum() / n,
             "sample_nll": -(logp * mask).sum() / n}
  return loss, metrics


def grpo_loss(model, batch: dict, rng: jax.Array, *, cfg: GRPOConfig, vocab: VocabLayout):
  """A `LossFn` for the shared train step.

  batch: tokens [B, T] int32 (right-padded); loss_mask, old_logp, ref_logp [B, T-1] float32;
  advantages [B] or [B, T-1] float32; temperature [B] float32 (optional). Without
  old_logp the update is on-policy (mu = 1): old = stop_gradient(logp), ratio exactly 1, which
  saves the separate forward pass that would compute the same numbers.
  """
  del rng
  logp = image_token_logp(model, batch["tokens"], vocab, batch.get("temperature"))
  old = batch["old_logp"] if "old_logp" in batch else jax.lax.stop_gradient(logp)
  return grpo_token_loss(logp, old, batch["ref_logp"], batch["advantages"],
                         batch["loss_mask"], clip_eps=cfg.clip_eps, beta=cfg.beta)
