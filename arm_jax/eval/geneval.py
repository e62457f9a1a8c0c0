"""GenEval on the shapes world: same six tasks, same metadata schema, same correctness rules.

A prompt is a GenEval `evaluation_metadata.jsonl` record -- {"tag", "prompt", "include": [{"class",
"count", "color"?, "position"?: [relation, group]}], "exclude"?: [{"class", "count"}]} -- with
shapes as the classes and palette colours as the colours. An image is correct when (GenEval's rules,
djghosh13/geneval evaluation/evaluate_images.py): every `include` clause finds at least `count`
objects of its class, the `count` most confident of them have the clause's colour, and each lies
in the clause's relation to every object of the group it refers to; and no `exclude` clause finds
`count` or more. Position compares box centres with GenEval's slack (POSITION_THRESHOLD).
Scores: per task, the fraction of correct images; overall, the mean over tasks.

Because the toy world has only three shapes, prompts repeat; each repeat is another sample.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from arm_jax.data import world
from arm_jax.eval import phrasing
from arm_jax.eval.detector import Detection, Parse

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
POSITION_THRESHOLD = 0.1      # GenEval's default slack, in units of the two boxes' sizes
# GenEval keeps detections above 0.3 and, when counting, above 0.9 (Mask2Former scores). Ours are
# calibrated for the shapes detector: exact renders score ~1, objects blurred by sigma = 1 px
# stay above 0.4, specks in heavy noise stay below 0.1.
DETECTION_THRESHOLD = 0.1
COUNTING_THRESHOLD = 0.2
MAX_COUNT = 4


@dataclasses.dataclass(frozen=True)
class Item:
  """One prompt: its GenEval metadata and one scene that satisfies it (what an oracle draws)."""
  index: int
  metadata: dict
  reference: world.Scene

  @property
  def prompt(self) -> str:
    return self.metadata["prompt"]


# ---------------------------------------------------------------------------------------------
# Prompt sets
# ---------------------------------------------------------------------------------------------

def _pick(rng: np.random.Generator, options: Sequence, k: int) -> list:
  return [options[i] for i in rng.choice(len(options), size=k, replace=False)]


def _place(rng, grid: int, specs: list[tuple[str, str | None]], cells=None) -> world.Scene:
  """(shape, colour or None) specs -> a scene with them in random (or given) distinct cells."""
  cells = cells or [divmod(int(c), grid) for c in rng.permutation(grid * grid)[:len(specs)]]
  colors = list(world.COLORS)
  objects = [world.Obj(shape, color or colors[rng.integers(len(colors))],
                       world.SIZES[rng.integers(len(world.SIZES))], r, c)
             for (shape, color), (r, c) in zip(specs, cells)]
  return world.Scene(tuple(sorted(objects, key=lambda o: (o.row, o.col))), grid)


def _related_cells(rng, grid: int, relation: str) -> tuple[tuple[int, int], tuple[int, int]]:
  """(subject cell, anchor cell) with the subject strictly `relation` of the anchor, same line."""
  a, b = sorted(_pick(rng, range(grid), 2))
  line = int(rng.integers(grid))
  if relation in ("left of", "right of"):
    left, right = (line, a), (line, b)
    return (left, right) if relation == "left of" else (right, left)
  top, bottom = (a, line), (b, line)
  return (top, bottom) if relation == "above" else (bottom, top)


def sample_metadata(rng: np.random.Generator, tag: str, grid: int,
                    max_objects: int) -> tuple[dict, world.Scene]:
  """One GenEval record of the given task and a scene that satisfies it."""
  shapes, colors = world.SHAPES, list(world.COLORS)
  if tag == "single_object":
    shape = _pick(rng, shapes, 1)[0]
    return (dict(tag=tag, include=[{"class": shape, "count": 1}],
                 prompt=phrasing.sentence(phrasing.object_phrase(shape))),
            _place(rng, grid, [(shape, None)]))
  if tag == "two_object":
    a, b = _pick(rng, shapes, 2)
    return (dict(tag=tag, include=[{"class": a, "count": 1}, {"class": b, "count": 1}],
                 prompt=phrasing.sentence(phrasing.both_phrase(phrasing.object_phrase(a),
                                                              phrasing.object_phrase(b)))),
            _place(rng, grid, [(a, None), (b, None)]))
  if tag == "counting":
    shape = _pick(rng, shapes, 1)[0]
    n = int(rng.integers(2, max(2, min(MAX_COUNT, max_objects, grid * grid)) + 1))
    return (dict(tag=tag, include=[{"class": shape, "count": n}],
                 exclude=[{"class": shape, "count": n + 1}],
                 prompt=phrasing.sentence(phrasing.count_phrase(n, shape))),
            _place(rng, grid, [(shape, None)] * n))
  if tag == "colors":
    shape, color = _pick(rng, shapes, 1)[0], _pick(rng, colors, 1)[0]
    return (dict(tag=tag, include=[{"class": shape, "count": 1, "color": color}],
                 prompt=phrasing.sentence(phrasing.object_phrase(shape, color))),
            _place(rng, grid, [(shape, color)]))
  if tag == "position":
    subject, anchor = _pick(rng, shapes, 2)
    relation = _pick(rng, list(phrasing.RELATIONS), 1)[0]
    cells = list(_related_cells(rng, grid, relation))
    return (dict(tag=tag, include=[{"class": anchor, "count": 1},
                                   {"class": subject, "count": 1, "position": [relation, 0]}],
                 prompt=phrasing.sentence(phrasing.relation_phrase(
                     phrasing.object_phrase(subject), relation, phrasing.object_phrase(anchor)))),
            _place(rng, grid, [(subject, None), (anchor, None)], cells))
  if tag == "color_attr":
    (a, b), (ca, cb) = _pick(rng, shapes, 2), _pick(rng, colors, 2)
    return (dict(tag=tag, include=[{"class": a, "count": 1, "color": ca},
                                   {"class": b, "count": 1, "color": cb}],
                 prompt=phrasing.sentence(phrasing.both_phrase(phrasing.object_phrase(a, ca),
                                                               phrasing.object_phrase(b, cb)))),
            _place(rng, grid, [(a, ca), (b, cb)]))
  raise ValueError(f"unknown GenEval task '{tag}'; known: {', '.join(TAGS)}")


def make_items(seed, num: int, grid: int, max_objects: int) -> list[Item]:
  """`num` prompts, the six tasks in turn, fixed by `seed`."""
  rng = np.random.default_rng(seed)
  items = []
  for i in range(num):
    metadata, scene = sample_metadata(rng, TAGS[i % len(TAGS)], grid, max_objects)
    items.append(Item(i, metadata, scene))
  return items


# ---------------------------------------------------------------------------------------------
# Correctness (GenEval's rules over the detector's objects)
# ---------------------------------------------------------------------------------------------

def _xyxy(d: Detection) -> np.ndarray:
  top, left, bottom, right = d.box
  return np.array([left, top, right - 1, bottom - 1], np.float32)


def relative_position(a: Detection, b: Detection) -> set[str]:
  """Relations of A to B ('left of', 'right of', 'above', 'below'), GenEval's geometry."""
  boxes = np.stack([_xyxy(a), _xyxy(b)]).reshape(2, 2, 2)
  center_a, center_b = boxes.mean(axis=1)
  dim_a, dim_b = np.abs(boxes[:, 1] - boxes[:, 0])
  offset = center_a - center_b
  slack = np.maximum(np.abs(offset) - POSITION_THRESHOLD * (dim_a + dim_b), 0) * np.sign(offset)
  if np.all(np.abs(slack) < 1e-3):
    return set()
  dx, dy = slack / np.linalg.norm(offset)
  relations = set()
  if dx < -0.5:
    relations.add("left of")
  if dx > 0.5:
    relations.add("right of")
  if dy < -0.5:
    relations.add("above")
  if dy > 0.5:
    relations.add("below")
  return relations


