"""One attention function; the kernel is a config value (`model.attention`).

xla    : jax.nn.dot_product_attention's XLA path (CPU, any backend, any mask)
cudnn  : cuDNN fused attention on GPU (causal training; measured 65-69% MFU vs 37% on an H100)
splash : the Pallas splash-attention kernel on TPU (causal training)

Cached decoding needs an arbitrary key mask (left padding, cache slots not yet written), so it
always takes the XLA path; the fused kernels are for the training forward.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from arm_jax.errors import UserError

KERNELS = ("xla", "cudnn", "splash")


def attend(q: jax.Array, k: jax.Array, v: jax.Array, *, impl: str = "xla",
           mask: jax.Array | None = None) -> jax.Array:
  """Grouped-query attention.

  Args:
    q: [batch, q_len, heads, head_dim]
    k, v: [batch, kv_len, kv_heads, head_dim]; heads must be a multiple of kv_heads.
    impl: one of KERNELS.
    mask: None for plain causal attention over q_len == kv_len, else a boolean
      [batch, 1, q_len, kv_len] mask of the keys each query may see.
  Returns:
    [batch, q_len, heads, head_dim] in q's dtype.
  """
  if impl not in KERNELS:
    raise UserError(f"model.attention='{impl}' is not a kernel; use one of {', '.join(KERNELS)}")
  if mask is not None or impl == "xla":
    return jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=mask is None,
                                        implementation="xla")
  if impl == "cudnn":
    return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")
  return _splash(q, k, v)


def _splash(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
  """Causal splash attention (TPU). The kernel works per head on [heads, len, head_dim]."""
  if jax.devices()[0].platform != "tpu":
    raise UserError("model.attention='splash' needs TPU devices; use 'xla' on CPU or 'cudnn' "
                    "on GPU")
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
  batch, length, heads, head_dim = q.shape
  groups = heads // k.shape[2]
  mask = sm.MultiHeadMask([sm.CausalMask((length, length)) for _ in range(heads)])
  kernel = sk.make_splash_mha(mask, head_shards=1, q_seq_shards=1)
  scale = head_dim ** -0.5
  q_bhld = jnp.swapaxes(q * jnp.asarray(scale, q.dtype), 1, 2)
  k_bhld = jnp.repeat(jnp.swapaxes(k, 1, 2), groups, axis=1)
  v_bhld = jnp.repeat(jnp.swapaxes(v, 1, 2), groups, axis=1)
  out = jax.vmap(kernel)(q_bhld, k_bhld, v_bhld)
  return jnp.swapaxes(out, 1, 2)
