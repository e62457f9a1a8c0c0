"""Which shape is this region? Analysis by synthesis, robust to blur and noise.

A region is given as a soft coverage map `alpha` ([h, w] float in 0..1: how much of each pixel
is the object's colour rather than background) over a window around it. For every shape we draw
the ideal object and compare it with `alpha` (sum of squared differences over the region's mass):
- crisp candidates: the shape drawn exactly as world.object_mask draws it, fitted to the binary
  region's bounding box (what an exact render, or a sharp generation, looks like);
- blurred candidates: the shape placed by the region's mass and centroid, both of which blur
  leaves unchanged, drawn anti-aliased and blurred with a few Gaussian widths. Corners of a blurred
  square or triangle recede at the 50% contour, so a box-fitted template alone calls them circles.
The shape with the smallest error wins; its equivalent side gives the object's size.
"""
from __future__ import annotations

import functools

import numpy as np

from arm_jax.data import world

# Gaussian blur widths (pixels) tried for the blurred candidates; 0 = anti-aliased, no blur.
BLUR_SIGMAS = (0.0, 0.7, 1.2, 1.8, 2.6)
SUPERSAMPLE = 4
# Mass of each shape in units of side^2, and where its centroid sits down its box (fraction).
_AREA = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5}
_CENTROID_DOWN = {"square": 0.5, "circle": 0.5, "triangle": 2 / 3}


def _unit_mask(shape: str, ny: np.ndarray, nx: np.ndarray) -> np.ndarray:
  """Shape inside the unit box at normalised coordinates (0..1 down, 0..1 across)."""
  inside = (ny >= 0) & (ny <= 1) & (nx >= 0) & (nx <= 1)
  if shape == "square":
    return inside
  if shape == "circle":
    return (ny - 0.5) ** 2 + (nx - 0.5) ** 2 <= 0.25
  return inside & (np.abs(nx - 0.5) <= ny / 2)   # triangle, apex up, as world.object_mask


def crisp_template(shape: str, box: tuple[float, ...], size_hw: tuple[int, int]):
  """[h, w] float: the shape point-sampled at pixel centres in `box` (top, left, bottom, right)."""
  top, left, bottom, right = box
  yy, xx = np.mgrid[0:size_hw[0], 0:size_hw[1]].astype(np.float32) + 0.5
  ny, nx = (yy - top) / (bottom - top), (xx - left) / (right - left)
  return _unit_mask(shape, ny, nx).astype(np.float32)


def soft_template(shape: str, side: float, cy: float, cx: float, size_hw: tuple[int, int]):
  """[h, w] float coverage of a shape with the given side whose centroid is at (cy, cx)."""
  k = SUPERSAMPLE
  h, w = size_hw
  yy, xx = _subpixel_grid(h, w)
  top = cy - _CENTROID_DOWN[shape] * side
  left = cx - side / 2
  mask = _unit_mask(shape, (yy - top) / side, (xx - left) / side)
  return mask.reshape(h, k, w, k).mean((1, 3), dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _subpixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
  k = SUPERSAMPLE
  yy, xx = np.mgrid[0:h * k, 0:w * k].astype(np.float32)
  return (yy + 0.5) / k, (xx + 0.5) / k


@functools.lru_cache(maxsize=64)
def _blur_matrices(n: int) -> np.ndarray:
  """[sigmas, n, n]: Gaussian blur along one axis as a matrix (zero outside the window)."""
  d = np.arange(n, dtype=np.float32)[:, None] - np.arange(n, dtype=np.float32)[None]
  mats = []
  for sigma in BLUR_SIGMAS:
    if sigma == 0:
      mats.append(np.eye(n, dtype=np.float32))
      continue
    g = np.exp(-0.5 * (d / sigma) ** 2)
    mats.append(g / g.sum(1, keepdims=True).max())   # interior rows sum to 1, edges lose mass
  return np.stack(mats)


def _square_box(shape: str, box: tuple[int, int, int, int]) -> tuple[float, ...]:
  """The side x side box a region's shape was drawn in (world shapes are never stretched).

  A drawn triangle's top row can be empty (its apex is thinner than a pixel), so its box is
  anchored at the base; squares and circles fill their box and are centred in it.
  """
  top, left, bottom, right = box
  side = max(bottom - top, right - left)
  cy, cx = (top + bottom) / 2, (left + right) / 2
  if shape == "triangle":
    return bottom - side, cx - side / 2, bottom, cx + side / 2
  return cy - side / 2, cx - side / 2, cy + side / 2, cx + side / 2


def fit_shape(alpha: np.ndarray, binary: np.ndarray) -> tuple[str, float, float, float]:
  """Soft coverage + binary region (same [h, w] window) -> (shape, side px, error, margin).

  `error` is the best template's squared error over the region's mass (0 = exact); `margin` is
  how much worse the runner-up shape fits, relative to the region's mass.
  """
  mass = float(alpha.sum())
  if mass <= 0 or not binary.any():
    return "square", 0.0, 1.0, 0.0
  h, w = alpha.shape
  ys, xs = np.nonzero(binary)
  box = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
  cy, cx = float((alpha * yy).sum() / mass), float((alpha * xx).sum() / mass)
  sides = [float(np.sqrt(mass / _AREA[shape])) for shape in world.SHAPES]
  soft = np.stack([soft_template(shape, side, cy, cx, (h, w))
                   for shape, side in zip(world.SHAPES, sides)])            # [shapes, h, w]
  # Separable blur as two batched matmuls: [sigmas, 1, h, h] @ [shapes, h, w] @ [sigmas, 1, w, w].
  blurred = _blur_matrices(h)[:, None] @ soft[None] @ _blur_matrices(w).transpose(0, 2, 1)[:, None]
  soft_err = ((blurred - alpha) ** 2).sum((-1, -2)).min(0) / mass         # [shapes]
  crisp = np.stack([crisp_template(shape, _square_box(shape, box), (h, w))
                    for shape in world.SHAPES])
  crisp_err = ((crisp - alpha) ** 2).sum((-1, -2)) / mass
  crisp_side = float(max(box[2] - box[0], box[3] - box[1]))
  fits = [(float(c), crisp_side) if c <= s else (float(s), side)
          for c, s, side in zip(crisp_err, soft_err, sides)]
  order = np.argsort([e for e, _ in fits])
  (error, side), runner_up = fits[order[0]], fits[order[1]][0]
  return world.SHAPES[order[0]], side, error, runner_up - error
