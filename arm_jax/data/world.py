"""The shapes world: scenes of coloured shapes on a grid, rendered exactly.

Exact rendering (no anti-aliasing, flat background, palette colours) is what lets a classical
detector (arm_jax/eval/detector.py) parse any image, generated ones included, back into objects,
which makes GenEval/WISE/GEdit-style scores measurable offline.

A scene is a tuple of `Obj`s, each in its own cell of a `grid x grid` layout. Images are
[height, width, 3] uint8.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

BACKGROUND = (24, 24, 24)
# Six palette colours, far apart in RGB so the nearest-palette rule is unambiguous.
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 200),
    "white": (235, 235, 235),
}
SHAPES = ("square", "circle", "triangle")
SIZES = ("small", "large")
CORNERS = {"square": 4, "circle": 0, "triangle": 3}
# Fraction of the cell's side an object spans.
SIZE_FRACTION = {"small": 0.5, "large": 0.85}


def position_name(row: int, col: int, grid: int) -> str:
  """'top left', 'center', 'bottom right', ... for a 3x3 grid; 'row r column c' otherwise."""
  if grid == 3:
    vertical = ("top", "middle", "bottom")[row]
    horizontal = ("left", "center", "right")[col]
    if vertical == "middle" and horizontal == "center":
      return "center"
    if vertical == "middle":
      return f"middle {horizontal}"
    return f"{vertical} {horizontal}" if horizontal != "center" else f"{vertical} center"
  if grid == 2:
    return f"{('top', 'bottom')[row]} {('left', 'right')[col]}"
  return f"row {row + 1} column {col + 1}"


@dataclasses.dataclass(frozen=True)
class Obj:
  shape: str
  color: str
  size: str
  row: int
  col: int

  def phrase(self) -> str:
    return f"{self.size} {self.color} {self.shape}"


@dataclasses.dataclass(frozen=True)
class Scene:
  objects: tuple[Obj, ...]
  grid: int = 3

  def cells(self) -> set[tuple[int, int]]:
    return {(o.row, o.col) for o in self.objects}

  def by_cell(self) -> dict[tuple[int, int], Obj]:
    """(row, col) -> the object there (a scene holds at most one object per cell)."""
    return {(o.row, o.col): o for o in self.objects}

  def to_json(self) -> list[dict]:
    return [dict(vars(o)) for o in self.objects]

  @staticmethod
  def from_json(objects: Sequence[dict], grid: int = 3) -> "Scene":
    return Scene(tuple(Obj(**o) for o in objects), grid)


def cell_box(row: int, col: int, grid: int, height: int, width: int) -> tuple[int, int, int, int]:
  """Pixel box (top, left, bottom, right) of a grid cell, bottom/right exclusive."""
  top, bottom = row * height // grid, (row + 1) * height // grid
  left, right = col * width // grid, (col + 1) * width // grid
  return top, left, bottom, right


@functools.lru_cache(maxsize=256)
def _shape_mask(shape: str, side: int) -> np.ndarray:
  """[side, side] bool footprint of a shape (cached: scenes reuse a handful of sizes)."""
  yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
  if shape == "square":
    local = np.ones((side, side), bool)
  elif shape == "circle":
    r = side / 2
    local = (yy - r) ** 2 + (xx - r) ** 2 <= r * r
  elif shape == "triangle":
    # Apex at the top centre, base along the bottom row.
    local = np.abs(xx - side / 2) <= yy / 2
  else:
    raise ValueError(f"unknown shape '{shape}'; known shapes: {', '.join(SHAPES)}")
  local.flags.writeable = False
  return local


def _placed(obj: Obj, grid: int, height: int, width: int) -> tuple[int, int, np.ndarray]:
  """(top, left, [side, side] footprint) of the object inside the image."""
  top, left, bottom, right = cell_box(obj.row, obj.col, grid, height, width)
  ch, cw = bottom - top, right - left
  side = max(3, int(round(min(ch, cw) * SIZE_FRACTION[obj.size])))
  return top + (ch - side) // 2, left + (cw - side) // 2, _shape_mask(obj.shape, side)


def object_mask(obj: Obj, grid: int, height: int, width: int) -> np.ndarray:
  """[height, width] bool: the pixels the object covers."""
  cy, cx, local = _placed(obj, grid, height, width)
  mask = np.zeros((height, width), bool)
  mask[cy:cy + local.shape[0], cx:cx + local.shape[1]] = local
  return mask


def render(scene: Scene, height: int = 64, width: int | None = None) -> np.ndarray:
  """Scene -> [height, width, 3] uint8 image."""
  width = height if width is None else width
  image = np.empty((height, width, 3), np.uint8)
  image[:] = BACKGROUND
  for obj in scene.objects:
    if obj.color not in COLORS:
      raise ValueError(f"unknown colour '{obj.color}'; known colours: {', '.join(COLORS)}")
    cy, cx, local = _placed(obj, scene.grid, height, width)
    image[cy:cy + local.shape[0], cx:cx + local.shape[1]][local] = COLORS[obj.color]
  return image


def sample_object(rng: np.random.Generator, row: int, col: int,
                  exclude: frozenset[tuple[str, str]] = frozenset()) -> Obj:
  """A random object in the given cell whose (colour, shape) is not in `exclude`."""
  while True:
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    if (color, shape) not in exclude:
      return Obj(shape, color, SIZES[rng.integers(len(SIZES))], row, col)


def sample_scene(rng: np.random.Generator, grid: int = 3, max_objects: int = 3,
                 min_objects: int = 1,
                 exclude: frozenset[tuple[str, str]] = frozenset()) -> Scene:
  """1..max_objects objects in distinct random cells."""
  n = int(rng.integers(min_objects, max_objects + 1))
  cells = rng.permutation(grid * grid)[:n]
  objects = tuple(sample_object(rng, int(c) // grid, int(c) % grid, exclude) for c in cells)
  return Scene(tuple(sorted(objects, key=lambda o: (o.row, o.col))), grid)
