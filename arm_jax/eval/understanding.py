"""Understanding on the shapes world: POPE-style yes/no existence, multiple choice, counting,
and the colour, shape and position of an object.

POPE (RUCAIBox/POPE) asks "is there a <object> in the image?" about objects that are present
(answer yes) and absent (no), with three ways of choosing the absent ones:
- random: any absent (colour, shape) pair;
- popular: the absent pairs most frequent across the whole question set's scenes;
- adversarial: absent pairs that share a colour or a shape with an object in the image (POPE
  takes frequent co-occurrers; in the shapes world the near-misses are the hard negatives).
The other kinds come from arm_jax/data/questions.py, worded as in training. Yes/no answers are
parsed strictly (the answer must start with 'yes' or 'no'; anything else is wrong, so a model
cannot score by saying something else), a letter or the option's text for choices, a number word
or digits for counts, and the exact word(s) for colour, shape and position.
"""
from __future__ import annotations

import collections
import dataclasses
import re

import numpy as np

from arm_jax.data import phrases, questions, world

POPE_SUBSETS = ("random", "popular", "adversarial")
KINDS = tuple(f"pope_{s}" for s in POPE_SUBSETS) + ("choice", "counting", "color", "shape",
                                                    "position")
EXACT_KINDS = ("color", "shape", "position")   # answered by the word(s) themselves
EXISTS_TEMPLATE = "is there a {color} {shape} in the image?"   # training's wording


@dataclasses.dataclass(frozen=True)
class Item:
  index: int
  scene: world.Scene
  question: str
  answer: str            # 'yes' / 'no', a letter 'a'..'d', or a number word
  kind: str              # one of KINDS
  choices: tuple[str, ...] = ()


def _pairs(scene: world.Scene) -> set[tuple[str, str]]:
  return {(o.color, o.shape) for o in scene.objects}


def _all_pairs() -> list[tuple[str, str]]:
  return [(c, s) for c in world.COLORS for s in world.SHAPES]


def _negative(rng, scene: world.Scene, subset: str, popularity: collections.Counter):
  present = _pairs(scene)
  absent = [p for p in _all_pairs() if p not in present]
  if subset == "popular":
    top = max(popularity[p] for p in absent)
    absent = [p for p in absent if popularity[p] == top]
  elif subset == "adversarial":
    near = [p for p in absent if any(p[0] == c or p[1] == s for c, s in present)]
    absent = near or absent
  return absent[int(rng.integers(len(absent)))]


def _pope(rng, scene, subset, popularity, positive: bool) -> tuple[str, str]:
  if positive:
    present = sorted(_pairs(scene))
    color, shape = present[int(rng.integers(len(present)))]
  else:
    color, shape = _negative(rng, scene, subset, popularity)
  return EXISTS_TEMPLATE.format(color=color, shape=shape), "yes" if positive else "no"


