"""What may come next: a per-row phase machine over the sequence grammar, applied as a logit mask.

A generated image is `<boi> <h_H> <w_W> code * (H*W) <eoi>`; text is text ids and `<eos>`.
Each row carries a phase; the mask allows exactly the tokens its phase permits, and the token
drawn moves it on:

    TEXT   text ids, <eos> (-> DONE), and <boi> (-> HEIGHT) if the row allows images
    BOI    forced <boi>                                                    -> HEIGHT
    HEIGHT a height token (forced to <h_H> when the row fixes H)            -> WIDTH
    WIDTH  a width token (forced to <w_W> when the row fixes W)             -> CODES
    CODES  image codes only, exactly H*W of them                            -> EOI
    EOI    forced <eoi>                          -> DONE if stop_after_image, else TEXT
    DONE   the row has stopped; <pad> is emitted and masked out of the results

So no image code is ever drawn outside an image, and nothing but an image code inside one.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from arm_jax.model.vocab import VocabLayout

TEXT, BOI, HEIGHT, WIDTH, CODES, EOI, DONE = range(7)


class Constraint(NamedTuple):
  """Per-row grammar state; every field is [B]. A pytree, so it rides through jit and loops."""
  phase: jax.Array             # int32, one of the phases above
  force_h: jax.Array           # int32, grid height to force (0 = the model chooses)
  force_w: jax.Array           # int32, grid width to force (0 = the model chooses)
  height: jax.Array            # int32, grid height of the image being generated
  width: jax.Array             # int32
  left: jax.Array              # int32, image codes still to generate
  allow_image: jax.Array       # bool, may a text row open an image with <boi>
  stop_after_image: jax.Array  # bool


def _rows(n: int, value, dtype) -> np.ndarray:
  return np.full((n,), value, dtype)


def text_rows(n: int, *, allow_image: bool = False) -> Constraint:
  """Rows that continue in text (answers) until <eos>."""
  z = _rows(n, 0, np.int32)
  return Constraint(_rows(n, TEXT, np.int32), z, z, z, z, z, _rows(n, allow_image, bool),
                    _rows(n, False, bool))


def image_rows(n: int, height: int, width: int, *, header_in_prompt: bool = False) -> Constraint:
  """Rows that generate one H x W image and stop after its <eoi>.

  header_in_prompt: the prompt already ends with `<boi> <h_H> <w_W>`, so decoding starts at the
  codes (the cheaper form: the header is prefilled instead of decoded token by token).
  """
  h, w = _rows(n, height, np.int32), _rows(n, width, np.int32)
  phase = CODES if header_in_prompt else BOI
  left = h * w if header_in_prompt else _rows(n, 0, np.int32)
  return Constraint(_rows(n, phase, np.int32), h, w, h, w, left, _rows(n, False, bool),
                    _rows(n, True, bool))


def tokens_needed(c: Constraint) -> np.ndarray:
  """[B] tokens each row needs to finish its image (text rows: 0; the caller bounds text)."""
  phase = np.asarray(c.phase)
  hw = np.asarray(c.force_h) * np.asarray(c.force_w)
  return np.select([phase == BOI, phase == CODES], [hw + 4, np.asarray(c.left) + 1], 0)


def concat(parts: list[Constraint]) -> Constraint:
  return Constraint(*(np.concatenate(f) for f in zip(*parts)))


def allowed(vocab: VocabLayout, c: Constraint, size: int) -> jax.Array:
  """[B, size] bool: which token ids each row may draw next (size = logits' last dim)."""
  ids = jnp.arange(size, dtype=jnp.int32)[None, :]
  h0, w0, g = vocab.height_token(1), vocab.width_token(1), vocab.max_grid
  phase = c.phase[:, None]

  def grid_tokens(base, force):
    force = force[:, None]
    return jnp.where(force > 0, ids == base + force - 1, (ids >= base) & (ids < base + g))

  lo, hi = vocab.cell_ids((c.height * c.width - c.left)[:, None])
  text = ((ids < vocab.text_size) | (ids == vocab.eos)
          | (c.allow_image[:, None] & (ids == vocab.boi)))
  return (((phase == TEXT) & text)
          | ((phase == BOI) & (ids == vocab.boi))
          | ((phase == HEIGHT) & grid_tokens(h0, c.force_h))
          | ((phase == WIDTH) & grid_tokens(w0, c.force_w))
          | ((phase == CODES) & (ids >= lo) & (ids < hi))
          | ((phase == EOI) & (ids == vocab.eoi))
          | ((phase == DONE) & (ids == vocab.pad)))


def advance(vocab: VocabLayout, c: Constraint, token: jax.Array) -> Constraint:
  """The state after each row emitted `token` [B] int32 (a token `allowed` permitted)."""
  p = c.phase
  height = jnp.where(p == HEIGHT, token - vocab.height_token(1) + 1, c.height)
  width = jnp.where(p == WIDTH, token - vocab.width_token(1) + 1, c.width)
  left = jnp.where(p == WIDTH, height * width, jnp.where(p == CODES, c.left - 1, c.left))
  after_text = jnp.where(token == vocab.eos, DONE, jnp.where(token == vocab.boi, HEIGHT, TEXT))
  after_eoi = jnp.where(c.stop_after_image, DONE, TEXT)
  nxt = jnp.select(
      [p == TEXT, p == BOI, p == HEIGHT, p == WIDTH, p == CODES, p == EOI],
      [after_text, HEIGHT, WIDTH, CODES, jnp.where(left <= 0, EOI, CODES), after_eoi],
      DONE).astype(jnp.int32)
  return c._replace(phase=nxt, height=height, width=width, left=left)
