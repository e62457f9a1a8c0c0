"""ViT building blocks shared by the teacher and the visual tokenizer (SigLIP layout).

Pre-LayerNorm blocks: x + attn(ln1(x)), then x + mlp(ln2(x)); multi-head attention with biased
q/k/v/out projections; MLP fc1 -> gelu(tanh) -> fc2. The names and layout follow Hugging Face
`SiglipEncoderLayer`, so SigLIP weights import tensor by tensor (arm_jax/interop/siglip.py).

Layers are stacked (a leading `layers` axis) and run with `lax.scan`, as in the AR decoder, so
compile time does not grow with depth (or unrolled, `ViTConfig.scan=False`). Parameters are float32 masters; matmuls run in `dtype`;
LayerNorm statistics are float32. Every parameter names its logical axes (arm_jax/sharding.py).

Images are [batch, H, W, 3] uint8 at module boundaries; patches are [batch, h*w, p*p*3] in
(row, col, channel) order inside a patch and raster order over patches.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arm_jax.model.layers import apply_layers
from arm_jax.model.matmul import dot_general
from arm_jax.sharding import constrain

ACT = ("batch", "length", "act_embed")


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Shapes of one transformer stack (hashable: modules keep it as a static attribute)."""
  d_model: int
  n_layers: int
  n_heads: int
  d_ff: int
  dtype: str = "float32"
  norm_eps: float = 1e-6
  init_std: float = 0.02
  scan: bool = True         # lax.scan over layers; False unrolls (faster for a few on CPU)


# ---------------------------------------------------------------------------------------------
# Pixels <-> patches
# ---------------------------------------------------------------------------------------------

def pixels_to_unit(images: jax.Array) -> jax.Array:
  """[b, H, W, 3] uint8 -> float32 in [-1, 1] (SigLIP's mean 0.5 / std 0.5 normalisation)."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def unit_to_pixels(x: jax.Array) -> jax.Array:
  """float in [-1, 1] -> uint8, rounded and clipped."""
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def patchify(x: jax.Array, patch: int) -> jax.Array:
  """[b, H, W, c] -> [b, (H/p)*(W/p), p*p*c]."""
  b, hh, ww, c = x.shape
  h, w = hh // patch, ww // patch
  x = x.reshape(b, h, patch, w, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * w, patch * patch * c)


def unpatchify(x: jax.Array, patch: int, h: int, w: int) -> jax.Array:
  """[b, h*w, p*p*c] -> [b, h*p, w*p, c] (inverse of patchify)."""
  b = x.shape[0]
  c = x.shape[-1] // (patch * patch)
  x = x.reshape(b, h, w, patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * patch, w * patch, c)


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------

def linear(cfg: ViTConfig, d_in: int, d_out: int, names: tuple, *, rngs: nnx.Rngs,
           bias: bool = True, std: float | None = None) -> nnx.Linear:
  init = nnx.initializers.normal(cfg.init_std if std is None else std)
  return nnx.Linear(d_in, d_out, use_bias=bias, dtype=jnp.dtype(cfg.dtype),
                    param_dtype=jnp.float32, kernel_init=nnx.with_partitioning(init, names),
                    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), names[1:]),
                    dot_general=dot_general, rngs=rngs)


def layer_norm(cfg: ViTConfig, dim: int, *, rngs: nnx.Rngs) -> nnx.LayerNorm:
  return nnx.LayerNorm(dim, epsilon=cfg.norm_eps, dtype=jnp.float32, param_dtype=jnp.float32,
                       scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("norm",)),
                       bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("norm",)),
                       rngs=rngs)


def norm(ln: nnx.LayerNorm, x: jax.Array) -> jax.Array:
  """LayerNorm in float32, result back in x's dtype."""
  return ln(x.astype(jnp.float32)).astype(x.dtype)


