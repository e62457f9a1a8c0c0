"""Visual tokenizer throughput on this machine: encode / decode images/s, train-step rates.

    python benchmarks/tokenizer.py            # shapes_tiny shapes, batch 64
    python benchmarks/tokenizer.py --quick    # fewer repetitions

Figures (random weights: speed does not depend on training):
  encode, decode    images/s at batch 64 through the host API (VisualTokenizer.encode/decode,
                    transfers and checks included) and the raw jitted functions;
  teacher, tokenizer train steps/s and the projected stage time (steps x step time).
Baselines measured in the same run:
  plain JAX         the same encoder / decoder math written as plain functions (no NNX, no
                    logical sharding), so the ratio shows what the module structure costs;
  matmul peak       the best matmul rate (train/flops.best_peak), the denominator of "% of peak"
                    (XLA's FLOP count).
On a shared machine every figure moves with the load; the ratios move much less.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arm_jax import sharding as shd
from arm_jax.config import load_config
from arm_jax.tokenizer.api import VisualTokenizer
from arm_jax.tokenizer.train_teacher import teacher_loss, teacher_fn
from arm_jax.tokenizer.train_tokenizer import make_loss, tokenizer_fn
from arm_jax.train.flops import best_peak
from arm_jax.train.optimizer import make_optimizer
from arm_jax.train.state import create_state
from arm_jax.train.step import make_train_step
from arm_jax.tokenizer.weights import stage_hparams

BATCH = 64


def _rate(fn, *args, reps: int) -> float:
  """Calls per second of fn(*args) (after one warm-up call)."""
  jax.block_until_ready(fn(*args))
  t = time.perf_counter()
  for _ in range(reps):
    out = fn(*args)
  jax.block_until_ready(out)
  return reps / (time.perf_counter() - t)


def _flops(jitted, *args) -> float:
  cost = jitted.lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get("flops", 0.0))


# --- the plain-JAX baseline: same math as vit.Stack / ImageEncoder / PixelDecoder -------------

def _ln(p, x):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) * jax.lax.rsqrt(var + 1e-6) * p["scale"] + p["bias"]


def _lin(p, x):
  return x @ p["kernel"] + p["bias"]


def _stack(p, x, heads):
  def body(x, lp):
    h = _ln(lp["layer_norm1"], x)
    b, l, d = h.shape
    a = lp["self_attn"]
    q, k, v = (_lin(a[n], h).reshape(b, l, heads, d // heads) for n in ("q_proj", "k_proj",
                                                                          "v_proj"))
    s = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (d // heads) ** -0.5
    o = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(s, -1), v).reshape(b, l, d)
    x = x + _lin(a["out_proj"], o)
    m = lp["mlp"]
    return x + _lin(m["fc2"], jax.nn.gelu(_lin(m["fc1"], _ln(lp["layer_norm2"], x)))), None
  return jax.lax.scan(body, x, p["layers"])[0]


def plain_encode(p, images, patch, heads, levels):
  b, hh, ww, _ = images.shape
  x = (images.astype(jnp.float32) / 127.5 - 1).reshape(b, hh // patch, patch, ww // patch, patch, 3)
  x = x.transpose(0, 1, 3, 2, 4, 5).reshape(b, -1, patch * patch * 3)
  e = p["encoder"]
  x = _lin(e["patch_embedding"], x) + e["position_embedding"]
  x = _ln(e["post_layernorm"], _stack(e["encoder"], x, heads))
  z = _lin(p["pre_quant"], x)
  lv = jnp.asarray(levels, jnp.float32)
  half_l = (lv - 1) * (1 - 1e-3) / 2
  off = jnp.where(lv % 2 == 0, 0.5, 0.0)
  q = jnp.round(jnp.tanh(z + jnp.arctanh(off / half_l)) * half_l - off) + jnp.floor(lv / 2)
  basis = jnp.concatenate([jnp.ones(1), jnp.cumprod(lv[:-1])])
  return jnp.sum(q * basis, -1).astype(jnp.int32)


def plain_decode(p, codes, patch, heads, levels, grid):
  lv = jnp.asarray(levels, jnp.int32)
  basis = jnp.concatenate([jnp.ones(1, jnp.int32), jnp.cumprod(lv[:-1])])
  half = jnp.floor(lv / 2).astype(jnp.float32)
  z = (((codes[..., None] // basis) % lv).astype(jnp.float32) - half) / half
  d = p["decoder"]
  x = _lin(d["proj"], z) + d["position_embedding"]
  x = _lin(d["to_patches"], _ln(d["norm"], _stack(d["blocks"], x, heads)))
  b = x.shape[0]
  x = x.reshape(b, grid, grid, patch, patch, 3).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(b, grid * patch, grid * patch, 3)
  return jnp.clip(jnp.round((x + 1) * 127.5), 0, 255).astype(jnp.uint8)


# --- benchmarks ------------------------------------------------------------------------------

def bench_codec(cfg, reps: int, peak: float) -> None:
  model = tokenizer_fn(cfg)(nnx.Rngs(0))
  vt = VisualTokenizer(model, chunk=BATCH)
  tc = model.cfg
  images = np.random.default_rng(0).integers(0, 256, (BATCH, tc.image_size, tc.image_size, 3),
                                             dtype=np.uint8)
  codes = vt.encode(images)
  params = nnx.to_pure_dict(nnx.state(model))
  levels, heads = tc.fsq_levels, tc.encoder.n_heads
  plain_enc = jax.jit(lambda p, x: plain_encode(p, x, tc.patch_size, heads, levels))
  plain_dec = jax.jit(lambda p, c: plain_decode(p, c, tc.patch_size, heads, levels, tc.grid))
  x, c = jnp.asarray(images), jnp.asarray(codes.reshape(BATCH, -1))
  np.testing.assert_array_equal(np.asarray(plain_enc(params, x)), codes.reshape(BATCH, -1))
  rows = [
      ("encode", vt.encode, (images,), vt._encode, (vt._state, x), plain_enc, (params, x)),
      ("decode", vt.decode, (codes,), vt._decode, (vt._state, c), plain_dec, (params, c)),
  ]
  print(f"\nimages/s at batch {BATCH} ({tc.image_size}x{tc.image_size} -> {tc.grid}x{tc.grid} "
        f"codes, {jnp.dtype(tc.encoder.dtype).name}):")
  print(f"  {'':8} {'host API':>10} {'jitted':>10} {'plain JAX':>10} {'jit/plain':>10} "
        f"{'% of peak':>10}")
  for name, api, api_args, jitted, j_args, plain, p_args in rows:
    r_api = BATCH * _rate(api, *api_args, reps=reps)
    r_jit = BATCH * _rate(jitted, *j_args, reps=reps)
    r_plain = BATCH * _rate(plain, *p_args, reps=reps)
    pct = 100 * _flops(jitted, *j_args) * r_jit / BATCH / peak
    print(f"  {name:8} {r_api:10.0f} {r_jit:10.0f} {r_plain:10.0f} {r_jit / r_plain:10.2f} "
          f"{pct:9.1f}%")


def bench_train(cfg, reps: int, peak: float) -> None:
  mesh, rules = shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh)
  teacher = teacher_fn(cfg)(nnx.Rngs(0))
  rng = np.random.default_rng(0)
  print("\ntrain steps (random data, one device):")
  print(f"  {'stage':10} {'batch':>6} {'steps/s':>8} {'GFLOP/step':>11} {'% of peak':>10} "
        f"{'steps':>6} {'projected s':>12}")
  for name, model_fn, loss_fn, section in (
      ("teacher", teacher_fn(cfg), teacher_loss, cfg.teacher),
      ("tokenizer", tokenizer_fn(cfg), make_loss(teacher, cfg.tokenizer), cfg.tokenizer)):
    tcfg = stage_hparams(cfg, section)
    b, t, s = tcfg.batch_size, cfg.teacher.text_len, cfg.data.image_size
    batch = {"image": rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8),
             "text": rng.integers(0, 100, (b, t)).astype(np.int32),
             "caption": rng.integers(0, 100, (b, t)).astype(np.int32),
             "caption_mask": np.ones((b, t), np.float32)}
    tx = make_optimizer(tcfg)
    state, spec = create_state(model_fn, tx, mesh, rules, 0)
    step = make_train_step(spec, tx, loss_fn, rules, batch_example=batch)
    gbatch = shd.global_batch(batch, mesh, rules)
    with shd.use_mesh(mesh, rules):
      flops = _flops(step.jitted, state, gbatch)
    state, m = step(state, gbatch)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(reps):
      state, m = step(state, gbatch)
    jax.block_until_ready(m)
    dt = (time.perf_counter() - t0) / reps
    print(f"  {name:10} {b:6d} {1 / dt:8.2f} {flops / 1e9:11.2f} {100 * flops / dt / peak:9.1f}% "
          f"{tcfg.steps:6d} {tcfg.steps * dt:12.0f}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--config", default="shapes_tiny")
  args, overrides = parser.parse_known_args()
  cfg = load_config(args.config, ["--config.mesh.shape=(1,1,1)"] + overrides)
  reps = 3 if args.quick else 10
  best = best_peak()
  peak = best.flops
  print(f"measured peak: {best}")
  bench_codec(cfg, reps, peak)
  bench_train(cfg, max(2, reps // 2), peak)


if __name__ == "__main__":
  main()
