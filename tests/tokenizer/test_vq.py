"""VQ: nearest-code assignment, straight-through gradient, and dead codes revived."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arm_jax.tokenizer.vq import VQ


def test_assignment_matches_brute_force():
  vq = VQ(37, 5, rngs=nnx.Rngs(0))
  z = jax.random.normal(jax.random.key(3), (4, 25, 5))
  z_q, idx, _ = vq(z)
  zn = np.asarray(z).reshape(-1, 5)
  zn = zn / np.linalg.norm(zn, axis=-1, keepdims=True)
  cb = np.asarray(vq.codebook[...])
  cb = cb / np.linalg.norm(cb, axis=-1, keepdims=True)
  brute = [min(range(37), key=lambda k: float(np.sum((v - cb[k]) ** 2))) for v in zn]
  np.testing.assert_array_equal(np.asarray(idx).reshape(-1), brute)
  np.testing.assert_allclose(np.asarray(z_q).reshape(-1, 5), cb[brute], atol=1e-5)
  np.testing.assert_allclose(np.asarray(vq.indices_to_codes(idx)), np.asarray(z_q), atol=1e-5)


def test_straight_through_gradient():
  vq = VQ(16, 4, rngs=nnx.Rngs(0))
  z = jax.random.normal(jax.random.key(1), (10, 4))
  w = jax.random.normal(jax.random.key(2), (10, 4))
  unit = lambda v: v / jnp.linalg.norm(v, axis=-1, keepdims=True)
  g = jax.grad(lambda v: jnp.sum(vq(v)[0] * w))(z)
  g_ref = jax.grad(lambda v: jnp.sum(unit(v) * w))(z)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-4, atol=1e-6)


def _usage_after_training(revive: bool, steps: int = 100) -> tuple[int, int]:
  """Data on 8 directions; all 32 codes start in the opposite hemisphere except two."""
  dirs = jax.random.normal(jax.random.key(0), (8, 4)).at[:, 0].set(3.0)
  vq = VQ(32, 4, revive_dead=revive, rngs=nnx.Rngs(0))
  cb = jax.random.normal(jax.random.key(1), (32, 4)).at[:, 0].set(-3.0)
  vq.codebook[...] = cb.at[:2].set(dirs[:2])
  graphdef, params = nnx.split(vq)
  tx = optax.adam(0.1)
  opt = tx.init(params)

  def loss(p, z, key):
    _, idx, terms = nnx.merge(graphdef, p)(z, key)
    return sum(terms.values()), idx

  @jax.jit
  def step(p, opt, key):
    k1, k2 = jax.random.split(key)
    z = dirs[jax.random.randint(k1, (256,), 0, 8)] + 0.05 * jax.random.normal(k2, (256, 4))
    (_, idx), g = jax.value_and_grad(loss, has_aux=True)(p, z, key)
    updates, opt = tx.update(g, opt)
    return optax.apply_updates(p, updates), opt, idx

  key = jax.random.key(5)
  _, _, first = step(params, opt, key)
  for i in range(steps):
    params, opt, idx = step(params, opt, jax.random.fold_in(key, i))
  return len(np.unique(np.asarray(first))), len(np.unique(np.asarray(idx)))


def test_dead_codes_revived():
  before, after = _usage_after_training(revive=True)
  _, without = _usage_after_training(revive=False)
  assert before <= 2
  assert after >= 8      # at least one live code per data direction
  assert without <= 2    # without the revive term the far codes stay dead