class Attention(nnx.Module):
  """Multi-head attention; `kv` defaults to `x` (self-attention)."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.n_heads = cfg.n_heads
    d = cfg.d_model
    self.q_proj = linear(cfg, d, d, ("embed", "heads"), rngs=rngs)
    self.k_proj = linear(cfg, d, d, ("embed", "heads"), rngs=rngs)
    self.v_proj = linear(cfg, d, d, ("embed", "heads"), rngs=rngs)
    self.out_proj = linear(cfg, d, d, ("heads", "embed"), rngs=rngs)

  def __call__(self, x: jax.Array, kv: jax.Array | None = None,
               causal: bool = False) -> jax.Array:
    """x: [b, lq, d], kv: [b, lk, d] -> [b, lq, d]."""
    kv = x if kv is None else kv
    b, lq, d = x.shape
    hd = d // self.n_heads
    q = self.q_proj(x).reshape(b, lq, self.n_heads, hd)
    k = self.k_proj(kv).reshape(b, kv.shape[1], self.n_heads, hd)
    v = self.v_proj(kv).reshape(b, kv.shape[1], self.n_heads, hd)
    y = jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="xla")
    return self.out_proj(y.reshape(b, lq, d))


class MLP(nnx.Module):
  """fc2(gelu_tanh(fc1(x)))."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.fc1 = linear(cfg, cfg.d_model, cfg.d_ff, ("embed", "mlp"), rngs=rngs)
    self.fc2 = linear(cfg, cfg.d_ff, cfg.d_model, ("mlp", "embed"), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = jax.nn.gelu(self.fc1(x), approximate=True)
    return self.fc2(constrain(h, ("batch", "length", "act_mlp")))


class Block(nnx.Module):
  """Pre-LN transformer block (SiglipEncoderLayer)."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.layer_norm1 = layer_norm(cfg, cfg.d_model, rngs=rngs)
    self.self_attn = Attention(cfg, rngs=rngs)
    self.layer_norm2 = layer_norm(cfg, cfg.d_model, rngs=rngs)
    self.mlp = MLP(cfg, rngs=rngs)

  def __call__(self, x: jax.Array, causal: bool = False) -> jax.Array:
    x = constrain(x + self.self_attn(norm(self.layer_norm1, x), causal=causal), ACT)
    return constrain(x + self.mlp(norm(self.layer_norm2, x)), ACT)


class Stack(nnx.Module):
  """n_layers Blocks with stacked weights, run by lax.scan: [b, l, d] -> [b, l, d]."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    @nnx.split_rngs(splits=cfg.n_layers)
    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def make(rngs):
      return Block(cfg, rngs=rngs)

    self.layers = make(rngs)
    self.scan = cfg.scan

  def __call__(self, x: jax.Array, causal: bool = False) -> jax.Array:
    graphdef, state = nnx.split(self.layers)

    def body(x, layer_state):
      return nnx.merge(graphdef, layer_state)(x, causal)

    return apply_layers(body, x, state, scan=self.scan)


class ImageEncoder(nnx.Module):
  """SigLIP vision trunk: patch embedding + learned positions -> Stack -> post LayerNorm.

  images [b, H, W, 3] uint8 -> patch features [b, (H/p)*(W/p), d] float32.
  """

  def __init__(self, cfg: ViTConfig, image_size: int, patch_size: int, *, rngs: nnx.Rngs):
    self.patch_size = patch_size
    self.image_size = image_size
    n = (image_size // patch_size) ** 2
    self.patch_embedding = linear(cfg, patch_size * patch_size * 3, cfg.d_model,
                                  (None, "embed"), rngs=rngs)
    self.position_embedding = nnx.Param(
        nnx.initializers.normal(cfg.init_std)(rngs.params(), (n, cfg.d_model), jnp.float32),
        out_sharding=(None, "embed"))
    self.encoder = Stack(cfg, rngs=rngs)
    self.post_layernorm = layer_norm(cfg, cfg.d_model, rngs=rngs)
    self.dtype = jnp.dtype(cfg.dtype)

  def __call__(self, images: jax.Array) -> jax.Array:
    x = patchify(pixels_to_unit(images), self.patch_size).astype(self.dtype)
    x = self.patch_embedding(x) + self.position_embedding[...].astype(self.dtype)
    x = self.encoder(constrain(x, ACT))
    return norm(self.post_layernorm, x).astype(jnp.float32)


class MAPHead(nnx.Module):
  """Multi-head attention pooling with a learned probe (SigLIP): [b, n, d] -> [b, d]."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.probe = nnx.Param(
        nnx.initializers.normal(cfg.init_std)(rngs.params(), (1, 1, cfg.d_model), jnp.float32),
        out_sharding=(None, None, "embed"))
    self.attention = Attention(cfg, rngs=rngs)
    self.layernorm = layer_norm(cfg, cfg.d_model, rngs=rngs)
    self.mlp = MLP(cfg, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    probe = jnp.broadcast_to(self.probe[...].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
    h = self.attention(probe, kv=x)
    h = h + self.mlp(norm(self.layernorm, h))
    return h[:, 0]
