"""Captions of scenes in several phrasings.

`full_caption` is the canonical, complete description (size, colour, shape and place of every
object): the captioning answer and the T2I prompt the eval suite uses. `caption` draws one of
several phrasings, some less specific (no sizes or places, grouped counts), so the model learns
to follow prompts that leave things open.
"""
from __future__ import annotations

import collections

import numpy as np

from arm_jax.data import knowledge
from arm_jax.data.phrases import article, number_word, place, plural
from arm_jax.data.world import Scene


def _join(parts: list[str]) -> str:
  if not parts:
    return "nothing"
  if len(parts) == 1:
    return parts[0]
  return ", ".join(parts[:-1]) + " and " + parts[-1]


def _located(scene: Scene) -> list[str]:
  return [f"{article(o.phrase())} in {place(o.row, o.col, scene.grid)}" for o in scene.objects]


def _counted(scene: Scene) -> list[str]:
  """'two red circles', 'a blue square' (grouped by colour and shape, in scene order)."""
  counts = collections.Counter((o.color, o.shape) for o in scene.objects)
  out = []
  for (color, shape), n in counts.items():
    out.append(article(f"{color} {shape}") if n == 1 else
               f"{number_word(n)} {color} {plural(shape, n)}")
  return out


def full_caption(scene: Scene) -> str:
  """Canonical caption: 'a large red circle in the top left and a small blue square in the center.'"""
  return _join(_located(scene)) + "."


def _style_list(scene: Scene) -> str:
  return full_caption(scene)


def _style_there_is(scene: Scene) -> str:
  return f"there {'is' if len(scene.objects) == 1 else 'are'} {_join(_located(scene))}."


def _style_image_of(scene: Scene) -> str:
  return f"an image of {_join(_located(scene))}."


def _style_counted(scene: Scene) -> str:
  return _join(_counted(scene)) + "."


def _style_count_first(scene: Scene) -> str:
  n = len(scene.objects)
  return f"{number_word(n)} {plural('shape', n)}: {_join(_counted(scene))}."


def _style_attributes(scene: Scene) -> str:
  return _join([article(o.phrase()) for o in scene.objects]) + "."


def _style_shapes_only(scene: Scene) -> str:
  """Colour-free: 'two circles and a square.' (GenEval's single/two-object/counting wording)."""
  counts = collections.Counter(o.shape for o in scene.objects)
  return _join([article(shape) if n == 1 else f"{number_word(n)} {plural(shape, n)}"
                for shape, n in counts.items()]) + "."


def _relation(a, b) -> str | None:
  """How `a` sits relative to `b` on the grid, in GenEval's words, or None."""
  if a.row == b.row:
    return "to the left of" if a.col < b.col else "to the right of"
  if a.col == b.col:
    return "above" if a.row < b.row else "below"
  return None


def _style_relation(scene: Scene, colored: bool = True) -> str:
  """'a red circle to the left of a blue square.' for the first related pair; falls back to the
  attribute list when no two objects share a row or column."""
  name = (lambda o: article(f"{o.color} {o.shape}")) if colored else (
      lambda o: article(o.shape))
  objs = scene.objects
  for i, a in enumerate(objs):
    for b in objs[i + 1:]:
      rel = _relation(a, b)
      if rel:
        return f"{name(a)} {rel} {name(b)}."
  return _style_attributes(scene)


STYLES = {
    "list": _style_list,
    "there_is": _style_there_is,
    "image_of": _style_image_of,
    "counted": _style_counted,
    "count_first": _style_count_first,
    "attributes": _style_attributes,
    "shapes_only": _style_shapes_only,
    "relation": _style_relation,
    "relation_plain": lambda scene: _style_relation(scene, colored=False),
}
# Styles that pin down every object's place: the image is fully determined by the caption.
COMPLETE_STYLES = ("list", "there_is", "image_of")


def knowledge_caption(scene: Scene, rng: np.random.Generator,
                      things: dict[str, str] | None = None) -> str:
  """Objects named through facts: 'a large shape with three corners in the color of grass in the
  top left.' Colours are named by a thing of that colour from `things` (CAPTION_THINGS)."""
  things = knowledge.CAPTION_THINGS if things is None else things
  parts = []
  for o in scene.objects:
    riddle = [r for r, s in knowledge.SHAPE_RIDDLES.items() if s == o.shape]
    options = [t for t, c in things.items() if c == o.color]
    thing = options[int(rng.integers(len(options)))]
    noun = riddle[int(rng.integers(len(riddle)))].split(" ", 1)[1]   # drop the article
    parts.append(f"a {o.size} {noun} in the color of {thing} in {place(o.row, o.col, scene.grid)}")
  return _join(parts) + "."


def caption(scene: Scene, rng: np.random.Generator, styles=tuple(STYLES)) -> str:
  """One caption of `scene` in a randomly chosen style from `styles`."""
  return STYLES[styles[int(rng.integers(len(styles)))]](scene)


def all_captions(scene: Scene) -> dict[str, str]:
  """style -> caption, every style."""
  return {name: fn(scene) for name, fn in STYLES.items()}
