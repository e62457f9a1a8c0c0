import dataclasses

import numpy as np
import pytest

from arm_jax.data import edits, world
from arm_jax.data.world import Obj, Scene


def _scene():
  return Scene((Obj("circle", "red", "large", 0, 0), Obj("square", "blue", "small", 1, 1)), 3)


def test_apply_each_kind_by_hand():
  s = _scene()
  red, blue = s.objects
  assert edits.apply_edit(s, edits.Edit("recolor", red, dataclasses.replace(red, color="green"))) \
      .objects[0].color == "green"
  added = edits.apply_edit(s, edits.Edit("add", None, Obj("triangle", "white", "small", 2, 2)))
  assert len(added.objects) == 3 and added.objects[-1].shape == "triangle"
  assert edits.apply_edit(s, edits.Edit("remove", red, None)).objects == (blue,)
  moved = edits.apply_edit(s, edits.Edit("move", red, dataclasses.replace(red, row=2, col=0)))
  assert (moved.objects[-1].row, moved.objects[-1].col) == (2, 0)
  with pytest.raises(ValueError, match="not in the scene"):
    edits.apply_edit(s, edits.Edit("remove", Obj("circle", "red", "small", 0, 0), None))


def test_sampled_edits_are_valid_and_change_the_image():
  rng = np.random.default_rng(0)
  kinds = set()
  for _ in range(200):
    s = world.sample_scene(rng, 3, 3)
    e = edits.sample_edit(rng, s, 3, max_objects=3)
    kinds.add(e.kind)
    t = edits.apply_edit(s, e)
    assert len(t.cells()) == len(t.objects) <= 3 and len(t.objects) >= 1
    assert not np.array_equal(world.render(s, 32), world.render(t, 32)) or e.kind == "resize"
    assert edits.Edit.from_json(e.to_json()) == e
    assert edits.edit_instruction(e, rng, s)
  assert kinds == set(edits.EDIT_KINDS)


def test_exclude_never_creates_held_out_pairs():
  rng = np.random.default_rng(1)
  held = frozenset({("red", "circle"), ("blue", "square"), ("green", "triangle")})
  for _ in range(200):
    s = world.sample_scene(rng, 3, 3, exclude=held)
    e = edits.sample_edit(rng, s, max_objects=3, exclude=held)
    if e.after is not None:
      assert (e.after.color, e.after.shape) not in held


def test_instruction_names_the_object_unambiguously():
  # Two red circles: the reference must not be just "red circle".
  s = Scene((Obj("circle", "red", "large", 0, 0), Obj("circle", "red", "small", 0, 1)), 3)
  e = edits.Edit("recolor", s.objects[0], dataclasses.replace(s.objects[0], color="blue"))
  seen = {edits.edit_instruction(e, np.random.default_rng(i), s) for i in range(40)}
  assert not any(t.endswith("the red circle blue") or "the circle " in t for t in seen)
  assert len(seen) > 3   # several phrasings


def test_same_seed_same_edit():
  s = _scene()
  a = edits.sample_edit(np.random.default_rng(5), s)
  b = edits.sample_edit(np.random.default_rng(5), s)
  assert a == b


def test_no_feasible_edit_is_an_error():
  s = Scene((Obj("circle", "red", "large", 0, 0),), grid=1)
  with pytest.raises(ValueError, match="no edit fits"):
    edits.sample_edit(np.random.default_rng(0), Scene((), grid=1), max_objects=0)
  assert edits.sample_edit(np.random.default_rng(0), s).kind in ("recolor", "resize")
