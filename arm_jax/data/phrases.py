"""Words for scenes: places, numbers, plurals and referring expressions that pick out one object.

Shared by captions, questions and edit instructions so that every text in the shapes world names
things the same way (and the eval suite can parse them back with the same tables).
"""
from __future__ import annotations

import numpy as np

from arm_jax.data.world import Obj, Scene, position_name

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def number_word(n: int) -> str:
  return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def plural(noun: str, n: int) -> str:
  return noun if n == 1 else noun + "s"


def place(row: int, col: int, grid: int) -> str:
  """A noun phrase for a cell: 'the top left', 'the center', 'row 2 column 4'."""
  name = position_name(row, col, grid)
  return name if name.startswith("row ") else f"the {name}"


def article(phrase: str) -> str:
  return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _unique(scene: Scene, obj: Obj, keys) -> bool:
  return sum(all(getattr(o, k) == getattr(obj, k) for k in keys) for o in scene.objects) == 1


def references(obj: Obj, scene: Scene) -> list[str]:
  """Every phrase (without article) that names `obj` and no other object of `scene`.

  Never empty: the position phrase is always unique because objects sit in distinct cells.
  """
  out = []
  if _unique(scene, obj, ("shape",)):
    out.append(obj.shape)
  if _unique(scene, obj, ("color", "shape")):
    out.append(f"{obj.color} {obj.shape}")
  if _unique(scene, obj, ("size", "color", "shape")):
    out.append(obj.phrase())
  where = place(obj.row, obj.col, scene.grid)
  out.append(f"{obj.color} {obj.shape} in {where}")
  out.append(f"shape in {where}")
  return out


def refer(obj: Obj, scene: Scene, rng: np.random.Generator) -> str:
  """A random unambiguous referring phrase for `obj`, e.g. 'red circle' or 'shape in the center'."""
  options = references(obj, scene)
  return options[int(rng.integers(len(options)))]
