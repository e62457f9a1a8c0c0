"""Splash attention's wrapping (GQA layout, scaling, shard_map over batch and kv heads) against
XLA attention, with the Pallas kernel in interpret mode (the TPU kernel cannot run on CPU; its
compiled form is checked by the AOT test in tests/scale/test_aot.py).

Tolerance: f32 inputs; the kernel's blocked online softmax and XLA's one-shot softmax differ in
summation order only: 1e-5 on outputs, 1e-4 on gradients.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arm_jax import sharding as shd
from arm_jax.config import load_config
from arm_jax.errors import UserError
from arm_jax.model.attention import attend, splash_attention

B, L, H, KV, D = 4, 128, 4, 2, 16


def _qkv(b=B):
  ks = jax.random.split(jax.random.key(0), 3)
  return (jax.random.normal(ks[0], (b, L, H, D)), jax.random.normal(ks[1], (b, L, KV, D)),
          jax.random.normal(ks[2], (b, L, KV, D)))


def _loss(fn):
  def loss(q, k, v):
    weights = jnp.cos(jnp.arange(q.size, dtype=jnp.float32)).reshape(q.shape)
    return (fn(q, k, v) * weights).sum()
  return loss


def _check(mesh_shape):
  q, k, v = _qkv()
  splash = lambda q, k, v: splash_attention(q, k, v, interpret=True)
  xla = lambda q, k, v: attend(q, k, v, impl="xla")
  cfg = load_config("shapes_tiny", [f"--config.mesh.shape={mesh_shape}"])
  mesh, rules = shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh)
  with shd.use_mesh(mesh, rules):
    out = jax.jit(splash)(q, k, v)
    grads = jax.jit(jax.grad(_loss(splash), argnums=(0, 1, 2)))(q, k, v)
  np.testing.assert_allclose(out, xla(q, k, v), atol=1e-5)
  for g, ref in zip(grads, jax.grad(_loss(xla), argnums=(0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(g, ref, atol=1e-4)
  return out


def test_splash_without_a_mesh_matches_xla_attention():
  q, k, v = _qkv(1)   # the interpreter runs the kernel grid serially: keep it small
  out = jax.jit(lambda q, k, v: splash_attention(q, k, v, interpret=True))(q, k, v)
  np.testing.assert_allclose(out, attend(q, k, v, impl="xla"), atol=1e-5)


def test_splash_under_a_mesh_matches_xla_forward_and_backward():
  out = _check("(2,2,2)")
  # batch over (data, fsdp), heads over tensor: the shard_map's out_specs, not a gather.
  assert out.sharding.spec[0] == ("data", "fsdp") and out.sharding.spec[2] == "tensor"


def test_splash_off_tpu_is_a_one_line_error():
  q, k, v = _qkv()
  with pytest.raises(UserError, match="needs TPU devices; use 'xla' on CPU"):
    attend(q, k, v, impl="splash")


def test_splash_pads_any_length_to_the_kernel_block():
  q, k, v = (x[:1, :100] for x in _qkv())   # RL rollouts and log-prob passes have any length
  out = jax.jit(lambda q, k, v: splash_attention(q, k, v, interpret=True))(q, k, v)
  assert out.shape == q.shape
  np.testing.assert_allclose(out, attend(q, k, v, impl="xla"), atol=1e-5)
