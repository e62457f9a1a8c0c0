"""Train-step throughput and MFU of the arm_jax stack, next to a plain-JAX step in the same run.

    python benchmarks/train_mfu.py            # shapes_tiny and a ~100M-parameter decoder
    python benchmarks/train_mfu.py --quick    # fewer steps

MFU = model FLOPs (6 N per token + causal attention, counted analytically) / step time / the
best matmul rate measured at the start of this run (train/flops.best_peak: sizes up to 4096 on
CPU, bf16 and f32). The baseline is the same decoder written as
plain JAX functions (no NNX, no sharding annotations, no NaN guard), so the ratio shows what the
stack's structure costs or saves on this machine.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from arm_jax import sharding as shd
from arm_jax.config import load_config
from arm_jax.data.synthetic import synthetic_iterator
from arm_jax.model.transformer import ModelConfig
from arm_jax.train.flops import best_peak, decoder_flops_per_token
from arm_jax.train.optimizer import make_optimizer
from arm_jax.train.pretrain import decoder_fn
from arm_jax.train.state import create_state
from arm_jax.train.step import lm_loss, make_train_step

M100 = ["--config.model.d_model=768", "--config.model.n_layers=12", "--config.model.n_heads=12",
        "--config.model.n_kv_heads=4", "--config.model.head_dim=64", "--config.model.d_ff=2048",
        "--config.model.text_vocab_size=15000", "--config.model.max_grid=32",
        "--config.tokenizer.fsq_levels=(8,8,5,5,5)", "--config.model.image_vocab_size=8000",
        "--config.train.batch_size=8", "--config.train.seq_len=256",
        "--config.model.max_seq_len=256"]
RECIPES = {"shapes_tiny": [], "decoder_100m": M100}


def _time(step, state, batch, n):
  state, m = step(state, batch)
  jax.block_until_ready(m)
  t = time.perf_counter()
  for _ in range(n):
    state, m = step(state, batch)
  jax.block_until_ready(m)
  return (time.perf_counter() - t) / n, state


def stack_step_time(cfg, n):
  mesh, rules = shd.make_mesh(cfg.mesh), shd.rules_of(cfg.mesh)
  tx = make_optimizer(cfg.train)
  state, spec = create_state(decoder_fn(cfg), tx, mesh, rules, seed=0)
  vocab = ModelConfig.from_config(cfg.model).vocab.total_size
  batch = next(synthetic_iterator(vocab, cfg.train.batch_size, cfg.train.seq_len))
  step = make_train_step(spec, tx, lm_loss, rules, batch_example=batch)
  dt, state = _time(step, state, shd.global_batch(batch, mesh, rules), n)
  n_params = sum(x.size for x in jax.tree.leaves(state["params"]))
  return dt, n_params


# --- the plain-JAX baseline: same shapes, written as bare functions ----------------------------
def _plain_init(key, mc: ModelConfig):
  d, hd, f, V = mc.d_model, mc.head_dim, mc.d_ff, mc.vocab.total_size
  ks = iter(jax.random.split(key, 16))
  n = lambda *s: jax.random.normal(next(ks), s, jnp.float32) * 0.02
  L = mc.n_layers
  return dict(emb=n(V, d), out=n(d, V), nf=jnp.ones(d),
              layers=dict(wq=n(L, d, mc.n_heads * hd), wk=n(L, d, mc.n_kv_heads * hd),
                          wv=n(L, d, mc.n_kv_heads * hd), wo=n(L, mc.n_heads * hd, d),
                          w1=n(L, d, f), w3=n(L, d, f), w2=n(L, f, d),
                          n1=jnp.ones((L, d)), n2=jnp.ones((L, d))))


def _plain_loss(p, inputs, targets, mc: ModelConfig):
  bf = jnp.dtype(mc.dtype)
  rms = lambda x, w: (x * jax.lax.rsqrt(jnp.mean(x.astype(jnp.float32) ** 2, -1, keepdims=True)
                                        + 1e-6)).astype(bf) * w.astype(bf)
  x = p["emb"][inputs].astype(bf)
  B, T, _ = x.shape

  def block(x, l):
    y = rms(x, l["n1"])
    q = (y @ l["wq"].astype(bf)).reshape(B, T, mc.n_heads, mc.head_dim)
    k = (y @ l["wk"].astype(bf)).reshape(B, T, mc.n_kv_heads, mc.head_dim)
    v = (y @ l["wv"].astype(bf)).reshape(B, T, mc.n_kv_heads, mc.head_dim)
    a = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    x = x + a.reshape(B, T, -1) @ l["wo"].astype(bf)
    y = rms(x, l["n2"])
    return x + (jax.nn.silu(y @ l["w1"].astype(bf)) * (y @ l["w3"].astype(bf))) @ l["w2"].astype(bf), None

  x, _ = jax.lax.scan(block, x, p["layers"])
  logits = (rms(x, p["nf"]) @ p["out"].astype(bf)).astype(jnp.float32)
  return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def plain_step_time(cfg, n):
  mc = ModelConfig.from_config(cfg.model)
  p = _plain_init(jax.random.key(1), mc)
  tx = optax.adamw(1e-4)
  st = tx.init(p)

  @jax.jit
  def step(carry, batch):
    p, st = carry
    loss, g = jax.value_and_grad(_plain_loss)(p, batch["inputs"], batch["targets"], mc)
    u, st = tx.update(g, st, p)
    return (optax.apply_updates(p, u), st), loss

  batch = next(synthetic_iterator(mc.vocab.total_size, cfg.train.batch_size, cfg.train.seq_len))
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  dt, _ = _time(step, (p, st), batch, n)
  return dt


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="fewer timed steps")
  parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"],
                      help="compute dtypes to time (model.dtype)")
  args = parser.parse_args()
  n = 3 if args.quick else 8
  best = best_peak()
  peak = best.flops
  print(f"backend {jax.default_backend()}, {len(jax.devices())} device(s); measured peak: {best} "
        f"(every MFU below is against it)")
  for (name, overrides), dtype in [(r, d) for r in RECIPES.items() for d in args.dtypes]:
    cfg = load_config("shapes_tiny", overrides + ["--config.mesh.shape=(1,1,1)",
                                                  f"--config.model.dtype='{dtype}'"])
    name = f"{name} [{dtype}]"
    mc = ModelConfig.from_config(cfg.model)
    tokens = cfg.train.batch_size * cfg.train.seq_len
    flops = decoder_flops_per_token(mc, cfg.train.seq_len) * tokens
    dt, n_params = stack_step_time(cfg, n)
    dt_plain = plain_step_time(cfg, n)
    print(f"{name}: {n_params / 1e6:.1f}M params, batch {cfg.train.batch_size} x "
          f"{cfg.train.seq_len}: arm_jax {dt * 1e3:.0f} ms/step, {tokens / dt:,.0f} tok/s, "
          f"MFU {flops / dt / peak:.1%} | plain JAX {dt_plain * 1e3:.0f} ms/step, MFU "
          f"{flops / dt_plain / peak:.1%} | speed ratio arm_jax/plain {dt_plain / dt:.2f}x")


if __name__ == "__main__":
  np.set_printoptions(precision=3)
  main()
