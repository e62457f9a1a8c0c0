"""The multimodal vocabulary: [ text ids | special tokens | image codes ].

Text ids come from the text tokenizer unchanged (so a Qwen2.5 checkpoint's embedding rows keep
their meaning); specials and image codes are appended after them. The model's text head covers
[0, image_offset) and its separate image head covers the image codes.

Special tokens:
  <pad> <bos> <eos>         sequence structure (the text tokenizer's own ids are not relied on)
  <boi> <eoi>               begin / end of an image
  <edit>                    opens an editing row: instruction, source image, target image
  <uncond>                  stands in for a dropped condition (classifier-free guidance)
  <h_1>..<h_G> <w_1>..<w_G> the image's code-grid height and width, G = max_grid

Cell-addressed (model.cell_addressed_codes): the image range holds one copy of the codebook per
grid cell, id = image_offset + cell * codebook_size + code, cell the raster index in the grid.
"""
from __future__ import annotations

import dataclasses

import numpy as np

FIXED_SPECIALS = ("<pad>", "<bos>", "<eos>", "<boi>", "<eoi>", "<edit>", "<uncond>")


@dataclasses.dataclass(frozen=True)
class VocabLayout:
  text_size: int
  max_grid: int
  codebook_size: int   # the visual tokenizer's codes
  # Each grid cell gets its own copy of the codebook: id = image_offset + cell * codebook_size
  # + code, so an image token says where it sits as well as what it shows.
  cell_addressed: bool = False

  @staticmethod
  def from_config(model_cfg) -> "VocabLayout":
    return VocabLayout(model_cfg.text_vocab_size, model_cfg.max_grid, model_cfg.image_vocab_size,
                       model_cfg.get("cell_addressed_codes", False))

  @property
  def cells(self) -> int:
    """Copies of the codebook in the vocabulary: max_grid**2 when cell-addressed, else 1."""
    return self.max_grid ** 2 if self.cell_addressed else 1

  @property
  def image_size(self) -> int:
    """Image-code ids (rows of the image head)."""
    return self.codebook_size * self.cells

  # --- offsets -------------------------------------------------------------------------------
  @property
  def special_offset(self) -> int:
    return self.text_size

  @property
  def num_specials(self) -> int:
    return len(FIXED_SPECIALS) + 2 * self.max_grid

  @property
  def image_offset(self) -> int:
    return self.text_size + self.num_specials

  @property
  def total_size(self) -> int:
    return self.image_offset + self.image_size

  @property
  def embed_rows(self) -> int:
    """Rows of the embedding table: text, specials and one codebook (cell-addressed ids share
    the codebook's rows; the cell adds its own vector, see model/transformer.py)."""
    return self.image_offset + self.codebook_size

  @property
  def text_head_size(self) -> int:
    """Rows of the text head: text ids and specials."""
    return self.image_offset

  # --- ids -----------------------------------------------------------------------------------
  def special(self, name: str) -> int:
    return self.special_offset + FIXED_SPECIALS.index(name)

  @property
  def pad(self) -> int:
    return self.special("<pad>")

  @property
  def bos(self) -> int:
    return self.special("<bos>")

  @property
  def eos(self) -> int:
    return self.special("<eos>")

  @property
  def boi(self) -> int:
    return self.special("<boi>")

  @property
  def eoi(self) -> int:
    return self.special("<eoi>")

  @property
  def edit(self) -> int:
    return self.special("<edit>")

  @property
  def uncond(self) -> int:
    return self.special("<uncond>")

  def height_token(self, h: int) -> int:
    if not 1 <= h <= self.max_grid:
      raise ValueError(f"grid height {h} outside 1..{self.max_grid}; raise model.max_grid")
    return self.special_offset + len(FIXED_SPECIALS) + h - 1

  def width_token(self, w: int) -> int:
    if not 1 <= w <= self.max_grid:
      raise ValueError(f"grid width {w} outside 1..{self.max_grid}; raise model.max_grid")
    return self.special_offset + len(FIXED_SPECIALS) + self.max_grid + w - 1

  def grid_from_tokens(self, h_token: int, w_token: int) -> tuple[int, int]:
    base = self.special_offset + len(FIXED_SPECIALS)
    return int(h_token) - base + 1, int(w_token) - base - self.max_grid + 1

  def codes_to_ids(self, codes: np.ndarray) -> np.ndarray:
    """Image codes [..., H*W] in [0, codebook_size), raster order along the last axis -> ids."""
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
      raise ValueError(f"image codes must lie in [0, {self.codebook_size}); got range "
                       f"[{codes.min()}, {codes.max()}]: the tokenizer's codebook does not match "
                       f"model.image_vocab_size")
    ids = codes.astype(np.int32) + self.image_offset
    if self.cell_addressed and codes.ndim:
      ids = ids + self.codebook_size * np.arange(codes.shape[-1], dtype=np.int32)
    return ids

  def ids_to_codes(self, ids: np.ndarray) -> np.ndarray:
    return (np.asarray(ids, np.int32) - self.image_offset) % self.codebook_size

  def cell_ids(self, cell):
    """[lo, hi) of the ids cell `cell` (raster index) may draw; the whole range when not
    cell-addressed. Works on numpy and jax arrays."""
    if not self.cell_addressed:
      return self.image_offset, self.total_size
    lo = self.image_offset + cell * self.codebook_size
    return lo, lo + self.codebook_size

  def is_image(self, ids):
    """Elementwise: is this id an image code? Works on numpy and jax arrays."""
    return (ids >= self.image_offset) & (ids < self.total_size)

  def image_tokens(self, codes_hw: np.ndarray) -> np.ndarray:
    """[H, W] codes -> <boi> <h_H> <w_W> ids... <eoi>, as int32 [H*W + 4]."""
    h, w = codes_hw.shape
    return np.concatenate([
        np.array([self.boi, self.height_token(h), self.width_token(w)], np.int32),
        self.codes_to_ids(codes_hw.reshape(-1)),
        np.array([self.eoi], np.int32),
    ])
