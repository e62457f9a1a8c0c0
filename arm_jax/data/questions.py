"""Question/answer pairs about scenes (POPE- and MMBench-style understanding).

Kinds: existence (yes/no, balanced between present and absent objects), counting, color, shape,
position, and multiple choice (answer is the option letter). Answers are short strings: 'yes',
'two', 'red', 'circle', 'top left', 'b'. Pure functions of (scene, rng).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from arm_jax.data.phrases import number_word, place, plural, references
from arm_jax.data.world import COLORS, SHAPES, Scene, position_name

QA_KINDS = ("existence", "counting", "color", "shape", "position", "choice")
CAPTION_QUESTION = "describe the image."
CHOICE_LETTERS = "abcd"


@dataclasses.dataclass(frozen=True)
class QA:
  question: str
  answer: str
  kind: str
  choices: tuple[str, ...] = ()   # multiple choice only: the options, in order a, b, c, d

  def to_json(self) -> dict:
    return {"question": self.question, "answer": self.answer, "kind": self.kind,
            "choices": list(self.choices)}

  @staticmethod
  def from_json(d: dict) -> "QA":
    return QA(d["question"], d["answer"], d["kind"], tuple(d.get("choices", ())))


def _pick(rng: np.random.Generator, items):
  return items[int(rng.integers(len(items)))]


def _existence(scene: Scene, rng: np.random.Generator) -> QA:
  present = {(o.color, o.shape) for o in scene.objects}
  absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
  if present and (not absent or rng.random() < 0.5):
    (color, shape), answer = _pick(rng, sorted(present)), "yes"
  else:
    (color, shape), answer = _pick(rng, absent), "no"
  template = _pick(rng, ("is there a {c} {s}?", "is there a {c} {s} in the image?",
                         "does the image contain a {c} {s}?"))
  return QA(template.format(c=color, s=shape), answer, "existence")


def _counting(scene: Scene, rng: np.random.Generator) -> QA:
  which = _pick(rng, ("all", "shape", "color"))
  if which == "shape":
    shape = _pick(rng, SHAPES)
    n = sum(o.shape == shape for o in scene.objects)
    question = f"how many {plural(shape, 2)} are there?"
  elif which == "color":
    color = _pick(rng, list(COLORS))
    n = sum(o.color == color for o in scene.objects)
    question = f"how many {color} shapes are there?"
  else:
    n = len(scene.objects)
    question = "how many shapes are there?"
  return QA(question, number_word(n), "counting")


def _color(scene: Scene, rng: np.random.Generator) -> QA:
  obj = _pick(rng, scene.objects)
  where = place(obj.row, obj.col, scene.grid)
  return QA(_pick(rng, (f"what color is the shape in {where}?", f"what color is the {obj.shape} "
                        f"in {where}?")), obj.color, "color")


def _shape(scene: Scene, rng: np.random.Generator) -> QA:
  obj = _pick(rng, scene.objects)
  return QA(f"what shape is in {place(obj.row, obj.col, scene.grid)}?", obj.shape, "shape")


def _position(scene: Scene, rng: np.random.Generator) -> QA:
  # Only names without a place, or the answer would be in the question.
  named = [(o, r) for o in scene.objects for r in references(o, scene) if " in " not in r]
  if not named:   # every object has a twin: ask its colour instead
    return _color(scene, rng)
  obj, ref = _pick(rng, named)
  return QA(f"where is the {ref}?", position_name(obj.row, obj.col, scene.grid), "position")


def _choice(scene: Scene, rng: np.random.Generator) -> QA:
  """'what color is the shape in the center? (a) red (b) blue (c) white (d) green' -> 'b'."""
  obj = _pick(rng, scene.objects)
  if rng.random() < 0.5:
    question, truth, pool = f"what color is the shape in {place(obj.row, obj.col, scene.grid)}?", \
        obj.color, list(COLORS)
  else:
    question, truth, pool = f"what shape is in {place(obj.row, obj.col, scene.grid)}?", \
        obj.shape, list(SHAPES)
  wrong = [x for x in pool if x != truth]
  options = [truth] + [wrong[i] for i in rng.permutation(len(wrong))[:len(CHOICE_LETTERS) - 1]]
  options = [options[i] for i in rng.permutation(len(options))]
  listed = " ".join(f"({CHOICE_LETTERS[i]}) {o}" for i, o in enumerate(options))
  return QA(f"{question} {listed}", CHOICE_LETTERS[options.index(truth)], "choice",
            tuple(options))


_MAKERS = {"existence": _existence, "counting": _counting, "color": _color, "shape": _shape,
           "position": _position, "choice": _choice}


def sample_qa(scene: Scene, rng: np.random.Generator, kinds=QA_KINDS) -> QA:
  """One question of a random kind from `kinds` (kinds needing an object are skipped if empty)."""
  usable = [k for k in kinds if scene.objects or k in ("existence", "counting")]
  return _MAKERS[_pick(rng, usable)](scene, rng)


def sample_qas(scene: Scene, rng: np.random.Generator, n: int, kinds=QA_KINDS) -> list[QA]:
  return [sample_qa(scene, rng, kinds) for _ in range(n)]
