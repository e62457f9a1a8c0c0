"""Per-cell credit for editing rollouts: each image token's advantage from the cell it draws.

GRPO gives every token of a sample the sample's one advantage. An edit rollout that makes the
requested change but smudges a kept object elsewhere then pushes its correct change down along
with the smudge, and a failed change drags the correctly copied cells with it; with a reward that
is mostly 0 (edits rarely succeed early on) most samples carry little signal. With
`rl.cell_credit` > 0 each editing token's advantage is

    A_token = A_sample + cell_credit * A_cell(cell of the token)

where A_cell normalises, across the G samples of the prompt, the score of that scene cell
(the same advantage estimator as A_sample, rl.advantage): 1/0 for a kept cell that still shows
the source's object (or stays empty), and rewards.cell_change for a cell the edit touches. A
cell every sample got equally right or wrong adds nothing. T2I rows keep A_sample alone.

Tokens map to cells by the centre of their patch: code (i, j) of an h x w code grid covers
pixel rows [i*H/h, (i+1)*H/h); it belongs to the scene cell holding its centre.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from arm_jax.rl import advantages as adv_lib
from arm_jax.rl import rewards


def edit_cell_scores(images: np.ndarray, prompts: Sequence[rewards.PromptMeta]) -> np.ndarray:
  """[N, H, W, 3] uint8 edit rollouts -> [N, grid, grid] float32 per-cell scores in [0, 1]."""
  grid = prompts[0].target.grid
  out = np.zeros((len(prompts), grid, grid), np.float32)
  for n, (image, p) in enumerate(zip(images, prompts)):
    touched = p.edit.cells()
    want, src = p.target.by_cell(), p.source.by_cell()
    got = rewards.parse(image, grid).scene().by_cell()
    for r in range(grid):
      for c in range(grid):
        cell = (r, c)
        out[n, r, c] = (rewards.cell_change(want.get(cell), got.get(cell), p.edit.kind)
                        if cell in touched else float(got.get(cell) == src.get(cell)))
  return out


def code_cells(grid_hw: tuple[int, int], grid: int) -> np.ndarray:
  """[h*w] int32: the flat scene-cell index (row * grid + col) of each code, raster order."""
  h, w = grid_hw
  rows = ((np.arange(h) + 0.5) * grid / h).astype(np.int32)
  cols = ((np.arange(w) + 0.5) * grid / w).astype(np.int32)
  return (rows[:, None] * grid + cols[None, :]).reshape(-1)


def cell_advantages(name: str, scores: np.ndarray, group_size: int) -> np.ndarray:
  """[P*G, grid, grid] scores (prompt-major) -> [P*G, grid*grid] advantages, each cell
  normalised across its group by estimator `name`."""
  n, cells = scores.shape[0], scores.shape[1] * scores.shape[2]
  per_cell = scores.reshape(n // group_size, group_size, cells).transpose(0, 2, 1)
  adv = np.asarray(adv_lib.compute_advantages(name, per_cell.reshape(-1), group_size))
  return adv.reshape(n // group_size, cells, group_size).transpose(0, 2, 1).reshape(n, cells)


def token_advantages(sample_adv: np.ndarray, loss_mask: np.ndarray,
                     cell_adv: np.ndarray | None = None, cells: np.ndarray | None = None,
                     weight: float = 0.0) -> np.ndarray:
  """Per-token advantages [B, T-1] float32 (0 off the image codes).

  sample_adv [B]; loss_mask [B, T-1], 1 on the h*w generated codes of each row (in raster
  order); cell_adv [B, cells] with NaN on rows without cell credit, cells [h*w] the cell of each
  code (code_cells).
  """
  mask = loss_mask > 0
  out = np.where(mask, sample_adv[:, None], 0.0).astype(np.float32)
  if cell_adv is None or weight == 0:
    return out
  rows = np.flatnonzero(np.isfinite(cell_adv).all(axis=1))
  for b in rows:
    positions = np.flatnonzero(mask[b])
    out[b, positions] += weight * cell_adv[b, cells[:len(positions)]]
  return out
