"""The sharded train step: jax.jit over the split NNX state with explicit shardings (pjit).

One call is one optimizer step: the global batch is cut into `grad_accum` micro-batches that a
`lax.scan` runs in turn, summing gradients, so step counts, data positions and checkpoints stay
aligned whatever the accumulation. Every stage (teacher, tokenizer, AR pretraining, GRPO)
trains through this step with its own loss function.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from arm_jax import sharding as shd
from arm_jax.train.optimizer import nonfinite_streak
from arm_jax.train.state import StateSpec

# loss_fn(model, batch, rng) -> (scalar loss, {name: scalar} metrics)
LossFn = Callable[[nnx.Module, dict, jax.Array], tuple[jax.Array, dict]]


def lm_loss(model: nnx.Module, batch: dict, rng: jax.Array, *, z_loss: float = 0.0):
  """Masked next-token cross-entropy.

  batch: inputs, targets [batch, len] int32; loss_mask [batch, len] f32 (each
  target token's weight: 0 off, 1, or its format's data.loss_weights); packed rows also
  segment_ids and positions [batch, len] int32.
  Returns (mean loss over target tokens, metrics).
  """
  del rng
  h, _ = model.hidden(batch["inputs"], batch.get("positions"),
                      segment_ids=batch.get("segment_ids"))
  target, log_z, max_logit = model.target_scores(h, batch["targets"])
  mask = batch["loss_mask"].astype(jnp.float32)
  n = jnp.maximum(mask.sum(), 1.0)
  loss = ((log_z - target) * mask).sum() / n
  # A target that ties the top logit counts as right; ties in f32 logits do not happen in
  # practice, and this skips an argmax pass over the vocabulary.
  metrics = {"ce": loss, "target_tokens": (mask > 0).sum(),
             "accuracy": ((target >= max_logit) * mask).sum() / n}
  if z_loss:
    loss = loss + z_loss * ((log_z ** 2) * mask).sum() / n
  return loss, metrics


def _micro_batches(batch: dict, n: int) -> dict:
  return jax.tree.map(lambda x: x.reshape((n, x.shape[0] // n) + x.shape[1:]), batch)


def make_train_step(spec: StateSpec, tx: optax.GradientTransformation, loss_fn: LossFn,
                    rules, *, grad_accum: int = 1, schedule: optax.Schedule | None = None,
                    batch_example: dict | None = None):
  """Returns step(state, batch) -> (state, metrics), jitted with the state's shardings.

  The input state is donated. Metrics are replicated scalars.
  """

  def grads_of(params, batch, rng):
    def f(p):
      return loss_fn(spec.model(p), batch, rng)
    (loss, metrics), grads = jax.value_and_grad(f, has_aux=True)(params)
    return grads, dict(metrics, loss=loss)

  def step(state, batch):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
    if grad_accum == 1:
      grads, metrics = grads_of(state["params"], batch, rng)
    else:
      def body(carry, micro):
        i, acc_g, acc_m = carry
        g, m = grads_of(state["params"], micro, jax.random.fold_in(rng, i))
        return (i + 1, jax.tree.map(jnp.add, acc_g, g), jax.tree.map(jnp.add, acc_m, m)), None
      zeros_g = jax.tree.map(jnp.zeros_like, state["params"])
      _, zeros_m = jax.eval_shape(grads_of, state["params"], jax.tree.map(
          lambda x: x[0], _micro_batches(batch, grad_accum)), rng)
      zeros_m = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros_m)
      (_, grads, metrics), _ = jax.lax.scan(body, (0, zeros_g, zeros_m),
                                            _micro_batches(batch, grad_accum))
      grads = jax.tree.map(lambda g: g / grad_accum, grads)
      metrics = jax.tree.map(lambda m: m / grad_accum, metrics)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["nonfinite_streak"] = nonfinite_streak(opt_state)
    if schedule is not None:
      metrics["lr"] = schedule(state["step"])
    new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1,
                 "rng": state["rng"]}
    return new_state, metrics

  batch_sh = None
  if batch_example is not None:
    batch_sh = {k: shd.batch_sharding(spec.mesh, rules, v.ndim) for k, v in batch_example.items()}
  jitted = jax.jit(step, in_shardings=(spec.shardings, batch_sh),
                   out_shardings=(spec.shardings, shd.replicated(spec.mesh)), donate_argnums=0)

  def call(state, batch):
    # The mesh and logical rules must be current while tracing (for activation constraints).
    with shd.use_mesh(spec.mesh, rules):
      return jitted(state, batch)

  call.jitted = jitted
  return call
