"""The visual tokenizer as other stages use it: images <-> code grids.

    vt = load_visual_tokenizer(config, workdir)
    codes = vt.encode(images)     # [N, H, W, 3] uint8   -> [N, h, w] int32 in [0, vt.codebook_size)
    images = vt.decode(codes)     # [N, h, w] int32      -> [N, H, W, 3] uint8

Host-side calls check their input (one-line UserError) and run compiled in fixed-size chunks, so
any N reuses one executable. `encode_jax` / `decode_jax` are the traceable versions (no checks)
for use inside other jitted code, e.g. rewards that decode sampled codes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arm_jax.errors import UserError
from arm_jax.tokenizer.model import Tokenizer
from arm_jax.tokenizer.vit import unit_to_pixels


class TokenizerInputError(UserError):
  """Images or codes of the wrong shape, dtype or range."""


class VisualTokenizer:

  def __init__(self, model: Tokenizer, chunk: int = 64):
    self.model = model
    self.chunk = chunk
    cfg = model.cfg
    self.image_size, self.grid = cfg.image_size, cfg.grid
    self.codebook_size = model.quantizer.codebook_size
    graphdef, state = nnx.split(model)
    self._encode = jax.jit(lambda s, x: nnx.merge(graphdef, s).quantize(x)[1])
    self._decode = jax.jit(lambda s, c: unit_to_pixels(
        nnx.merge(graphdef, s).decode_codes(nnx.merge(graphdef, s).codes_to_vectors(c))))
    self._state = state

  @property
  def params(self):
    """The weights (an nnx.State) the compiled encode/decode run with."""
    return self._state

  # --- traceable -------------------------------------------------------------------------------
  def encode_jax(self, images: jax.Array) -> jax.Array:
    """[N, H, W, 3] uint8 -> [N, h, w] int32 (inside jit; no input checks)."""
    codes = self.model.quantize(images)[1]
    return codes.reshape(images.shape[0], self.grid, self.grid)

  def decode_jax(self, codes: jax.Array) -> jax.Array:
    """[N, h, w] int32 -> [N, H, W, 3] uint8 (inside jit; no input checks)."""
    flat = codes.reshape(codes.shape[0], -1)
    return unit_to_pixels(self.model.decode_codes(self.model.codes_to_vectors(flat)))

  # --- host side, checked ----------------------------------------------------------------------
  def encode(self, images) -> np.ndarray:
    images = np.asarray(images)
    want = (self.image_size, self.image_size, 3)
    if images.ndim != 4 or images.shape[1:] != want:
      raise TokenizerInputError(
          f"images have shape {images.shape}; the tokenizer takes [N, {want[0]}, {want[1]}, 3] "
          f"(resize or crop them to {want[0]}x{want[1]} RGB)")
    if images.dtype != np.uint8:
      raise TokenizerInputError(f"images are {images.dtype}; the tokenizer takes uint8 0..255 "
                                f"(convert with np.clip(x, 0, 255).astype(np.uint8))")
    if not len(images):
      return np.zeros((0, self.grid, self.grid), np.int32)
    codes = self._chunked(self._encode, images)
    return codes.reshape(len(images), self.grid, self.grid).astype(np.int32)

  def decode(self, codes) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 3 or codes.shape[1:] != (self.grid, self.grid):
      raise TokenizerInputError(f"codes have shape {codes.shape}; the decoder takes "
                                f"[N, {self.grid}, {self.grid}] code grids")
    if not np.issubdtype(codes.dtype, np.integer):
      raise TokenizerInputError(f"codes are {codes.dtype}; give integer code ids")
    if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
      bad = int(codes.min()) if codes.min() < 0 else int(codes.max())
      raise TokenizerInputError(f"code {bad} is out of range; codes must be in "
                                f"[0, {self.codebook_size}) for this tokenizer")
    if not len(codes):
      return np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
    return self._chunked(self._decode, codes.reshape(len(codes), -1).astype(np.int32))

  def _chunked(self, fn, x: np.ndarray) -> np.ndarray:
    """Runs `fn` over fixed-size chunks (the last one padded), concatenating the results."""
    out = []
    for start in range(0, len(x), self.chunk):
      part = x[start:start + self.chunk]
      pad = self.chunk - len(part)
      if pad:
        part = np.concatenate([part, np.repeat(part[:1], pad, axis=0)])
      out.append(np.asarray(fn(self._state, jnp.asarray(part)))[: self.chunk - pad])
    return np.concatenate(out)


def load_visual_tokenizer(config, workdir: str, chunk: int = 64) -> VisualTokenizer:
  """The trained tokenizer of <workdir>/checkpoints/tokenizer (run train-tokenizer first)."""
  from arm_jax.tokenizer import weights
  from arm_jax.tokenizer.train_tokenizer import STAGE, tokenizer_fn
  fn = tokenizer_fn(config)
  params = weights.load_params(workdir, STAGE, fn, command="train-tokenizer")
  return VisualTokenizer(weights.model_from_params(fn, params), chunk)
