"""One shapes-world dataset example as a pure function of (params, split, index).

Every example holds a scene, its image, all caption phrasings, one QA pair of each kind, and an
edit triplet (instructions, target image, target objects). Splits differ in what they hold out:
train and validation never contain a HELD_OUT (colour, shape) pair; every test scene contains at
least one, so test measures compositional generalisation (each colour and each shape alone is
seen in training, only the pairing is new).

Text fields are json strings so records stay plain bytes + uint8 arrays (no TensorFlow to read).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from arm_jax.data import captions, edits, questions, world

# Never in train/validation; at least one in every test scene. One per shape, distinct colours.
HELD_OUT = frozenset({("red", "triangle"), ("blue", "circle"), ("yellow", "square")})
SPLITS = ("train", "validation", "test")
INSTRUCTIONS_PER_EDIT = 3


@dataclasses.dataclass(frozen=True)
class WorldParams:
  """What determines the bytes of a shapes-world build (besides the example counts)."""
  image_size: int = 64
  aspect_ratios: tuple = ((1, 1),)
  grid: int = 3
  max_objects: int = 3
  multiple_of: int = 8          # image sides are rounded to this (the tokenizer's patch size)
  seed: int = 0

  @staticmethod
  def from_config(config) -> "WorldParams":
    d = config.data
    return WorldParams(d.image_size, tuple(tuple(int(x) for x in r) for r in d.aspect_ratios),
                       d.grid, d.max_objects, config.tokenizer.patch_size, d.seed)

  def image_hw(self, ratio: tuple[int, int]) -> tuple[int, int]:
    """(height, width): the long side is image_size, both multiples of `multiple_of`."""
    a, b = ratio
    long = max(a, b)
    def side(x):
      return max(self.multiple_of, int(round(self.image_size * x / long / self.multiple_of))
                 * self.multiple_of)
    return side(a), side(b)


def _rng(params: WorldParams, split: str, index: int) -> np.random.Generator:
  return np.random.default_rng([params.seed, SPLITS.index(split), index])


def sample_split_scene(rng: np.random.Generator, params: WorldParams, split: str) -> world.Scene:
  """A scene for `split`: without HELD_OUT pairs, or (test) with at least one of them."""
  scene = world.sample_scene(rng, params.grid, params.max_objects, exclude=HELD_OUT)
  if split != "test":
    return scene
  objects = list(scene.objects)
  k = int(rng.integers(len(objects)))
  color, shape = sorted(HELD_OUT)[int(rng.integers(len(HELD_OUT)))]
  objects[k] = dataclasses.replace(objects[k], color=color, shape=shape)
  return world.Scene(tuple(objects), scene.grid)


def make_example(params: WorldParams, split: str, index: int) -> dict:
  """The record for example `index` of `split` (features as in shapes_world.py)."""
  rng = _rng(params, split, index)
  ratio = params.aspect_ratios[int(rng.integers(len(params.aspect_ratios)))]
  h, w = params.image_hw(ratio)
  scene = sample_split_scene(rng, params, split)
  exclude = frozenset() if split == "test" else HELD_OUT
  edit = edits.sample_edit(rng, scene, max_objects=params.max_objects, exclude=exclude)
  target = edits.apply_edit(scene, edit)
  qas = [questions.sample_qa(scene, rng, (kind,)) for kind in questions.QA_KINDS]
  instructions = list(dict.fromkeys(  # distinct phrasings, in draw order
      edits.edit_instruction(edit, rng, scene) for _ in range(INSTRUCTIONS_PER_EDIT)))
  return {
      "image": world.render(scene, h, w),
      "objects": json.dumps(scene.to_json()),
      "grid": np.int32(params.grid),
      "captions": json.dumps(list(captions.all_captions(scene).values()) +
                             [captions.knowledge_caption(scene, rng)]),
      "qa": json.dumps([q.to_json() for q in qas]),
      "edit": json.dumps(edit.to_json()),
      "edit_instructions": json.dumps(instructions),
      "target_image": world.render(target, h, w),
      "target_objects": json.dumps(target.to_json()),
  }
