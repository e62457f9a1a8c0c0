"""Per-cell credit (rl/credit.py): cell scores on hand-made edits, per-cell advantages, tokens."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arm_jax.data import world
from arm_jax.data.edits import Edit, apply_edit
from arm_jax.rl import credit, grpo
from arm_jax.rl.rewards import PromptMeta

A = world.Obj("circle", "red", "large", 0, 0)
B = world.Obj("square", "blue", "small", 1, 2)
SCENE = world.Scene((A, B), 3)
RECOLOR = Edit("recolor", B, dataclasses.replace(B, color="white"))
META = PromptMeta("edit", "make the square white", apply_edit(SCENE, RECOLOR), source=SCENE,
                  edit=RECOLOR)


def _img(*objs):
  return world.render(world.Scene(tuple(objs), 3), 64)


def test_cell_scores_on_hand_made_edits():
  done = _img(A, RECOLOR.after)
  copy = _img(A, B)
  smudged = _img(dataclasses.replace(A, color="green"), RECOLOR.after)
  stray = _img(A, RECOLOR.after, world.Obj("triangle", "green", "large", 2, 1))
  s = credit.edit_cell_scores(np.stack([done, copy, smudged, stray]), [META] * 4)
  assert s.shape == (4, 3, 3)
  np.testing.assert_array_equal(s[0], np.ones((3, 3)))
  # the copy: only the touched cell (1, 2) is wrong; every kept cell is right
  expect = np.ones((3, 3))
  expect[1, 2] = 0
  np.testing.assert_array_equal(s[1], expect)
  # a smudged kept object or a stray object costs exactly its own cell
  expect = np.ones((3, 3))
  expect[0, 0] = 0
  np.testing.assert_array_equal(s[2], expect)
  expect = np.ones((3, 3))
  expect[2, 1] = 0
  np.testing.assert_array_equal(s[3], expect)


def test_code_cells_use_patch_centres():
  # 8 codes over 3 cells: centres 4, 12, 20 | 28, 36 | 44, 52, 60 (of 64 px)
  cells = credit.code_cells((8, 8), 3).reshape(8, 8)
  np.testing.assert_array_equal(cells[:, 0], [0, 0, 0, 3, 3, 6, 6, 6])
  np.testing.assert_array_equal(cells[0], [0, 0, 0, 1, 1, 2, 2, 2])
  np.testing.assert_array_equal(credit.code_cells((2, 2), 2), [0, 1, 2, 3])


def test_cell_advantages_normalise_each_cell_over_its_group():
  scores = np.ones((4, 2, 2), np.float32)   # 2 prompts x G=2
  scores[0, 1, 1] = 0.0                     # prompt 0: sample 0 got cell 3 wrong
  adv = credit.cell_advantages("dr_grpo", scores, 2)
  expect = np.zeros((4, 4))
  expect[0, 3], expect[1, 3] = -0.5, 0.5
  np.testing.assert_allclose(adv, expect)


def test_token_advantages_place_cells_on_code_positions():
  mask = np.zeros((3, 7), np.float32)
  mask[0, 2:6] = 1                          # 4 codes of a 2x2 grid, prompt of 3 tokens
  mask[1, 1:5] = 1
  mask[2, 2:6] = 1
  sample = np.array([1.0, -1.0, 0.5], np.float32)
  cells = np.array([0, 0, 1, 1])            # top row -> cell 0, bottom row -> cell 1
  cell_adv = np.array([[2.0, -2.0], [0.0, 4.0], [np.nan, np.nan]], np.float32)
  out = credit.token_advantages(sample, mask, cell_adv, cells, weight=0.5)
  np.testing.assert_allclose(out[0], [0, 0, 2, 2, 0, 0, 0])
  np.testing.assert_allclose(out[1], [0, -1, -1, 1, 1, 0, 0])
  np.testing.assert_allclose(out[2], [0, 0, .5, .5, .5, .5, 0])   # no cell credit (a T2I row)
  plain = credit.token_advantages(sample, mask, cell_adv, cells, weight=0.0)
  np.testing.assert_allclose(plain, sample[:, None] * mask)


def test_per_token_advantage_drives_only_its_tokens():
  logp = jax.random.normal(jax.random.key(0), (2, 4)) - 2.0
  mask = jnp.ones((2, 4))
  adv = jnp.array([[1.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
  g = jax.grad(lambda lp: grpo.grpo_token_loss(lp, jax.lax.stop_gradient(lp), lp, adv, mask,
                                               clip_eps=0.2, beta=0.0)[0])(logp)
  assert np.all((np.asarray(g) != 0) == (np.asarray(adv) != 0))
  # a [B] advantage is the same loss as its per-token broadcast
  per_sample = jnp.array([1.0, -2.0])
  a = grpo.grpo_token_loss(logp, logp - .1, logp, per_sample, mask, clip_eps=.2, beta=0.)[0]
  b = grpo.grpo_token_loss(logp, logp - .1, logp, jnp.broadcast_to(per_sample[:, None], (2, 4)),
                           mask, clip_eps=.2, beta=0.)[0]
  assert float(a) == pytest.approx(float(b))


def test_negative_cell_credit_is_refused():
  from arm_jax.config import load_config
  from arm_jax.errors import UserError
  from arm_jax.rl.stages import check_rl_config
  check_rl_config(load_config("shapes_tiny", ["--config.rl.cell_credit=0.5"]))
  with pytest.raises(UserError, match="rl.cell_credit must be a number >= 0"):
    check_rl_config(load_config("shapes_tiny", ["--config.rl.cell_credit=-1.0"]))
