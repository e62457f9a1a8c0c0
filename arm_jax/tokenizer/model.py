"""The visual tokenizer: ViT encoder -> projection -> quantizer -> projection -> pixel decoder.

    images [b, H, W, 3] uint8
      -> encoder (ViT, SigLIP layout; may start from the teacher's image tower)  [b, n, d]
      -> pre_quant (linear)                                                      [b, n, q]
      -> quantizer (FSQ or VQ, config.tokenizer.quantizer; straight-through)     [b, n, q], codes [b, n]
      -> pixel decoder (linear -> ViT blocks -> linear to patches)               [b, H, W, 3]
      -> semantic branch (linear -> ViT blocks) feeding three heads:
           feature head   -> teacher patch features (cosine distillation)
           align head     -> pooled embedding in the teacher's text space (sigmoid loss)
           caption decoder-> small causal LM that writes the caption from the codes

Only the encoder, quantizer and pixel decoder are needed to encode and decode; the semantic
branch exists for training (its losses are what make the codes semantic and language-aligned).
n = (H/p)*(W/p) patches, d = tokenizer.d_model, q = code dimension (len(fsq_levels) or vq_dim).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arm_jax.errors import UserError
from arm_jax.model.matmul import dot_general
from arm_jax.sharding import constrain
from arm_jax.tokenizer.fsq import FSQ
from arm_jax.tokenizer.teacher import TeacherConfig, l2_normalize
from arm_jax.tokenizer.vit import ACT, ImageEncoder, Stack, ViTConfig, layer_norm, linear, \
    norm, unpatchify
from arm_jax.tokenizer.vq import VQ

QUANTIZERS = ("fsq", "vq")


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
  image_size: int
  patch_size: int
  encoder: ViTConfig
  decoder: ViTConfig
  semantic: ViTConfig
  caption: ViTConfig
  quantizer: str
  fsq_levels: tuple
  vq_codebook_size: int
  vq_dim: int
  vq_commitment: float
  vq_revive_dead: bool
  teacher_dim: int      # width of the teacher's patch features and embeddings
  vocab_size: int       # text vocabulary of the caption decoder
  text_len: int

  @staticmethod
  def from_config(config) -> "TokenizerConfig":
    t = config.tokenizer
    if t.quantizer not in QUANTIZERS:
      raise UserError(f"tokenizer.quantizer='{t.quantizer}' is unknown; use one of "
                      f"{', '.join(QUANTIZERS)}")
    if config.data.image_size % t.patch_size:
      raise UserError(f"data.image_size ({config.data.image_size}) must be a multiple of "
                      f"tokenizer.patch_size ({t.patch_size})")
    vit = lambda layers: ViTConfig(t.d_model, layers, t.n_heads, t.d_ff, t.dtype,
                                     scan=t.scan_layers)
    teacher = TeacherConfig.from_config(config)
    return TokenizerConfig(
        image_size=config.data.image_size, patch_size=t.patch_size, encoder=vit(t.n_layers),
        decoder=vit(t.decoder_layers), semantic=vit(t.semantic_layers),
        caption=vit(t.caption_layers), quantizer=t.quantizer,
        fsq_levels=tuple(int(l) for l in t.fsq_levels), vq_codebook_size=t.vq_codebook_size,
        vq_dim=t.vq_dim, vq_commitment=t.vq_commitment, vq_revive_dead=t.vq_restart_dead,
        teacher_dim=teacher.embed_dim, vocab_size=teacher.vocab_size, text_len=teacher.text_len)

  @property
  def grid(self) -> int:
    return self.image_size // self.patch_size

  @property
  def num_patches(self) -> int:
    return self.grid * self.grid


def make_quantizer(cfg: TokenizerConfig, *, rngs: nnx.Rngs) -> FSQ | VQ:
  """The one place the quantizer is chosen (config.tokenizer.quantizer)."""
  if cfg.quantizer == "fsq":
    return FSQ(cfg.fsq_levels)
  return VQ(cfg.vq_codebook_size, cfg.vq_dim, commitment=cfg.vq_commitment,
            revive_dead=cfg.vq_revive_dead, rngs=rngs)


def _positions(cfg: ViTConfig, n: int, rngs: nnx.Rngs) -> nnx.Param:
  return nnx.Param(nnx.initializers.normal(cfg.init_std)(rngs.params(), (n, cfg.d_model)),
                   out_sharding=(None, "embed"))


class PixelDecoder(nnx.Module):
  """Code vectors [b, n, q] float -> images [b, H, W, 3] float32 in about [-1, 1].

  A plain stack, easy to port: proj (q -> d) + learned positions -> ViT blocks -> LayerNorm ->
  to_patches (d -> p*p*3) -> unpatchify.
  """

  def __init__(self, cfg: TokenizerConfig, code_dim: int, *, rngs: nnx.Rngs):
    c = cfg.decoder
    self.patch_size, self.grid = cfg.patch_size, cfg.grid
    self.dtype = jnp.dtype(c.dtype)
    self.proj = linear(c, code_dim, c.d_model, (None, "embed"), rngs=rngs, std=code_dim ** -0.5)
    self.position_embedding = _positions(c, cfg.num_patches, rngs)
    self.blocks = Stack(c, rngs=rngs)
    self.norm = layer_norm(c, c.d_model, rngs=rngs)
    # The output layer runs in float32: it sets the pixel values (PSNR is measured on them).
    self.to_patches = nnx.Linear(
        c.d_model, cfg.patch_size ** 2 * 3, param_dtype=jnp.float32, dtype=jnp.float32,
        kernel_init=nnx.with_partitioning(nnx.initializers.normal(c.init_std), ("embed", None)),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (None,)),
        dot_general=dot_general, rngs=rngs)

  def __call__(self, z_q: jax.Array) -> jax.Array:
    x = self.proj(z_q.astype(self.dtype)) + self.position_embedding[...].astype(self.dtype)
    x = norm(self.norm, self.blocks(constrain(x, ACT)))
    return unpatchify(self.to_patches(x.astype(jnp.float32)), self.patch_size, self.grid,
                      self.grid)


class CaptionDecoder(nnx.Module):
  """Prefix LM: semantic features [b, n, d] + caption ids [b, T] -> logits [b, T, vocab].

  The sequence is [features ; ids[:-1]] under a causal mask; position n-1+t predicts ids[t], so
  the first word is read off the image alone (no <bos> needed).
  """

  def __init__(self, cfg: TokenizerConfig, *, rngs: nnx.Rngs):
    c = cfg.caption
    self.dtype = jnp.dtype(c.dtype)
    self.token_embedding = nnx.Embed(
        cfg.vocab_size, c.d_model, dtype=self.dtype, param_dtype=jnp.float32,
        embedding_init=nnx.with_partitioning(nnx.initializers.normal(c.init_std),
                                             ("vocab", "embed")), rngs=rngs)
    self.position_embedding = _positions(c, cfg.num_patches + cfg.text_len - 1, rngs)
    self.blocks = Stack(c, rngs=rngs)
    self.norm = layer_norm(c, c.d_model, rngs=rngs)
    self.head = linear(c, c.d_model, cfg.vocab_size, ("embed", "vocab"), rngs=rngs)

  def __call__(self, features: jax.Array, ids: jax.Array) -> jax.Array:
    n, t = features.shape[1], ids.shape[1]
    x = jnp.concatenate([features.astype(self.dtype), self.token_embedding(ids[:, :-1])], axis=1)
    x = x + self.position_embedding[...][: n + t - 1].astype(self.dtype)
    x = norm(self.norm, self.blocks(constrain(x, ACT), causal=True))
    return self.head(x[:, n - 1:]).astype(jnp.float32)


class Tokenizer(nnx.Module):
  """All tokenizer parameters; see the module docstring for the data flow."""

  def __init__(self, cfg: TokenizerConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    e = cfg.encoder
    self.encoder = ImageEncoder(e, cfg.image_size, cfg.patch_size, rngs=rngs)
    self.quantizer = make_quantizer(cfg, rngs=rngs)
    q = self.quantizer.dim
    # Unit-variance z from the start: FSQ rounds tanh(z), so a small init puts every patch on
    # the same few levels and the decoder gets no signal from the codes to learn from.
    self.pre_quant = linear(e, e.d_model, q, ("embed", None), rngs=rngs, std=e.d_model ** -0.5)
    self.decoder = PixelDecoder(cfg, q, rngs=rngs)
    s = cfg.semantic
    self.post_quant = linear(s, q, s.d_model, (None, "embed"), rngs=rngs)
    self.semantic_position = _positions(s, cfg.num_patches, rngs)
    self.semantic = Stack(s, rngs=rngs)
    self.semantic_norm = layer_norm(s, s.d_model, rngs=rngs)
    self.feature_head = linear(s, s.d_model, cfg.teacher_dim, ("embed", None), rngs=rngs)
    self.align_head = linear(s, s.d_model, cfg.teacher_dim, ("embed", None), rngs=rngs)
    self.align_scale = nnx.Param(jnp.full((), jnp.log(10.0), jnp.float32), out_sharding=())
    self.align_bias = nnx.Param(jnp.full((), -10.0, jnp.float32), out_sharding=())
    self.captioner = CaptionDecoder(cfg, rngs=rngs)

  # --- the path encode/decode use ------------------------------------------------------------
  def quantize(self, images: jax.Array, rng: jax.Array | None = None):
    """[b, H, W, 3] uint8 -> (z_q [b, n, q] float32, codes [b, n] int32, aux losses)."""
    return self.quantizer(self.latents(images), rng)

  def latents(self, images: jax.Array) -> jax.Array:
    """[b, H, W, 3] uint8 -> pre-quantization latents z [b, n, q] float32."""
    z = self.pre_quant(self.encoder(images).astype(self.encoder.dtype))
    return z.astype(jnp.float32)

  def decode_codes(self, z_q: jax.Array) -> jax.Array:
    """Code vectors [b, n, q] -> images [b, H, W, 3] float32 in about [-1, 1]."""
    return self.decoder(z_q)

  def codes_to_vectors(self, codes: jax.Array) -> jax.Array:
    """[b, n] int32 -> [b, n, q] float32."""
    return self.quantizer.indices_to_codes(codes)

  # --- the semantic branch (training and zero-shot) -------------------------------------------
  def semantic_features(self, z_q: jax.Array) -> jax.Array:
    """[b, n, q] -> [b, n, d] contextual features of the codes."""
    dtype = jnp.dtype(self.cfg.semantic.dtype)
    x = self.post_quant(z_q.astype(dtype)) + self.semantic_position[...].astype(dtype)
    return norm(self.semantic_norm, self.semantic(constrain(x, ACT)))

  def distilled(self, sem: jax.Array) -> jax.Array:
    """[b, n, d] -> predicted teacher patch features [b, n, teacher_dim] float32."""
    return self.feature_head(sem).astype(jnp.float32)

  def embed(self, sem: jax.Array) -> jax.Array:
    """[b, n, d] -> pooled unit embedding in the teacher's text space [b, teacher_dim]."""
    return l2_normalize(self.align_head(jnp.mean(sem, axis=1)))

  def caption_logits(self, sem: jax.Array, ids: jax.Array) -> jax.Array:
    return self.captioner(sem, ids)
