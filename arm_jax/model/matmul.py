"""A dense-layer matmul whose weight gradient needs no strided transpose on XLA:CPU.

For y = x @ w, autodiff's weight gradient is dot(x, dy) contracting the token axis of both.
XLA:CPU lays that out by transposing dy ([tokens, out] -> [out, tokens]) inside the fusion that
computes dy, and a strided loop over several inputs ran slower than the matmuls themselves: in
the toy's SwiGLU the silu-derivative transposes alone took a sixth of the train step. Asking for
dw^T = dy^T x and transposing the small [out, in] result moves the transpose onto x, a plain
array. Same numbers as autodiff (tests/model/test_matmul.py); 1.7x faster toy train step on a
2-core Xeon (benchmarks/train_mfu.py). Accelerators pick their own layouts either way.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
  """x [..., in] @ w [in, out] -> [..., out]."""
  return jnp.einsum("...i,io->...o", x, w)


def _matmul_fwd(x, w):
  return matmul(x, w), (x, w)


def _matmul_bwd(res, g):
  x, w = res
  dw = jnp.einsum("no,ni->oi", g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])).T
  return jnp.einsum("...o,io->...i", g, w), dw.astype(w.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


def dot_general(x, w, dimension_numbers, precision=None, preferred_element_type=None,
                out_sharding=None):
  """`jax.lax.dot_general` for nnx.Linear (`dot_general=`): a dense layer goes to `matmul`,
  anything else to lax."""
  (cx, cw), (bx, bw) = dimension_numbers
  dense = (w.ndim == 2 and tuple(cx) == (x.ndim - 1,) and tuple(cw) == (0,) and not bx
           and not bw and precision is None and preferred_element_type is None
           and out_sharding is None)
  if not dense:
    return jax.lax.dot_general(x, w, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type,
                               out_sharding=out_sharding)
  return matmul(x, w)
