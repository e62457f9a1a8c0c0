"""Edit bench: G_SC rewards the edit and keeping the rest; G_O = sqrt(G_SC * G_PQ)."""
import math

import numpy as np
import pytest

from arm_jax.data import edits, world
from arm_jax.eval import editbench
from arm_jax.eval.detector import parse_image
from arm_jax.eval.quality import quality

O = world.Obj
SOURCE = world.Scene((O("circle", "red", "large", 0, 0), O("square", "blue", "small", 1, 1)), 3)
TARGET = world.Scene((O("circle", "green", "large", 0, 0), O("square", "blue", "small", 1, 1)), 3)


def _score(shown: world.Scene, noise: float = 0.0):
  image = world.render(shown, 64).astype(np.float32)
  image += np.random.default_rng(0).normal(0, noise, image.shape) if noise else 0
  image = np.clip(np.round(image), 0, 255).astype(np.uint8)
  parse = parse_image(image, 3)
  return editbench.score(parse.scene(), quality(image, parse), SOURCE, TARGET)


def test_the_target_scores_ten_and_the_unedited_source_zero():
  assert _score(TARGET)["G_O"] == pytest.approx(10.0)
  unedited = _score(SOURCE)
  assert unedited["G_SC"] == 0.0 and unedited["G_O"] == 0.0 and not unedited["followed"]


def test_losing_or_adding_other_objects_costs_consistency():
  lost = world.Scene(TARGET.objects[:1], 3)
  extra = world.Scene(TARGET.objects + (O("triangle", "white", "small", 2, 2),), 3)
  assert _score(lost)["G_SC"] == pytest.approx(0.0)           # 0 of 1 untouched objects kept
  assert _score(extra)["G_SC"] == pytest.approx(5.0)          # 1 kept of 1 + 1 intruder
  assert _score(extra)["followed"]


def test_noise_costs_quality_and_overall_is_the_geometric_mean():
  noisy = _score(TARGET, noise=30.0)
  assert noisy["G_SC"] == pytest.approx(10.0)
  assert noisy["G_PQ"] < 9.0
  assert noisy["G_O"] == pytest.approx(math.sqrt(noisy["G_SC"] * noisy["G_PQ"]))


def test_items_come_from_the_data_rooms_edits():
  items = editbench.make_items(4, 25, grid=3, max_objects=3)
  assert {i.kind for i in items} == set(edits.EDIT_KINDS)
  for item in items:
    changed = set(item.source.objects) ^ set(item.target.objects)
    assert changed and item.instruction
  assert [i.instruction for i in items] == \
      [i.instruction for i in editbench.make_items(4, 25, grid=3, max_objects=3)]


def test_summary_means_and_per_kind():
  rows = [{"G_SC": 10.0, "G_PQ": 10.0, "G_O": 10.0, "followed": True, "kind": "add"},
          {"G_SC": 0.0, "G_PQ": 8.0, "G_O": 0.0, "followed": False, "kind": "move"}]
  summary = editbench.summarize(rows)
  assert summary["G_O"] == 5.0 and summary["G_PQ"] == 9.0 and summary["followed"] == 0.5
  assert summary["kinds"] == {"add": 10.0, "move": 0.0}
