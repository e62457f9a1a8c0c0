"""What each visual code means, as the frozen teacher sees it: one feature vector per code.

    vectors = code_features(visual_tokenizer, teacher)   # [codebook_size, teacher_dim] float32
    codes, tokens = joint_vectors(visual_tokenizer, teacher, text_size, eos, pad)

Code c is drawn on its own (every cell of the grid set to c, through the tokenizer's pixel
decoder) and the teacher's patch features of the drawing are averaged. Codes that draw the same
object get nearly the same vector, and codes that share a colour or a shape get related ones,
so the vectors can seed the AR model's image-code embeddings (`model.image_embed_init`): the
semantic tokenizer's meaning handed to the decoder, instead of 240 unrelated random rows it
must first sort out from data.

`joint_vectors` reads codes and text tokens in the teacher's shared text-image space instead (its
pooled image embedding of each code's drawing, its text embedding of each token alone), which
seeds both the image and the text rows (`model.image_embed_init='joint'`): on shapes_cells this
took GenEval 0.52 -> 0.74 and GEdit G_O 0.21 -> 0.83 at the same 450 steps, where seeding the
image rows alone from the same space took them to 0.46 and 0 (docs/toy_levers.md).
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
  return _centred(_over_codes(vt, lambda images: features(state, images)))


def joint_vectors(vt: VisualTokenizer, teacher: Siglip, text_size: int, eos: int,
                  pad: int) -> tuple[np.ndarray, np.ndarray]:
  """Codes and text tokens in the teacher's shared space, each set centred over itself.

  Returns (codes [codebook_size, embed_dim], tokens [text_size, embed_dim]) float32: the image
  tower's pooled features of each code's drawing, and the text tower's pooled features of each
  text id alone, written as the teacher reads a caption ([id, <eos>, <pad>, ...]). Unnormalised:
  projected_rows sets the norms.
  """
  graphdef, state = nnx.split(teacher)
  image = jax.jit(lambda s, x: nnx.merge(graphdef, s).image_features(x))
  text = jax.jit(lambda s, ids: nnx.merge(graphdef, s).text(ids))
  ids = np.full((text_size, teacher.cfg.text_len), pad, np.int32)
  ids[:, 0], ids[:, 1] = np.arange(text_size), eos
  tokens = np.concatenate([np.asarray(text(state, jnp.asarray(ids[i:i + 4 * CHUNK])))
                           for i in range(0, text_size, 4 * CHUNK)])
  return (_centred(_over_codes(vt, lambda images: image(state, images))),
          _centred(tokens.astype(np.float32)))


def _over_codes(vt: VisualTokenizer, features) -> np.ndarray:
  """features(images [c, H, W, 3] uint8) -> [c, k], applied to each code drawn on every cell."""
  out = []
  for start in range(0, vt.codebook_size, CHUNK):
    codes = np.arange(start, min(start + CHUNK, vt.codebook_size), dtype=np.int32)
    grids = np.broadcast_to(codes[:, None, None], (len(codes), vt.grid, vt.grid))
    out.append(np.asarray(features(jnp.asarray(vt.decode(grids)))))
  return np.concatenate(out).astype(np.float32)


def _centred(vectors: np.ndarray) -> np.ndarray:
  return vectors - vectors.mean(axis=0, keepdims=True)
