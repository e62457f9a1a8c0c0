"""The ARM decoder: one Qwen2-style transformer over [text | specials | image codes].

Two output heads share the final hidden state: the text head scores text ids and specials, the
separate image head (as ARM adds to its LLM) scores image codes; their logits are concatenated
in vocabulary order, so token id == logit index everywhere.

Layers are stacked (one set of weights with a leading `layers` axis) and run with `lax.scan`, so
compile time does not grow with depth (`model.scan_layers=False` unrolls them, faster for a few
small layers on CPU); `model.remat` picks the rematerialisation policy.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arm_jax.model.layers import Block, RMSNorm, _linear, apply_layers
from arm_jax.model.vocab import VocabLayout
from arm_jax.sharding import constrain

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Hashable copy of `config.model` (module attributes must be static and hashable)."""
  vocab: VocabLayout
  d_model: int
  n_layers: int
  n_heads: int
  n_kv_heads: int
  head_dim: int
  d_ff: int
  rope_theta: float
  qkv_bias: bool
  norm_eps: float
  tie_embeddings: bool
  max_seq_len: int
  init_std: float
  dtype: str
  param_dtype: str
  remat: str
  attention: str
  scan_layers: bool

  @staticmethod
  def from_config(model_cfg) -> "ModelConfig":
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"vocab"}
    return ModelConfig(vocab=VocabLayout.from_config(model_cfg),
                       **{k: model_cfg[k] for k in fields})


