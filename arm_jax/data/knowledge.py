"""World knowledge of the shapes world: the facts of the text-only split.

WISE-style prompts ("a shape with three corners in the color of grass") can only be drawn by a
model that learned these facts from text; the eval suite resolves them with the same tables.
"""
from __future__ import annotations

# Things whose colour is a palette colour: "grass is green".
THING_COLORS = {
    "grass": "green", "a leaf": "green", "a frog": "green", "a lime": "green",
    "the sky": "blue", "the sea": "blue", "a sapphire": "blue", "a glacier": "blue",
    "a tomato": "red", "blood": "red", "a strawberry": "red", "a ruby": "red",
    "a banana": "yellow", "the sun": "yellow", "a lemon": "yellow", "corn": "yellow",
    "a plum": "purple", "a grape": "purple", "an amethyst": "purple", "a violet": "purple",
    "snow": "white", "milk": "white", "a cloud": "white", "chalk": "white",
}

# Shapes described by a property: "a triangle has three corners".
SHAPE_RIDDLES = {
    "a shape with three corners": "triangle",
    "a shape with four corners": "square",
    "a shape with no corners": "circle",
    "a round shape": "circle",
    "a shape with four equal sides": "square",
    "a shape with three sides": "triangle",
}

_CORNER_WORDS = {0: "no", 3: "three", 4: "four"}
_COUNT_WORDS = {0: "zero", 3: "three", 4: "four"}


def _split_things() -> tuple[dict[str, str], dict[str, str]]:
  """Three things of each colour may appear in captions; the fourth only in the text split."""
  seen: dict[str, int] = {}
  caption, text_only = {}, {}
  for thing, color in THING_COLORS.items():
    seen[color] = seen.get(color, 0) + 1
    (caption if seen[color] <= 3 else text_only)[thing] = color
  return caption, text_only


# Knowledge captions ("a shape with three corners in the color of grass") in T2I training use
# CAPTION_THINGS only; a WISE-style prompt naming a TEXT_ONLY_THING needs the fact learned from
# text (the paper's point: world knowledge carried from language into generation).
CAPTION_THINGS, TEXT_ONLY_THINGS = _split_things()


def fact_sentences() -> list[str]:
  """Every fact as a plain sentence, in a fixed order (the text-only split's core)."""
  facts = [f"{thing} is {color}." for thing, color in THING_COLORS.items()]
  facts += [f"{riddle} is a {shape}." for riddle, shape in SHAPE_RIDDLES.items()]
  facts += [f"a {s} has {_CORNER_WORDS[c]} corners." for s, c in
            (("triangle", 3), ("square", 4), ("circle", 0))]
  return facts


def color_of(thing: str) -> str:
  return THING_COLORS[thing]


def shape_of(riddle: str) -> str:
  return SHAPE_RIDDLES[riddle]


def knowledge_sentences() -> list[str]:
  """The text-only split: every fact in several phrasings, in a fixed order."""
  out = list(fact_sentences())
  for thing, color in THING_COLORS.items():
    out += [f"the color of {thing} is {color}.", f"{thing} has the color {color}.",
            f"what color is {thing}? {color}.", f"something in the color of {thing} is {color}."]
  for riddle, shape in SHAPE_RIDDLES.items():
    out += [f"a {shape} is {riddle}.", f"which shape is {riddle}? a {shape}.",
            f"if you draw {riddle}, you draw a {shape}."]
  for shape, corners in (("triangle", 3), ("square", 4), ("circle", 0)):
    out.append(f"how many corners does a {shape} have? {_COUNT_WORDS[corners]}.")
  return out
