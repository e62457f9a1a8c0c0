"""GenEval-like prompts and GenEval's rules: right images pass, wrong ones fail, summary by task."""
import numpy as np
import pytest

from arm_jax.data import world
from arm_jax.eval import geneval
from arm_jax.eval.detector import parse_image
from arm_jax.eval.reference_models import wrong_scene

O = world.Obj


def _score(scene: world.Scene, metadata: dict, size=64):
  return geneval.evaluate(parse_image(world.render(scene, size), scene.grid), metadata)


def test_items_cycle_the_six_tasks_and_are_fixed_by_seed():
  items = geneval.make_items(7, 18, grid=3, max_objects=3)
  assert [i.metadata["tag"] for i in items[:6]] == list(geneval.TAGS)
  again = geneval.make_items(7, 18, grid=3, max_objects=3)
  other = geneval.make_items(8, 18, grid=3, max_objects=3)
  assert [i.metadata for i in items] == [i.metadata for i in again]
  assert [i.prompt for i in items] != [i.prompt for i in other]
  assert all(i.prompt.endswith(".") and i.prompt == i.prompt.lower() for i in items)


def test_reference_scenes_pass_and_wrong_scenes_fail_every_task():
  items = geneval.make_items(3, 60, grid=3, max_objects=4)
  rng = np.random.default_rng(0)
  right = [_score(i.reference, i.metadata)[0] for i in items]
  wrong = [_score(wrong_scene(i.reference, rng), i.metadata)[0] for i in items]
  assert all(right)
  assert not any(wrong)


def test_counting_fails_on_one_too_many():
  meta = {"tag": "counting", "include": [{"class": "circle", "count": 2}],
          "exclude": [{"class": "circle", "count": 3}]}
  two = world.Scene((O("circle", "red", "small", 0, 0), O("circle", "blue", "large", 1, 1)), 3)
  three = world.Scene(two.objects + (O("circle", "green", "small", 2, 2),), 3)
  assert _score(two, meta) == (True, "")
  ok, reason = _score(three, meta)
  assert not ok and "circle<3, found 3" in reason


def test_colour_is_checked_on_the_class_not_any_object():
  meta = {"tag": "color_attr", "include": [{"class": "circle", "count": 1, "color": "red"},
                                           {"class": "square", "count": 1, "color": "blue"}]}
  bound = world.Scene((O("circle", "red", "large", 0, 0), O("square", "blue", "large", 0, 2)), 3)
  swapped = world.Scene((O("circle", "blue", "large", 0, 0), O("square", "red", "large", 0, 2)), 3)
  assert _score(bound, meta)[0]
  ok, reason = _score(swapped, meta)
  assert not ok and "expected red circle" in reason


@pytest.mark.parametrize("relation,subject_cell,ok", [
    ("left of", (1, 0), True), ("right of", (1, 0), False), ("above", (0, 1), True),
    ("below", (0, 1), False), ("left of", (0, 0), True)])   # diagonal: left of *and* above
def test_position_uses_box_geometry(relation, subject_cell, ok):
  meta = {"tag": "position", "include": [{"class": "square", "count": 1},
                                         {"class": "circle", "count": 1,
                                          "position": [relation, 0]}]}
  scene = world.Scene((O("circle", "red", "small", *subject_cell),
                       O("square", "blue", "small", 1, 1)), 3)
  assert _score(scene, meta)[0] == ok


def test_position_without_its_anchor_fails():
  meta = {"tag": "position", "include": [{"class": "square", "count": 1},
                                         {"class": "circle", "count": 1,
                                          "position": ["left of", 0]}]}
  ok, reason = _score(world.Scene((O("circle", "red", "small", 1, 0),), 3), meta)
  assert not ok and "expected square>=1, found 0" in reason


def test_summary_is_the_mean_over_tasks_not_images():
  rows = ([{"tag": "colors", "correct": True}] * 3 + [{"tag": "colors", "correct": False}]
          + [{"tag": "counting", "correct": False}])
  summary = geneval.summarize(rows)
  assert summary["tasks"] == {"colors": 0.75, "counting": 0.0}
  assert summary["overall"] == pytest.approx(0.375)   # images would give 3/5 = 0.6
