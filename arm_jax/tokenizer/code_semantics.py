"""What each visual code means, as the frozen teacher sees it: one feature vector per code.

    vectors = code_features(visual_tokenizer, teacher)   # [codebook_size, teacher_dim] float32

Code c is drawn on its own (every cell of the grid set to c, through the tokenizer's pixel
decoder) and the teacher's patch features of the drawing are averaged. Codes that draw the same
object get nearly the same vector, and codes that share a colour or a shape get related ones,
so the vectors can seed the AR model's image-code embeddings (`model.image_embed_init`): the
semantic tokenizer's meaning handed to the decoder, instead of 240 unrelated random rows it
must first sort out from data.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arm_jax.tokenizer.api import VisualTokenizer
from arm_jax.tokenizer.teacher import Siglip

CHUNK = 64


def code_features(vt: VisualTokenizer, teacher: Siglip) -> np.ndarray:
  """[codebook_size, teacher_dim] float32: each code's drawing's mean teacher patch feature,
  centred over the codebook (what all codes share says nothing about any one)."""
  graphdef, state = nnx.split(teacher)
  features = jax.jit(lambda s, x: jnp.mean(nnx.merge(graphdef, s).patch_features(x), axis=1))
  out = []
  for start in range(0, vt.codebook_size, CHUNK):
    codes = np.arange(start, min(start + CHUNK, vt.codebook_size), dtype=np.int32)
    grids = np.broadcast_to(codes[:, None, None], (len(codes), vt.grid, vt.grid))
    out.append(np.asarray(features(state, jnp.asarray(vt.decode(grids)))))
  vectors = np.concatenate(out).astype(np.float32)
  return vectors - vectors.mean(axis=0, keepdims=True)
