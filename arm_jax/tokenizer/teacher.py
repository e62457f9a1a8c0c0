"""The teacher: a mini-SigLIP (ViT image tower + transformer text tower, sigmoid loss).

Same module layout as Hugging Face `SiglipModel`: the image tower pools patch features with a
multi-head attention probe (MAP head); the text tower reads a fixed-length, padded token row with
bidirectional attention and pools its last position; the loss is SigLIP's pairwise sigmoid with a
learned temperature (`logit_scale`, stored as log t, init log 10) and bias (init -10). A real
SigLIP / SigLIP2 checkpoint imports into this module (arm_jax/interop/siglip.py).

Once trained it is frozen: the tokenizer distils its patch features and aligns with its text
embeddings.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from arm_jax.model.vocab import VocabLayout
from arm_jax.sharding import constrain
from arm_jax.tokenizer.vit import ACT, ImageEncoder, MAPHead, Stack, ViTConfig, layer_norm, \
    linear, norm


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
  image_size: int
  patch_size: int
  vision: ViTConfig
  text: ViTConfig
  vocab_size: int
  text_len: int

  @staticmethod
  def from_config(config) -> "TeacherConfig":
    t = config.teacher
    vision = ViTConfig(t.d_model, t.n_layers, t.n_heads, t.d_ff, t.dtype, scan=t.scan_layers)
    text = ViTConfig(t.d_model, t.text_layers, t.n_heads, t.d_ff, t.dtype, scan=t.scan_layers)
    # Text rows: the text tokenizer's ids and the multimodal specials (<eos>, <pad>, ...),
    # unless an imported SigLIP brings its own vocabulary.
    vocab = t.vocab_size or VocabLayout.from_config(config.model).text_head_size
    return TeacherConfig(config.data.image_size, t.patch_size, vision, text, vocab, t.text_len)

  @property
  def embed_dim(self) -> int:
    return self.vision.d_model


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


class TextEncoder(nnx.Module):
  """token ids [b, text_len] int32 -> pooled embedding [b, embed_dim] float32 (not normalised)."""

  def __init__(self, cfg: TeacherConfig, *, rngs: nnx.Rngs):
    t = cfg.text
    self.token_embedding = nnx.Embed(
        cfg.vocab_size, t.d_model, dtype=jnp.dtype(t.dtype), param_dtype=jnp.float32,
        embedding_init=nnx.with_partitioning(nnx.initializers.normal(t.init_std),
                                             ("vocab", "embed")), rngs=rngs)
    self.position_embedding = nnx.Param(
        nnx.initializers.normal(t.init_std)(rngs.params(), (cfg.text_len, t.d_model)),
        out_sharding=(None, "embed"))
    self.encoder = Stack(t, rngs=rngs)
    self.final_layer_norm = layer_norm(t, t.d_model, rngs=rngs)
    self.head = linear(t, t.d_model, cfg.embed_dim, ("embed", None), rngs=rngs)

  def __call__(self, ids: jax.Array) -> jax.Array:
    x = self.token_embedding(ids)
    x = x + self.position_embedding[...][: ids.shape[1]].astype(x.dtype)
    x = norm(self.final_layer_norm, self.encoder(constrain(x, ACT)))
    # SigLIP pools the last position, which is padding for short texts: the model learns that.
    return self.head(x[:, -1]).astype(jnp.float32)


class Siglip(nnx.Module):
  """Image tower, text tower, and the sigmoid loss's temperature and bias."""

  def __init__(self, cfg: TeacherConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.vision = ImageEncoder(cfg.vision, cfg.image_size, cfg.patch_size, rngs=rngs)
    self.vision_head = MAPHead(cfg.vision, rngs=rngs)
    self.text = TextEncoder(cfg, rngs=rngs)
    self.logit_scale = nnx.Param(jnp.full((), math.log(10.0), jnp.float32), out_sharding=())
    self.logit_bias = nnx.Param(jnp.full((), -10.0, jnp.float32), out_sharding=())

  def patch_features(self, images: jax.Array) -> jax.Array:
    """[b, H, W, 3] uint8 -> [b, n_patches, d] float32 (post-LayerNorm, what SigLIP exposes)."""
    return self.vision(images)

  def image_features(self, images: jax.Array) -> jax.Array:
    """[b, H, W, 3] uint8 -> pooled image features [b, embed_dim] float32 (not normalised)."""
    return self.vision_head(self.vision(images).astype(self.cfg.vision.dtype)).astype(jnp.float32)

  def embed_image(self, images: jax.Array) -> jax.Array:
    """[b, H, W, 3] uint8 -> [b, embed_dim] unit vectors."""
    return l2_normalize(self.image_features(images))

  def embed_text(self, ids: jax.Array) -> jax.Array:
    """[b, text_len] int32 -> [b, embed_dim] unit vectors."""
    return l2_normalize(self.text(ids))

  def fold_centres(self, image_centre: jax.Array, text_centre: jax.Array) -> None:
    """Subtracts fixed centres [embed_dim] from the pooled features, in place, through the last
    bias of each tower (the MAP head's MLP output, the text head): the embeddings then equal
    the centred ones the loss trained (train_teacher), with SigLIP's layout unchanged."""
    fc2 = self.vision_head.mlp.fc2.bias
    fc2[...] = fc2[...] - image_centre.astype(fc2.dtype)
    head = self.text.head.bias
    head[...] = head[...] - text_centre.astype(head.dtype)

  def logits(self, images: jax.Array, ids: jax.Array) -> jax.Array:
    """[n_texts, n_images] float32: exp(logit_scale) * cos + logit_bias (HF logits_per_text)."""
    return pair_logits(self.embed_text(ids), self.embed_image(images), self.logit_scale[...],
                       self.logit_bias[...])


def pair_logits(text_emb: jax.Array, image_emb: jax.Array, logit_scale: jax.Array,
                logit_bias: jax.Array) -> jax.Array:
  """Unit vectors [n_t, e], [n_i, e] -> [n_t, n_i] logits."""
  return text_emb @ image_emb.T * jnp.exp(logit_scale) + logit_bias
