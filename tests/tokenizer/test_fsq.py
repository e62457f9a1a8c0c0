"""FSQ: every index maps to a distinct code and back; rounding passes gradients straight through."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arm_jax.tokenizer.fsq import FSQ, round_ste


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (3, 4), (2, 2, 2)])
def test_indices_codes_bijective(levels):
  fsq = FSQ(levels)
  idx = jnp.arange(fsq.codebook_size)
  codes = fsq.indices_to_codes(idx)
  assert codes.shape == (fsq.codebook_size, len(levels))
  assert float(jnp.abs(codes).max()) <= 1.0
  # Distinct codes, and back to the same indices.
  assert len(np.unique(np.asarray(codes), axis=0)) == fsq.codebook_size
  np.testing.assert_array_equal(np.asarray(fsq.codes_to_indices(codes)), np.asarray(idx))


def test_quantize_lands_on_grid_and_reaches_every_level():
  fsq = FSQ((8, 5))
  z = jnp.stack(jnp.meshgrid(jnp.linspace(-6, 6, 301), jnp.linspace(-6, 6, 301)), -1)
  z_q, idx, aux = fsq(z.reshape(-1, 2))
  assert aux == {}
  np.testing.assert_allclose(np.asarray(fsq.indices_to_codes(idx)), np.asarray(z_q), atol=1e-6)
  assert len(np.unique(np.asarray(idx))) == fsq.codebook_size


def test_round_ste_gradient_is_identity():
  x = jnp.linspace(-3.3, 3.3, 17)
  w = jnp.arange(17.0)
  g = jax.grad(lambda v: jnp.sum(round_ste(v) * w))(x)
  np.testing.assert_allclose(np.asarray(g), np.asarray(w))
  np.testing.assert_allclose(np.asarray(round_ste(x)), np.round(np.asarray(x)))


def test_quantize_gradient_is_the_bounds_gradient():
  fsq = FSQ((8, 5, 5, 5))
  z = jax.random.normal(jax.random.key(0), (6, 4))
  w = jax.random.normal(jax.random.key(1), (6, 4))
  _, half_width = fsq._consts()
  g_q = jax.grad(lambda v: jnp.sum(fsq.quantize(v) * w))(z)
  g_b = jax.grad(lambda v: jnp.sum(fsq.bound(v) / half_width * w))(z)
  np.testing.assert_allclose(np.asarray(g_q), np.asarray(g_b), rtol=1e-6)
  assert float(jnp.abs(g_q).min()) > 0


def test_bad_levels():
  with pytest.raises(ValueError, match="levels"):
    FSQ((8, 1))
