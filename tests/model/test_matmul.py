"""The dense-layer matmul with a hand-written backward matches autodiff's numbers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arm_jax.model.matmul import dot_general, matmul


def _reference(x, w):
  return jnp.einsum("...i,io->...o", x, w)


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_value_and_gradients_match_autodiff(shape, dtype):
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, shape, dtype)
  w = jax.random.normal(kw, (5, 7), dtype)
  cot = jax.random.normal(kg, shape[:-1] + (7,), dtype)
  y, vjp = jax.vjp(matmul, x, w)
  y_ref, vjp_ref = jax.vjp(_reference, x, w)
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32), rtol=tol,
                             atol=tol)
  for got, want in zip(vjp(cot), vjp_ref(cot)):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               rtol=tol, atol=tol * 5)


def test_linear_layer_uses_it_and_keeps_its_gradient():
  layer = nnx.Linear(4, 3, dot_general=dot_general, rngs=nnx.Rngs(0))
  plain = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 5, 4))
  loss = lambda m: jnp.sum(jnp.sin(m(x)))
  g, g_ref = nnx.grad(loss)(layer), nnx.grad(loss)(plain)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_other_contractions_fall_back_to_lax():
  x = jnp.arange(6.0).reshape(2, 3)
  w = jnp.arange(12.0).reshape(4, 3)
  dims = (((1,), (1,)), ((), ()))   # x @ w.T: not a dense layer's layout
  np.testing.assert_allclose(dot_general(x, w, dims), x @ w.T)
