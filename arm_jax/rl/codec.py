"""The visual tokenizer as RL sees it: `encode(images) -> codes`, `decode(codes) -> images`.

`load_codec` gives the trained tokenizer of a workdir; `PatchColorCodec` is the data room's
stand-in (each patch's quantised mean colour), which lets the RL loop run and be tested before
any tokenizer is trained.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from arm_jax.data.codes import patch_color_decode, patch_color_encoder, patch_color_levels


@dataclasses.dataclass(frozen=True)
class PatchColorCodec:
  """images [N, H, W, 3] uint8 <-> codes [N, H/patch, W/patch] int32 (a colour mosaic)."""
  patch: int
  levels: int

  @staticmethod
  def from_config(config) -> "PatchColorCodec":
    return PatchColorCodec(config.tokenizer.patch_size,
                           patch_color_levels(config.model.image_vocab_size))

  def encode(self, images: np.ndarray) -> np.ndarray:
    return patch_color_encoder(self.patch, self.levels)(np.asarray(images))

  def decode(self, codes: np.ndarray) -> np.ndarray:
    return patch_color_decode(np.asarray(codes), self.patch, self.levels)
