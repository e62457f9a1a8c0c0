"""Shapes-world detector: any image, rendered or generated -> objects (colour, shape, size, cell).

Classical vision, no learning, so scores mean the same thing for every model and run:
1. Foreground: a pixel is foreground when its nearest entry among the background and the palette
   (`world.BACKGROUND`, `world.COLORS`) is not the background -- the 50% boundary, which keeps
   object extents right under symmetric blur.
2. Regions: 4-connected components of the foreground, labelled inside each grid cell separately,
   so blur that bridges neighbouring objects cannot merge them; regions below a minimum area
   (noise specks, spill-over from a neighbour) are dropped and counted as stray pixels.
3. Colour: the mean of the region's most saturated half (its core, away from blended edges),
   snapped to the nearest palette entry; off-palette colours keep the nearest name with a low
   confidence.
4. Shape: IoU of the region against a square, a circle (inscribed ellipse) and a triangle (apex
   up) fitted to its bounding box; the best wins, the margin over the runner-up is the confidence.
5. Size: the box's longest side over the cell side, split halfway between the two rendered sizes.

Images are [height, width, 3] uint8 (or float in 0..255). Objects are too small to resolve below
about 6 pixels a side (a 3-pixel circle renders as a square); keep grid cells >= 12 pixels.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from arm_jax.data import world
from arm_jax.errors import UserError
from arm_jax.eval.shape_fit import fit_shape

# Palette as an array, background first: label 0 = background, 1.. = world.COLORS order.
COLOR_NAMES = tuple(world.COLORS)
PALETTE = np.array([world.BACKGROUND] + [world.COLORS[c] for c in COLOR_NAMES], np.float32)
# A region smaller than this fraction of its cell is a speck, not an object (the smallest rendered
# object, a small triangle, covers ~6% of its cell).
MIN_AREA_FRACTION = 0.025
MIN_AREA_PIXELS = 4
# Size split: halfway between the rendered fractions of the cell side (0.5 and 0.85).
SIZE_SPLIT = (world.SIZE_FRACTION["small"] + world.SIZE_FRACTION["large"]) / 2
# Colour distance (RGB, 0..255) beyond which a colour is called off-palette (confidence -> 0),
# and the lead over the runner-up colour (mean pixel distance) that gives full confidence.
COLOR_TOLERANCE = 90.0
COLOR_MARGIN = 40.0
# Lead of the best shape's error over the runner-up's (per unit mass) that gives full confidence.
SHAPE_MARGIN = 0.03


class ImageError(UserError, ValueError):
  """An image the detector cannot read (wrong rank, channels or dtype)."""


@dataclasses.dataclass(frozen=True)
class Detection:
  """One object found in an image. `box` is (top, left, bottom, right), bottom/right exclusive."""
  shape: str
  color: str
  size: str
  row: int
  col: int
  confidence: float
  box: tuple[int, int, int, int]
  area: int
  shape_error: float     # squared error of the best-fitting ideal shape over the mass
  color_distance: float  # RGB distance of the region's core colour to its palette entry

  def to_obj(self) -> world.Obj:
    return world.Obj(self.shape, self.color, self.size, self.row, self.col)

  def center(self) -> tuple[float, float]:
    top, left, bottom, right = self.box
    return (top + bottom) / 2, (left + right) / 2


@dataclasses.dataclass(frozen=True)
class Parse:
  """Everything the scorers need from one image."""
  detections: tuple[Detection, ...]   # most confident first
  masks: tuple[np.ndarray, ...]       # [height, width] bool per detection
  stray_pixels: int                   # foreground pixels in regions too small to be objects
  foreground_pixels: int
  grid: int

  def scene(self) -> world.Scene:
    """The detections as a Scene, one object per cell (the most confident wins)."""
    by_cell: dict[tuple[int, int], world.Obj] = {}
    for d in self.detections:
      by_cell.setdefault((d.row, d.col), d.to_obj())
    return world.Scene(tuple(sorted(by_cell.values(), key=lambda o: (o.row, o.col))), self.grid)


def as_rgb(image) -> np.ndarray:
  """Any [H, W, 3] array (uint8 or float 0..255) -> [H, W, 3] float32; refuses anything else."""
  array = np.asarray(image)
  if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 2:
    raise ImageError(f"expected an image of shape [height, width, 3], got {array.shape}; "
                     f"convert greyscale/RGBA images to RGB first")
  if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
    raise ImageError(f"expected a numeric image (uint8 0..255), got dtype {array.dtype}")
  return array.astype(np.float32)


def palette_labels(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """[H, W, 3] float -> ([H, W] int nearest palette index (0 = background), [H, W] distance)."""
  d2 = ((rgb[:, :, None, :] - PALETTE[None, None]) ** 2).sum(-1)
  labels = d2.argmin(-1)
  return labels, np.sqrt(np.take_along_axis(d2, labels[..., None], -1)[..., 0])


def _cell_regions(foreground: np.ndarray, grid: int, min_area: int):
  """Yields (row, col, region mask) for every kept region and returns the stray pixel count."""
  height, width = foreground.shape
  regions, stray = [], 0
  for row in range(grid):
    for col in range(grid):
      top, left, bottom, right = world.cell_box(row, col, grid, height, width)
      labels, n = ndimage.label(foreground[top:bottom, left:right])
      if n == 0:
        continue
      areas = np.bincount(labels.ravel(), minlength=n + 1)
      for k in range(1, n + 1):
        if areas[k] < min_area:
          stray += int(areas[k])
          continue
        mask = np.zeros_like(foreground)
        mask[top:bottom, left:right] = labels == k
        regions.append((row, col, mask))
  return regions, stray


def background_color(rgb: np.ndarray, objects: np.ndarray) -> np.ndarray:
  """[3] the image's actual background: the mean of pixels away from every object.

  Generated backgrounds are often a little off (30, 28, 26 instead of 24, 24, 24); measured
  against the nominal one, that offset would add up over a window into phantom object mass. The
  mean (not the median of background-labelled pixels) keeps noise, clipped at 0 by uint8,
  unbiased.
  """
  away = ~ndimage.binary_dilation(objects, iterations=3)
  if away.sum() < 0.1 * away.size:
    return PALETTE[0]
  return rgb[away].mean(0).astype(np.float32)


def _region_color(rgb: np.ndarray, mask: np.ndarray,
                  background: np.ndarray) -> tuple[str, float, float]:
  """Colour of a region -> (palette name, distance, confidence in [0, 1]).

  Blur mixes an object's colour with the background, so its pixels lie on the segment from the
  background to the true colour, not near the colour itself (a blurred white edge is grey, and
  grey is nearer purple than white). Each palette entry is scored by how far the region's pixels
  sit from its segment, weighted toward the saturated core.
  """
  pixels = rgb[mask] - background
  weight = np.linalg.norm(pixels, axis=-1)
  weight = weight / max(float(weight.sum()), 1e-6)
  directions = PALETTE[1:] - background                                # [colors, 3]
  t = np.clip(pixels @ directions.T / (directions ** 2).sum(-1), 0.0, 1.0)  # [pixels, colors]
  residual = np.linalg.norm(pixels[:, None, :] - t[..., None] * directions[None], axis=-1)
  d = weight @ residual                                                # [colors]
  order = np.argsort(d)
  best, second = order[0], order[1]
  # The mean residual vector of the winner: noise averages out of it, an off-palette tint doesn't.
  offset = weight @ (pixels - t[:, best, None] * directions[best])
  distance = float(np.linalg.norm(offset))
  margin = min(1.0, float(d[second] - d[best]) / COLOR_MARGIN)
  closeness = max(0.0, 1.0 - distance / COLOR_TOLERANCE)
  return COLOR_NAMES[best], distance, margin * closeness


def _window(row: int, col: int, grid: int, height: int, width: int):
  """The cell's box grown by a margin, so a blurred object's tails stay in view."""
  top, left, bottom, right = world.cell_box(row, col, grid, height, width)
  m = int(np.ceil(0.15 * min(bottom - top, right - left)))
  return max(0, top - m), max(0, left - m), min(height, bottom + m), min(width, right + m)


def _coverage(rgb: np.ndarray, color: str, background: np.ndarray) -> np.ndarray:
  """[h, w, 3] -> [h, w]: how far each pixel is from background toward `color` (0..1 if clean).

  Not clipped to 0..1: clipping would turn zero-mean noise on the background into positive mass
  and make noisy objects look larger; the loose clip only tames outliers.
  """
  direction = np.asarray(world.COLORS[color], np.float32) - background
  alpha = ((rgb - background) @ direction) / float(direction @ direction)
  return np.clip(alpha, -1.0, 2.0)


def _detection(rgb, background, mask, others, row, col, grid) -> Detection:
  """One region (full-image bool mask) -> Detection; `others` = every other region's pixels."""
  height, width = mask.shape
  color, color_dist, color_conf = _region_color(rgb, mask, background)
  top, left, bottom, right = _window(row, col, grid, height, width)
  alpha = _coverage(rgb[top:bottom, left:right], color, background)
  alpha[others[top:bottom, left:right]] = 0.0
  binary = ndimage.binary_fill_holes(mask[top:bottom, left:right])
  shape, side, error, margin = fit_shape(alpha, binary)
  ctop, cleft, cbottom, cright = world.cell_box(row, col, grid, height, width)
  extent = side / min(cbottom - ctop, cright - cleft)
  size = "small" if extent < SIZE_SPLIT else "large"
  size_conf = min(1.0, abs(extent - SIZE_SPLIT) / 0.1)
  # Margins are differences, so noise (which raises every candidate's error alike) cancels; the
  # fit term is what sinks irregular specks.
  shape_conf = min(1.0, margin / SHAPE_MARGIN) * max(0.0, 1.0 - error)
  confidence = float(color_conf * shape_conf * (0.5 + 0.5 * size_conf))
  ys, xs = np.nonzero(mask)
  box = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
  return Detection(shape, color, size, row, col, confidence, box, int(mask.sum()),
                   float(error), color_dist)


