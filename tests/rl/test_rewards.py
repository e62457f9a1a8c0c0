import dataclasses

import numpy as np
import pytest

from arm_jax.data import world
from arm_jax.data.edits import Edit, apply_edit
from arm_jax.errors import UserError
from arm_jax.rl import rewards
from arm_jax.rl.rewards import PromptMeta

A = world.Obj("circle", "red", "large", 0, 0)
B = world.Obj("square", "blue", "small", 1, 2)
C = world.Obj("triangle", "green", "large", 2, 1)
SCENE = world.Scene((A, B), 3)


def _img(*objs):
  return world.render(world.Scene(tuple(objs), 3), 64)


def _t2i(scene=SCENE, attributes=rewards.ATTRIBUTES):
  return PromptMeta("t2i", "caption", scene, attributes)


def test_match_score_hand_computed():
  assert rewards.match_score([A, B], [A, B]) == 1.0
  assert rewards.match_score([A, B], [A]) == 0.5                      # one of two missing
  assert rewards.match_score([A], [A, B]) == 0.5                      # one extra
  wrong = dataclasses.replace(A, color="green")
  assert rewards.match_score([A], [wrong]) == 0.75                    # 3 of 4 attributes
  moved = dataclasses.replace(A, row=2, col=2)
  assert rewards.match_score([A], [moved], ("shape", "color", "size")) == 1.0
  assert rewards.match_score([], []) == 1.0 and rewards.match_score([A], []) == 0.0


def test_adherence_and_quality_on_rendered_images():
  wrong_color = dataclasses.replace(B, color="yellow")
  images = np.stack([_img(A, B), _img(A, wrong_color), _img(A), _img(A, B, C)])
  adh = rewards.adherence(images, [_t2i()] * 4)
  np.testing.assert_allclose(adh, [1.0, 0.875, 0.5, 2 / 3], atol=1e-6)
  q = rewards.quality(images[:1], [_t2i()])
  assert q[0] == pytest.approx(1.0)   # an exact render is G_PQ 10
  noisy = images[0].astype(np.float32) + np.random.default_rng(0).normal(0, 60, images[0].shape)
  q_noisy = rewards.quality(np.clip(noisy, 0, 255).astype(np.uint8)[None], [_t2i()])
  assert q_noisy[0] < q[0]


def test_consistency_on_edits():
  recolor = Edit("recolor", B, dataclasses.replace(B, color="white"))
  remove = Edit("remove", A, None)
  move = Edit("move", B, dataclasses.replace(B, row=2, col=2))
  metas = [PromptMeta("edit", "instr", apply_edit(SCENE, e), source=SCENE, edit=e)
           for e in (recolor, remove, move)]
  done = [_img(*m.target.objects) for m in metas]
  source = _img(A, B)
  white_circle = dataclasses.replace(B, color="white", shape="circle")
  images = np.stack(done + [source] * 3 + [_img(A, recolor.after, C), _img(A, white_circle),
                                           _img(A, B, move.after)])
  got = rewards.consistency(images, metas * 2 + metas[:1] * 2 + metas[2:])
  # right edits: 1. Copying the source: 0 whatever the edit. Right recolor plus a stray object:
  # change 1 x kept 1 matched of max(1 wanted, 2 found). Recolored but drawn as a circle: 2 of
  # 3 attributes right. A move that leaves the object where it was too: 1 of 2 cells right.
  np.testing.assert_allclose(got, [1, 1, 1, 0, 0, 0, 0.5, 2 / 3, 0.5], atol=1e-6)


def test_score_weights_tasks_and_errors():
  recolor = Edit("recolor", B, dataclasses.replace(B, color="white"))
  edit_meta = PromptMeta("edit", "i", apply_edit(SCENE, recolor), source=SCENE, edit=recolor)
  images = np.stack([_img(A, B), _img(A, B)])
  total, parts = rewards.score(images, [_t2i(), edit_meta],
                               (("adherence", 1.0), ("consistency", 1.0)))
  assert np.isnan(parts["consistency"][0])              # consistency does not apply to T2I
  assert total[0] == pytest.approx(1.0)
  # edit row copying the source: adherence 0.875, consistency 0 -> mean 0.4375
  assert total[1] == pytest.approx(0.4375)
  with pytest.raises(UserError, match="unknown reward 'beauty'"):
    rewards.score(images, [_t2i()] * 2, (("beauty", 1.0),))
  with pytest.raises(UserError, match="task 't2i'"):
    rewards.score(images, [_t2i()] * 2, (("consistency", 1.0),))
  with pytest.raises(UserError, match=">= 0"):
    rewards.check_weights((("adherence", -1.0),))


def test_custom_reward_plugs_in():
  @rewards.register_reward("test_brightness", tasks=("t2i",))
  def brightness(images, prompts):
    return images.mean(axis=(1, 2, 3)) / 255.0
  images = np.stack([np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)])
  total, _ = rewards.score(images, [_t2i()] * 2, (("test_brightness", 1.0),))
  np.testing.assert_allclose(total, [0.0, 1.0])


def test_reward_modules_register_rewards_named_in_config(tmp_path, monkeypatch):
  (tmp_path / "my_rewards_mod.py").write_text(
      "import numpy as np\n"
      "from arm_jax.rl.rewards import register_reward\n"
      "@register_reward('always_half', tasks=('t2i',))\n"
      "def always_half(images, prompts):\n"
      "  return np.full(len(images), 0.5)\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  weights = (("always_half", 1.0), ("consistency", 1.0))
  rewards.import_reward_modules(("my_rewards_mod",))
  rewards.check_weights(weights)
  with pytest.raises(UserError, match="cannot import 'no_such_rewards_mod'"):
    rewards.import_reward_modules(("no_such_rewards_mod",))
