"""Held-out evaluation of the teacher and the tokenizer (what the ablation table reports).

    tokenizer_metrics(config, workdir) -> {"teacher": {...}, "tokenizer": {...}}

Probe sets come from tokenizer/data.py with seeds disjoint from training: `NUM_IMAGES` scenes for
PSNR / code usage / perplexity, and single-object images of all 18 (colour, shape) pairs for
zero-shot classification against the prompts 'a {colour} {shape}.' embedded by the teacher's
text tower (the aligned space both models share).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arm_jax.model.vocab import VocabLayout
from arm_jax.tokenizer import data as data_lib
from arm_jax.tokenizer import metrics
from arm_jax.tokenizer.model import Tokenizer
from arm_jax.tokenizer.teacher import Siglip
from arm_jax.tokenizer.vit import unit_to_pixels

NUM_IMAGES = 512
NUM_ZERO_SHOT = 360
CHUNK = 64
_SEED_OFFSET = 10_007   # probe streams never share a seed with a training stream


def _batched(fn, x: np.ndarray) -> np.ndarray:
  return np.concatenate([np.asarray(fn(jnp.asarray(x[i:i + CHUNK])))
                         for i in range(0, len(x), CHUNK)])


def _jit(module: nnx.Module, method):
  graphdef, state = nnx.split(module)
  fn = jax.jit(lambda s, x: method(nnx.merge(graphdef, s), x))
  return lambda x: fn(state, x)


def prompt_embeddings(config, teacher: Siglip, tok) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Teacher text embeddings of the 18 class prompts [18, e], with their colour/shape labels."""
  prompts, colors, shapes = data_lib.class_prompts()
  ids, _ = data_lib.encode_texts(tok, prompts, config.teacher.text_len,
                                 VocabLayout.from_config(config.model))
  return np.asarray(teacher.embed_text(jnp.asarray(ids))), colors, shapes


def teacher_metrics(config, teacher: Siglip, tok) -> dict:
  """Zero-shot colour / shape / joint accuracy of the teacher's image embeddings."""
  prompt_emb, p_col, p_shp = prompt_embeddings(config, teacher, tok)
  images, colors, shapes = data_lib.zero_shot_set(config, NUM_ZERO_SHOT,
                                                  config.eval.seed + _SEED_OFFSET)
  emb = _batched(_jit(teacher, Siglip.embed_image), images)
  return metrics.zero_shot(emb, prompt_emb, p_col, p_shp, colors, shapes)


def _tokenizer_embed(model: Tokenizer, images):
  return model.embed(model.semantic_features(model.quantize(images)[0]))


def _tokenizer_recon(model: Tokenizer, images):
  z_q, codes, _ = model.quantize(images)
  return metrics.psnr(model.decode_codes(z_q), images), codes


def reconstructions(config, model: Tokenizer, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """The first n held-out images [n, H, W, 3] uint8 and their reconstructions (same shape)."""
  images = data_lib.heldout_images(config, n, config.eval.seed + _SEED_OFFSET)
  z_q = model.quantize(jnp.asarray(images))[0]
  return images, np.asarray(unit_to_pixels(model.decode_codes(z_q)))


def tokenizer_quality(config, model: Tokenizer, teacher: Siglip, tok) -> dict:
  """PSNR (dB), code usage (%), perplexity and zero-shot accuracies on held-out images."""
  images = data_lib.heldout_images(config, NUM_IMAGES, config.eval.seed + _SEED_OFFSET)
  recon = _jit(model, _tokenizer_recon)
  psnrs, codes = [], []
  for i in range(0, len(images), CHUNK):
    p, c = recon(jnp.asarray(images[i:i + CHUNK]))
    psnrs.append(np.asarray(p))
    codes.append(np.asarray(c))
  codes = np.concatenate(codes)
  k = model.quantizer.codebook_size
  out = {"psnr": float(np.mean(np.concatenate(psnrs))),
         "code_usage": 100.0 * metrics.code_usage(codes, k),
         "perplexity": metrics.perplexity(codes, k), "codebook_size": k}
  prompt_emb, p_col, p_shp = prompt_embeddings(config, teacher, tok)
  zs_images, colors, shapes = data_lib.zero_shot_set(config, NUM_ZERO_SHOT,
                                                     config.eval.seed + _SEED_OFFSET)
  emb = _batched(_jit(model, _tokenizer_embed), zs_images)
  out.update(metrics.zero_shot(emb, prompt_emb, p_col, p_shp, colors, shapes))
  return out
