"""One attention function; the kernel is a config value (`model.attention`).

xla    : grouped einsums (CPU, any backend, any mask): each kv head serves its query heads
         without K/V being repeated (~10% of a shapes_cells train step on CPU against
         jax.nn.dot_product_attention's XLA path, which repeats them)
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
    if mask is None:
      mask = jnp.tril(jnp.ones((q.shape[1], k.shape[1]), bool))[None, None]
    return grouped_attention(q, k, v, mask, "bskd")
  if impl == "cudnn":
    return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")
  return splash_attention(q, k, v)


def _target_platform() -> str:
  """The platform being compiled for: the mesh's devices (AOT for a TPU topology on a CPU
  host lowers for TPU), else the default backend."""
  mesh = jax.sharding.get_abstract_mesh()
  if not mesh.empty and mesh.abstract_device is not None:
    return mesh.abstract_device.platform
  return jax.default_backend()


def _block(length: int) -> int:
  """The kernel's block size for a (128-padded) length: the largest of 512/256/128 dividing it."""
  return next(size for size in (512, 256, 128) if length % size == 0)


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array, *,
                     interpret: bool = False) -> jax.Array:
  """Causal grouped-query splash attention (TPU Pallas), partitioned with shard_map.

  q: [batch, len, heads, head_dim]; k, v: [batch, len, kv_heads, head_dim] -> like q.
  A Pallas kernel is opaque to GSPMD, so under a mesh it runs in shard_map over the batch axes
  and the kv-head axis (as the logical rules shard them); each shard sees whole sequences.
  Per kv head the MQA kernel serves its `heads // kv_heads` query heads, so K/V are never
  repeated. `interpret=True` runs the kernel in the Pallas interpreter (CPU tests).
  """
  if _target_platform() != "tpu" and not interpret:
    raise UserError("model.attention='splash' needs TPU devices; use 'xla' on CPU or 'cudnn' "
                    "on GPU")
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
  from arm_jax.sharding import current_spec
  batch, true_length, heads, head_dim = q.shape
  # The kernel tiles the sequence in blocks of 128: pad at the end. Causal, so no real query
  # sees a padded key; padded queries are cut off below (RL rollouts have any length).
  pad = -true_length % 128
  if pad:
    q, k, v = (jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) for x in (q, k, v))
  length = true_length + pad
  kv_heads = k.shape[2]
  groups = heads // kv_heads
  blk = _block(length)
  sizes = sk.BlockSizes(block_q=blk, block_kv=blk, block_kv_compute=blk, block_q_dkv=blk,
                        block_kv_dkv=blk, block_kv_dkv_compute=blk, block_q_dq=blk,
                        block_kv_dq=blk)
  mask = sm.MultiHeadMask([sm.CausalMask((length, length)) for _ in range(groups)])
  kernel = sk.make_splash_mqa_single_device(mask, block_sizes=sizes, interpret=interpret)
  # [b, l, kv*g, d] -> [b, kv, g, l, d]: query head i belongs to kv head i // g (as jnp.repeat).
  q_bkgld = (q * jnp.asarray(head_dim ** -0.5, q.dtype)).reshape(
      batch, length, kv_heads, groups, head_dim).transpose(0, 2, 3, 1, 4)
  k_bkld = jnp.swapaxes(k, 1, 2)
  v_bkld = jnp.swapaxes(v, 1, 2)
  per_shard = jax.vmap(jax.vmap(kernel))   # over batch, then kv heads

  spec_q = current_spec(("batch", "act_kv_heads", None, None, None), q_bkgld.shape)
  if spec_q is not None:
    spec_kv = jax.sharding.PartitionSpec(*spec_q[:2])
    per_shard = jax.shard_map(per_shard, in_specs=(spec_q, spec_kv, spec_kv),
                              out_specs=spec_q, check_vma=False)
  out_bkgld = per_shard(q_bkgld, k_bkld, v_bkld)
  out = out_bkgld.transpose(0, 3, 1, 2, 4).reshape(batch, length, heads, head_dim)
  return out[:, :true_length]


def attend_cached(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """Attention of new queries over a kv-head-major cache, as grouped einsums.

  Decoding is one query per row over a long cache: plain batched matmuls beat the general
  attention path there (measured ~2x per layer on CPU).

  Args:
    q: [batch, q_len, heads, head_dim]
    k, v: [batch, kv_heads, cache_len, head_dim]
    mask: [batch, 1, q_len, cache_len] bool, the keys each query may see.
  Returns:
    [batch, q_len, heads, head_dim] in q's dtype.
  """
  return grouped_attention(q, k, v, mask, "bksd")


def grouped_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array,
                      kv_layout: str) -> jax.Array:
  """Softmax attention with query heads grouped over their kv head (scores in float32).

  q [batch, q_len, heads, head_dim]; k, v laid out as `kv_layout`: "bskd" [batch, kv_len,
  kv_heads, head_dim] (training) or "bksd" [batch, kv_heads, kv_len, head_dim] (a decode cache);
  mask [batch or 1, 1, q_len, kv_len] bool. Returns [batch, q_len, heads, head_dim] in q's dtype.
  """
  b, t, h, d = q.shape
  kv = k.shape[kv_layout.index("k")]
  qg = q.reshape(b, t, kv, h // kv, d)
  scores = jnp.einsum(f"btkgd,{kv_layout}->bkgts", qg, k.astype(q.dtype),
                      preferred_element_type=jnp.float32) * (d ** -0.5)
  scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
  out = jnp.einsum(f"bkgts,{kv_layout}->btkgd", probs, v.astype(q.dtype))
  return out.reshape(b, t, h, d)
