"""Image-code (and text) rows of a fresh decoder set from per-token vectors
(`model.image_embed_init`).

    params = init_image_codes(params, vectors, model_cfg, seed)   # vectors [image_size, k]
    params = init_joint(params, code_vectors, token_vectors, model_cfg, seed)

The vectors (e.g. tokenizer/code_semantics.py: what each code draws, as the teacher sees it) go
through one fixed random projection to d_model and are scaled to the init's row norm. The same
rows seed the input embedding of each code and the image head's output weights for it, so a code
reads and is written along the same direction from step 0. `init_joint` puts the text rows
through the same projection, from vectors in the same space as the codes' (the teacher's shared
text-image space), so the word "red" and the codes that draw red things start out related.
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
  columns are `vectors` projected (projected_rows). vectors: [vocab.codebook_size, k]."""
  _check_codes(vectors, mcfg.vocab)
  return _with_rows(params, mcfg.vocab, projected_rows(vectors, mcfg.d_model, mcfg.init_std, seed))


def init_joint(params: dict, code_vectors: np.ndarray, token_vectors: np.ndarray, mcfg,
               seed: int) -> dict:
  """As init_image_codes, and the text rows of the embedding are `token_vectors`
  [vocab.text_size, k] through the same projection (code_vectors [vocab.codebook_size, k] must live
  in the same k-dimensional space)."""
  vocab = mcfg.vocab
  _check_codes(code_vectors, vocab)
  if token_vectors.shape != (vocab.text_size, code_vectors.shape[1]):
    raise UserError(f"token vectors {token_vectors.shape} do not match the text vocabulary "
                    f"({vocab.text_size}) and the code vectors' width ({code_vectors.shape[1]})")
  rows = projected_rows(np.concatenate([token_vectors, code_vectors]), mcfg.d_model,
                        mcfg.init_std, seed)
  return _with_rows(params, vocab, rows[vocab.text_size:], rows[:vocab.text_size])


def _check_codes(vectors: np.ndarray, vocab) -> None:
  if vectors.shape[0] != vocab.codebook_size:
    raise UserError(f"{vectors.shape[0]} code vectors for {vocab.codebook_size} image codes; the "
                    f"tokenizer's codebook must match model.image_vocab_size")


def _with_rows(params: dict, vocab, image_rows: np.ndarray,
               text_rows: np.ndarray | None = None) -> dict:
  out = dict(params)
  table = np.array(params["embed"]["embedding"])
  table[vocab.image_offset:] = image_rows
  if text_rows is not None:
    table[:vocab.text_size] = text_rows
  out["embed"] = dict(params["embed"], embedding=jnp.asarray(table, table.dtype))
  kernel = params["image_head"]["kernel"]
  out["image_head"] = dict(params["image_head"], kernel=jnp.asarray(image_rows.T, kernel.dtype))
  return out
