"""Qwen2-style building blocks: RMSNorm, rotary embeddings, GQA attention with QKV bias, SwiGLU.

Parameters are float32 masters (`model.param_dtype`); matmuls run in `model.dtype` (bf16).
Every parameter names its logical axes; arm_jax/sharding.py maps them to the mesh.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from arm_jax.model.attention import attend, attend_cached
from arm_jax.model.matmul import dot_general
from arm_jax.sharding import constrain


def apply_layers(body, carry, layer_state, *, scan: bool = True):
  """carry -> body(carry, state of layer i) for each layer of a stacked `layer_state`.

  scan=True runs one `lax.scan` (compile time flat in depth: what deep models need); False
  unrolls a Python loop, which XLA's CPU backend runs ~1.4x (forward+backward) faster for the
  toy models' few small layers (benchmarks/train_mfu.py shows the ratio).
  """
  if scan:
    return jax.lax.scan(lambda c, s: (body(c, s), None), carry, layer_state)[0]
  for i in range(jax.tree.leaves(layer_state)[0].shape[0]):
    carry = body(carry, jax.tree.map(lambda a, i=i: a[i], layer_state))
  return carry


def _dtype(name: str):
  return jnp.dtype(name)


def _linear(cfg, d_in: int, d_out: int, names: tuple[str, str], *, bias: bool,
            rngs: nnx.Rngs) -> nnx.Linear:
  init = nnx.initializers.normal(cfg.init_std)
  return nnx.Linear(
      d_in, d_out, use_bias=bias, dtype=_dtype(cfg.dtype), param_dtype=_dtype(cfg.param_dtype),
      kernel_init=nnx.with_partitioning(init, names),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), names[1:]),
      dot_general=dot_general, rngs=rngs)


class RMSNorm(nnx.Module):
  """x / rms(x) * scale, computed in float32 (bf16 variance is too coarse)."""

  def __init__(self, dim: int, cfg, *, rngs: nnx.Rngs):
    del rngs
    self.eps = cfg.norm_eps
    self.scale = nnx.Param(jnp.ones((dim,), _dtype(cfg.param_dtype)), out_sharding=("norm",))

  def __call__(self, x: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)


def rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Rotary embedding, half-split (rotate_half) layout as in Qwen2/Llama.

  x: [batch, len, heads, head_dim]; positions: [batch, len] int32.
  """
  half = x.shape[-1] // 2
  freq = 1.0 / (theta ** (jnp.arange(half, dtype=jnp.float32) / half))
  angle = positions.astype(jnp.float32)[..., None] * freq           # [b, l, half]
  cos = jnp.cos(angle)[:, :, None, :]
  sin = jnp.sin(angle)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


class Attention(nnx.Module):
  """GQA self-attention with an optional KV cache."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.cfg = cfg
    d, hd = cfg.d_model, cfg.head_dim
    self.q_proj = _linear(cfg, d, cfg.n_heads * hd, ("embed", "heads"), bias=cfg.qkv_bias,
                          rngs=rngs)
    self.k_proj = _linear(cfg, d, cfg.n_kv_heads * hd, ("embed", "kv_heads"),
                          bias=cfg.qkv_bias, rngs=rngs)
    self.v_proj = _linear(cfg, d, cfg.n_kv_heads * hd, ("embed", "kv_heads"),
                          bias=cfg.qkv_bias, rngs=rngs)
    self.o_proj = _linear(cfg, cfg.n_heads * hd, d, ("heads", "embed"), bias=False, rngs=rngs)

  def __call__(self, x: jax.Array, positions: jax.Array, cache: dict | None = None,
               cache_index: jax.Array | None = None, mask: jax.Array | None = None,
               layer: jax.Array | None = None):
    """x: [batch, len, embed] -> (y [batch, len, embed], cache).

    With `cache` (the whole stack, {k, v}: [layers, batch, kv_heads, cache_len, head_dim]),
    this step's keys/values are written into layer `layer` at slots
    [cache_index, cache_index + len) in place, and the queries attend under `mask`
    [batch, 1, len, cache_len].
    """
    cfg = self.cfg
    b, l, _ = x.shape
    q = self.q_proj(x).reshape(b, l, cfg.n_heads, cfg.head_dim)
    k = self.k_proj(x).reshape(b, l, cfg.n_kv_heads, cfg.head_dim)
    v = self.v_proj(x).reshape(b, l, cfg.n_kv_heads, cfg.head_dim)
    q = constrain(rope(q, positions, cfg.rope_theta), ("batch", "length", "act_heads", "head_dim"))
    k = constrain(rope(k, positions, cfg.rope_theta), ("batch", "length", "act_kv_heads", "head_dim"))
    if cache is None:
      y = attend(q, k, v, impl=cfg.attention, mask=mask)
    else:
      cache = {name: _write(cache[name], new, layer, cache_index)
               for name, new in (("k", k), ("v", v))}
      layer_k = jax.lax.dynamic_index_in_dim(cache["k"], layer, 0, keepdims=False)
      layer_v = jax.lax.dynamic_index_in_dim(cache["v"], layer, 0, keepdims=False)
      y = attend_cached(q, layer_k, layer_v, mask)
    y = constrain(y, ("batch", "length", "act_heads", "head_dim"))
    return self.o_proj(y.reshape(b, l, cfg.n_heads * cfg.head_dim)), cache


def _write(stack: jax.Array, new: jax.Array, layer: jax.Array, index: jax.Array) -> jax.Array:
  """new [batch, len, kv_heads, head_dim] -> stack[layer, :, :, index:index+len] (in place)."""
  zero = jnp.zeros((), jnp.int32)
  new = jnp.swapaxes(new, 1, 2).astype(stack.dtype)[None]
  start = (jnp.asarray(layer, jnp.int32), zero, zero, jnp.asarray(index, jnp.int32), zero)
  return jax.lax.dynamic_update_slice(stack, new, start)


class MLP(nnx.Module):
  """SwiGLU: down(silu(gate(x)) * up(x))."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.gate_proj = _linear(cfg, cfg.d_model, cfg.d_ff, ("embed", "mlp"), bias=False, rngs=rngs)
    self.up_proj = _linear(cfg, cfg.d_model, cfg.d_ff, ("embed", "mlp"), bias=False, rngs=rngs)
    self.down_proj = _linear(cfg, cfg.d_ff, cfg.d_model, ("mlp", "embed"), bias=False, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = jax.nn.silu(self.gate_proj(x)) * self.up_proj(x)
    return self.down_proj(constrain(h, ("batch", "length", "act_mlp")))


class Block(nnx.Module):
  """Pre-norm transformer block."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.input_norm = RMSNorm(cfg.d_model, cfg, rngs=rngs)
    self.attn = Attention(cfg, rngs=rngs)
    self.post_attn_norm = RMSNorm(cfg.d_model, cfg, rngs=rngs)
    self.mlp = MLP(cfg, rngs=rngs)

  def __call__(self, x, positions, cache=None, cache_index=None, mask=None, layer=None):
    h, cache = self.attn(self.input_norm(x), positions, cache, cache_index, mask, layer)
    x = constrain(x + h, ("batch", "length", "act_embed"))
    x = constrain(x + self.mlp(self.post_attn_norm(x)), ("batch", "length", "act_embed"))
    return x, cache