def objects_by_class(parse: Parse, tag: str) -> dict[str, list[Detection]]:
  """Detections above the task's threshold, grouped by shape, most confident first."""
  threshold = COUNTING_THRESHOLD if tag == "counting" else DETECTION_THRESHOLD
  found: dict[str, list[Detection]] = {}
  for d in parse.detections:
    if d.confidence > threshold:
      found.setdefault(d.shape, []).append(d)
  return found


def _check_include(req: dict, found: list[Detection], groups: list) -> list[str]:
  """Reasons this include clause fails (empty = satisfied)."""
  cls, count = req["class"], req["count"]
  if len(found) < count:
    return [f"expected {cls}>={count}, found {len(found)}"]
  if "color" in req:
    hits = sum(d.color == req["color"] for d in found)
    if hits < count:
      return [f"expected {req['color']} {cls}>={count}, found {hits} {req['color']}"]
  if "position" in req:
    relation, group = req["position"]
    if group >= len(groups) or groups[group] is None:
      return [f"no target for {cls} to be {relation}"]
    for obj in found:
      for target in groups[group]:
        actual = relative_position(obj, target)
        if relation not in actual:
          return [f"expected {cls} {relation} target, found {' and '.join(sorted(actual))} target"]
  return []


def evaluate(parse: Parse, metadata: dict) -> tuple[bool, str]:
  """(correct, reason) for one image under one GenEval record."""
  objects = objects_by_class(parse, metadata.get("tag", ""))
  reasons, groups = [], []
  for req in metadata.get("include", []):
    found = objects.get(req["class"], [])[:req["count"]]
    failed = _check_include(req, found, groups)
    reasons += failed
    groups.append(None if failed else found)
  for req in metadata.get("exclude", []):
    n = len(objects.get(req["class"], []))
    if n >= req["count"]:
      reasons.append(f"expected {req['class']}<{req['count']}, found {n}")
  return not reasons, "\n".join(reasons)


def summarize(results: list[dict]) -> dict:
  """GenEval's summary: per-task accuracy and the overall mean over tasks.

  `results` rows carry at least 'tag' and 'correct' (GenEval's results.jsonl rows do).
  """
  by_tag: dict[str, list[bool]] = {}
  for row in results:
    by_tag.setdefault(row["tag"], []).append(bool(row["correct"]))
  tasks = {tag: float(np.mean(v)) for tag, v in by_tag.items()}
  # Sampling standard error of the mean of task means (binomial within each task).
  var = [p * (1 - p) / len(by_tag[t]) for t, p in tasks.items()]
  return {"overall": float(np.mean(list(tasks.values()))) if tasks else 0.0,
          "overall_se": float(np.sqrt(sum(var)) / len(var)) if var else 0.0,
          "tasks": tasks, "images": len(results)}
