"""Classifier-free guidance as paired rows in one batch.

A guided batch of B samples holds `branches(kind) * B` rows, branch-major: rows [0, B) are the
conditional prompts, the next B rows the same prompts with conditions replaced by <uncond>:

    kind "none": [full]                                   1 branch
    kind "t2i" : [full, uncond]                           caption -> <uncond>
    kind "edit": [full, image_only, uncond]               image_only: instruction -> <uncond>;
                                                          uncond: source image and instruction
                                                          -> <uncond>

Every branch is fed the same drawn token, so all branches of a sample stay one sequence apart
only in their prompts. Guided logits (f = full, i = image_only, u = uncond, s = scales):

    t2i : f + (s - 1) * (f - u)                             = u + s * (f - u)
    edit: f + (s_txt - 1) * (f - i) + (s_img - 1) * (i - u) = u + s_img * (i - u) + s_txt * (f - i)

(the InstructPix2Pix form of dual guidance; the paper uses text 1.5, image 1.25). Written
around f rather than u so that scale 1 returns the conditional logits exactly, not up to
rounding. The grammar mask is applied after guidance, so every input here is finite.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

BRANCHES = {"none": 1, "t2i": 2, "edit": 3}


def branches(kind: str) -> int:
  if kind not in BRANCHES:
    raise ValueError(f"guidance kind '{kind}' is not one of {', '.join(BRANCHES)}")
  return BRANCHES[kind]


def kind_for(task: str, text_scale: float, image_scale: float = 1.0) -> str:
  """The guidance kind a task needs at these scales: "none" when every scale is 1 (the
  conditional logits exactly, and no extra branch rows to run), else the task's own kind."""
  return "none" if text_scale == 1.0 and image_scale == 1.0 else task


def guide(logits_nbv: jax.Array, kind: str, scales: jax.Array) -> jax.Array:
  """logits_nbv [branches, B, V] float32, scales [2] float32 = (text, image) -> [B, V].

  For "t2i" scales[0] is the single scale; scales are traced, so changing them never
  recompiles.
  """
  f = logits_nbv[0]
  if kind == "none":
    return f
  if kind == "t2i":
    return f + (scales[0] - 1.0) * (f - logits_nbv[1])
  i, u = logits_nbv[1], logits_nbv[2]
  return f + (scales[0] - 1.0) * (f - i) + (scales[1] - 1.0) * (i - u)
