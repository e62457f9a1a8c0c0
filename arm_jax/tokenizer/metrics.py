"""Tokenizer quality on held-out images: PSNR, code usage, codebook perplexity, zero-shot accuracy.

Pure functions (jax or numpy arrays in, arrays/floats out), plus `evaluate_*` helpers that run a
trained teacher / tokenizer over the held-out probe sets of tokenizer/data.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from arm_jax.tokenizer.vit import unit_to_pixels


def psnr(recon: jax.Array, images: jax.Array) -> jax.Array:
  """Per-image PSNR in dB of the uint8-rounded reconstruction.

  recon: [b, H, W, 3] float in [-1, 1] (or uint8); images: [b, H, W, 3] uint8. A perfect
  reconstruction is capped at 100 dB.
  """
  if recon.dtype != jnp.uint8:
    recon = unit_to_pixels(recon)
  err = (recon.astype(jnp.float32) - images.astype(jnp.float32)) ** 2
  mse = jnp.mean(err, axis=tuple(range(1, err.ndim)))
  return jnp.minimum(10.0 * jnp.log10(255.0 ** 2 / jnp.maximum(mse, 1e-10)), 100.0)


def code_counts(codes, codebook_size: int) -> np.ndarray:
  """How often each code occurs: [codebook_size] int64."""
  return np.bincount(np.asarray(codes).reshape(-1), minlength=codebook_size)


def code_usage(codes, codebook_size: int) -> float:
  """Fraction of the codebook that occurs at least once in `codes`."""
  return float(np.mean(code_counts(codes, codebook_size) > 0))


def perplexity(codes, codebook_size: int) -> float:
  """exp(entropy) of the code distribution: codebook_size when uniform, 1 when one code."""
  p = code_counts(codes, codebook_size).astype(np.float64)
  p = p[p > 0] / p.sum()
  return float(np.exp(-np.sum(p * np.log(p))))


def zero_shot(image_emb, prompt_emb, prompt_colors, prompt_shapes, colors, shapes) -> dict:
  """Classify each image by its most similar prompt; accuracy of colour, shape and both.

  image_emb [n, e], prompt_emb [k, e] unit vectors; prompt_* [k] and colors/shapes [n] int labels.
  """
  best = np.asarray(jnp.argmax(jnp.asarray(image_emb) @ jnp.asarray(prompt_emb).T, axis=1))
  c_ok = np.asarray(prompt_colors)[best] == np.asarray(colors)
  s_ok = np.asarray(prompt_shapes)[best] == np.asarray(shapes)
  return {"zero_shot_color": float(c_ok.mean()), "zero_shot_shape": float(s_ok.mean()),
          "zero_shot": float((c_ok & s_ok).mean())}