class Decoder(nnx.Module):
  """tokens [batch, len] int32 -> logits [batch, len, vocab.total_size] in `dtype`."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    vocab = cfg.vocab
    self.embed = nnx.Embed(
        vocab.embed_rows, cfg.d_model, dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        embedding_init=nnx.with_partitioning(nnx.initializers.normal(cfg.init_std),
                                             ("vocab", "embed")),
        rngs=rngs)

    @nnx.split_rngs(splits=cfg.n_layers)
    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def make_blocks(rngs):
      return Block(cfg, rngs=rngs)

    self.blocks = make_blocks(rngs)
    self.final_norm = RMSNorm(cfg.d_model, cfg, rngs=rngs)
    if not cfg.tie_embeddings:
      self.text_head = _linear(cfg, cfg.d_model, vocab.text_head_size, ("embed", "vocab"),
                               bias=False, rngs=rngs)
    self.image_head = _linear(cfg, cfg.d_model, vocab.codebook_size, ("embed", "image_vocab"),
                              bias=False, rngs=rngs)
    if vocab.cells > 1:
      # Cell-addressed image ids (cell, code): embedding E[code] + cell_embed[cell], logit
      # h.image_head[code] + h.cell_head[cell]; what a code shows stays shared across cells.
      self.cell_embed = nnx.Embed(
          vocab.cells, cfg.d_model, dtype=jnp.dtype(cfg.dtype),
          param_dtype=jnp.dtype(cfg.param_dtype),
          embedding_init=nnx.with_partitioning(nnx.initializers.normal(cfg.init_std),
                                               (None, "embed")),
          rngs=rngs)
      self.cell_head = _linear(cfg, cfg.d_model, vocab.cells, ("embed", None), bias=False,
                               rngs=rngs)

  # -------------------------------------------------------------------------------------------
  def hidden(self, tokens: jax.Array, positions: jax.Array | None = None,
             cache: dict | None = None, cache_index: jax.Array | None = None,
             mask: jax.Array | None = None, segment_ids: jax.Array | None = None):
    """Final normed hidden states [batch, len, embed] and the updated cache.

    Without a cache: causal self-attention over `tokens`, positions default to 0..len-1;
    `segment_ids` [batch, len] int32 (packed rows) keeps attention inside each segment.
    With a cache ({k, v}: [layers, batch, kv_heads, cache_len, head_dim]): see Attention; the
    caller gives `positions` [batch, len], `cache_index` (scalar slot of tokens[:, 0]) and
    `mask` [batch, 1, len, cache_len].
    """
    b, l = tokens.shape
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l))
    x = constrain(self.embed_tokens(tokens), ("batch", "length", "act_embed"))
    graphdef, layer_state = nnx.split(self.blocks)

    scan = self.cfg.scan_layers
    if cache is None:
      if segment_ids is not None:
        mask = segment_mask(segment_ids)
      def body(x, state):
        return nnx.merge(graphdef, state)(x, positions, mask=mask)[0]
      if self.cfg.remat != "none":
        body = jax.checkpoint(body, policy=REMAT_POLICIES[self.cfg.remat], prevent_cse=False)
      x = apply_layers(body, x, layer_state, scan=scan)
    else:
      # The whole cache rides in the carry and each layer updates its slice in place; passing
      # it through the scan's inputs/outputs would copy every layer's cache every step.
      def body(carry, state):
        x, cache, layer = carry
        x, cache = nnx.merge(graphdef, state)(x, positions, cache, cache_index, mask, layer)
        return x, cache, layer + 1
      x, cache, _ = apply_layers(body, (x, cache, jnp.zeros((), jnp.int32)), layer_state,
                                 scan=scan)
    return self.final_norm(x), cache

  def embed_tokens(self, tokens: jax.Array) -> jax.Array:
    """[batch, len] ids -> [batch, len, embed]."""
    vocab = self.cfg.vocab
    if vocab.cells == 1:
      return self.embed(tokens)
    rel = tokens - vocab.image_offset
    is_image = rel >= 0
    x = self.embed(jnp.where(is_image, vocab.image_offset + rel % vocab.codebook_size, tokens))
    cell = self.cell_embed(jnp.clip(rel // vocab.codebook_size, 0, vocab.cells - 1))
    return x + jnp.where(is_image[..., None], cell, 0)

  def logits(self, h: jax.Array) -> jax.Array:
    """[batch, len, embed] -> [batch, len, vocab.total_size]."""
    text, image = self._text_logits(h), self.image_logits(h)
    return constrain(jnp.concatenate([text, image], axis=-1), ("batch", "length", "act_vocab"))

  def _text_logits(self, h: jax.Array) -> jax.Array:
    """[batch, len, embed] -> text and special logits [batch, len, vocab.text_head_size]."""
    if self.cfg.tie_embeddings:
      table = self.embed.embedding[...][:self.cfg.vocab.text_head_size].astype(h.dtype)
      return jnp.einsum("bld,vd->blv", h, table)
    return self.text_head(h)

  def target_scores(self, h: jax.Array, targets: jax.Array):
    """Cross-entropy terms without the [batch, len, vocab] logits.

    h [batch, len, embed], targets [batch, len] int32 -> (target logit, log partition, max
    logit), each [batch, len] f32. With cell-addressed ids an image logit is cell + code, so its
    logsumexp and max over (cell, code) split into one over cells plus one over codes: the
    training loss never builds the cells x codebook slab (most of the step's memory traffic).
    """
    vocab = self.cfg.vocab
    if vocab.cells == 1:
      logits = self.logits(h).astype(jnp.float32)
      target = jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
      return target, jax.nn.logsumexp(logits, -1), logits.max(-1)
    text = self._text_logits(h).astype(jnp.float32)
    codes = self.image_head(h).astype(jnp.float32)
    cells = self.cell_head(h).astype(jnp.float32)
    rel = targets - vocab.image_offset
    is_image = rel >= 0
    pick = lambda x, i: jnp.take_along_axis(x, i[..., None], -1)[..., 0]
    image_target = (pick(cells, jnp.clip(rel // vocab.codebook_size, 0, vocab.cells - 1))
                    + pick(codes, jnp.where(is_image, rel % vocab.codebook_size, 0)))
    text_target = pick(text, jnp.clip(targets, 0, vocab.text_head_size - 1))
    target = jnp.where(is_image, image_target, text_target)
    log_z = jnp.logaddexp(jax.nn.logsumexp(text, -1),
                          jax.nn.logsumexp(cells, -1) + jax.nn.logsumexp(codes, -1))
    max_logit = jnp.maximum(text.max(-1), cells.max(-1) + codes.max(-1))
    return target, log_z, max_logit

  def image_logits(self, h: jax.Array) -> jax.Array:
    """Image-code logits only [batch, len, vocab.image_size] (decoding inside an image)."""
    codes = self.image_head(h)
    if self.cfg.vocab.cells == 1:
      return codes
    cells = self.cell_head(h)
    return (cells[..., :, None] + codes[..., None, :]).reshape(*h.shape[:-1], -1)

  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None) -> jax.Array:
    h, _ = self.hidden(tokens, positions, segment_ids=segment_ids)
    return self.logits(h)


def segment_mask(segment_ids: jax.Array) -> jax.Array:
  """[batch, len] segment ids -> [batch, 1, len, len] bool: causal and within one segment."""
  same = segment_ids[:, :, None] == segment_ids[:, None, :]
  causal = jnp.tril(jnp.ones(same.shape[1:], bool))
  return (same & causal)[:, None]


def init_cache(cfg: ModelConfig, batch: int, length: int, dtype=jnp.bfloat16) -> dict:
  """Zeroed KV cache {k, v}: [layers, batch, kv_heads, length, head_dim] (kv-head major, so
  a decode step's attention is two plain batched matmuls)."""
  shape = (cfg.n_layers, batch, cfg.n_kv_heads, length, cfg.head_dim)
  return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def count_params(state) -> int:
  return sum(x.size for x in jax.tree.leaves(state))
