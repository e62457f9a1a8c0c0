"""Rewards: (images, prompt metadata) -> scores in [0, 1], registered by name, weighted by config.

The reward API is a plain function (or any callable object, e.g. a class wrapping a jitted
JAX model) of

    images:  np.ndarray [N, H, W, 3] uint8, the rollouts decoded to pixels
    prompts: Sequence[PromptMeta], one per image (task, text, target scene, edit, ...)
    -> np.ndarray [N] float in [0, 1] (higher is better)

registered with the tasks it applies to; `config.rl.rewards` = ((name, weight), ...) picks and
weighs them. Plugging in your own:

    from arm_jax.rl.rewards import register_reward

    @register_reward("brightness", tasks=("t2i",))
    def brightness(images, prompts):
      return images.mean(axis=(1, 2, 3)) / 255.0

    # in my_rewards.py, then:
    #   --config.rl.reward_modules="('my_rewards',)" \
    #   --config.rl.rewards="(('adherence', 1.0), ('brightness', 0.1))"

A model works the same way: register an instance whose `__call__(images, prompts)` runs it.

The built-in rewards read images with the shapes-world detector (arm_jax/eval/detector.py):
`quality` (the edit bench's G_PQ: a clean picture of ideal shapes), `adherence`
(detected objects vs the objects the prompt asks for) and `consistency` (editing: the requested
change is made and everything else is kept).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from arm_jax.data import world
from arm_jax.data.edits import Edit
from arm_jax.errors import UserError
from arm_jax.eval import detector, geneval
from arm_jax.eval import quality as eval_quality

TASKS = ("t2i", "edit")
# Attributes a prompt can pin down; "cell" is the object's (row, col).
ATTRIBUTES = ("shape", "color", "size", "cell")


@dataclasses.dataclass(frozen=True)
class PromptMeta:
  """What a rollout was asked for.

  target: the scene a perfect image shows (T2I: the caption's scene; editing: the edited scene).
  attributes: which of ATTRIBUTES the text fixes (a caption without places leaves "cell" open).
  source, edit: editing only, the source scene and the edit applied to it.
  """
  task: str
  text: str
  target: world.Scene
  attributes: tuple[str, ...] = ATTRIBUTES
  source: world.Scene | None = None
  edit: Edit | None = None
  # A GenEval-like record (eval/geneval.py) when the prompt is one: adherence then applies
  # GenEval's rule to it instead of matching `target`, one scene of many that satisfy it.
  geneval: dict | None = None


RewardFn = Callable[[np.ndarray, Sequence[PromptMeta]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class _Entry:
  fn: RewardFn
  tasks: tuple[str, ...]


_REWARDS: dict[str, _Entry] = {}


def register_reward(name: str, *, tasks: Sequence[str] = TASKS):
  """Decorator: registers `fn(images, prompts) -> [N] scores in [0, 1]` for `tasks`."""
  bad = [t for t in tasks if t not in TASKS]
  if bad:
    raise UserError(f"reward '{name}' names unknown tasks {bad}; tasks are {', '.join(TASKS)}")

  def wrap(fn: RewardFn) -> RewardFn:
    _REWARDS[name] = _Entry(fn, tuple(tasks))
    return fn
  return wrap


def reward_names() -> list[str]:
  return sorted(_REWARDS)


# ---------------------------------------------------------------------------------------------
# Shared parsing: every built-in reward reads the same detector output, parsed once per image.
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _parse_bytes(data: bytes, shape: tuple[int, ...], grid: int) -> detector.Parse:
  return detector.parse_image(np.frombuffer(data, np.uint8).reshape(shape), grid)


def parse(image: np.ndarray, grid: int) -> detector.Parse:
  """detector.parse_image, cached on the image's bytes (rewards share one parse per image)."""
  image = np.ascontiguousarray(image, np.uint8)
  return _parse_bytes(image.tobytes(), image.shape, grid)


def _agreement(want: world.Obj, got: world.Obj, attributes: Sequence[str]) -> float:
  """Fraction of the pinned attributes on which two objects agree."""
  same = [(want.row, want.col) == (got.row, got.col) if a == "cell" else
          getattr(want, a) == getattr(got, a) for a in attributes]
  return float(np.mean(same)) if same else 1.0


def match_score(want: Sequence[world.Obj], got: Sequence[world.Obj],
                attributes: Sequence[str] = ATTRIBUTES) -> float:
  """Best one-to-one matching of wanted and found objects, in [0, 1].

  Sum of per-pair attribute agreement over max(len(want), len(got)): a missing or an extra
  object costs a full object, a wrong colour costs a quarter of one (with all four attributes).
  Nothing wanted and nothing found scores 1.
  """
  if not want and not got:
    return 1.0
  if not want or not got:
    return 0.0
  agree = np.array([[_agreement(w, g, attributes) for g in got] for w in want])
  rows, cols = linear_sum_assignment(-agree)
  return float(agree[rows, cols].sum() / max(len(want), len(got)))


# ---------------------------------------------------------------------------------------------
# Built-in rewards
# ---------------------------------------------------------------------------------------------

@register_reward("quality")
def quality(images: np.ndarray, prompts: Sequence[PromptMeta]) -> np.ndarray:
  """A clean picture: the edit bench's G_PQ (palette-clean pixels x ideal forms x no specks) / 10.

  An exact render scores 1; blur, off-palette pixels, ragged shapes and specks lower it.
  """
  return np.asarray([eval_quality.quality(image, parse(image, p.target.grid)).score / 10.0
                     for image, p in zip(images, prompts)], np.float32)


@register_reward("adherence")
def adherence(images: np.ndarray, prompts: Sequence[PromptMeta]) -> np.ndarray:
  """Detected objects vs the prompt's objects, on the attributes the prompt pins down; 1 or 0
  by GenEval's rule for a GenEval-like prompt."""
  def one(image, p):
    found = parse(image, p.target.grid)
    if p.geneval is not None:
      return float(geneval.evaluate(found, p.geneval)[0])
    return match_score(p.target.objects, found.scene().objects, p.attributes)
  return np.asarray([one(image, p) for image, p in zip(images, prompts)], np.float32)


def _split_cells(scene: world.Scene, cells: set) -> tuple[list, list]:
  inside = [o for o in scene.objects if (o.row, o.col) in cells]
  return inside, [o for o in scene.objects if (o.row, o.col) not in cells]


# The attribute a recolor / resize must change; a touched cell whose object lacks it is unedited.
_CHANGED = {"recolor": ("color",), "resize": ("size",)}


def cell_change(want: world.Obj | None, got: world.Obj | None, kind: str) -> float:
  """One cell the edit touches: 1 for the target's object (or nothing where the edit empties
  the cell); 0 for a missing or extra object, or one without the edit's change (the source's
  own object); else the fraction of shape, colour and size that are right."""
  if want is None or got is None:
    return float(want is None and got is None)
  if any(getattr(want, a) != getattr(got, a) for a in _CHANGED.get(kind, ())):
    return 0.0
  return _agreement(want, got, ("shape", "color", "size"))


@register_reward("consistency", tasks=("edit",))
def consistency(images: np.ndarray, prompts: Sequence[PromptMeta]) -> np.ndarray:
  """Editing: "the change was made" x "everything else was kept", like GEdit's G_SC.

  change: mean over the cells the edit touches of cell_change; kept: the source's other
  objects vs what was found in the other cells (an object added or lost there counts against
  it). Copying the source scores 0, as G_SC does, so it can never beat trying the edit: with
  the mean of the two instead (copy = 0.5) RL learned to copy better and stopped editing.
  """
  out = []
  for image, p in zip(images, prompts):
    if p.edit is None or p.source is None:
      raise UserError("the 'consistency' reward needs editing prompts (source scene and edit)")
    touched = p.edit.cells()
    found = parse(image, p.target.grid).scene()
    want, got = p.target.by_cell(), found.by_cell()
    change = np.mean([cell_change(want.get(c), got.get(c), p.edit.kind) for c in touched])
    _, keep = _split_cells(p.source, touched)
    _, got_out = _split_cells(found, touched)
    out.append(change * match_score(keep, got_out))
  return np.asarray(out, np.float32)


# ---------------------------------------------------------------------------------------------
# Weighted total
# ---------------------------------------------------------------------------------------------

def import_reward_modules(modules: Sequence[str]) -> None:
  """Imports each module (dotted name, importable from the working directory or PYTHONPATH) so
  the rewards it registers exist before rl.rewards is checked."""
  import importlib
  import sys
  if "" not in sys.path:
    sys.path.insert(0, "")   # `arm-jax` is an entry point: the cwd is not on its path by default
  for name in modules:
    try:
      importlib.import_module(name)
    except ImportError as e:
      raise UserError(f"rl.reward_modules: cannot import '{name}' ({e}); give a module name "
                      f"importable from the working directory or PYTHONPATH") from None


def check_weights(weights: Sequence[tuple[str, float]], tasks: Sequence[str] = TASKS) -> None:
  """Refuses unknown names, negative weights, and a task no positive weight applies to."""
  for name, w in weights:
    if name not in _REWARDS:
      raise UserError(f"unknown reward '{name}' in rl.rewards; registered rewards: "
                      f"{', '.join(reward_names())} (register your own with register_reward)")
    if not np.isfinite(w) or w < 0:
      raise UserError(f"rl.rewards weight of '{name}' must be a finite number >= 0, got {w}")
  for task in tasks:
    if not any(w > 0 and task in _REWARDS[n].tasks for n, w in weights):
      raise UserError(f"no reward in rl.rewards with a positive weight applies to task '{task}'; "
                      f"add one (e.g. ('adherence', 1.0))")


def score(images: np.ndarray, prompts: Sequence[PromptMeta],
          weights: Sequence[tuple[str, float]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """images [N, H, W, 3] uint8 -> (total [N] float32 in [0, 1], {name: [N], NaN where n/a}).

  Each row's total is the weighted mean of the rewards that apply to its task.
  """
  check_weights(weights, sorted({p.task for p in prompts}))
  n = len(prompts)
  total, norm, parts = np.zeros(n, np.float64), np.zeros(n, np.float64), {}
  for name, w in weights:
    entry = _REWARDS[name]
    rows = np.array([i for i, p in enumerate(prompts) if p.task in entry.tasks], np.int64)
    values = np.full(n, np.nan, np.float32)
    if len(rows):
      got = np.asarray(entry.fn(images[rows], [prompts[i] for i in rows]), np.float32)
      if got.shape != (len(rows),):
        raise UserError(f"reward '{name}' returned shape {got.shape} for {len(rows)} images; "
                        f"return one score per image")
      values[rows] = np.clip(got, 0.0, 1.0)
      total[rows] += w * values[rows]
      norm[rows] += w
    parts[name] = values
  return (total / np.maximum(norm, 1e-12)).astype(np.float32), parts
