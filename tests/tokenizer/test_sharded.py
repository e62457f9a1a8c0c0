"""Teacher and tokenizer train steps on 8 fake devices (2x2x2 mesh) match the one-device step.

f32 compute: only the reduction order differs, so loss to 1e-5 relative and parameters after
two AdamW steps to 1e-5 absolute.
"""
import jax
import numpy as np
import pytest
from flax import nnx

from arm_jax import sharding as shd
from arm_jax.config import load_config
from arm_jax.tokenizer.train_teacher import teacher_fn, teacher_loss
from arm_jax.tokenizer.train_tokenizer import make_loss, tokenizer_fn
from arm_jax.tokenizer.weights import stage_hparams
from arm_jax.train.optimizer import make_optimizer
from arm_jax.train.state import create_state
from arm_jax.train.step import make_train_step


def _batch(cfg):
  rng = np.random.default_rng(0)
  b, t, s = 8, cfg.teacher.text_len, cfg.data.image_size
  return {"image": rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8),
          "text": rng.integers(0, 500, (b, t)).astype(np.int32),
          "caption": rng.integers(0, 500, (b, t)).astype(np.int32),
          "caption_mask": (rng.random((b, t)) < 0.7).astype(np.float32)}


def _two_steps(tiny_tok, mesh_shape, which):
  cfg = load_config("shapes_tiny", tiny_tok + [f"--config.mesh.shape={mesh_shape}",
                                               "--config.tokenizer.quantizer=vq",
                                               "--config.model.image_vocab_size=1024"])
  mesh, rules = shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh)
  if which == "teacher":
    model_fn, loss_fn, section = teacher_fn(cfg), teacher_loss, cfg.teacher
  else:
    teacher = teacher_fn(cfg)(nnx.Rngs(1))
    graphdef, state = nnx.split(teacher)
    teacher = nnx.merge(graphdef, jax.device_put(state, shd.replicated(mesh)))
    model_fn, loss_fn, section = tokenizer_fn(cfg), make_loss(teacher, cfg.tokenizer), \
        cfg.tokenizer
  tcfg = stage_hparams(cfg, section)
  tx = make_optimizer(tcfg)
  state, spec = create_state(model_fn, tx, mesh, rules, seed=0)
  batch = _batch(cfg)
  step = make_train_step(spec, tx, loss_fn, rules, batch_example=batch)
  for _ in range(2):
    state, metrics = step(state, shd.global_batch(batch, mesh, rules))
  return state, jax.device_get(state["params"]), float(metrics["loss"])


@pytest.mark.parametrize("which", ["teacher", "tokenizer"])
def test_sharded_step_matches_unsharded(tiny_tok, which):
  assert len(jax.devices()) == 8
  _, ref_params, ref_loss = _two_steps(tiny_tok, "(1,1,1)", which)
  state, params, loss = _two_steps(tiny_tok, "(2,2,2)", which)
  fc1 = state["params"]["vision" if which == "teacher" else "encoder"]["encoder"]["layers"][
      "mlp"]["fc1"]["kernel"]
  assert len(fc1.sharding.device_set) == 8 and not fc1.sharding.is_fully_replicated
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_allclose(a, b, atol=1e-5)
