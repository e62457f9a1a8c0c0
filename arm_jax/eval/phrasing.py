"""How eval prompts are worded: in the training captions' words (arm_jax/data/phrases.py).

Captions are lowercase, end with a full stop and join objects with commas and "and"; counts are
number words ("two red circles."). GenEval's tasks also need phrasings the caption styles do not
have -- objects without a colour ("a circle.") and relations between objects ("a circle to the
left of a square.") -- which are built from the same words here.
"""
from __future__ import annotations

from arm_jax.data import phrases

# GenEval's relations, phrased the way a caption would say them.
RELATIONS = {"left of": "to the left of", "right of": "to the right of",
             "above": "above", "below": "below"}


def article(word: str) -> str:
  """'a' or 'an' for a word (the article alone)."""
  return phrases.article(word).split(" ", 1)[0]


def object_phrase(shape: str, color: str | None = None, size: str | None = None) -> str:
  """'a circle', 'a red circle', 'a large red circle'."""
  return phrases.article(" ".join(w for w in (size, color, shape) if w))


def count_phrase(count: int, shape: str, color: str | None = None) -> str:
  """'three circles', 'two red squares'."""
  if count == 1:
    return object_phrase(shape, color)
  return " ".join(w for w in (phrases.number_word(count), color,
                              phrases.plural(shape, count)) if w)


def relation_phrase(subject: str, relation: str, anchor: str) -> str:
  """'a circle to the left of a square' for GenEval's 'left of'."""
  return f"{subject} {RELATIONS[relation]} {anchor}"


def both_phrase(first: str, second: str) -> str:
  return f"{first} and {second}"


def sentence(phrase: str) -> str:
  """A caption-style prompt: the phrase with a full stop."""
  return phrase + "."
