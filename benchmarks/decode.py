"""Decoding speed: the compiled KV-cache sampler vs naive no-cache decoding and HF `generate`.

    python benchmarks/decode.py            # shapes_tiny decoder, a 64-token (8x8) image
    python benchmarks/decode.py --quick    # fewer repetitions

Every figure is measured in this run on the same weights: a T2I prompt (<bos>, 16 caption
tokens, <boi> <h_8> <w_8>), then 64 image codes, greedy. Three decoders:
  ours   arm_jax.decode CompiledSampler: prefill + lax.while_loop over a donated KV cache, grammar
         mask (image codes only), model/cache dtype as named
  naive  the same decoder without a cache: the full forward over the whole fixed-length buffer
         once per new token (one jit, a Python loop)
  hf     the params exported with arm_jax.interop.hf_export, loaded by transformers as
         Qwen2ForCausalLM (float32), `generate` greedy with a logits processor that keeps image
         codes only (the same grammar), default dynamic cache, no torch.compile
tokens/s = batch * 64 / (wall time of the whole call); TTFT = wall time until the first new
token is on the host (ours: prefill + first draw; naive: first step; hf: generate with
max_new_tokens=1). Medians over repetitions. Greedy tokens of ours (float32) and hf are
compared as a check that they run the same network.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arm_jax.config import load_config
from arm_jax.data import formats
from arm_jax.decode import constraints as cons
from arm_jax.decode.compiled import CompiledSampler
from arm_jax.model.transformer import ModelConfig
from arm_jax.train.pretrain import decoder_fn

GRID, CAPTION = 8, 16
NEW = GRID * GRID


def _median_time(fn, reps):
  fn()   # warm-up: compilation stays out of the figures
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def _prompts(vocab, batch, seed=0):
  rng = np.random.default_rng(seed)
  return [formats.t2i_prompt(vocab, rng.integers(0, vocab.text_size, CAPTION), (GRID, GRID))
          for _ in range(batch)]


def _config(dtype):
  return load_config("shapes_tiny", [f"--config.model.dtype='{dtype}'",
                                     f"--config.decode.cache_dtype='{dtype}'",
                                     "--config.decode.batch_buckets=(1,16,32)",
                                     "--config.mesh.shape=(1,1,1)"])


# --- ours ---------------------------------------------------------------------------------------

def bench_ours(config, params, rows, reps, guidance="none"):
  graphdef = nnx.split(nnx.eval_shape(lambda: decoder_fn(config)(nnx.Rngs(0))))[0]
  cs = CompiledSampler(graphdef, params, config)
  vocab = cs.vocab
  batch = len(rows)
  if guidance == "t2i":
    rows = rows + [formats.t2i_prompt(vocab, None, (GRID, GRID))] * batch
  keys = jax.random.split(jax.random.key(0), batch)
  con = cons.image_rows(batch, GRID, GRID, header_in_prompt=True)
  call = lambda **kw: cs(rows, con, keys, max_new=NEW, temperature=0.0, guidance=guidance,
                         text_scale=1.5, **kw)
  total = _median_time(call, reps)
  ttfts = [call(with_ttft=True)[1] for _ in range(reps)]
  return total, statistics.median(ttfts), call().tokens


# --- naive: no cache ----------------------------------------------------------------------------

def bench_naive(config, params, rows, reps):
  graphdef = nnx.split(nnx.eval_shape(lambda: decoder_fn(config)(nnx.Rngs(0))))[0]
  vocab = ModelConfig.from_config(config.model).vocab
  p = len(rows[0])
  length = p + NEW
  image = (jnp.arange(vocab.total_size) >= vocab.image_offset)

  @jax.jit
  def step(params, tokens, t):
    model = nnx.merge(graphdef, params)
    h, _ = model.hidden(tokens)                  # the whole buffer, every step
    h_last = jax.lax.dynamic_slice_in_dim(h, t - 1, 1, axis=1)
    logits = model.logits(h_last)[:, 0].astype(jnp.float32)
    nxt = jnp.argmax(jnp.where(image, logits, -jnp.inf), axis=-1).astype(jnp.int32)
    return jax.lax.dynamic_update_slice_in_dim(tokens, nxt[:, None], t, axis=1)

  start = np.zeros((len(rows), length), np.int32)
  start[:, :p] = np.stack(rows)

  def run(steps=NEW):
    tokens = jnp.asarray(start)
    for t in range(p, p + steps):
      tokens = step(params, tokens, t)
    return np.asarray(tokens)

  total = _median_time(run, reps)
  ttft = _median_time(lambda: run(1), reps)
  return total, ttft, run()[:, p:]


# --- Hugging Face transformers --------------------------------------------------------------------

def bench_hf(config, params, rows, reps):
  import torch
  import transformers
  from arm_jax.interop.hf_export import export_params
  vocab = ModelConfig.from_config(config.model).vocab
  with tempfile.TemporaryDirectory() as d:
    export_params(jax.device_get(params), config, d)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
  model.eval()

  class ImageCodesOnly(transformers.LogitsProcessor):
    def __call__(self, input_ids, scores):
      scores[:, :vocab.image_offset] = -float("inf")
      return scores

  ids = torch.tensor(np.stack(rows), dtype=torch.long)
  mask = torch.ones_like(ids)

  def run(new=NEW):
    with torch.inference_mode():
      return model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                            do_sample=False, logits_processor=[ImageCodesOnly()],
                            pad_token_id=vocab.pad, eos_token_id=None)

  total = _median_time(run, reps)
  ttft = _median_time(lambda: run(1), reps)
  return total, ttft, run()[:, ids.shape[1]:].numpy(), type(model).__name__


def _init(config):
  return jax.jit(lambda: nnx.to_pure_dict(nnx.split(decoder_fn(config)(nnx.Rngs(0)))[1]))()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="fewer repetitions")
  args = parser.parse_args()
  reps = 2 if args.quick else 5
  import torch
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads; {os.cpu_count()} CPUs")
  f32 = _config("float32")
  params = _init(f32)   # float32 masters; the bf16 config computes in bf16 from the same ones
  n_params = sum(x.size for x in jax.tree.leaves(params))
  print(f"decoder: shapes_tiny, {n_params / 1e6:.1f}M params, vocab "
        f"{ModelConfig.from_config(f32.model).vocab.total_size}; a {GRID}x{GRID} image = {NEW} "
        f"new tokens after a {CAPTION + 4}-token prompt, greedy\n")
  print(f"{'decoder':34s} {'batch':>5s} {'tokens/s':>10s} {'TTFT ms':>9s} {'total ms':>9s}")
  results = {}
  for batch in (1, 16):
    rows = _prompts(ModelConfig.from_config(f32.model).vocab, batch)
    runs = [
        ("ours, f32, KV cache", lambda: bench_ours(f32, params, rows, reps)),
        ("ours, bf16 compute + bf16 cache", lambda: bench_ours(_config("bfloat16"), params,
                                                               rows, reps)),
        ("ours, bf16, CFG (2x rows)", lambda: bench_ours(_config("bfloat16"), params, rows,
                                                         reps, guidance="t2i")),
        ("naive no-cache, f32", lambda: bench_naive(f32, params, rows, reps)),
        ("hf transformers generate, f32", lambda: bench_hf(f32, params, rows, reps)),
    ]
    for name, fn in runs:
      total, ttft, tokens, *_ = fn()
      results[(name, batch)] = (batch * NEW / total, tokens)
      print(f"{name:34s} {batch:5d} {batch * NEW / total:10.0f} {ttft * 1e3:9.1f} "
            f"{total * 1e3:9.1f}")
    ours32, naive, hf = (results[(n, batch)] for n in (
        "ours, f32, KV cache", "naive no-cache, f32", "hf transformers generate, f32"))
    best = max(results[(n, batch)][0] for n in ("ours, f32, KV cache",
                                                "ours, bf16 compute + bf16 cache"))
    same = float(np.mean(ours32[1] == hf[1]))
    print(f"  batch {batch}: ours/naive {ours32[0] / naive[0]:.1f}x, ours/hf {ours32[0] / hf[0]:.2f}x "
          f"(f32 vs f32), best ours/hf {best / hf[0]:.2f}x; greedy tokens identical to hf: "
          f"{same:.1%}\n")


if __name__ == "__main__":
  main()
