import numpy as np
import pytest

from arm_jax.errors import UserError
from arm_jax.rl.advantages import compute_advantages, register_advantage, get_advantage


def test_grpo_hand_computed():
  # group 1: rewards 1, 0 -> mean .5, std .5 -> +1, -1; group 2 all equal -> 0
  adv = compute_advantages("grpo", np.array([1.0, 0.0, 0.3, 0.3]), group_size=2)
  np.testing.assert_allclose(np.asarray(adv), [1.0, -1.0, 0.0, 0.0], atol=1e-3)


def test_dr_grpo_and_rloo_hand_computed():
  r = np.array([1.0, 0.0, 0.5])   # mean 0.5
  np.testing.assert_allclose(np.asarray(compute_advantages("dr_grpo", r, 3)), [0.5, -0.5, 0.0],
                             atol=1e-6)
  # rloo: 1 - (0+.5)/2 = .75; 0 - (1+.5)/2 = -.75; .5 - (1+0)/2 = 0
  np.testing.assert_allclose(np.asarray(compute_advantages("rloo", r, 3)), [0.75, -0.75, 0.0],
                             atol=1e-6)


def test_unknown_name_and_bad_group_are_user_errors():
  with pytest.raises(UserError, match="rl.advantage"):
    compute_advantages("ppo", np.zeros(4), 2)
  with pytest.raises(UserError, match="group_size"):
    compute_advantages("grpo", np.zeros(5), 2)


def test_register_custom_estimator():
  @register_advantage("test_max_baseline")
  def max_baseline(r):
    return r - r.max(axis=1, keepdims=True)
  assert get_advantage("test_max_baseline") is max_baseline
  np.testing.assert_allclose(np.asarray(compute_advantages("test_max_baseline",
                                                           np.array([1.0, 0.0]), 2)), [0, -1])
