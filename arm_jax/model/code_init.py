"""Image-code rows of a fresh decoder set from per-code vectors (`model.image_embed_init`).

    params = init_image_codes(params, vectors, model_cfg, seed)   # vectors [image_size, k]

The vectors (e.g. tokenizer/code_semantics.py: what each code draws, as the teacher sees it) go
through one fixed random projection to d_model and are scaled to the init's row norm. The same
rows seed the input embedding of each code and the image head's output weights for it, so a code
reads and is written along the same direction from step 0.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from arm_jax.errors import UserError


def projected_rows(vectors: np.ndarray, d_model: int, init_std: float, seed: int) -> np.ndarray:
  """[n, k] -> [n, d_model] float32: random Gaussian projection, rows rescaled to the norm a
  row of N(0, init_std^2) has (init_std * sqrt(d_model)); zero rows stay zero."""
  vectors = np.asarray(vectors, np.float32)
  proj = np.random.default_rng(seed).normal(size=(vectors.shape[1], d_model)).astype(np.float32)
  rows = vectors @ proj
  norms = np.linalg.norm(rows, axis=1, keepdims=True)
  return np.where(norms > 0, rows / np.maximum(norms, 1e-12), 0.0) * init_std * np.sqrt(d_model)


def init_image_codes(params: dict, vectors: np.ndarray, mcfg, seed: int) -> dict:
  """A copy of decoder `params` (pure dict) whose image-code embedding rows and image-head
  columns are `vectors` projected (projected_rows). vectors: [vocab.image_size, k]."""
  vocab = mcfg.vocab
  if vectors.shape[0] != vocab.image_size:
    raise UserError(f"{vectors.shape[0]} code vectors for {vocab.image_size} image codes; the "
                    f"tokenizer's codebook must match model.image_vocab_size")
  rows = projected_rows(vectors, mcfg.d_model, mcfg.init_std, seed)
  out = dict(params)
  table = np.array(params["embed"]["embedding"])
  table[vocab.image_offset:] = rows
  out["embed"] = dict(params["embed"], embedding=jnp.asarray(table, table.dtype))
  kernel = params["image_head"]["kernel"]
  out["image_head"] = dict(params["image_head"], kernel=jnp.asarray(rows.T, kernel.dtype))
  return out