def make_items(seed, num: int, grid: int, max_objects: int) -> list[Item]:
  """`num` questions, the five kinds in turn, each about its own scene, fixed by `seed`."""
  rng = np.random.default_rng(seed)
  scenes = [world.sample_scene(rng, grid, max_objects) for _ in range(num)]
  popularity = collections.Counter(p for s in scenes for p in _pairs(s))
  items = []
  for i, scene in enumerate(scenes):
    kind = KINDS[i % len(KINDS)]
    if kind.startswith("pope_"):
      positive = (i // len(KINDS)) % 2 == 0        # each subset alternates yes and no
      question, answer = _pope(rng, scene, kind[5:], popularity, positive)
      items.append(Item(i, scene, question, answer, kind))
      continue
    qa = questions.sample_qa(scene, rng, kinds=(kind,))
    items.append(Item(i, scene, qa.question, qa.answer, kind, qa.choices))
  return items


# ---------------------------------------------------------------------------------------------
# Reading answers
# ---------------------------------------------------------------------------------------------

def parse_yes_no(text: str) -> str:
  """'yes' / 'no' when the answer's first word is one of them, else '' (counted wrong).

  POPE's own rule (any 'no'/'not' in the first sentence means no, everything else yes) lets a
  model that never answers score F1 0.667 by default; here a missing answer is simply wrong.
  """
  words = re.findall(r"[a-z]+", text.lower())
  return words[0] if words and words[0] in ("yes", "no") else ""


def normalize(text: str) -> str:
  """'Top left.' -> 'top left': lower case, words only."""
  return " ".join(re.findall(r"[a-z]+", text.lower()))


def parse_choice(text: str, choices: tuple[str, ...]) -> str:
  """'b', '(b)', 'B.', 'b) blue' or the option text 'blue' -> 'b'; '' if unreadable.

  A bare letter wins; then an answer naming exactly one option ('a red one' is red, not (a));
  then a leading letter followed by punctuation or a space.
  """
  letters = questions.CHOICE_LETTERS[:len(choices)]
  cleaned = text.strip().lower()
  bare = re.fullmatch(r"\(?([a-z])\)?[.)]?", cleaned)
  if bare and bare.group(1) in letters:
    return bare.group(1)
  named = [letters[i] for i, c in enumerate(choices) if re.search(rf"\b{re.escape(c)}\b", cleaned)]
  if len(named) == 1:
    return named[0]
  lead = re.match(r"\(?([a-z])\)?[.):\s]", cleaned)
  return lead.group(1) if lead and lead.group(1) in letters else ""


def parse_count(text: str) -> int | None:
  """'two', '2', 'there are two.' -> 2; None if no number is given."""
  for word in re.findall(r"[a-z]+|\d+", text.lower()):
    if word.isdigit():
      return int(word)
    if word in phrases.NUMBER_WORDS:
      return phrases.NUMBER_WORDS.index(word)
  return None


def is_correct(item: Item, answer: str) -> bool:
  if item.kind.startswith("pope_"):
    return parse_yes_no(answer) == item.answer
  if item.kind == "choice":
    return parse_choice(answer, item.choices) == item.answer
  if item.kind in EXACT_KINDS:
    return normalize(answer) == item.answer
  return parse_count(answer) == phrases.NUMBER_WORDS.index(item.answer)


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------

def pope_metrics(labels: list[str], predictions: list[str]) -> dict:
  """POPE's numbers for one subset: accuracy, precision, recall, F1 (yes = positive), yes ratio."""
  tp = sum(p == "yes" and l == "yes" for p, l in zip(predictions, labels))
  fp = sum(p == "yes" and l == "no" for p, l in zip(predictions, labels))
  tn = sum(p == "no" and l == "no" for p, l in zip(predictions, labels))
  fn = sum(p == "no" and l == "yes" for p, l in zip(predictions, labels))
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return {"accuracy": (tp + tn) / max(len(labels), 1), "precision": precision, "recall": recall,
          "f1": f1, "yes_ratio": (tp + fp) / max(len(labels), 1)}


def summarize(items: list[Item], answers: list[str]) -> dict:
  """Accuracy per kind and overall; POPE metrics per subset and their mean F1 / accuracy."""
  by_kind: dict[str, list[bool]] = {}
  for item, answer in zip(items, answers):
    by_kind.setdefault(item.kind, []).append(is_correct(item, answer))
  pope = {}
  for subset in POPE_SUBSETS:
    pairs = [(i.answer, parse_yes_no(a)) for i, a in zip(items, answers)
             if i.kind == f"pope_{subset}"]
    if pairs:
      pope[subset] = pope_metrics([l for l, _ in pairs], [p for _, p in pairs])
  flat = [ok for oks in by_kind.values() for ok in oks]
  return {"accuracy": float(np.mean(flat)) if flat else 0.0,
          "accuracy_se": float(np.sqrt(np.mean(flat) * (1 - np.mean(flat)) / len(flat)))
          if flat else 0.0,
          "pope_f1_se": _pope_f1_se(items, answers),
          "kinds": {k: float(np.mean(v)) for k, v in by_kind.items()},
          "pope": pope,
          "pope_f1": float(np.mean([m["f1"] for m in pope.values()])) if pope else 0.0,
          "pope_accuracy": float(np.mean([m["accuracy"] for m in pope.values()])) if pope else 0.0,
          "questions": len(flat)}


def _pope_f1_se(items: list[Item], answers: list[str], draws: int = 200) -> float:
  """Bootstrap standard error of the mean POPE F1 (questions resampled within each subset)."""
  rng = np.random.default_rng(0)
  subsets = [[(i.answer, parse_yes_no(a)) for i, a in zip(items, answers)
              if i.kind == f"pope_{s}"] for s in POPE_SUBSETS]
  subsets = [s for s in subsets if s]
  if not subsets:
    return 0.0
  f1s = []
  for _ in range(draws):
    per = []
    for pairs in subsets:
      pick = [pairs[k] for k in rng.integers(len(pairs), size=len(pairs))]
      per.append(pope_metrics([l for l, _ in pick], [p for _, p in pick])["f1"])
    f1s.append(np.mean(per))
  return float(np.std(f1s))
