"""Stand-in models for the eval protocol: the upper bound, a degraded copy, and a wrong one.

- OracleModel draws exactly what each eval item asks for (its reference / target scene) and
  answers every question correctly; with `noise`/`blur` it imitates a blurry decoder. The suite's
  scores on it are the ceiling (1.0 / 10.0 when undegraded). With `codec` (a visual tokenizer:
  encode(images) -> codes, decode(codes) -> images) each drawing goes through it: the ceiling of
  any model that writes that tokenizer's codes.
- WrongModel draws the wrong thing (other colours, shapes and cells), returns edits unedited and
  gets every answer wrong. Scores on it are the floor. Every scorer must separate the two.
They look items up by prompt text and by source image bytes, so they only know the eval sets.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
from scipy import ndimage

from arm_jax.data import world
from arm_jax.eval import understanding
from arm_jax.eval.sets import EvalSets


def image_key(image: np.ndarray) -> str:
  array = np.ascontiguousarray(np.asarray(image, np.uint8))
  return hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()


class _Lookup:
  """Prompt / source image -> the item's scenes and answers."""

  def __init__(self, sets: EvalSets):
    self.sets = sets
    self.t2i = {i.prompt: i.reference for i in sets.geneval} | \
               {i.prompt: i.reference for i in sets.wise}
    self.edit = {(image_key(sets.render(i.source, i.index)), i.instruction): i
                 for i in sets.edit}
    self.und = {(image_key(sets.render(i.scene, i.index)), i.question): i for i in sets.und}

  def hw(self) -> tuple[int, int]:
    return self.sets.image_hw(0)


class OracleModel:
  """Draws each item's reference scene; `noise` (pixel std) and `blur` (px) degrade it."""

  def __init__(self, sets: EvalSets, noise: float = 0.0, blur: float = 0.0, codec=None):
    self.lookup = _Lookup(sets)
    self.noise, self.blur, self.codec = noise, blur, codec

  def _draw(self, scene: world.Scene, hw, rng: np.random.Generator) -> np.ndarray:
    image = world.render(scene, *hw).astype(np.float32)
    if self.blur:
      image = ndimage.gaussian_filter(image, (self.blur, self.blur, 0))
    if self.noise:
      image = image + rng.normal(0.0, self.noise, image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    if self.codec is not None:
      image = np.asarray(self.codec.decode(self.codec.encode(image[None]))[0], np.uint8)
    return image

  def generate(self, prompts, seed):
    rng = np.random.default_rng(seed)
    return [self._draw(self.lookup.t2i[p], self.lookup.hw(), rng) for p in prompts]

  def edit(self, images, instructions, seed):
    rng = np.random.default_rng(seed)
    items = [self.lookup.edit[(image_key(im), ins)] for im, ins in zip(images, instructions)]
    return [self._draw(i.target, np.shape(im)[:2], rng) for i, im in zip(items, images)]

  def answer(self, images, questions):
    return [self.lookup.und[(image_key(im), q)].answer for im, q in zip(images, questions)]


def _other(rng: np.random.Generator, options, used) -> str:
  """A random option not in `used` (not the object's own, if every option is used)."""
  free = [o for o in options if o not in used]
  return free[rng.integers(len(free))]


def wrong_scene(scene: world.Scene, rng: np.random.Generator) -> world.Scene:
  """Objects with colours and shapes the scene doesn't have, moved to free cells where possible.

  (Swapping attributes among the objects would still satisfy "a circle and a square".)
  """
  grid = scene.grid
  colors_used = {o.color for o in scene.objects}
  shapes_used = {o.shape for o in scene.objects}
  cells = [divmod(int(c), grid) for c in rng.permutation(grid * grid)
           if divmod(int(c), grid) not in scene.cells()]
  objects = []
  for k, obj in enumerate(scene.objects):
    color = _other(rng, list(world.COLORS), colors_used if len(colors_used) < len(world.COLORS)
                   else {obj.color})
    shape = _other(rng, world.SHAPES, shapes_used if len(shapes_used) < len(world.SHAPES)
                   else {obj.shape})
    row, col = cells[k] if k < len(cells) else (obj.row, obj.col)
    objects.append(dataclasses.replace(obj, color=color, shape=shape, row=row, col=col))
  return world.Scene(tuple(sorted(objects, key=lambda o: (o.row, o.col))), grid)


def wrong_answer(item: understanding.Item) -> str:
  if item.kind.startswith("pope_"):
    return "no" if item.answer == "yes" else "yes"
  if item.kind == "choice":
    letters = understanding.questions.CHOICE_LETTERS[:len(item.choices)]
    return next(letter for letter in letters if letter != item.answer)
  if item.kind in understanding.EXACT_KINDS:
    return "not " + item.answer
  return str(understanding.phrases.NUMBER_WORDS.index(item.answer) + 1)


class WrongModel:
  """Draws wrong scenes, returns sources unedited, answers wrongly."""

  def __init__(self, sets: EvalSets):
    self.lookup = _Lookup(sets)

  def generate(self, prompts, seed):
    rng = np.random.default_rng(seed)
    return [world.render(wrong_scene(self.lookup.t2i[p], rng), *self.lookup.hw())
            for p in prompts]

  def edit(self, images, instructions, seed):
    return [np.array(im, np.uint8) for im in images]

  def answer(self, images, questions):
    return [wrong_answer(self.lookup.und[(image_key(im), q)]) for im, q in zip(images, questions)]