def parse_image(image, grid: int) -> Parse:
  """[H, W, 3] image -> Parse with every object found on a `grid x grid` layout."""
  if grid < 1:
    raise UserError(f"grid must be >= 1, got {grid}")
  rgb = as_rgb(image)
  height, width = rgb.shape[:2]
  labels, _ = palette_labels(rgb)
  foreground = labels != 0
  cell_area = (height / grid) * (width / grid)
  min_area = max(MIN_AREA_PIXELS, int(MIN_AREA_FRACTION * cell_area))
  regions, stray = _cell_regions(foreground, grid, min_area)
  everything = np.zeros_like(foreground)
  for _, _, mask in regions:
    everything |= mask
  background = background_color(rgb, everything)
  found = [(_detection(rgb, background, mask, everything & ~mask, row, col, grid), mask)
           for row, col, mask in regions]
  found.sort(key=lambda dm: (-dm[0].confidence, -dm[0].area))
  return Parse(tuple(d for d, _ in found), tuple(m for _, m in found), stray,
               int(foreground.sum()), grid)


def detect(image, grid: int) -> list[Detection]:
  """[H, W, 3] image -> detected objects, most confident first."""
  return list(parse_image(image, grid).detections)


def parse_scene(image, grid: int) -> world.Scene:
  """[H, W, 3] image -> the Scene it shows (one object per cell)."""
  return parse_image(image, grid).scene()
