"""A sharded train step equals the unsharded one (8 fake CPU devices).

Tolerance: f32 compute, so only the reduction order differs between layouts: loss to 1e-5
relative, parameters after one AdamW step to 1e-5 absolute.
"""
import jax
import numpy as np
import pytest

from arm_jax import sharding as shd
from arm_jax.config import load_config
from arm_jax.data.synthetic import synthetic_iterator
from arm_jax.model.transformer import ModelConfig
from arm_jax.train.optimizer import make_optimizer
from arm_jax.train.pretrain import decoder_fn
from arm_jax.train.state import create_state
from arm_jax.train.step import lm_loss, make_train_step


def _one_step(overrides, mesh_shape, grad_accum=1):
  cfg = load_config("shapes_tiny", overrides + [f"--config.mesh.shape={mesh_shape}",
                                                f"--config.train.grad_accum={grad_accum}"])
  mesh, rules = shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh)
  tx = make_optimizer(cfg.train)
  state, spec = create_state(decoder_fn(cfg), tx, mesh, rules, seed=0)
  vocab = ModelConfig.from_config(cfg.model).vocab.total_size
  batch = next(synthetic_iterator(vocab, cfg.train.batch_size, cfg.train.seq_len, seed=3))
  step = make_train_step(spec, tx, lm_loss, rules, grad_accum=grad_accum, batch_example=batch)
  for _ in range(2):
    state, metrics = step(state, shd.global_batch(batch, mesh, rules))
  return jax.device_get(state["params"]), float(metrics["loss"]), state


@pytest.mark.parametrize("mesh_shape", ["(2,2,2)", "(8,1,1)"])
def test_sharded_step_matches_unsharded(tiny_overrides, mesh_shape):
  assert len(jax.devices()) == 8
  ref_params, ref_loss, _ = _one_step(tiny_overrides, "(1,1,1)")
  params, loss, state = _one_step(tiny_overrides, mesh_shape)
  # The state really is spread over the mesh.
  kernel = state["params"]["blocks"]["mlp"]["up_proj"]["kernel"]
  assert len(kernel.sharding.device_set) == 8
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_grad_accumulation_matches_full_batch(tiny_overrides):
  ref_params, ref_loss, _ = _one_step(tiny_overrides, "(1,1,1)")
  params, loss, _ = _one_step(tiny_overrides, "(1,1,1)", grad_accum=2)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_allclose(a, b, atol=1e-5)
