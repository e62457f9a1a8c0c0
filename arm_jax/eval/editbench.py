"""GEdit-Bench on the shapes world: G_SC, G_PQ and G_O = sqrt(G_SC * G_PQ), each 0..10.

An item is a (source scene, instruction, target scene) triple; any edit source plugs in through
`score(image, source, target)`. The built-in set draws edits with arm_jax/data/edits.py
(recolor, add, remove, move, resize) and words them as training does.

- G_SC (semantic consistency): 10 x followed x kept. `followed` is 1 when every cell the edit
  changes shows exactly the target's object (or nothing, for a removal); `kept` is the fraction
  of untouched objects still there unchanged, with any object drawn in a cell that should be empty
  counting against it. Returning the source unedited scores 0, as GEdit's judge would.
- G_PQ (perceptual quality): arm_jax/eval/quality.py.
- G_O per sample = sqrt(G_SC * G_PQ) (GEdit's overall), averaged over samples.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from arm_jax.data import edits, world
from arm_jax.eval.quality import Quality

# Our edit kinds as GEdit-Bench task types where GEdit has the same task; the rest keep our name.
GEDIT_TASK_TYPES = {"recolor": "color_alter", "add": "subject-add", "remove": "subject-remove",
                    "move": "move", "resize": "resize"}


@dataclasses.dataclass(frozen=True)
class Item:
  index: int
  source: world.Scene
  instruction: str
  target: world.Scene
  kind: str

  @property
  def key(self) -> str:
    """GEdit-style sample key."""
    return f"shapes_{self.index:05d}"


def make_items(seed, num: int, grid: int, max_objects: int) -> list[Item]:
  """`num` edit triples fixed by `seed`, each on its own random source scene."""
  rng = np.random.default_rng(seed)
  items = []
  while len(items) < num:
    scene = world.sample_scene(rng, grid, max_objects)
    if not edits.feasible_kinds(scene, max_objects):
      continue
    edit = edits.sample_edit(rng, scene, grid, max_objects=max_objects)
    instruction = edits.edit_instruction(edit, rng, scene)
    items.append(Item(len(items), scene, instruction, edits.apply_edit(scene, edit), edit.kind))
  return items


def semantic_consistency(shown: world.Scene, source: world.Scene,
                         target: world.Scene) -> tuple[float, bool, float]:
  """(G_SC 0..10, followed, kept) of the scene an edited image shows."""
  src, tgt, got = source.by_cell(), target.by_cell(), shown.by_cell()
  changed = {c for c in set(src) | set(tgt) if src.get(c) != tgt.get(c)}
  followed = all(got.get(c) == tgt.get(c) for c in changed)
  untouched = [c for c in tgt if c not in changed]
  extra = [c for c in got if c not in tgt and c not in changed]
  slots = len(untouched) + len(extra)
  kept = sum(got.get(c) == tgt[c] for c in untouched) / slots if slots else 1.0
  return 10.0 * followed * kept, followed, kept


def score(shown: world.Scene, quality: Quality, source: world.Scene,
          target: world.Scene) -> dict:
  """One edited image (its parsed scene and quality) -> G_SC, G_PQ, G_O and the parts."""
  sc, followed, kept = semantic_consistency(shown, source, target)
  pq = quality.score
  return {"G_SC": sc, "G_PQ": pq, "G_O": math.sqrt(sc * pq), "followed": bool(followed),
          "kept": kept}


def summarize(rows: list[dict]) -> dict:
  """Means of G_SC, G_PQ, G_O over samples, and G_O per edit kind (rows carry 'kind')."""
  if not rows:
    return {"G_SC": 0.0, "G_PQ": 0.0, "G_O": 0.0, "G_SC_se": 0.0, "G_PQ_se": 0.0, "G_O_se": 0.0,
            "followed": 0.0, "kinds": {}, "followed_kinds": {}, "samples": 0}
  kinds: dict[str, list[dict]] = {}
  for row in rows:
    kinds.setdefault(row.get("kind", "edit"), []).append(row)
  names = ("G_SC", "G_PQ", "G_O")
  return {name: float(np.mean([r[name] for r in rows])) for name in names} | {
      f"{name}_se": _se([r[name] for r in rows]) for name in names} | {
      "followed": float(np.mean([r["followed"] for r in rows])),
      "kinds": {k: float(np.mean([r["G_O"] for r in v])) for k, v in kinds.items()},
      "followed_kinds": {k: float(np.mean([r["followed"] for r in v])) for k, v in kinds.items()},
      "samples": len(rows)}


def _se(values) -> float:
  """Standard error of the mean of `values` (0 for fewer than two)."""
  return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
