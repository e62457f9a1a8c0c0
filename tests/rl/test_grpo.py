import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arm_jax.config import load_config
from arm_jax.errors import UserError
from arm_jax.model.transformer import Decoder, ModelConfig
from arm_jax.rl import grpo

L = np.log


def test_loss_hand_computed():
  logp = jnp.array([[L(.5), L(.25)], [L(.1), L(.9)]])
  old = jnp.array([[L(.25), L(.25)], [L(.2), L(.3)]])
  ref = jnp.array([[L(.5), L(.5)], [L(.1), L(.2)]])
  adv = jnp.array([1.0, -1.0])
  mask = jnp.array([[1.0, 1.0], [1.0, 0.0]])
  loss, m = grpo.grpo_token_loss(logp, old, ref, adv, mask, clip_eps=0.2, beta=0.1)
  # row 0: ratio 2 -> clipped 1.2; ratio 1 -> 1, k3 = 2 - ln 2 - 1. row 1: ratio .5, A=-1 ->
  # min(-.5, -.8) = -.8, k3 = 0. Masked entry ignored. Mean over 3 tokens, negated.
  k3 = 2 - np.log(2) - 1
  expected = -((1.2) + (1 - 0.1 * k3) + (-0.8)) / 3
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
  np.testing.assert_allclose(float(m["clip_frac"]), 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(float(m["kl"]), k3 / 3, rtol=1e-6)


def test_gradient_only_on_masked_positions():
  key = jax.random.key(0)
  logp = jax.random.normal(key, (3, 5)) - 2.0
  mask = jnp.array([[0, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], jnp.float32)
  g = jax.grad(lambda lp: grpo.grpo_token_loss(
      lp, logp - 0.1, logp + 0.3, jnp.array([1.0, -2.0, 0.5]), mask,
      clip_eps=0.2, beta=0.05)[0])(logp)
  assert np.all(np.asarray(g)[np.asarray(mask) == 0] == 0)
  assert np.all(np.asarray(g)[np.asarray(mask) == 1] != 0)


@pytest.fixture(scope="module")
def tiny():
  cfg = load_config("shapes_tiny", [
      "--config.model.d_model=32", "--config.model.n_layers=1", "--config.model.n_heads=2",
      "--config.model.n_kv_heads=1", "--config.model.head_dim=16", "--config.model.d_ff=64",
      "--config.model.dtype='float32'"])
  mc = ModelConfig.from_config(cfg.model)
  v = mc.vocab
  graphdef, params = nnx.split(Decoder(mc, rngs=nnx.Rngs(0)))
  prompt = jnp.array([[v.bos, 5, 6, v.boi, v.height_token(2), v.width_token(2)]] * 4)
  codes = jax.random.randint(jax.random.key(1), (4, 4), 0, v.image_size) + v.image_offset
  tokens = jnp.concatenate([prompt, codes, jnp.full((4, 1), v.eoi)], axis=1)
  mask = v.is_image(tokens[:, 1:]).astype(jnp.float32)
  logp = jax.jit(lambda p: grpo.image_token_logp(nnx.merge(graphdef, p), tokens, v))(params)
  batch = {"tokens": tokens, "loss_mask": mask, "old_logp": logp, "ref_logp": logp,
           "advantages": jnp.zeros(4)}

  @functools.cache
  def loss_and_grads(beta):
    cfg = grpo.GRPOConfig(group_size=2, beta=beta, clip_eps=0.2)
    def f(p, b):
      return grpo.grpo_loss(nnx.merge(graphdef, p), b, None, cfg=cfg, vocab=v)
    return jax.jit(jax.value_and_grad(f, has_aux=True))

  def run(beta, drop=(), **change):
    b = {k: x for k, x in dict(batch, **change).items() if k not in drop}
    return loss_and_grads(beta)(params, b)
  run.model = nnx.merge(graphdef, params)
  run.tokens, run.vocab = tokens, v
  return run


def _max_abs(tree):
  return max(float(jnp.abs(x).max()) for x in jax.tree.leaves(tree))


def test_zero_advantage_gives_zero_policy_gradient(tiny):
  # KL on in the batch (reference differs) but beta = 0: only the policy term is left.
  (_, _), grads = tiny(0.0, ref_logp=jnp.full((4, 10), -3.0))
  assert _max_abs(grads) == 0.0
  adv = jnp.array([1.0, -1.0, 0.5, -0.5])
  (loss, _), grads = tiny(0.0, advantages=adv)
  assert _max_abs(grads) > 0.0
  # on-policy (mu = 1, no old_logp in the batch): the same loss and gradients
  (loss1, _), grads1 = tiny(0.0, drop=("old_logp",), advantages=adv)
  np.testing.assert_allclose(float(loss1), float(loss), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads1)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-8)


def test_kl_zero_when_policy_is_reference(tiny):
  (loss, metrics), grads = tiny(1.0)
  assert float(metrics["kl"]) == pytest.approx(0.0, abs=1e-7)
  assert float(loss) == pytest.approx(0.0, abs=1e-7)
  assert _max_abs(grads) < 1e-6   # k3 has zero gradient at policy == reference
  (_, metrics), grads = tiny(1.0, ref_logp=jnp.full((4, 10), -3.0))
  assert float(metrics["kl"]) > 0 and _max_abs(grads) > 0


def test_config_rejects_bad_values():
  with pytest.raises(UserError, match="group_size"):
    grpo.GRPOConfig(group_size=1)
  with pytest.raises(UserError, match="clip_eps"):
    grpo.GRPOConfig(clip_eps=1.5)


def test_right_padding_and_temperature(tiny):
  # A row followed by junk padding scores its own tokens exactly as without it (causality).
  v, tokens = tiny.vocab, tiny.tokens
  padded = jnp.concatenate([tokens, jnp.full((4, 3), 7, jnp.int32)], axis=1)
  temperature = jnp.full((4,), 0.7)
  plain = grpo.image_token_logp(tiny.model, tokens, v, temperature)
  right = grpo.image_token_logp(tiny.model, padded, v, temperature)
  np.testing.assert_allclose(np.asarray(right[:, :plain.shape[1]]), np.asarray(plain), atol=1e-5)
  hot = grpo.image_token_logp(tiny.model, tokens, v)
  assert not np.allclose(np.asarray(hot[:, 5:9]), np.asarray(plain[:, 5:9]))  # temperature used
