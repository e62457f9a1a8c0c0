"""WISE-like prompts resolve through the knowledge tables; WiScore separates right from wrong."""
import re

import numpy as np
import pytest

from arm_jax.data import knowledge, world
from arm_jax.eval import wise
from arm_jax.eval.detector import parse_image
from arm_jax.eval.quality import quality


def _row(item, scene):
  image = world.render(scene, 64)
  parse = parse_image(image, scene.grid)
  return wise.score(item, parse, quality(image, parse))


def test_prompts_need_facts_only_the_text_split_names():
  items = wise.make_items(5, 30, grid=3)
  assert {i.subcategory for i in items} == set(wise.SUBCATEGORIES)
  for item in items:
    if "color of" in item.prompt:
      thing = item.prompt.split("in the color of ")[1].rstrip(".")
      assert knowledge.TEXT_ONLY_THINGS[thing] == item.color
      assert thing not in knowledge.CAPTION_THINGS
    if item.subcategory != "color":
      assert any(r.split(" ", 1)[1] in item.prompt and s == item.shape
                 for r, s in knowledge.SHAPE_RIDDLES.items())
    if item.subcategory == "color":
      assert item.shape in item.prompt and not re.search(rf"\b{item.color}\b", item.prompt)
    assert item.reference.objects[0].shape == item.shape
    assert item.reference.objects[0].color == item.color
  assert [i.record() for i in items] == [i.record() for i in wise.make_items(5, 30, grid=3)]


def test_wiscore_is_wise_formula():
  assert wise.wiscore(2, 2, 2) == pytest.approx(1.0)
  assert wise.wiscore(2, 1, 0) == pytest.approx((1.4 + 0.2) / 2)
  assert wise.wiscore(0, 0, 0) == 0.0


def test_right_half_right_and_wrong_images():
  item = wise.make_items(1, 3, grid=3)[2]                     # colour and shape both riddles
  obj = item.reference.objects[0]
  other_shape = next(s for s in world.SHAPES if s != obj.shape)
  other_color = next(c for c in world.COLORS if c != obj.color)
  right = _row(item, item.reference)
  half = _row(item, world.Scene((world.Obj(other_shape, obj.color, obj.size, 0, 0),), 3))
  wrong = _row(item, world.Scene((world.Obj(other_shape, other_color, "large", 1, 1),), 3))
  assert (right["consistency"], half["consistency"], wrong["consistency"]) == (2, 1, 0)
  assert right["wiscore"] == pytest.approx(1.0)
  assert right["wiscore"] > half["wiscore"] > wrong["wiscore"]
  summary = wise.summarize([right, half, wrong])
  assert summary["knowledge_accuracy"] == pytest.approx(1 / 3)
  assert summary["wiscore"] == pytest.approx(np.mean([r["wiscore"] for r in (right, half, wrong)]))
