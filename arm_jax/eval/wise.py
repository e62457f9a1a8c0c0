"""WISE on the shapes world: prompts a model can only draw if it learned the text-only facts.

"a shape with three corners in the color of a lime" -> a green triangle. The facts come from
arm_jax/data/knowledge.py. Colours are named through things that only the text-only split
mentions (knowledge.TEXT_ONLY_THINGS; training captions use other things), so a right colour is
knowledge carried from language into generation. Three subcategories: the colour is a riddle
('color'), the shape is a riddle ('shape'), or both are ('color+shape'); worded like training's
knowledge captions, minus the size and place they leave open.

Scoring follows WISE's WiScore (PKU-YuanGroup/WISE): consistency, realism and aesthetic quality
are each 0..2 and WiScore = (0.7 * consistency + 0.2 * realism + 0.1 * aesthetic) / 2, in 0..1.
Here a judge-free stand-in gives them: consistency 2 when a detected object has the right shape
and colour, 1 when it has one of them, else 0; realism and aesthetic are both G_PQ / 5 (exact,
clean shapes are the only "realistic" shapes-world image).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from arm_jax.data import knowledge, world
from arm_jax.eval import phrasing
from arm_jax.eval.detector import Parse
from arm_jax.eval.quality import Quality

SUBCATEGORIES = ("color", "shape", "color+shape")


@dataclasses.dataclass(frozen=True)
class Item:
  """One prompt in WISE's fields (prompt_id from 1, Prompt, Explanation, Subcategory) + answer."""
  prompt_id: int
  prompt: str
  explanation: str
  subcategory: str
  shape: str
  color: str
  reference: world.Scene

  def record(self) -> dict:
    """The item as a row of a WISE prompts JSON file."""
    return {"prompt_id": self.prompt_id, "Prompt": self.prompt, "Explanation": self.explanation,
            "Subcategory": self.subcategory}


def _things_of(color: str) -> list[str]:
  """Things of this colour that only the text split names (never a training caption)."""
  return [t for t, c in knowledge.TEXT_ONLY_THINGS.items() if c == color]


def _riddles_of(shape: str) -> list[str]:
  return [r for r, s in knowledge.SHAPE_RIDDLES.items() if s == shape]


def _prompt(subcategory: str, shape: str, color: str, rng) -> tuple[str, str]:
  """(prompt, explanation naming the facts it needs)."""
  thing = _things_of(color)[rng.integers(len(_things_of(color)))]
  riddle = _riddles_of(shape)[rng.integers(len(_riddles_of(shape)))]
  color_fact = f"{thing} is {color}"
  shape_fact = f"{riddle} is {phrasing.article(shape)} {shape}"
  if subcategory == "color":
    return phrasing.sentence(f"{phrasing.object_phrase(shape)} in the color of {thing}"), \
        color_fact
  body = riddle.split(" ", 1)[1]                       # 'shape with three corners'
  if subcategory == "shape":
    return phrasing.sentence(f"{phrasing.article(color)} {color} {body}"), shape_fact
  return phrasing.sentence(f"{riddle} in the color of {thing}"), f"{color_fact}; {shape_fact}"


def make_items(seed, num: int, grid: int) -> list[Item]:
  """`num` prompts, the three subcategories in turn, fixed by `seed`."""
  rng = np.random.default_rng(seed)
  colors = sorted(set(knowledge.TEXT_ONLY_THINGS.values()))
  shapes = sorted(set(knowledge.SHAPE_RIDDLES.values()))
  items = []
  for i in range(num):
    subcategory = SUBCATEGORIES[i % len(SUBCATEGORIES)]
    shape, color = shapes[rng.integers(len(shapes))], colors[rng.integers(len(colors))]
    prompt, explanation = _prompt(subcategory, shape, color, rng)
    row, col = divmod(int(rng.integers(grid * grid)), grid)
    obj = world.Obj(shape, color, world.SIZES[rng.integers(len(world.SIZES))], row, col)
    items.append(Item(i + 1, prompt, explanation, subcategory, shape, color,
                      world.Scene((obj,), grid)))
  return items


def consistency(parse: Parse, shape: str, color: str) -> int:
  """0..2: 2 = an object with both the shape and the colour, 1 = one of them, 0 = neither."""
  best = 0
  for d in parse.detections:
    best = max(best, int(d.shape == shape) + int(d.color == color))
  return best


def wiscore(consistency_: float, realism: float, aesthetic: float) -> float:
  """WISE's WiScore from three 0..2 scores, in 0..1."""
  return (0.7 * consistency_ + 0.2 * realism + 0.1 * aesthetic) / 2


def score(item: Item, parse: Parse, quality: Quality) -> dict:
  """One image -> a row in the schema of WISE's scores jsonl, plus the WiScore."""
  c = consistency(parse, item.shape, item.color)
  r = a = 2.0 * quality.score / 10.0
  return {"prompt_id": item.prompt_id, "Subcategory": item.subcategory, "consistency": float(c),
          "realism": r, "aesthetic_quality": a, "wiscore": wiscore(c, r, a)}


def summarize(rows: list[dict]) -> dict:
  """Mean WiScore overall and per subcategory, and the fraction fully consistent."""
  by_sub: dict[str, list[float]] = {}
  for row in rows:
    by_sub.setdefault(row["Subcategory"], []).append(row["wiscore"])
  scores = [r["wiscore"] for r in rows]
  return {"wiscore": float(np.mean(scores)) if rows else 0.0,
          "wiscore_se": float(np.std(scores, ddof=1) / np.sqrt(len(rows)))
          if len(rows) > 1 else 0.0,
          "knowledge_accuracy": float(np.mean([r["consistency"] == 2 for r in rows]))
          if rows else 0.0,
          "subcategories": {k: float(np.mean(v)) for k, v in by_sub.items()},
          "images": len(rows)}
