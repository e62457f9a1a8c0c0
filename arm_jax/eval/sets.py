"""The fixed, seeded eval sets: GenEval-, WISE-, GEdit- and POPE-style items from one config.

Everything follows from `config.eval` (seed, num_*) and the world's layout in `config.data`
(grid, max_objects, image_size, aspect_ratios), so two runs with one config score the same items.
Scenes are drawn with the eval seed, apart from the training data's stream; colour-shape pairs the
training split holds out can appear, and each row records whether it needs one ("novel").
"""
from __future__ import annotations

import dataclasses

from arm_jax.data import captions, world
from arm_jax.data.shapes_examples import HELD_OUT, WorldParams
from arm_jax.eval import editbench, geneval, understanding, wise

# Stream ids, so adding items to one benchmark never reshuffles another.
_STREAMS = {"geneval": 1, "wise": 2, "edit": 3, "und": 4}


@dataclasses.dataclass(frozen=True)
class EvalSets:
  geneval: list[geneval.Item]
  wise: list[wise.Item]
  edit: list[editbench.Item]
  und: list[understanding.Item]
  grid: int
  image_hws: tuple[tuple[int, int], ...]   # (height, width) per aspect ratio of the config

  def image_hw(self, index: int) -> tuple[int, int]:
    """Size of the index-th source image: the config's aspect ratios in turn."""
    return self.image_hws[index % len(self.image_hws)]

  def render(self, scene: world.Scene, index: int):
    return world.render(scene, *self.image_hw(index))


def build_sets(config) -> EvalSets:
  """config.eval sizes and seed + config.data layout -> the four item lists."""
  e, d = config.eval, config.data
  params = WorldParams.from_config(config)

  def seed(name: str) -> tuple[int, int]:
    return e.seed, _STREAMS[name]

  return EvalSets(
      geneval=geneval.make_items(seed("geneval"), e.num_geneval, d.grid, d.max_objects),
      wise=wise.make_items(seed("wise"), e.num_wise, d.grid),
      edit=editbench.make_items(seed("edit"), e.num_edit, d.grid, d.max_objects),
      und=understanding.make_items(seed("und"), e.num_und, d.grid, d.max_objects),
      grid=d.grid,
      image_hws=tuple(params.image_hw(tuple(r)) for r in d.aspect_ratios))


def is_novel(*scenes: world.Scene) -> bool:
  """Whether any scene holds a colour-shape pair the training split never shows."""
  return any((o.color, o.shape) in HELD_OUT for s in scenes for o in s.objects)


def prompt_keys(sets: EvalSets) -> frozenset[str]:
  """Every eval prompt, keyed as RL prompt sets key theirs (arm_jax/rl/prompts.prompt_key):
  a T2I prompt by its text, an edit by '<full caption of the source> => <instruction>'.
  RL excludes these so it never trains on what the suite measures."""
  t2i = {item.prompt for item in sets.geneval} | {item.prompt for item in sets.wise}
  edit = {f"{captions.full_caption(item.source)} => {item.instruction}" for item in sets.edit}
  return frozenset(t2i | edit)
