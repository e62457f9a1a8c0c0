"""The code-entropy regulariser: soft FSQ assignments and LFQ's entropy loss."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arm_jax.tokenizer.fsq import FSQ
from arm_jax.tokenizer.losses import code_entropy_loss


def test_soft_assignment_tend_to_the_hard_rounding():
  fsq = FSQ((8, 5, 3))
  z = jax.random.normal(jax.random.key(0), (64, 3)) * 2
  probs = fsq.soft_assignment(z, temperature=1e-3)
  assert [p.shape for p in probs] == [(64, 8), (64, 5), (64, 3)]
  digits = jnp.stack([p.argmax(-1) for p in probs], -1)
  idx = jnp.sum(digits * jnp.asarray(fsq.basis), -1)
  np.testing.assert_array_equal(np.asarray(idx), np.asarray(fsq(z)[1]))
  for p in probs:
    np.testing.assert_allclose(np.asarray(p.sum(-1)), 1.0, rtol=1e-6)


def test_vq_soft_assignment_tends_to_the_nearest_code():
  from flax import nnx
  from arm_jax.tokenizer.vq import VQ
  vq = VQ(12, 4, rngs=nnx.Rngs(0))
  z = jax.random.normal(jax.random.key(3), (32, 4))
  (p,) = vq.soft_assignment(z, temperature=1e-3)
  np.testing.assert_array_equal(np.asarray(p.argmax(-1)), np.asarray(vq(z)[1]))
  np.testing.assert_allclose(np.asarray(p.sum(-1)), 1.0, rtol=1e-5)


def test_entropy_loss_hand_computed():
  one_hot = lambda i, n: jax.nn.one_hot(jnp.asarray(i), n)
  # Four tokens on four distinct joint codes of a (2, 2) codebook: -log 4 (confident, spread).
  spread = code_entropy_loss([one_hot([0, 0, 1, 1], 2), one_hot([0, 1, 0, 1], 2)])
  np.testing.assert_allclose(float(spread), -np.log(4), rtol=1e-6)
  # All on one code: 0 (confident, collapsed).
  same = code_entropy_loss([one_hot([1, 1, 1, 1], 2), one_hot([0, 0, 0, 0], 2)])
  np.testing.assert_allclose(float(same), 0.0, atol=1e-6)
  # Each token uniform over the codebook: per-token log 4 minus batch log 4 = 0.
  uniform = code_entropy_loss([jnp.full((4, 2), 0.5), jnp.full((4, 2), 0.5)])
  np.testing.assert_allclose(float(uniform), 0.0, atol=1e-6)


def test_entropy_gradient_spreads_collapsed_latents():
  fsq = FSQ((5, 5))
  z0 = 0.05 * jax.random.normal(jax.random.key(1), (256, 2))   # all near the centre code
  grad = jax.grad(lambda v: code_entropy_loss(fsq.soft_assignment(v, 0.5)))
  z = jax.jit(lambda v: jax.lax.fori_loop(0, 200, lambda _, u: u - 0.5 * grad(u), v))(z0)
  before = len(np.unique(np.asarray(fsq(z0)[1])))
  after = len(np.unique(np.asarray(fsq(z)[1])))
  assert before <= 2 and after >= 15, (before, after)


def test_balanced_average_counts_each_code_once():
  one_hot = lambda i, n: jax.nn.one_hot(jnp.asarray(i), n)
  probs = [one_hot([0, 0, 0, 1], 2), one_hot([0, 0, 0, 0], 2)]
  codes = jnp.asarray([0, 0, 0, 1])
  plain = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
  np.testing.assert_allclose(float(code_entropy_loss(probs)), -plain, rtol=1e-6)
  np.testing.assert_allclose(float(code_entropy_loss(probs, codes)), -np.log(2), rtol=1e-6)


def test_balancing_spreads_the_rest_not_the_dominant_code():
  """230 of 256 tokens on one code (a flat background): plain, descent splits them; balanced,
  they stay on one code and the other 26 spread over more codes."""
  fsq = FSQ((5, 5))
  k1, k2 = jax.random.split(jax.random.key(2))
  z0 = jnp.concatenate([0.02 * jax.random.normal(k1, (230, 2)),
                        0.7 * jax.random.normal(k2, (26, 2))])

  def descend(balanced):
    def step(_, v):
      c = fsq(v)[1] if balanced else None
      return v - 0.5 * jax.grad(lambda u: code_entropy_loss(fsq.soft_assignment(u, 0.5), c))(v)
    codes = np.asarray(fsq(jax.jit(lambda v: jax.lax.fori_loop(0, 200, step, v))(z0))[1])
    return len(np.unique(codes[:230])), len(np.unique(codes[230:]))

  start = np.asarray(fsq(z0)[1])
  assert len(np.unique(start[:230])) == 1
  plain_dominant, _ = descend(False)
  dominant, rest = descend(True)
  assert plain_dominant >= 4 and dominant == 1, (plain_dominant, dominant)
  assert rest > len(np.unique(start[230:])), rest


def test_tokenizer_loss_reports_the_entropy_term(tiny_tok):
  from flax import nnx
  from arm_jax.config import load_config
  from arm_jax.tokenizer.train_teacher import teacher_fn
  from arm_jax.tokenizer.train_tokenizer import make_loss, tokenizer_fn
  cfg = load_config("shapes_tiny", tiny_tok + ["--config.tokenizer.fsq_levels=(4,4)",
                                               "--config.model.image_vocab_size=16"])
  teacher = teacher_fn(cfg)(nnx.Rngs(1))
  model = tokenizer_fn(cfg)(nnx.Rngs(0))
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
           "text": rng.integers(0, 500, (4, 16)).astype(np.int32)}
  weights = {"w_pixel": 1.0, "w_feature": 0.0, "w_sigmoid": 0.0, "w_caption": 0.0}
  loss, metrics = make_loss(teacher, weights, w_entropy=0.5)(model, batch, jax.random.key(0))
  base, _ = make_loss(teacher, weights)(model, batch, jax.random.key(0))
  np.testing.assert_allclose(float(loss - base), float(metrics["entropy"]), rtol=1e-5)
  assert float(metrics["entropy"]) < 0
  # VQ: one factor over the codebook; the same regulariser applies.
  cfg_vq = load_config("shapes_tiny", tiny_tok + ["--config.tokenizer.quantizer=vq",
                                                  "--config.tokenizer.vq_codebook_size=16",
                                                  "--config.model.image_vocab_size=16"])
  vq = tokenizer_fn(cfg_vq)(nnx.Rngs(0))
  _, metrics = make_loss(teacher, weights, w_entropy=0.5)(vq, batch, jax.random.key(0))
  assert float(metrics["entropy"]) < 0
